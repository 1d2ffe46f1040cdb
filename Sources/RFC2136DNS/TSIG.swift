import Crypto
import FoundationEssentials

/// A TSIG key (RFC 8945): the server knows it by name, and both sides sign with the shared secret.
package struct TSIGKey: Sendable {
    /// The HMAC algorithms servers commonly accept, by their TSIG algorithm names.
    package enum Algorithm: String, Sendable, CaseIterable {
        case hmacSHA256 = "hmac-sha256"
        case hmacSHA512 = "hmac-sha512"
        case hmacSHA1 = "hmac-sha1"

        var wireName: WireName { try! WireName(rawValue) }

        func mac(_ data: [UInt8], secret: [UInt8]) -> [UInt8] {
            let key = SymmetricKey(data: secret)
            switch self {
            case .hmacSHA256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
            case .hmacSHA512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: key))
            case .hmacSHA1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: key))
            }
        }
    }

    package let name: WireName
    package let algorithm: Algorithm
    let secret: [UInt8]

    /// `secret` is the base64 text that `tsig-keygen`, `keymgr` and `pdnsutil` print.
    package init(name: String, algorithm: Algorithm, base64Secret: String) throws(TSIGError) {
        guard let parsed = try? WireName(name), !parsed.labels.isEmpty else {
            throw .badConfiguration("the TSIG key name \"\(name)\" is not a domain name")
        }
        let trimmed = base64Secret.filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: trimmed) else {
            throw .badConfiguration("the TSIG secret is not base64 (it should look like the secret line tsig-keygen prints)")
        }
        guard data.count >= 8 else {
            throw .badConfiguration("the TSIG secret is too short: \(data.count) octets, want at least 8 (tsig-keygen makes 32)")
        }
        self.name = parsed
        self.algorithm = algorithm
        self.secret = Array(data)
    }
}

/// Why a message could not be signed, or an answer's signature did not verify. Never carries the secret.
package enum TSIGError: Error, Equatable, CustomStringConvertible {
    case badConfiguration(String)
    case unsigned
    case badSignature
    case serverError(UInt16)
    case clockSkew

    package var description: String {
        switch self {
        case .badConfiguration(let text): text
        case .unsigned: "the server's answer carries no TSIG signature"
        case .badSignature: "the TSIG signature on the server's answer does not verify with this key"
        case .serverError(let code): "the server refused the TSIG signature: \(TSIGError.name(of: code))"
        case .clockSkew: "the answer's TSIG time is outside its fudge window (check this machine's clock)"
        }
    }

    /// RFC 8945 section 5.3 error names, with what each usually means.
    static func name(of code: UInt16) -> String {
        switch code {
        case 16: "BADSIG (the secret does not match the server's)"
        case 17: "BADKEY (the server does not know this key name or algorithm)"
        case 18: "BADTIME (the clocks differ by more than the fudge)"
        case 22: "BADTRUNC"
        default: "error \(code)"
        }
    }
}

