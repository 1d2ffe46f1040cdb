import Emulators
import Foundation
import Logging

/// The Cloudflare API emulator as a standalone server for outside programs (the official Python SDK).
@main
struct CloudflareEmulatorMain {
    static func main() async {
        let usage = """
            usage: cloudflare-emulator --port N --zone NAME [--zone NAME...] --token T [--token T...]
                   [--readonly-token T] [--email E --global-key K] [--traffic FILE.jsonl] [--rate-limit N]
            Serves /client/v4 on 127.0.0.1. Fault switches: POST /_emulator/fail?status=429&count=1&retryAfter=1,
            /_emulator/delay?ms=200, /_emulator/fail-batch?count=1, /_emulator/outage?seconds=60,
            /_emulator/dns-edit?token=T&allowed=false, /_emulator/revoke?token=T; GET /_emulator/records.
            """
        do {
            let arguments = Array(CommandLine.arguments.dropFirst())
            if arguments.contains("--help") || arguments.contains("-h") {
                print(usage)
                return
            }
            let options = try CommandLineOptions(
                arguments,
                known: ["port", "zone", "token", "readonly-token", "email", "global-key", "traffic", "rate-limit"])
            guard !options.all("zone").isEmpty else { throw CommandLineOptions.Invalid(description: "give at least one --zone") }
            var emulatorOptions = CloudflareEmulator.Options(
                zones: options.all("zone"),
                tokens: options.all("token").map { .init($0) } + options.all("readonly-token").map { .init($0, dnsEdit: false) })
            if let email = options.last("email"), let key = options.last("global-key") {
                emulatorOptions.globalKeys = [(email, key)]
            }
            emulatorOptions.trafficLogPath = options.last("traffic")
            let limit = try options.int("rate-limit", default: 1200)
            emulatorOptions.rateLimit = limit == 0 ? nil : limit
            let emulator = CloudflareEmulator(options: emulatorOptions)
            var logger = Logger(label: "cloudflare-emulator")
            logger.logLevel = .warning
            try await emulator.run(port: try options.int("port", default: 0), logger: logger) { port in
                FileHandle.standardOutput.write(Data("cloudflare-emulator listening on http://127.0.0.1:\(port)/client/v4\n".utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("cloudflare-emulator: \(error)\n\(usage)\n".utf8))
            exit(2)
        }
    }
}
