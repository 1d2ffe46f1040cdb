import CloudflareDNS
import Foundation
import NodeDNSCore

/// A Cloudflare answer, any status: it is the envelope, or refused as malformed, or Cloudflare's own error; never
/// an empty result read from something else. An answer that claims success carries a result of the type asked for.
@Sendable func fuzzCloudflareAnswer(_ data: [UInt8]) {
    var input = FuzzReader(data)
    let statuses = [200, 201, 400, 401, 403, 404, 429, 500, 502, 503]
    let status = statuses[Int(input.byte()) % statuses.count]
    let kind = input.byte() % 3
    let body = input.rest()
    body.withUnsafeBytes { raw in
        do throws(CloudflareError) {
            switch kind {
            case 0:
                let envelope = try CloudflareClient.readAnswer(
                    status: status, body: raw, retryAfter: nil, endpoint: "dns_records", as: [CloudflareClient.Record].self)
                require((200..<300).contains(status) && envelope.success, "a \(status) or an unsuccessful answer was read as records")
            case 1:
                let envelope = try CloudflareClient.readAnswer(
                    status: status, body: raw, retryAfter: nil, endpoint: "zones", as: [CloudflareClient.Zone].self)
                require((200..<300).contains(status) && envelope.success, "a \(status) or an unsuccessful answer was read as zones")
            default:
                let envelope = try CloudflareClient.readAnswer(
                    status: status, body: raw, retryAfter: nil, endpoint: "batch", as: CloudflareClient.BatchResult.self)
                require((200..<300).contains(status) && envelope.success, "a \(status) or an unsuccessful answer was read as a batch")
            }
        } catch {
            switch error {
            case .malformed: require((200..<300).contains(status), "a \(status) was called malformed instead of Cloudflare's error")
            case .api: break
            default: fatalError("property violated: reading an answer failed as \(error)")
            }
            // What a log line shows of it is one line, whatever the peer sent.
            let logged = peerText("\(error)")
            require(
                !logged.unicodeScalars.contains { ["\n", "\r", "\u{0B}", "\u{0C}", "\u{85}", "\u{2028}", "\u{2029}"].contains($0) },
                "a logged error breaks the line: \(logged)")
        }
    }
}

/// A DNS name the user configures or a node's annotation asks for: one that parses prints to a name that parses
/// to itself.
@Sendable func fuzzDNSName(_ data: [UInt8]) {
    guard let text = String(validating: data, as: UTF8.self), let name = try? DNSName(text) else { return }
    guard let again = try? DNSName(name.text) else {
        fatalError("property violated: \"\(text)\" prints as \"\(name.text)\", which does not parse")
    }
    require(again == name, "\"\(text)\" and its print \"\(name.text)\" differ")
    require(name.text.utf8.allSatisfy { $0 < 0x80 }, "a name prints with non-ASCII bytes: \(name.text)")
    require(name.isWithin(zone: name.text), "a name is not within itself")
    for zone in name.zoneCandidates { require(name.isWithin(zone: zone), "\(name) is not within its candidate zone \(zone)") }
}

/// An address from a Node's status or a DNS answer: one that parses prints canonically, and the print parses back to
/// the same address.
@Sendable func fuzzIPAddress(_ data: [UInt8]) {
    guard let text = String(validating: data, as: UTF8.self), let address = try? IPAddress(parsing: text) else { return }
    let printed = address.description
    guard let again = try? IPAddress(parsing: printed) else {
        fatalError("property violated: \"\(text)\" prints as \"\(printed)\", which does not parse")
    }
    require(again == address, "\"\(text)\" and its print \"\(printed)\" differ")
    require(again.description == printed, "printing \"\(text)\" is not stable")
    require(IPAddress.canonicalText(text) == printed, "canonicalText differs from the print for \"\(text)\"")
}

/// A duration flag (`--resync-period=1h30m`, `2.5`): nil, or a finite number of seconds that reads back as itself.
@Sendable func fuzzDuration(_ data: [UInt8]) {
    guard let text = String(validating: data, as: UTF8.self), let seconds = goDurationSeconds(text) else { return }
    require(seconds.isFinite && seconds >= 0, "\"\(text)\" reads as \(seconds) seconds")
    require(goDurationSeconds("\(seconds)") == seconds, "\(seconds) s does not read back as itself")
    // What the controller does with one: a `Duration`, and nanoseconds for AsyncHTTPClient's timeouts.
    _ = Duration.seconds(seconds)
    _ = Int64(seconds * 1e9)
}

/// A command line (arguments separated by NUL bytes): the flags it splits into are known ones, and written back as
/// `--name=value` they split into the same flags.
@Sendable func fuzzGoFlags(_ data: [UInt8]) {
    let arguments = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let known: Set<String> = ["dns-name", "ttl", "once", "dry-run", "node-selector"]
    let booleans: Set<String> = ["once", "dry-run"]
    guard let flags = try? GoFlags.split(arguments, isKnown: known.contains, isBoolean: booleans.contains) else { return }
    require(flags.allSatisfy { known.contains($0.name) }, "an unknown flag was accepted: \(flags)")
    let written = flags.map { "--\($0.name)=\($0.value)" }
    guard let again = try? GoFlags.split(written, isKnown: known.contains, isBoolean: booleans.contains) else {
        fatalError("property violated: the flags \(flags) written back do not split")
    }
    require(again.map(\.name) == flags.map(\.name) && again.map(\.value) == flags.map(\.value), "\(flags) written back split as \(again)")
}
