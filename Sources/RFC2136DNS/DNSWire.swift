import NodeDNSCore

/// DNS wire format (RFC 1035 section 4): what a query, an UPDATE and their answers look like on the wire.
/// Only what an RFC 2136 client needs: names with compression on read, resource records with raw RDATA.

/// Record types this client writes or reads.
package enum DNSType: UInt16, Sendable {
    case a = 1
    case ns = 2
    case cname = 5
    case soa = 6
    case txt = 16
    case aaaa = 28
    case tsig = 250
    case any = 255
}

/// Record classes: IN for data, NONE and ANY for the deletions and prerequisites of RFC 2136 section 2.4 and 2.5.
package enum DNSClass: UInt16, Sendable {
    case `in` = 1
    case none = 254
    case any = 255
}

/// Response codes (RFC 1035 4.1.1, RFC 2136 2.2), named as `dig` prints them.
package enum ResponseCode: UInt16, Sendable, CustomStringConvertible {
    case noError = 0
    case formErr, servFail, nxDomain, notImp, refused, yxDomain, yxRRSet, nxRRSet, notAuth, notZone

    package var description: String {
        ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"][
            Int(rawValue)]
    }
}

/// A DNS message's wire bytes could not be read.
package struct MalformedMessage: Error, CustomStringConvertible, Equatable {
    package let reason: String
    package init(_ reason: String) { self.reason = reason }
    package var description: String { "malformed DNS message: \(reason)" }
}

/// A domain name as labels, compared case-insensitively (RFC 4343), written without compression.
package struct WireName: Hashable, Sendable, CustomStringConvertible {
    /// Lower-cased labels, root excluded.
    package let labels: [[UInt8]]

    package init(labels: [[UInt8]]) { self.labels = labels.map { $0.map(WireName.lower) } }

    /// From presentation text such as `www.example.com` (a trailing dot is allowed); no escapes.
    package init(_ text: String) throws(MalformedMessage) {
        let trimmed = text.hasSuffix(".") ? String(text.dropLast()) : text
        if trimmed.isEmpty {
            self.init(labels: [])
            return
        }
        var parts: [[UInt8]] = []
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count) else { throw MalformedMessage("name \"\(text)\" has a bad label") }
            parts.append(Array(label.utf8))
        }
        self.init(labels: parts)
        guard wireLength <= 255 else { throw MalformedMessage("name \"\(text)\" is longer than 255 octets") }
    }

    static func lower(_ byte: UInt8) -> UInt8 { (0x41...0x5A).contains(byte) ? byte + 0x20 : byte }

    /// Octets on the wire, the root's zero included.
    package var wireLength: Int { labels.reduce(1) { $0 + 1 + $1.count } }

    package var description: String {
        labels.isEmpty ? "." : labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
    }

    /// This name with `label` in front.
    package func prepending(_ label: String) -> WireName { WireName(labels: [Array(label.utf8)] + labels) }

    /// Whether this name is `zone` or below it.
    package func isWithin(_ zone: WireName) -> Bool {
        labels.count >= zone.labels.count && Array(labels.suffix(zone.labels.count)) == zone.labels
    }
}

