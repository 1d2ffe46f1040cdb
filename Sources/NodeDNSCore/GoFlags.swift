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
            // Read as Unicode scalars, not Characters: a combining mark after "=" or "-" (found by the go-flags fuzzer,
            // "--ttl=\u{591}x") would otherwise hide it. One dash or two, as Go's flag package reads them: "---x" and
            // "-=x" are not flags.
            let scalars = argument.unicodeScalars
            guard scalars.first == "-", argument != "-", argument != "--" else { throw .unexpected(argument) }
            let dashes = scalars.dropFirst().first == "-" ? 2 : 1
            var name = String(scalars.dropFirst(dashes))
            guard let first = name.unicodeScalars.first, first != "-", first != "=" else { throw .unexpected(argument) }
            var value: String?
            let nameScalars = name.unicodeScalars
            if let equals = nameScalars.firstIndex(of: "=") {
                value = String(nameScalars[nameScalars.index(after: equals)...])
                name = String(nameScalars[..<equals])
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

/// The seconds in Go duration text ("100ms", "5m", "1h30m", as Go's `time.ParseDuration` writes them) or in plain
/// non-negative seconds ("2.5"); nil when the text is neither.
package func goDurationSeconds(_ text: String) -> Double? {
    // Within Go's limit only, 2^63 - 1 nanoseconds (about 292 years): "inf", "1e999" or 60 digits is no duration, and
    // turning one into a `Duration` or a count of nanoseconds would trap.
    let longest = 9_223_372_036.0
    if let seconds = Double(text) { return seconds >= 0 && seconds <= longest ? seconds : nil }
    var total = 0.0
    var number = ""
    var index = text.startIndex
    var sawUnit = false
    while index < text.endIndex {
        let character = text[index]
        if character.isNumber || character == "." {
            number.append(character)
            index = text.index(after: index)
            continue
        }
        var unit = String(character)
        let next = text.index(after: index)
        if next < text.endIndex && text[next] == "s" && ["m", "u", "µ", "n"].contains(character) {
            unit = character == "µ" ? "us" : String(character) + "s"
        }
        let scale: Double
        switch unit {
        case "h": scale = 3600
        case "m": scale = 60
        case "s": scale = 1
        case "ms": scale = 0.001
        case "us": scale = 0.000_001
        case "ns": scale = 0.000_000_001
        default: return nil
        }
        guard let value = Double(number) else { return nil }
        total += value * scale
        number = ""
        sawUnit = true
        index = text.index(index, offsetBy: unit.count)
    }
    guard sawUnit, number.isEmpty, total <= longest else { return nil }
    return total
}
