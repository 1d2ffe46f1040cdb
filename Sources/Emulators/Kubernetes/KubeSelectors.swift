/// Label and field selectors as the apiserver parses them, written independently of the controller's core.
struct KubeSelector: Sendable {
    enum Op: Sendable { case eq, neq, isIn, notIn, exists, notExists }
    struct Requirement: Sendable {
        var key: String
        var op: Op
        var values: [String]
    }
    var requirements: [Requirement] = []

    struct Invalid: Error { var message: String }

    static func parseLabels(_ text: String?) throws(Invalid) -> KubeSelector {
        guard let text, !text.isEmpty else { return KubeSelector() }
        var selector = KubeSelector()
        var clauses: [String] = []
        var depth = 0
        var current = ""
        for character in text {
            if character == "(" { depth += 1 } else if character == ")" { depth -= 1 }
            if character == "," && depth == 0 {
                clauses.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        clauses.append(current)
        for raw in clauses {
            let clause = raw.trimmingCharacters(in: .whitespaces)
            if clause.isEmpty { throw Invalid(message: "unable to parse requirement: empty clause") }
            if clause.hasPrefix("!") {
                selector.requirements.append(.init(key: String(clause.dropFirst()), op: .notExists, values: []))
            } else if let range = clause.range(of: "!=") {
                selector.requirements.append(
                    .init(
                        key: String(clause[..<range.lowerBound]), op: .neq,
                        values: [String(clause[range.upperBound...])]))
            } else if let range = clause.range(of: "==") ?? clause.range(of: "=") {
                selector.requirements.append(
                    .init(
                        key: String(clause[..<range.lowerBound]), op: .eq,
                        values: [String(clause[range.upperBound...])]))
            } else if let range = clause.range(of: " notin ") ?? clause.range(of: " in ") {
                let isIn = !clause[range].contains("notin")
                let list = clause[range.upperBound...].trimmingCharacters(in: .whitespaces)
                guard list.hasPrefix("("), list.hasSuffix(")") else {
                    throw Invalid(message: "unable to parse requirement: found '\(list)', expected: '('")
                }
                let values = list.dropFirst().dropLast().split(separator: ",").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                selector.requirements.append(
                    .init(key: String(clause[..<range.lowerBound]), op: isIn ? .isIn : .notIn, values: values))
            } else {
                guard !clause.contains(" ") else { throw Invalid(message: "unable to parse requirement: \(clause)") }
                selector.requirements.append(.init(key: clause, op: .exists, values: []))
            }
        }
        return selector
    }

    static func parseFields(_ text: String?, allowed: Set<String>) throws(Invalid) -> KubeSelector {
        guard let text, !text.isEmpty else { return KubeSelector() }
        var selector = KubeSelector()
        for clause in text.split(separator: ",") {
            let negated = clause.contains("!=")
            let parts = clause.replacingOccurrences(of: "!=", with: "=").replacingOccurrences(of: "==", with: "=")
                .split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw Invalid(message: "invalid field selector: \(clause)") }
            let key = String(parts[0])
            guard allowed.contains(key) else {
                throw Invalid(message: "field label not supported: \(key)")
            }
            selector.requirements.append(.init(key: key, op: negated ? .neq : .eq, values: [String(parts[1])]))
        }
        return selector
    }

    func matches(_ values: (String) -> String?) -> Bool {
        requirements.allSatisfy { requirement in
            let value = values(requirement.key)
            switch requirement.op {
            case .eq: return value == requirement.values.first
            case .neq: return value != requirement.values.first
            case .isIn: return value.map(requirement.values.contains) ?? false
            case .notIn: return !(value.map(requirement.values.contains) ?? false)
            case .exists: return value != nil
            case .notExists: return value == nil
            }
        }
    }
}
