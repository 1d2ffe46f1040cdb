import NodeDNSCore
import Testing

/// The one command-line tokenizer, as the controller, the emulators and the bench read their flags.
@Suite struct GoFlagsTests {
    static func split(_ arguments: [String]) throws(GoFlags.Problem) -> [String] {
        try GoFlags.split(arguments, isKnown: { ["name", "dry-run"].contains($0) }, isBoolean: { $0 == "dry-run" })
            .map { "\($0.name)=\($0.value)" }
    }

    @Test(
        arguments: [
            (["--name=a.example.com"], ["name=a.example.com"]),
            (["-name=a.example.com"], ["name=a.example.com"]),
            (["--name", "a.example.com"], ["name=a.example.com"]),
            (["-name", "a.example.com", "--name=b"], ["name=a.example.com", "name=b"]),
            (["--dry-run"], ["dry-run=true"]),
            (["--dry-run=false"], ["dry-run=false"]),
            (["--dry-run", "--name", "x"], ["dry-run=true", "name=x"]),
            (["--name="], ["name="]),
        ])
    func flagsAreSplitAsGoReadsThem(arguments: [String], flags: [String]) throws {
        #expect(try Self.split(arguments) == flags)
    }

    @Test(
        arguments: [
            (["a.example.com"], GoFlags.Problem.unexpected("a.example.com")),
            (["--"], .unexpected("--")),
            (["-"], .unexpected("-")),
            (["--nmae=a"], .unknown("nmae")),
            (["--name"], .needsValue("name")),
        ])
    func badCommandLinesAreNamed(arguments: [String], problem: GoFlags.Problem) {
        #expect(throws: problem) { try Self.split(arguments) }
    }

    @Test(
        arguments: [
            ("30s", 30.0), ("100ms", 0.1), ("5m", 300), ("1h30m", 5400), ("2.5", 2.5), ("1.5s", 1.5), ("250us", 0.000_25),
            ("250µs", 0.000_25), ("7ns", 0.000_000_007), ("0", 0),
        ] as [(String, Double)])
    func goDurationsReadAsGoWritesThem(_ text: String, _ seconds: Double) {
        #expect(goDurationSeconds(text).map { abs($0 - seconds) < 1e-12 } == true)
    }

    @Test(arguments: ["", "fast", "5x", "m", "1h30", "-1", "s5", "1.2.3s"])
    func notADurationIsNil(_ text: String) {
        #expect(goDurationSeconds(text) == nil)
    }
}