/// RFC 8945 signing of requests and verification of the answers to them.
package enum TSIG {
    static let fudge: UInt16 = 300

    /// The variables that follow the message in the MAC input (section 4.3.3).
    static func variables(key: TSIGKey, timeSigned: UInt64, fudge: UInt16, error: UInt16, other: [UInt8]) -> [UInt8] {
        var writer = WireWriter()
        writer.name(key.name)
        writer.u16(DNSClass.any.rawValue)
        writer.u32(0)
        writer.name(key.algorithm.wireName)
        writer.u48(timeSigned)
        writer.u16(fudge)
        writer.u16(error)
        writer.u16(UInt16(other.count))
        writer.bytes += other
        return writer.bytes
    }

    /// The message with a TSIG record appended; also returns the request MAC, which the answer's MAC covers.
    package static func sign(_ message: DNSMessage, key: TSIGKey, now: UInt64) -> (bytes: [UInt8], mac: [UInt8]) {
        let unsigned = message.encoded()
        let mac = key.algorithm.mac(
            unsigned + variables(key: key, timeSigned: now, fudge: fudge, error: 0, other: []), secret: key.secret)
        var signed = message
        signed.additional.append(record(key: key, timeSigned: now, mac: mac, originalID: message.id))
        return (signed.encoded(), mac)
    }

    /// The TSIG record that carries `mac` (section 4.2): class ANY, TTL 0, no error, no other data.
    static func record(key: TSIGKey, timeSigned: UInt64, mac: [UInt8], originalID: UInt16) -> ResourceRecord {
        var rdata = WireWriter()
        rdata.name(key.algorithm.wireName)
        rdata.u48(timeSigned)
        rdata.u16(fudge)
        rdata.u16(UInt16(mac.count))
        rdata.bytes += mac
        rdata.u16(originalID)
        rdata.u16(0)
        rdata.u16(0)
        return ResourceRecord(name: key.name, type: .tsig, rrClass: .any, ttl: 0, rdata: rdata.bytes)
    }

    /// Checks the TSIG record that ends an answer to a signed request (section 5.3).
    package static func verify(
        answer bytes: [UInt8], requestMAC: [UInt8], key: TSIGKey, now: UInt64
    ) throws(TSIGError) {
        guard let (start, record, end) = try? lastAdditional(bytes), record.type == DNSType.tsig.rawValue else { throw .unsigned }
        // The TSIG record is class ANY, TTL 0, and ends the message (RFC 8945 section 4.2): a byte after it, or a
        // record that says otherwise, is not covered by the MAC and is refused rather than read.
        guard record.rrClass == DNSClass.any.rawValue, record.ttl == 0, end == bytes.count
        else { throw .badSignature }
        var reader = WireReader(record.rdata)
        let fields: (algorithm: WireName, time: UInt64, fudge: UInt16, mac: [UInt8], originalID: UInt16, error: UInt16, other: [UInt8])
        do {
            let algorithm = try reader.name()
            let time = try reader.u48()
            let fudge = try reader.u16()
            let mac = try reader.octets(Int(try reader.u16()))
            let originalID = try reader.u16()
            let error = try reader.u16()
            let other = try reader.octets(Int(try reader.u16()))
            fields = (algorithm, time, fudge, mac, originalID, error, other)
        } catch {
            throw .badSignature
        }
        if fields.error != 0 { throw .serverError(fields.error) }
        guard record.name == key.name, fields.algorithm == key.algorithm.wireName else { throw .badSignature }
        // The MAC covers the answer as it was before the TSIG record was added: ARCOUNT one less, original id.
        var body = Array(bytes[..<start])
        let arcount = UInt16(body[10]) << 8 | UInt16(body[11])
        guard arcount > 0 else { throw .unsigned }
        body[10] = UInt8((arcount - 1) >> 8)
        body[11] = UInt8((arcount - 1) & 0xFF)
        body[0] = UInt8(fields.originalID >> 8)
        body[1] = UInt8(fields.originalID & 0xFF)
        var input = WireWriter()
        input.u16(UInt16(requestMAC.count))
        input.bytes += requestMAC
        input.bytes += body
        input.bytes += variables(key: key, timeSigned: fields.time, fudge: fields.fudge, error: fields.error, other: fields.other)
        let expected = key.algorithm.mac(input.bytes, secret: key.secret)
        guard constantTimeEqual(expected, fields.mac) else { throw .badSignature }
        let skew = now > fields.time ? now - fields.time : fields.time - now
        guard skew <= UInt64(fields.fudge) else { throw .clockSkew }
    }

    /// The last record of the additional section, and where it starts and ends.
    static func lastAdditional(_ bytes: [UInt8]) throws(MalformedMessage) -> (start: Int, record: ResourceRecord, end: Int)? {
        var reader = WireReader(bytes)
        reader.offset = 4
        let counts = [try reader.u16(), try reader.u16(), try reader.u16(), try reader.u16()]
        guard counts[3] > 0 else { return nil }
        for _ in 0..<counts[0] {
            _ = try reader.name()
            reader.offset += 4
        }
        let before = Int(counts[1]) + Int(counts[2]) + Int(counts[3]) - 1
        for _ in 0..<before { _ = try reader.record() }
        let start = reader.offset
        let record = try reader.record()
        return (start, record, reader.offset)
    }

    /// A signed answer as a server makes it (section 5.3): `unsigned` with ARCOUNT one more and the TSIG record
    /// appended, its MAC over the request's MAC, the answer and the variables. For tests and the fuzzer, which check
    /// `verify` against it; the controller never answers.
    package static func signAnswer(
        _ unsigned: [UInt8], requestMAC: [UInt8], key: TSIGKey, timeSigned: UInt64, originalID: UInt16
    ) -> [UInt8] {
        var input = WireWriter()
        input.u16(UInt16(requestMAC.count))
        input.bytes += requestMAC + unsigned
        input.bytes += variables(key: key, timeSigned: timeSigned, fudge: fudge, error: 0, other: [])
        let mac = key.algorithm.mac(input.bytes, secret: key.secret)
        var signed = WireWriter()
        signed.bytes = unsigned
        signed.record(record(key: key, timeSigned: timeSigned, mac: mac, originalID: originalID))
        let arcount = (UInt16(unsigned[10]) << 8 | UInt16(unsigned[11])) &+ 1
        signed.bytes[10] = UInt8(arcount >> 8)
        signed.bytes[11] = UInt8(arcount & 0xFF)
        return signed.bytes
    }

    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for (left, right) in zip(lhs, rhs) { difference |= left ^ right }
        return difference == 0
    }
}
