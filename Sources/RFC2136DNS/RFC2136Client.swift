import Logging
import NodeDNSCore
import NIOConcurrencyHelpers

/// An RFC 2136 failure, sorted by who can fix it: a wrong key or a refused update needs a person; a server
/// that is down, busy or answering garbage is retried; a refused prerequisite means "read again".
package enum RFC2136Error: DNSProviderError, CustomStringConvertible {
    /// The configuration cannot work (a name outside the zone, a server that is not authoritative, a bad key).
    case configuration(String)
    /// The server refused the update or the query for a reason only a configuration change fixes.
    case refused(ResponseCode, String)
    /// A prerequisite failed: someone changed the names since they were read. Read again and re-plan.
    case changedSinceRead(ResponseCode)
    /// SERVFAIL or another answer that a retry may cure.
    case server(ResponseCode, String)
    case transport(DNSTransportError)
    case malformed(String)
    case signature(TSIGError)

    package var needsOperator: Bool {
        switch self {
        case .configuration, .refused: true
        case .signature(let error): error != .unsigned
        case .changedSinceRead, .server, .transport, .malformed: false
        }
    }

    package var description: String {
        switch self {
        case .configuration(let text): text
        case .refused(let code, let text): "the DNS server answered \(code): \(text)"
        case .changedSinceRead(let code):
            "the DNS server refused the update (\(code)): the records changed since they were read; reading them again"
        case .server(let code, let text): "the DNS server answered \(code) \(text); retrying"
        case .transport(let error): "\(error)"
        case .malformed(let text): "the DNS server's answer could not be read: \(text)"
        case .signature(let error): "\(error); check --rfc2136-tsig-key-name, --rfc2136-tsig-secret and --rfc2136-tsig-algorithm"
        }
    }
}

