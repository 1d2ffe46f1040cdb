/// A Kubernetes label selector (`a=b,c!=d,e in (f,g),h notin (i),j,!k`), evaluated locally so nodes can be filtered without a second watch.
package struct LabelSelector: Hashable, Sendable, CustomStringConvertible {
    package enum Requirement: Hashable, Sendable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
    }

    /// Why a selector text was refused.
    package struct Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        package let selector: String
        package let reason: String
        package var description: String { "invalid label selector \"\(selector)\": \(reason)" }
    }

    package let requirements: [Requirement]
    package let text: String

    package init(_ text: String) throws(Invalid) {
        self.text = text
        var requirements: [Requirement] = []
        for clause in LabelSelector.splitClauses(text) {
            let clause = clause.trimmed
            if clause.isEmpty { throw Invalid(selector: text, reason: "it has an empty clause") }
            requirements.append(try LabelSelector.parseClause(clause, whole: text))
        }
        self.requirements = requirements
    }

    package var description: String { text }

    /// The selector printed from its requirements, in order, `in` lists sorted: the text that parses back to the
    /// same requirements, however the original was spaced.
    package var canonicalText: String {
        requirements.map { requirement in
            switch requirement {
            case .equals(let key, let value): "\(key)=\(value)"
            case .notEquals(let key, let value): "\(key)!=\(value)"
            case .isIn(let key, let values): "\(key) in (\(values.sorted().joined(separator: ",")))"
            case .notIn(let key, let values): "\(key) notin (\(values.sorted().joined(separator: ",")))"
            case .exists(let key): key
            case .doesNotExist(let key): "!\(key)"
            }
        }.joined(separator: ",")
    }

    /// Every label key a requirement looks at: the labels worth keeping of an object this selector is matched on.
    package var keys: Set<String> {
        Set(
            requirements.map { requirement in
                switch requirement {
                case .equals(let key, _), .notEquals(let key, _), .isIn(let key, _), .notIn(let key, _), .exists(let key),
                    .doesNotExist(let key):
                    key
                }
            })
    }

    package func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .isIn(let key, let values): labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): !(labels[key].map(values.contains) ?? false)
            case .exists(let key): labels[key] != nil
            case .doesNotExist(let key): labels[key] == nil
            }
        }
    }

    private static func splitClauses(_ text: String) -> [String] {
        var clauses: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            if character == "(" { depth += 1 }
            if character == ")" { depth -= 1 }
            if character == "," && depth == 0 {
                clauses.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty || !clauses.isEmpty { clauses.append(current) }
        return clauses
    }

    private static func parseClause(_ clause: String, whole: String) throws(Invalid) -> Requirement {
        if clause.hasPrefix("!") {
            let key = String(clause.dropFirst()).trimmed
            try validateKey(key, whole: whole)
            return .doesNotExist(key)
        }
        for (op, make) in [("!=", Requirement.notEquals), ("==", Requirement.equals), ("=", Requirement.equals)] {
            if let range = clause.rangeOfLiteral(op) {
                let key = String(clause[..<range.lowerBound]).trimmed
                let value = String(clause[range.upperBound...]).trimmed
                try validateKey(key, whole: whole)
                try validateValue(value, whole: whole)
                return make(key, value)
            }
        }
        let words = clause.split(separator: " ", maxSplits: 1).map(String.init)
        if words.count == 2 {
            let key = words[0]
            let rest = words[1].trimmed
            for (op, isIn) in [("in", true), ("notin", false)] where rest.hasPrefix(op) {
                let list = String(rest.dropFirst(op.count)).trimmed
                guard list.hasPrefix("("), list.hasSuffix(")") else {
                    throw Invalid(selector: whole, reason: "\"\(op)\" needs a parenthesised list, as in \(key) \(op) (a,b)")
                }
                let values = list.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
                    .map { String($0).trimmed }
                try validateKey(key, whole: whole)
                for value in values { try validateValue(value, whole: whole) }
                return isIn ? .isIn(key, Set(values)) : .notIn(key, Set(values))
            }
            throw Invalid(selector: whole, reason: "cannot read \"\(clause)\"")
        }
        try validateKey(clause, whole: whole)
        return .exists(clause)
    }

    private static func validateKey(_ key: String, whole: String) throws(Invalid) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, !name.isEmpty, name.count <= 63 else {
            throw Invalid(selector: whole, reason: "\"\(key)\" is not a valid label key")
        }
        // The prefix is a DNS subdomain, as Kubernetes requires (example.com/role).
        if parts.count == 2
            && (parts[0].count > 253
                || parts[0].split(separator: ".", omittingEmptySubsequences: false).contains { label in
                    !isLabelText(label, allowEmpty: false) || label.contains("_") || label.contains { $0.isUppercase }
                })
        {
            throw Invalid(selector: whole, reason: "\"\(key)\" has an invalid prefix (it must be a DNS subdomain, such as example.com)")
        }
        guard isLabelText(name, allowEmpty: false) else {
            throw Invalid(selector: whole, reason: "\"\(key)\" is not a valid label key")
        }
    }

    private static func validateValue(_ value: String, whole: String) throws(Invalid) {
        guard value.count <= 63, isLabelText(Substring(value), allowEmpty: true) else {
            throw Invalid(selector: whole, reason: "\"\(value)\" is not a valid label value")
        }
    }

    private static func isLabelText(_ text: Substring, allowEmpty: Bool) -> Bool {
        if text.isEmpty { return allowEmpty }
        let alnum: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber) }
        guard let first = text.first, let last = text.last, alnum(first), alnum(last) else { return false }
        return text.allSatisfy { alnum($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }
}

extension String {
    package var trimmed: String {
        var slice = self[...]
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
