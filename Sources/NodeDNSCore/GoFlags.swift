/// Go-style command-line flags, as the controller and every tool of the project read them: `-flag` or `--flag`, the
/// value after `=` or in the next argument, and a boolean flag given bare meaning true. The project's one tokenizer:
/// each program maps its problems to its own words.
package enum GoFlags {
    /// Why a command line could not be split into flags.
    package enum Problem: Error, Equatable {
        /// An argument that is not a flag (`example.com`, `-`, `--`).
        case unexpected(String)
        /// A flag nobody declared (its name without dashes).
        case unknown(String)
        /// A flag that takes a value, last on the line.
        case needsValue(String)
    }

    /// Splits `arguments` into flags and their values, in order. `isKnown` says which names exist; `isBoolean`
    /// which of them take no separate value (`--flag` alone is `--flag=true`).
    package static func split(
        _ arguments: [String], isKnown: (String) -> Bool, isBoolean: (String) -> Bool
    ) throws(Problem) -> [(name: String, value: String)] {
        var flags: [(name: String, value: String)] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("-"), argument != "-", argument != "--" else { throw .unexpected(argument) }
            var name = String(argument.drop { $0 == "-" })
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard isKnown(name) else { throw .unknown(name) }
            if value == nil && !isBoolean(name) {
                guard index < arguments.count else { throw .needsValue(name) }
                value = arguments[index]
                index += 1
            }
            flags.append((name, value ?? "true"))
        }
        return flags
    }
}
