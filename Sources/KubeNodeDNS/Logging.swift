import FoundationEssentials
import Logging
import NodeDNSCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Log lines as text or JSON on standard error, with every configured secret replaced before it is written.
package struct ControllerLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level
    let label: String
    let json: Bool
    let secrets: [String]
    let sink: @Sendable (String) -> Void

    package init(
        label: String, level: Logger.Level, json: Bool, secrets: [String],
        sink: @escaping @Sendable (String) -> Void = ControllerLogHandler.standardError
    ) {
        self.label = label
        self.logLevel = level
        self.json = json
        self.secrets = secrets
        self.sink = sink
    }

    package static let standardError: @Sendable (String) -> Void = { line in
        writeToStandardError(line + "\n")
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let time = Date().formatted(.iso8601.time(includingFractionalSeconds: true).year().month().day().dateTimeSeparator(.standard))
        var line: String
        // A message or a value may carry a peer's text (an error, a field of an answer): in both formats, nothing
        // from outside can start a line of its own or flood the log (`peerText`).
        if json {
            var fields: [(String, String)] = [("time", time), ("level", event.level.rawValue), ("msg", "\(event.message)")]
            for key in merged.keys.sorted() { fields.append((key, "\(merged[key]!)")) }
            line =
                "{" + fields.map { "\(Self.quote($0.0)):\(Self.quote(peerText($0.1, escapingControls: false)))" }.joined(separator: ",")
                + "}"
        } else {
            line = "\(time) \(event.level.rawValue.uppercased()) \(peerText("\(event.message)"))"
            for key in merged.keys.sorted() { line += " \(peerText(key))=\(peerText("\(merged[key]!)"))" }
        }
        sink(Redactor(secrets: secrets).redact(line))
    }

    static func quote(_ text: String) -> String { jsonQuoted(text) }
}

/// Replaces secrets in text; a last line of defence, since no code path logs a secret on purpose.
package struct Redactor: Sendable {
    let secrets: [String]
    package init(secrets: [String]) { self.secrets = secrets.filter { !$0.isEmpty } }
    /// Replaces the given secrets and every secret learnt since start (`SecretRegistry`).
    package func redact(_ text: String) -> String {
        (secrets + SecretRegistry.shared.all).reduce(text) { $0.replacing($1, with: "[REDACTED]") }
    }
}

/// Writes the whole text to standard error unbuffered, as one write where it fits, so concurrent lines do not mix.
package func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}