/// A resource record with its RDATA as bytes; A, AAAA and TXT have typed views.
package struct ResourceRecord: Hashable, Sendable {
    package var name: WireName
    package var type: UInt16
    package var rrClass: UInt16
    package var ttl: UInt32
    package var rdata: [UInt8]

    package init(name: WireName, type: UInt16, rrClass: UInt16, ttl: UInt32, rdata: [UInt8]) {
        self.name = name
        self.type = type
        self.rrClass = rrClass
        self.ttl = ttl
        self.rdata = rdata
    }

    package init(name: WireName, type: DNSType, rrClass: DNSClass, ttl: UInt32, rdata: [UInt8]) {
        self.init(name: name, type: type.rawValue, rrClass: rrClass.rawValue, ttl: ttl, rdata: rdata)
    }

    /// TXT RDATA: a sequence of character-strings, each at most 255 octets.
    package static func txtData(_ strings: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        for string in strings {
            let utf8 = Array(string.utf8.prefix(255))
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        return bytes
    }

    /// The character-strings of a TXT record, or nil when the RDATA is not well formed.
    package var txtStrings: [String]? {
        var strings: [String] = []
        var index = 0
        while index < rdata.count {
            let length = Int(rdata[index])
            // Bytes that are not UTF-8 are refused, not read with replacement characters as some other text.
            guard index + 1 + length <= rdata.count,
                let string = String(validating: rdata[(index + 1)..<(index + 1 + length)], as: UTF8.self)
            else { return nil }
            strings.append(string)
            index += 1 + length
        }
        return strings
    }
}

/// A DNS message: header fields and the four sections (for an UPDATE: zone, prerequisites, updates, additional).
package struct DNSMessage: Sendable {
    package var id: UInt16
    /// QR, opcode, AA, TC, RD, RA, Z and RCODE as on the wire.
    package var flags: UInt16
    package var questions: [(name: WireName, type: UInt16, rrClass: UInt16)] = []
    package var answers: [ResourceRecord] = []
    package var authority: [ResourceRecord] = []
    package var additional: [ResourceRecord] = []

    package init(id: UInt16, flags: UInt16) {
        self.id = id
        self.flags = flags
    }

    package static let opcodeQuery: UInt16 = 0
    package static let opcodeUpdate: UInt16 = 5

    /// A standard query without recursion (the server is authoritative).
    package static func query(id: UInt16, name: WireName, type: DNSType) -> DNSMessage {
        var message = DNSMessage(id: id, flags: 0)
        message.questions = [(name, type.rawValue, DNSClass.in.rawValue)]
        return message
    }

    /// An RFC 2136 UPDATE: the zone section names the zone, then prerequisites and updates.
    package static func update(
        id: UInt16, zone: WireName, prerequisites: [ResourceRecord], updates: [ResourceRecord]
    ) -> DNSMessage {
        var message = DNSMessage(id: id, flags: opcodeUpdate << 11)
        message.questions = [(zone, DNSType.soa.rawValue, DNSClass.in.rawValue)]
        message.answers = prerequisites
        message.authority = updates
        return message
    }

    package var isResponse: Bool { flags & 0x8000 != 0 }
    package var opcode: UInt16 { (flags >> 11) & 0xF }
    package var isTruncated: Bool { flags & 0x0200 != 0 }
    package var isAuthoritative: Bool { flags & 0x0400 != 0 }
    /// The header's 4-bit RCODE (extended RCODEs need EDNS, which this client does not send).
    package var rcode: UInt16 { flags & 0xF }
    package var responseCode: ResponseCode? { ResponseCode(rawValue: rcode) }

    /// Wire bytes, names uncompressed (a server must accept that; compression is only an optimisation).
    package func encoded() -> [UInt8] {
        var writer = WireWriter()
        writer.u16(id)
        writer.u16(flags)
        writer.u16(UInt16(questions.count))
        writer.u16(UInt16(answers.count))
        writer.u16(UInt16(authority.count))
        writer.u16(UInt16(additional.count))
        for question in questions {
            writer.name(question.name)
            writer.u16(question.type)
            writer.u16(question.rrClass)
        }
        for record in answers + authority + additional { writer.record(record) }
        return writer.bytes
    }

    /// Reads a whole message; names may be compressed.
    package init(decoding bytes: [UInt8]) throws(MalformedMessage) {
        var reader = WireReader(bytes)
        id = try reader.u16()
        flags = try reader.u16()
        let counts = [try reader.u16(), try reader.u16(), try reader.u16(), try reader.u16()]
        for _ in 0..<counts[0] {
            questions.append((try reader.name(), try reader.u16(), try reader.u16()))
        }
        for _ in 0..<counts[1] { answers.append(try reader.record()) }
        for _ in 0..<counts[2] { authority.append(try reader.record()) }
        for _ in 0..<counts[3] { additional.append(try reader.record()) }
        // Found by the tsig fuzzer: bytes after the last record were ignored, so a message could carry what no
        // record (and no TSIG MAC) accounts for. A message is exactly its records.
        guard reader.remaining == 0 else { throw MalformedMessage("\(reader.remaining) bytes after the last record") }
    }
}

/// Appends big-endian fields and uncompressed names.
package struct WireWriter {
    package var bytes: [UInt8] = []
    package init() {}
    package mutating func u16(_ value: UInt16) { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }
    package mutating func u32(_ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
    package mutating func u48(_ value: UInt64) {
        u16(UInt16((value >> 32) & 0xFFFF))
        u32(UInt32(value & 0xFFFF_FFFF))
    }
    package mutating func name(_ name: WireName) {
        for label in name.labels {
            bytes.append(UInt8(label.count))
            bytes += label
        }
        bytes.append(0)
    }
    package mutating func record(_ record: ResourceRecord) {
        name(record.name)
        u16(record.type)
        u16(record.rrClass)
        u32(record.ttl)
        u16(UInt16(record.rdata.count))
        bytes += record.rdata
    }
}

/// Reads big-endian fields and names, following compression pointers (RFC 1035 4.1.4) backwards only.
package struct WireReader {
    let bytes: [UInt8]
    package var offset = 0
    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var remaining: Int { bytes.count - offset }

    mutating func take(_ count: Int) throws(MalformedMessage) -> ArraySlice<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw MalformedMessage("it ends early, at octet \(offset)") }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }
    package mutating func u8() throws(MalformedMessage) -> UInt8 { try take(1).first! }
    package mutating func u16() throws(MalformedMessage) -> UInt16 {
        let part = try take(2)
        return UInt16(part[part.startIndex]) << 8 | UInt16(part[part.startIndex + 1])
    }
    package mutating func u32() throws(MalformedMessage) -> UInt32 { UInt32(try u16()) << 16 | UInt32(try u16()) }
    package mutating func u48() throws(MalformedMessage) -> UInt64 { UInt64(try u16()) << 32 | UInt64(try u32()) }
    package mutating func octets(_ count: Int) throws(MalformedMessage) -> [UInt8] { Array(try take(count)) }

    package mutating func name() throws(MalformedMessage) -> WireName {
        var labels: [[UInt8]] = []
        var position = offset
        var resumeAt: Int?
        var total = 1
        while true {
            guard position < bytes.count else { throw MalformedMessage("a name runs past the end") }
            let length = Int(bytes[position])
            if length == 0 {
                position += 1
                break
            }
            switch length & 0xC0 {
            case 0xC0:
                guard position + 1 < bytes.count else { throw MalformedMessage("a compression pointer runs past the end") }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                // Pointers must point backwards; that alone rules out loops.
                guard target < position else { throw MalformedMessage("a compression pointer does not point backwards") }
                if resumeAt == nil { resumeAt = position + 2 }
                position = target
            case 0:
                guard position + 1 + length <= bytes.count else { throw MalformedMessage("a label runs past the end") }
                labels.append(Array(bytes[(position + 1)..<(position + 1 + length)]))
                total += 1 + length
                guard total <= 255 else { throw MalformedMessage("a name is longer than 255 octets") }
                position += 1 + length
            default:
                throw MalformedMessage("unknown label type \(length >> 6)")
            }
        }
        offset = resumeAt ?? position
        return WireName(labels: labels)
    }

    package mutating func record() throws(MalformedMessage) -> ResourceRecord {
        let name = try name()
        let type = try u16()
        let rrClass = try u16()
        let ttl = try u32()
        let length = Int(try u16())
        let start = offset
        var rdata = try octets(length)
        // Names inside CNAME RDATA may be compressed; expand them so the value reads on its own.
        if type == DNSType.cname.rawValue || type == DNSType.ns.rawValue {
            var inner = self
            inner.offset = start
            var writer = WireWriter()
            writer.name(try inner.name())
            // The name fills the RDATA exactly: one that ends early or runs past it is refused, not read as a name.
            guard inner.offset == start + length else {
                throw MalformedMessage("a \(type == DNSType.cname.rawValue ? "CNAME" : "NS") record's name does not fill its RDATA")
            }
            rdata = writer.bytes
        }
        return ResourceRecord(name: name, type: type, rrClass: rrClass, ttl: ttl, rdata: rdata)
    }
}

