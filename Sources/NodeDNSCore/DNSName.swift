/// A validated, lower-case, dot-free-at-the-end DNS name, so comparisons with provider answers are exact.
package struct DNSName: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let text: String

    /// Why a configured name was refused.
    package struct Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        package let name: String
        package let reason: String
        package var description: String { "invalid DNS name \"\(name)\": \(reason)" }
    }

    package init(_ raw: String) throws(Invalid) {
        var name = raw.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty else { throw Invalid(name: raw, reason: "it is empty") }
        guard name.utf8.count <= 253 else { throw Invalid(name: raw, reason: "it is longer than 253 characters") }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else {
            throw Invalid(name: raw, reason: "it needs at least two labels, such as kubernetes.example.com")
        }
        for (index, label) in labels.enumerated() {
            guard !label.isEmpty else { throw Invalid(name: raw, reason: "it has an empty label") }
            guard label.utf8.count <= 63 else {
                throw Invalid(name: raw, reason: "label \"\(label)\" is longer than 63 characters")
            }
            if index == 0 && label == "*" { continue }
            for byte in label.utf8 {
                let ok =
                    (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x5F
                guard ok else {
                    throw Invalid(
                        name: raw,
                        reason: "label \"\(label)\" may hold only letters, digits, '-' and '_' (use Punycode for IDNs)")
                }
            }
            if label.hasPrefix("-") || label.hasSuffix("-") {
                throw Invalid(name: raw, reason: "label \"\(label)\" starts or ends with '-'")
            }
        }
        text = name
    }

    package var description: String { text }
    package static func < (lhs: DNSName, rhs: DNSName) -> Bool { lhs.text < rhs.text }

    /// Whether this name is the zone apex or lies below it.
    package func isWithin(zone: String) -> Bool {
        let zone = zone.lowercased()
        return text == zone || text.hasSuffix("." + zone)
    }

    /// The candidate zone names from the longest (the name itself) to the shortest (two labels).
    package var zoneCandidates: [String] {
        let labels = text.split(separator: ".")
        guard labels.count >= 2 else { return [text] }
        return (0...(labels.count - 2)).map { labels[$0...].joined(separator: ".") }
    }
}

/// A per-node name pattern such as `{node}.nodes.example.com`.
package struct NodeNameTemplate: Hashable, Sendable, CustomStringConvertible {
    package let pattern: String

    package init(_ pattern: String) throws(DNSName.Invalid) {
        guard pattern.contains("{node}") else {
            throw DNSName.Invalid(name: pattern, reason: "a node name template must contain {node}")
        }
        // One read must find every record the template can make (deleted nodes' included): {node} once.
        guard pattern.replacingAll("{node}", with: "").count == pattern.count - "{node}".count else {
            throw DNSName.Invalid(name: pattern, reason: "a node name template may contain {node} only once")
        }
        _ = try DNSName(pattern.replacingAll("{node}", with: "node"))
        self.pattern = pattern
    }

    /// The name for one node, or nil when the node name cannot be a DNS label.
    package func name(for node: String) -> DNSName? {
        let label = node.lowercased()
        guard !label.isEmpty, !label.contains(".") else { return nil }
        return try? DNSName(pattern.replacingAll("{node}", with: label))
    }

    package var description: String { pattern }
}

extension String {
    /// Replaces every occurrence of a literal; the core stays free of Foundation.
    package func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let index = rest.rangeOfLiteral(target) {
            result += rest[..<index.lowerBound]
            result += replacement
            rest = rest[index.upperBound...]
        }
        result += rest
        return result
    }
}

extension StringProtocol {
    /// The first range of a literal, found without Foundation.
    package func rangeOfLiteral(_ literal: String) -> Range<Index>? {
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(literal) { return index..<self.index(index, offsetBy: literal.count) }
            index = self.index(after: index)
        }
        return nil
    }
}
