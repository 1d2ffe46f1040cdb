import NodeDNSCore

/// The few `--name value` options the standalone emulators take, with a clear message for a bad one.
package struct CommandLineOptions {
    package private(set) var values: [String: [String]] = [:]

    /// Why the command line was refused.
    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
        package init(description: String) { self.description = description }
    }

    /// Reads `arguments` as the controller reads its own (`GoFlags`); `booleans` are the known flags that take no value.
    package init(_ arguments: [String], known: Set<String>, booleans: Set<String> = []) throws(Invalid) {
        let all = known.union(booleans)
        do {
            for (name, value) in try GoFlags.split(arguments, isKnown: all.contains, isBoolean: booleans.contains) {
                values[name, default: []].append(value)
            }
        } catch {
            switch error {
            case .unexpected(let argument):
                throw Invalid(description: "unexpected argument \"\(argument)\"")
            case .unknown(let name):
                throw Invalid(description: "unknown option --\(name); known: \(all.sorted().map { "--" + $0 }.joined(separator: ", "))")
            case .needsValue(let name):
                throw Invalid(description: "--\(name) needs a value")
            }
        }
    }

    /// A boolean flag: given bare or as `=true`.
    package func flag(_ name: String) -> Bool { last(name) == "true" }

    package func last(_ name: String) -> String? { values[name]?.last }
    package func all(_ name: String) -> [String] { values[name] ?? [] }

    package func int(_ name: String, default fallback: Int) throws(Invalid) -> Int {
        guard let text = last(name) else { return fallback }
        guard let value = Int(text), value >= 0 else { throw Invalid(description: "--\(name) must be a whole number, not \"\(text)\"") }
        return value
    }
}
