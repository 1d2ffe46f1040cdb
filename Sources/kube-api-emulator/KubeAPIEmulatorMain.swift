import Emulators
import Foundation
import Logging
import NIOSSL

/// The Kubernetes API emulator as a standalone server for outside programs (probe.py, kubectl).
@main
struct KubeAPIEmulatorMain {
    static func main() async {
        let usage = """
            usage: kube-api-emulator --port N [--token T] [--tls-cert PEM --tls-key PEM] [--bookmark-interval SECONDS]
            Fault switches: POST /_emulator/compact, /_emulator/drop-watches, /_emulator/bookmark,
            /_emulator/fail?status=429&count=3&retryAfter=1, /_emulator/delay?ms=200; GET /_emulator/requests.
            """
        do {
            let arguments = Array(CommandLine.arguments.dropFirst())
            if arguments.contains("--help") || arguments.contains("-h") {
                print(usage)
                return
            }
            let options = try CommandLineOptions(arguments, known: ["port", "token", "tls-cert", "tls-key", "bookmark-interval"])
            var emulatorOptions = KubeAPIEmulator.Options(token: options.last("token"))
            emulatorOptions.bookmarkInterval = Double(try options.int("bookmark-interval", default: 60))
            var tls: TLSConfiguration?
            if let cert = options.last("tls-cert") {
                guard let key = options.last("tls-key") else { throw CommandLineOptions.Invalid(description: "--tls-cert needs --tls-key") }
                tls = try TestCertificates.serverConfiguration(certificatePath: cert, keyPath: key)
            }
            let emulator = KubeAPIEmulator(options: emulatorOptions)
            var logger = Logger(label: "kube-api-emulator")
            logger.logLevel = .warning
            let scheme = tls == nil ? "http" : "https"
            try await emulator.run(port: try options.int("port", default: 0), tls: tls, logger: logger) { port in
                FileHandle.standardOutput.write(Data("kube-api-emulator listening on \(scheme)://127.0.0.1:\(port)\n".utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("kube-api-emulator: \(error)\n\(usage)\n".utf8))
            exit(2)
        }
    }
}
