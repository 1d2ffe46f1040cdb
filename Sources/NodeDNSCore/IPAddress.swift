/// A parsed IP address, so that records carry one canonical text per address and garbage never reaches a provider.
package enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6([UInt8])  // always 16 bytes

    /// Why an address text was refused; the message is logged beside the node name.
    package enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case malformed(String)
        case zoned(String)
        case notRoutable(String, reason: String)

        package var description: String {
            switch self {
            case .malformed(let text): "malformed address \"\(text)\""
            case .zoned(let text): "address \"\(text)\" carries an IPv6 zone, which DNS cannot hold"
            case .notRoutable(let text, let reason): "address \"\(text)\" is \(reason)"
            }
        }
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with an optional embedded IPv4 tail).
    package init(parsing text: String) throws(ParseError) {
        let trimmed = text
        if trimmed.contains("%") { throw .zoned(text) }
        if let v4 = IPAddress.parseV4(Substring(trimmed)) {
            self = .v4(v4)
        } else if let v6 = IPAddress.parseV6(trimmed) {
            self = .v6(v6)
        } else {
            throw .malformed(text)
        }
    }

    /// Parses and refuses addresses that can never serve public traffic (loopback, unspecified, multicast, link-local).
    package init(routable text: String) throws(ParseError) {
        let address = try IPAddress(parsing: text)
        if let reason = address.unroutableReason { throw .notRoutable(text, reason: reason) }
        self = address
    }

    /// The canonical text of an address (2001:db8::1 for 2001:DB8::0:1), or the text itself when it is not one: how
    /// records carry it, so a node's reported address and a record's value compare equal.
    package static func canonicalText(_ text: String) -> String {
        (try? IPAddress(parsing: text))?.description ?? text
    }

    package var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Why the address cannot serve public traffic, or nil when it can.
    package var unroutableReason: String? {
        switch self {
        case .v4(let value):
            let first = value >> 24
            if value == 0 { return "unspecified" }
            if first == 127 { return "loopback" }
            if first >= 224 && first <= 239 { return "multicast" }
            if first >= 240 { return "reserved" }
            if value >> 16 == 0xA9FE { return "link-local" }
            if first == 0 { return "unspecified" }
            return nil
        case .v6(let bytes):
            if bytes.allSatisfy({ $0 == 0 }) { return "unspecified" }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return "loopback" }
            if bytes[0] == 0xFF { return "multicast" }
            if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return "link-local" }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                return "an IPv4-mapped IPv6 address"
            }
            return nil
        }
    }

    /// Canonical text: dotted quad, or RFC 5952 lower-case IPv6 with the longest zero run compressed.
    package var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\((value >> 16) & 0xFF).\((value >> 8) & 0xFF).\(value & 0xFF)"
        case .v6(let bytes):
            var groups: [UInt16] = []
            for index in stride(from: 0, to: 16, by: 2) {
                groups.append(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]))
            }
            var bestStart = -1
            var bestLength = 0
            var index = 0
            while index < 8 {
                if groups[index] == 0 {
                    var end = index
                    while end < 8 && groups[end] == 0 { end += 1 }
                    if end - index > bestLength {
                        bestStart = index
                        bestLength = end - index
                    }
                    index = end
                } else {
                    index += 1
                }
            }
            if bestLength < 2 { bestStart = -1 }
            func hex(_ group: UInt16) -> String { String(group, radix: 16) }
            if bestStart < 0 { return groups.map(hex).joined(separator: ":") }
            let head = groups[0..<bestStart].map(hex).joined(separator: ":")
            let tail = groups[(bestStart + bestLength)...].map(hex).joined(separator: ":")
            return head + "::" + tail
        }
    }

    private static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            if part.count > 1 && part.first == "0" { return nil }  // leading zeros are ambiguous (octal)
            guard let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    private static func parseV6(_ text: String) -> [UInt8]? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        var groups: [UInt16] = []
        let halves = text.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func parseGroups(_ part: Substring, allowV4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            var result: [UInt16] = []
            for (offset, field) in fields.enumerated() {
                if allowV4Tail && offset == fields.count - 1 && field.contains(".") {
                    guard let v4 = parseV4(field) else { return nil }
                    result.append(UInt16(v4 >> 16))
                    result.append(UInt16(v4 & 0xFFFF))
                    continue
                }
                guard !field.isEmpty, field.count <= 4, field.allSatisfy({ $0.isHexDigit }),
                    let group = UInt16(field, radix: 16)
                else { return nil }
                result.append(group)
            }
            return result
        }
        if halves.count == 2 {
            guard let head = parseGroups(halves[0], allowV4Tail: false),
                let tail = parseGroups(halves[1], allowV4Tail: true),
                head.count + tail.count <= 7
            else { return nil }
            groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = parseGroups(halves[0], allowV4Tail: true), all.count == 8 else { return nil }
            groups = all
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for group in groups {
            bytes.append(UInt8(group >> 8))
            bytes.append(UInt8(group & 0xFF))
        }
        return bytes
    }
}

extension String {
    /// Splits on the first "::" only; a second "::" makes three parts, which callers refuse.
    fileprivate func components(separatedByDoubleColon _: Void) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let range = rest.rangeOfLiteral("::") {
            parts.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}