/// RDATA of address records, to and from the core's canonical text.
package enum AddressData {
    /// Four or sixteen octets for an IPv4 or IPv6 address; nil for anything else.
    package static func encode(_ text: String) -> [UInt8]? {
        switch try? IPAddress(parsing: text) {
        case .v4(let value): [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
        case .v6(let bytes): bytes
        case nil: nil
        }
    }

    /// Canonical text of A or AAAA RDATA (RFC 5952 for IPv6); nil when the length is wrong.
    package static func decode(_ bytes: [UInt8]) -> String? {
        switch bytes.count {
        case 4: IPAddress.v4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }).description
        case 16: IPAddress.v6(bytes).description
        default: nil
        }
    }
}

/// The RDATA of the types the provider writes: addresses for A and AAAA, an uncompressed name for CNAME.
package enum RecordData {
    /// The types whose records the provider reads as values and writes.
    package static let types: [RecordType] = [.a, .aaaa, .cname]

    package static func encode(_ type: RecordType, _ value: String) -> [UInt8]? {
        switch type {
        case .a, .aaaa: return AddressData.encode(value)
        case .cname:
            guard let name = try? WireName(value) else { return nil }
            var writer = WireWriter()
            writer.name(name)
            return writer.bytes
        case .other: return nil
        }
    }

    /// Canonical text: an address, or a name without its final dot; nil when the RDATA does not read as the type.
    package static func decode(_ type: RecordType, _ bytes: [UInt8]) -> String? {
        switch type {
        case .a, .aaaa: return AddressData.decode(bytes)
        case .cname:
            var reader = WireReader(bytes)
            // A label holding a dot, a space, a control or a non-ASCII byte has no text that writes back the same.
            guard let name = try? reader.name(), reader.remaining == 0,
                name.labels.allSatisfy({ $0.allSatisfy { (0x21...0x7E).contains($0) && $0 != 0x2E } })
            else { return nil }
            return name.description
        case .other: return nil
        }
    }
}