/// Queries and signed UPDATEs for one zone on one server, as RFC 1035, 2136 and 8945 describe them.
package final class RFC2136Client: Sendable {
    package let transport: DNSTransport
    package let kind: DNSTransportKind
    package let zone: WireName
    package let key: TSIGKey
    let logger: Logger
    /// Seconds since 1970, for TSIG's time signed; injectable so tests can check clock skew.
    let now: @Sendable () -> UInt64
    private let nextID = NIOLockedValueBox(UInt16.random(in: 0...UInt16.max))
    /// Called after each exchange with the kind of message and its outcome, for metrics.
    let observer: (@Sendable (_ operation: String, _ outcome: String) -> Void)?

    package init(
        transport: DNSTransport, kind: DNSTransportKind, zone: WireName, key: TSIGKey, logger: Logger,
        now: @escaping @Sendable () -> UInt64, observer: (@Sendable (String, String) -> Void)? = nil
    ) {
        self.transport = transport
        self.kind = kind
        self.zone = zone
        self.key = key
        self.logger = logger
        self.now = now
        self.observer = observer
    }

    private func ids(_ count: Int) -> [UInt16] {
        nextID.withLockedValue { next in
            (0..<count).map { _ in
                next &+= 1
                return next
            }
        }
    }

    /// The answer to one question: the records of that name and type, and whether a CNAME sits on the name.
    package struct Lookup: Sendable {
        package var records: [ResourceRecord]
        package var cname: ResourceRecord?
    }

    /// Asks every question (plain queries, as a resolver would), over one TCP connection or one datagram each.
    package func lookup(_ questions: [(name: WireName, type: DNSType)]) async throws(RFC2136Error) -> [Lookup] {
        var results: [Lookup] = []
        results.reserveCapacity(questions.count)
        // Ids are 16 bits; a single connection carries at most a few thousand questions at a time.
        for start in stride(from: 0, to: questions.count, by: 4096) {
            let slice = Array(questions[start..<min(questions.count, start + 4096)])
            let messages = zip(ids(slice.count), slice).map { id, question in
                DNSMessage.query(id: id, name: question.name, type: question.type)
            }
            let answers = try await exchange(messages.map { (id: $0.id, bytes: $0.encoded()) }, operation: "query")
            for (message, question) in zip(messages, slice) {
                guard let bytes = answers[message.id] else { throw .transport(.closed) }
                results.append(try read(bytes, for: message, question: question))
            }
        }
        return results
    }

    private func read(
        _ bytes: [UInt8], for query: DNSMessage, question: (name: WireName, type: DNSType)
    ) throws(RFC2136Error) -> Lookup {
        let answer: DNSMessage
        do { answer = try DNSMessage(decoding: bytes) } catch { throw .malformed("\(error)") }
        guard answer.isResponse, answer.id == query.id, answer.questions.first?.name == question.name else {
            throw .malformed("an answer to a question that was not asked")
        }
        observer?("query", "\(answer.responseCode.map { "\($0)" } ?? "RCODE\(answer.rcode)")")
        switch answer.responseCode {
        case .noError, .nxDomain: break
        case .refused, .notAuth:
            throw .refused(
                answer.responseCode!,
                "to a query for \(question.name) \(question.type); the server must answer queries for zone \(zone) from this address")
        default:
            throw .server(answer.responseCode ?? .servFail, "to a query for \(question.name)")
        }
        guard answer.isAuthoritative || answer.responseCode == .nxDomain || !answer.answers.isEmpty else {
            throw .configuration(
                "the DNS server \(transport.host):\(transport.port) is not authoritative for \(question.name); point --rfc2136-server at the zone's primary"
            )
        }
        let own = answer.answers.filter { $0.name == question.name && $0.rrClass == DNSClass.in.rawValue }
        return Lookup(
            records: own.filter { $0.type == question.type.rawValue },
            cname: question.type == .cname ? nil : own.first { $0.type == DNSType.cname.rawValue })
    }

    /// The zone is served with authority by this server: its SOA answers with the AA bit.
    package func checkZone() async throws(RFC2136Error) {
        let result = try await lookup([(zone, .soa)])
        guard let soa = result.first, !soa.records.isEmpty else {
            throw .configuration(
                "the DNS server \(transport.host):\(transport.port) has no zone \(zone) (no SOA record); check --rfc2136-zone")
        }
    }

    /// Sends one signed UPDATE (section 3: prerequisites first, then the updates, all or nothing).
    package func update(prerequisites: [ResourceRecord], updates: [ResourceRecord]) async throws(RFC2136Error) {
        let message = DNSMessage.update(id: ids(1)[0], zone: zone, prerequisites: prerequisites, updates: updates)
        let (bytes, mac) = TSIG.sign(message, key: key, now: now())
        guard bytes.count <= 65_535 else {
            throw .configuration("an UPDATE of \(bytes.count) octets is over DNS's 65,535-octet message limit")
        }
        let answers = try await exchange([(message.id, bytes)], operation: "update", forceTCP: bytes.count > 512)
        guard let answerBytes = answers[message.id] else { throw .transport(.closed) }
        let answer: DNSMessage
        do { answer = try DNSMessage(decoding: answerBytes) } catch { throw .malformed("\(error)") }
        guard answer.isResponse, answer.opcode == DNSMessage.opcodeUpdate else {
            throw .malformed("the answer to an UPDATE is not an UPDATE response")
        }
        let code = answer.responseCode ?? .servFail
        // A server that refuses the key answers without a valid signature (it cannot sign with a key it does
        // not know), so the code is reported first; a NOERROR must verify.
        if code == .noError || answer.additional.last?.type == DNSType.tsig.rawValue {
            do {
                try TSIG.verify(answer: answerBytes, requestMAC: mac, key: key, now: now())
            } catch {
                if code == .noError || error != .unsigned { throw .signature(error) }
            }
        }
        observer?("update", "\(code)")
        switch code {
        case .noError: return
        case .nxRRSet, .yxRRSet, .nxDomain, .yxDomain: throw .changedSinceRead(code)
        case .refused:
            throw .refused(
                code,
                "the update was refused: this key may not change these names in \(zone) (check the server's update-policy, allow-update or TSIG-ALLOW-DNSUPDATE)"
            )
        case .notAuth:
            throw .refused(
                code,
                "the server did not accept the TSIG key \(key.name) (\(key.algorithm.rawValue)), or is not authoritative for \(zone); check the key name, secret and algorithm"
            )
        case .notZone: throw .configuration("a name in the update is outside the zone \(zone)")
        default: throw .server(code, "to an UPDATE of \(zone)")
        }
    }

    /// Checks the key without changing anything: an UPDATE whose only content is a prerequisite that always holds
    /// (the zone's apex exists). A wrong key or a missing permission is refused here, at start.
    package func checkKey() async throws(RFC2136Error) {
        try await update(
            prerequisites: [ResourceRecord(name: zone, type: .any, rrClass: .any, ttl: 0, rdata: [])], updates: [])
    }

    private func exchange(
        _ messages: [(id: UInt16, bytes: [UInt8])], operation: String, forceTCP: Bool = false
    ) async throws(RFC2136Error) -> [UInt16: [UInt8]] {
        do {
            if kind == .tcp || forceTCP {
                return try await transport.exchangeTCP(messages)
            }
            var answers: [UInt16: [UInt8]] = [:]
            for message in messages {
                var answer: [UInt8]?
                var attempt = 0
                while answer == nil {
                    attempt += 1
                    do {
                        answer = try await transport.exchangeUDP(message.bytes, id: message.id)
                    } catch let error as DNSTransportError where attempt < 3 {
                        logger.debug("no UDP answer; sending again", metadata: ["error": "\(error)"])
                    }
                }
                // TC: the answer did not fit a datagram; ask again over TCP (RFC 1035 section 4.2.1).
                if let bytes = answer, bytes.count >= 3, bytes[2] & 0x02 != 0 {
                    logger.debug("truncated UDP answer; asking again over TCP")
                    answer = try await transport.exchangeTCP([message])[message.id]
                }
                answers[message.id] = answer
            }
            return answers
        } catch let error as DNSTransportError {
            observer?(operation, "unreachable")
            throw .transport(error)
        } catch {
            observer?(operation, "unreachable")
            throw .transport(.connect("\(error)"))
        }
    }
}
