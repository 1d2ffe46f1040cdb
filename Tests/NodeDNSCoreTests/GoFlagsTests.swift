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
}
