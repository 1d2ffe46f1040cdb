/// The few `--name value` options the standalone emulators take, with a clear message for a bad one.
package struct CommandLineOptions {
    package private(set) var values: [String: [String]] = [:]

    /// Why the command line was refused.
    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
        package init(description: String) { self.description = description }
    }

    package init(_ arguments: [String], known: Set<String>) throws(Invalid) {
        var index = 0
        while index < arguments.count {
            var argument = arguments[index]
            guard argument.hasPrefix("--") else { throw Invalid(description: "unexpected argument \"\(argument)\"") }
            argument.removeFirst(2)
            var value: String
            if let equals = argument.firstIndex(of: "=") {
                value = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            } else {
                guard index + 1 < arguments.count else { throw Invalid(description: "--\(argument) needs a value") }
                index += 1
                value = arguments[index]
            }
            guard known.contains(argument) else {
                throw Invalid(
                    description: "unknown option --\(argument); known: \(known.sorted().map { "--" + $0 }.joined(separator: ", "))")
            }
            values[argument, default: []].append(value)
            index += 1
        }
    }

    package func last(_ name: String) -> String? { values[name]?.last }
    package func all(_ name: String) -> [String] { values[name] ?? [] }

    package func int(_ name: String, default fallback: Int) throws(Invalid) -> Int {
        guard let text = last(name) else { return fallback }
        guard let value = Int(text), value >= 0 else { throw Invalid(description: "--\(name) must be a whole number, not \"\(text)\"") }
        return value
    }
}
