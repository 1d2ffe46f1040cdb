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
            // Found by the go-flags fuzzer: a value that starts with a combining mark hid the "=" before it.
            (["--name=\u{0591}x="], ["name=\u{0591}x="]),
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
            (["---name=a"], .unexpected("---name=a")),
            (["-=a"], .unexpected("-=a")),
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

    /// Found by the `duration` fuzzer: 60 digits read as 4.4e59 seconds, and turning that into a `Duration` trapped.
    /// Like Go's `time.ParseDuration`, a duration past 2^63 - 1 nanoseconds (about 292 years) is refused, as is
    /// anything infinite.
    @Test(arguments: [String(repeating: "4", count: 59) + "5", "inf", "infinity", "1e999", "9223372037s", "2562048h", "nan"])
    func aDurationPastGosLimitIsNil(_ text: String) {
        #expect(goDurationSeconds(text) == nil)
    }

    @Test func theLongestDurationGoReadsStillReads() throws {
        let seconds = try #require(goDurationSeconds("2562047h"))
        #expect(Duration.seconds(seconds) == .seconds(9_223_369_200))
    }
}
