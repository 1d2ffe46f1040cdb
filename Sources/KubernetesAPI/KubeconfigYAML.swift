/// A YAML (or JSON) document as a tree of strings: the controller reads its kubeconfig without a YAML library,
/// and so without full Foundation and ICU.
package indirect enum YAMLNode: Equatable, Sendable {
    /// `plain` is false for quoted and block (`|`, `>`) scalars: only a plain scalar can mean null or a boolean.
    case scalar(String, plain: Bool)
    /// Keys in the file's order.
    case mapping([YAMLEntry])
    case sequence([YAMLNode])

    /// The value under `key` when this is a mapping.
    package subscript(key: String) -> YAMLNode? {
        guard case .mapping(let entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// The scalar's text; nil for a plain null (`~`, `null`, nothing) and for a mapping or a sequence.
    package var string: String? {
        guard case .scalar(let text, let plain) = self else { return nil }
        if plain && ["", "~", "null", "Null", "NULL"].contains(text) { return nil }
        return text
    }

    /// A plain `true` or `false` (YAML 1.2's core schema spellings).
    package var bool: Bool? {
        guard case .scalar(let text, true) = self else { return nil }
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    package var isNull: Bool {
        if case .scalar = self { return string == nil }
        return false
    }

    package var entries: [YAMLEntry]? {
        if case .mapping(let entries) = self { return entries }
        return nil
    }

    package var items: [YAMLNode]? {
        if case .sequence(let items) = self { return items }
        return nil
    }
}

/// One `key: value` of a mapping; a struct so the tree stays `Equatable`.
package struct YAMLEntry: Equatable, Sendable {
    package var key: String
    package var value: YAMLNode
    package init(key: String, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// Where and why a document could not be read: `unsupported` marks valid YAML outside the subset the reader takes.
package struct YAMLSyntaxError: Error, Equatable, CustomStringConvertible {
    package var line: Int
    package var column: Int
    package var message: String
    package var unsupported: Bool

    package var description: String {
        unsupported
            ? "\(line):\(column): \(message) is YAML that kube-node-dns does not read; write the value out plainly"
            : "\(line):\(column): not valid YAML: \(message)"
    }
}

/// Reads the YAML that kubeconfigs use: block mappings and sequences (including a sequence at its key's
/// indentation, as kubectl writes it); plain, single- and double-quoted scalars, also over several lines; `|` and
/// `>` blocks with chomping and indentation indicators; flow `{}` and `[]`, nested, which also makes every JSON
/// document readable; comments; `---` and `...`. Anchors, aliases, tags, directives, complex keys and a second
/// document stop with the line and column.
package struct KubeconfigYAMLReader {
    private let bytes: [UInt8]
    private var i = 0
    private var depth = 0

    private init(_ text: String) {
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        self.bytes = bytes
    }

    /// The document's tree, or nil when it holds no node (empty, or only comments).
    package static func parse(_ text: String) throws(YAMLSyntaxError) -> YAMLNode? {
        var reader = KubeconfigYAMLReader(text)
        return try reader.document()
    }

    // MARK: - Characters

    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")
    private static let newline = UInt8(ascii: "\n")
    private static let carriageReturn = UInt8(ascii: "\r")

    private func byte(_ offset: Int = 0) -> UInt8? {
        let index = i + offset
        return index < bytes.count ? bytes[index] : nil
    }

    private static func isBreak(_ b: UInt8?) -> Bool { b == newline || b == carriageReturn }
    private static func isBlank(_ b: UInt8?) -> Bool { b == space || b == tab }
    /// Space, tab, line break or the end: what must follow `-`, `:` and `?` for them to be indicators.
    private static func isBlankOrEnd(_ b: UInt8?) -> Bool { b == nil || isBlank(b) || isBreak(b) }
    private static func isFlowIndicator(_ b: UInt8?) -> Bool {
        guard let b else { return false }
        return b == UInt8(ascii: ",") || b == UInt8(ascii: "[") || b == UInt8(ascii: "]") || b == UInt8(ascii: "{")
            || b == UInt8(ascii: "}")
    }

    private func fail(_ message: String, at index: Int? = nil, unsupported: Bool = false) -> YAMLSyntaxError {
        let end = min(index ?? i, bytes.count)
        var line = 1
        var column = 1
        for b in bytes[..<end] {
            if b == Self.newline {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {  // count characters, not UTF-8 continuation bytes
                column += 1
            }
        }
        return YAMLSyntaxError(line: line, column: column, message: message, unsupported: unsupported)
    }

    private mutating func skipBlanks() {
        while Self.isBlank(byte()) { i += 1 }
    }

    /// Past the end of this line, comment included.
    private mutating func skipToNextLine() {
        while let b = byte(), !Self.isBreak(b) { i += 1 }
        if byte() == Self.carriageReturn { i += 1 }
        if byte() == Self.newline { i += 1 }
    }

    /// After a node on a line: only blanks and a comment may follow.
    private mutating func expectLineEnd() throws(YAMLSyntaxError) {
        let before = i
        skipBlanks()
        guard let b = byte(), !Self.isBreak(b) else {
            skipToNextLine()
            return
        }
        if b == UInt8(ascii: "#") && i > before {
            skipToNextLine()
            return
        }
        throw fail("unexpected \(Self.describe(b)) after the value")
    }

    private static func describe(_ b: UInt8) -> String {
        b >= 0x21 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "character 0x\(String(b, radix: 16))"
    }

    /// From the start of a line, skips blank and comment-only lines; answers the next content line's indentation
    /// and leaves the position at that line's start, or nil at the end of the input.
    private mutating func nextContentLine() throws(YAMLSyntaxError) -> Int? {
        while i < bytes.count {
            var j = i
            while j < bytes.count && bytes[j] == Self.space { j += 1 }
            var k = j
            while k < bytes.count && Self.isBlank(bytes[k]) { k += 1 }
            if k >= bytes.count {
                i = bytes.count
                return nil
            }
            if Self.isBreak(bytes[k]) || bytes[k] == UInt8(ascii: "#") {
                i = k
                skipToNextLine()
                continue
            }
            if k != j { throw fail("a tab in the indentation; YAML indents with spaces only", at: j) }
            return j - i
        }
        return nil
    }

    /// `---` or `...` at the start of the line at the position.
    private func atDocumentMarker() -> Bool {
        guard i + 3 <= bytes.count else { return false }
        let three = bytes[i..<i + 3]
        guard three.elementsEqual("---".utf8) || three.elementsEqual("...".utf8) else { return false }
        return Self.isBlankOrEnd(i + 3 < bytes.count ? bytes[i + 3] : nil)
    }

    // MARK: - Document

    private mutating func document() throws(YAMLSyntaxError) -> YAMLNode? {
        var node: YAMLNode?
        guard var indent = try nextContentLine() else { return nil }
        if indent == 0 && byte() == UInt8(ascii: "%") {
            throw fail("a directive (%YAML, %TAG)", unsupported: true)
        }
        if indent == 0 && atDocumentMarker() && byte() == UInt8(ascii: "-") {
            i += 3
            skipBlanks()
            if let b = byte(), !Self.isBreak(b), b != UInt8(ascii: "#") {
                node = try inlineValue(parentIndent: -1)
            } else {
                skipToNextLine()
            }
            guard let next = try nextContentLine() else { return node }
            indent = next
        }
        if node == nil && !(indent == 0 && atDocumentMarker()) {
            i += indent
            node = try blockNode(indent: indent, parentIndent: -1)
        }
        guard let next = try nextContentLine() else { return node }
        if next == 0 && atDocumentMarker() && byte() == UInt8(ascii: ".") {
            i += 3
            skipToNextLine()
            guard try nextContentLine() != nil else { return node }
        }
        if atDocumentMarker() && byte() == UInt8(ascii: "-") {
            throw fail("a second document (---): a kubeconfig holds one", unsupported: true)
        }
        throw fail("unexpected content after the document; is it indented less than the keys above?", at: i + next)
    }

    // MARK: - Block structure

    /// A node whose first character is at the position, at column `indent`; `parentIndent` is the indentation
    /// of the mapping or sequence that holds it (-1 at the top).
    private mutating func blockNode(indent: Int, parentIndent: Int) throws(YAMLSyntaxError) -> YAMLNode {
        depth += 1
        defer { depth -= 1 }
        if depth > 64 { throw fail("nesting deeper than 64 levels") }
        if byte() == UInt8(ascii: "-") && Self.isBlankOrEnd(byte(1)) { return try blockSequence(indent: indent) }
        if byte() == UInt8(ascii: "?") && Self.isBlankOrEnd(byte(1)) {
            throw fail("a complex key (?)", unsupported: true)
        }
        if try keyAhead() { return try blockMapping(indent: indent) }
        return try inlineValue(parentIndent: parentIndent)
    }

    /// Whether the line from the position holds `key:` (plain or quoted key) rather than a lone value.
    private func keyAhead() throws(YAMLSyntaxError) -> Bool {
        var j = i
        guard let first = byte() else { return false }
        if first == UInt8(ascii: "\"") || first == UInt8(ascii: "'") {
            j += 1
            while j < bytes.count, !Self.isBreak(bytes[j]) {
                if first == UInt8(ascii: "\"") && bytes[j] == UInt8(ascii: "\\") {
                    j += 2
                    continue
                }
                if bytes[j] == first {
                    if first == UInt8(ascii: "'") && j + 1 < bytes.count && bytes[j + 1] == first {
                        j += 2
                        continue
                    }
                    break
                }
                j += 1
            }
            guard j < bytes.count, bytes[j] == first else { return false }
            j += 1
            while j < bytes.count && Self.isBlank(bytes[j]) { j += 1 }
            return j < bytes.count && bytes[j] == UInt8(ascii: ":")
                && Self.isBlankOrEnd(j + 1 < bytes.count ? bytes[j + 1] : nil)
        }
        if first == UInt8(ascii: "[") || first == UInt8(ascii: "{") || first == UInt8(ascii: "|")
            || first == UInt8(ascii: ">")
        {
            return false
        }
        while j < bytes.count, !Self.isBreak(bytes[j]) {
            if bytes[j] == UInt8(ascii: "#") && j > i && Self.isBlank(bytes[j - 1]) { return false }
            if bytes[j] == UInt8(ascii: ":") && Self.isBlankOrEnd(j + 1 < bytes.count ? bytes[j + 1] : nil) {
                return true
            }
            j += 1
        }
        return false
    }

    private mutating func blockMapping(indent: Int) throws(YAMLSyntaxError) -> YAMLNode {
        var entries: [YAMLEntry] = []
        while true {
            let keyStart = i
            let key = try blockKey()
            if entries.contains(where: { $0.key == key }) { throw fail("the key \"\(key)\" appears twice", at: keyStart) }
            let value = try mappingValue(indent: indent)
            entries.append(YAMLEntry(key: key, value: value))
            guard let next = try nextContentLine(), !(next == 0 && atDocumentMarker()), next >= indent else { break }
            if next > indent {
                throw fail(
                    "this line is indented more than the key above it, which already has a value; align it with column \(indent + 1) or nest it under a key that has none",
                    at: i + next)
            }
            i += next
            if byte() == UInt8(ascii: "-") && Self.isBlankOrEnd(byte(1)) {
                throw fail("a list item where a key was expected (a list belongs under a key: `key:` then `- item`)")
            }
            if byte() == UInt8(ascii: "?") && Self.isBlankOrEnd(byte(1)) { throw fail("a complex key (?)", unsupported: true) }
            guard try keyAhead() else { throw fail("expected `key: value` here") }
        }
        return .mapping(entries)
    }

    /// A key and its `:`.
    private mutating func blockKey() throws(YAMLSyntaxError) -> String {
        let key: String
        if byte() == UInt8(ascii: "\"") || byte() == UInt8(ascii: "'") {
            let line = lineNumber(i)
            key = byte() == UInt8(ascii: "\"") ? try doubleQuoted() : try singleQuoted()
            if lineNumber(i) != line { throw fail("a quoted key must fit on one line") }
            skipBlanks()
        } else {
            try rejectIndicator()
            let start = i
            while let b = byte(), !(b == UInt8(ascii: ":") && Self.isBlankOrEnd(byte(1))) { i += 1 }
            key = Self.trimmed(bytes[start..<i])
        }
        guard byte() == UInt8(ascii: ":") else { throw fail("expected ':' after the key") }
        i += 1
        return key
    }

    private func lineNumber(_ index: Int) -> Int { bytes[..<min(index, bytes.count)].count(where: { $0 == Self.newline }) }

    private mutating func mappingValue(indent: Int) throws(YAMLSyntaxError) -> YAMLNode {
        skipBlanks()
        if let b = byte(), !Self.isBreak(b), b != UInt8(ascii: "#") {
            return try inlineValue(parentIndent: indent)
        }
        skipToNextLine()
        guard let next = try nextContentLine(), !(next == 0 && atDocumentMarker()) else { return .scalar("", plain: true) }
        if next > indent {
            i += next
            return try blockNode(indent: next, parentIndent: indent)
        }
        if next == indent && bytes[i + next] == UInt8(ascii: "-")
            && Self.isBlankOrEnd(i + next + 1 < bytes.count ? bytes[i + next + 1] : nil)
        {
            i += next
            return try blockSequence(indent: indent)
        }
        return .scalar("", plain: true)
    }

    private mutating func blockSequence(indent: Int) throws(YAMLSyntaxError) -> YAMLNode {
        var items: [YAMLNode] = []
        while true {
            i += 1  // the "-"
            skipBlanks()
            if let b = byte(), !Self.isBreak(b), b != UInt8(ascii: "#") {
                items.append(try blockNode(indent: column(i), parentIndent: indent))
            } else {
                skipToNextLine()
                if let next = try nextContentLine(), next > indent, !(next == 0 && atDocumentMarker()) {
                    i += next
                    items.append(try blockNode(indent: next, parentIndent: indent))
                } else {
                    items.append(.scalar("", plain: true))
                }
            }
            guard let next = try nextContentLine(), !(next == 0 && atDocumentMarker()), next >= indent else { break }
            if next > indent {
                throw fail("this line is indented more than the list item above it; align it with the item's text", at: i + next)
            }
            guard bytes[i + next] == UInt8(ascii: "-"), Self.isBlankOrEnd(i + next + 1 < bytes.count ? bytes[i + next + 1] : nil)
            else { break }
            i += next
        }
        return .sequence(items)
    }

    /// The position's column within its line, from 0.
    private func column(_ index: Int) -> Int {
        var start = index
        while start > 0 && !Self.isBreak(bytes[start - 1]) { start -= 1 }
        return index - start
    }

    private mutating func rejectIndicator() throws(YAMLSyntaxError) {
        switch byte() {
        case UInt8(ascii: "&"): throw fail("an anchor (&name)", unsupported: true)
        case UInt8(ascii: "*"): throw fail("an alias (*name)", unsupported: true)
        case UInt8(ascii: "!"): throw fail("a tag (!tag)", unsupported: true)
        case UInt8(ascii: "@"), UInt8(ascii: "`"):
            throw fail("'\(Character(Unicode.Scalar(byte()!)))' cannot start a plain value; quote the value")
        default: break
        }
    }

    /// A value that starts on the current line: a block scalar, a flow collection, a quoted or a plain scalar.
    /// It consumes through the end of its last line.
    private mutating func inlineValue(parentIndent: Int) throws(YAMLSyntaxError) -> YAMLNode {
        switch byte() {
        case UInt8(ascii: "|"), UInt8(ascii: ">"):
            return try blockScalar(parentIndent: parentIndent)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let node = try flowNode()
            try expectLineEnd()
            return node
        case UInt8(ascii: "\""):
            let text = try doubleQuoted()
            try expectLineEnd()
            return .scalar(text, plain: false)
        case UInt8(ascii: "'"):
            let text = try singleQuoted()
            try expectLineEnd()
            return .scalar(text, plain: false)
        case UInt8(ascii: "-") where Self.isBlankOrEnd(byte(1)):
            throw fail("a list item cannot start on its key's line; put `- item` on the next line")
        case UInt8(ascii: "?") where Self.isBlankOrEnd(byte(1)):
            throw fail("a complex key (?)", unsupported: true)
        default:
            try rejectIndicator()
            return .scalar(try plainBlockScalar(parentIndent: parentIndent), plain: true)
        }
    }

    /// A plain scalar in block context, continued on following lines indented more than its parent.
    private mutating func plainBlockScalar(parentIndent: Int) throws(YAMLSyntaxError) -> String {
        var text = try plainLine()
        while true {
            let lineStart = i
            var emptyLines = 0
            var next: Int?
            // Count empty lines; a comment line ends the scalar.
            while i < bytes.count {
                var j = i
                while j < bytes.count && Self.isBlank(bytes[j]) { j += 1 }
                if j < bytes.count && Self.isBreak(bytes[j]) {
                    emptyLines += 1
                    i = j
                    skipToNextLine()
                    continue
                }
                if j < bytes.count && bytes[j] != UInt8(ascii: "#") {
                    var spaces = i
                    while spaces < bytes.count && bytes[spaces] == Self.space { spaces += 1 }
                    next = spaces - i
                }
                break
            }
            guard let indent = next, indent > parentIndent, !(indent == 0 && atDocumentMarker()) else {
                i = lineStart
                return text
            }
            i += indent
            skipBlanks()
            let part = try plainLine(continuing: true)
            text += emptyLines == 0 ? " " + part : String(repeating: "\n", count: emptyLines) + part
        }
    }

    /// One line of a plain block scalar, up to a comment; it must not hold another `key:`.
    private mutating func plainLine(continuing: Bool = false) throws(YAMLSyntaxError) -> String {
        let start = i
        while let b = byte(), !Self.isBreak(b) {
            if b == UInt8(ascii: "#") && i > start && Self.isBlank(bytes[i - 1]) { break }
            if b == UInt8(ascii: ":") && Self.isBlankOrEnd(byte(1)) {
                if continuing {
                    throw fail(
                        "this line is indented more than the key above it, which already has a value; align it with that key, or nest it under a key that has none",
                        at: start)
                }
                throw fail("a second `key:` on one line; put it on its own line, or write the mapping in braces { }")
            }
            i += 1
        }
        let text = Self.trimmed(bytes[start..<i])
        skipToNextLine()
        return text
    }

    private static func trimmed(_ slice: ArraySlice<UInt8>) -> String {
        var slice = slice
        while let last = slice.last, isBlank(last) { slice.removeLast() }
        while let first = slice.first, isBlank(first) { slice.removeFirst() }
        return String(decoding: slice, as: UTF8.self)
    }

    // MARK: - Block scalars

    private mutating func blockScalar(parentIndent: Int) throws(YAMLSyntaxError) -> YAMLNode {
        let folded = byte() == UInt8(ascii: ">")
        i += 1
        var chomping: UInt8?
        var explicitIndent: Int?
        for _ in 0..<2 {
            if let b = byte(), b == UInt8(ascii: "-") || b == UInt8(ascii: "+"), chomping == nil {
                chomping = b
                i += 1
            } else if let b = byte(), b >= UInt8(ascii: "1") && b <= UInt8(ascii: "9"), explicitIndent == nil {
                explicitIndent = Int(b - UInt8(ascii: "0"))
                i += 1
            }
        }
        try expectLineEnd()
        let base = max(parentIndent, 0)
        var contentIndent = explicitIndent.map { base + $0 }
        var lines: [String?] = []  // nil: an empty line
        // Whether the last line of content ended with a line break: at the end of the file it may not, and then clip
        // and keep have no final break to keep (found by the kubeconfig fuzzer).
        var lastContentBroke = false
        while i < bytes.count {
            var j = i
            while j < bytes.count && bytes[j] == Self.space { j += 1 }
            let spaces = j - i
            let blank = j >= bytes.count || Self.isBreak(bytes[j])
            if blank && (contentIndent == nil || spaces <= contentIndent!) {
                lines.append(nil)
                i = j
                skipToNextLine()
                continue
            }
            if contentIndent == nil {
                guard spaces > parentIndent else { break }
                contentIndent = spaces
            }
            guard spaces >= contentIndent!, !(spaces == 0 && atDocumentMarker()) else { break }
            i += contentIndent!
            let start = i
            while let b = byte(), !Self.isBreak(b) { i += 1 }
            lines.append(String(decoding: bytes[start..<i], as: UTF8.self))
            lastContentBroke = i < bytes.count
            skipToNextLine()
        }
        // Trailing empty lines belong to chomping, not to the content.
        var trailing = 0
        while let last = lines.last, last == nil {
            trailing += 1
            lines.removeLast()
        }
        if lines.isEmpty {
            // Give back nothing but what "keep" retains; the lines consumed were all empty.
            return .scalar(chomping == UInt8(ascii: "+") ? String(repeating: "\n", count: trailing) : "", plain: false)
        }
        var text = ""
        if folded {
            var previous: String?? = .none
            var empties = 0
            for line in lines {
                guard let line else {
                    empties += 1
                    continue
                }
                let moreIndented = line.first == " " || line.first == "\t"
                if case .some(let before?) = previous {
                    let beforeMore = before.first == " " || before.first == "\t"
                    if !moreIndented && !beforeMore {
                        text += empties == 0 ? " " : String(repeating: "\n", count: empties)
                    } else {
                        text += String(repeating: "\n", count: empties + 1)
                    }
                } else {
                    text += String(repeating: "\n", count: empties)
                }
                text += line
                previous = .some(line)
                empties = 0
            }
        } else {
            text = lines.map { $0 ?? "" }.joined(separator: "\n")
        }
        switch chomping {
        case UInt8(ascii: "-"): break
        case UInt8(ascii: "+"): text += String(repeating: "\n", count: trailing + (lastContentBroke ? 1 : 0))
        default: if lastContentBroke { text += "\n" }
        }
        return .scalar(text, plain: false)
    }

    // MARK: - Quoted scalars

    /// Folds a line break inside a quoted scalar: one break becomes a space, n empty lines become n newlines. The
    /// blanks before the break go, but not the first `kept` bytes: an escaped space or tab (`\ `, `\t`) stays.
    private mutating func foldBreak(into out: inout [UInt8], keeping kept: Int = 0) {
        while out.count > kept, let last = out.last, Self.isBlank(last) { out.removeLast() }
        skipToNextLine()
        var empties = 0
        while true {
            skipBlanks()
            guard Self.isBreak(byte()) else { break }
            empties += 1
            skipToNextLine()
        }
        if empties == 0 { out.append(Self.space) } else { out.append(contentsOf: repeatElement(Self.newline, count: empties)) }
    }

    private mutating func singleQuoted() throws(YAMLSyntaxError) -> String {
        let open = i
        i += 1
        var out: [UInt8] = []
        while true {
            guard let b = byte() else { throw fail("a single-quoted string that never closes", at: open) }
            if b == UInt8(ascii: "'") {
                if byte(1) == UInt8(ascii: "'") {
                    out.append(b)
                    i += 2
                    continue
                }
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if Self.isBreak(b) {
                foldBreak(into: &out)
                continue
            }
            out.append(b)
            i += 1
        }
    }

    private mutating func doubleQuoted() throws(YAMLSyntaxError) -> String {
        let open = i
        i += 1
        var out: [UInt8] = []
        // The bytes up to the end of the last escape: a fold never trims them.
        var escapedThrough = 0
        while true {
            guard let b = byte() else { throw fail("a double-quoted string that never closes", at: open) }
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                let escape = i
                i += 1
                guard let e = byte() else { throw fail("a double-quoted string that never closes", at: open) }
                if Self.isBreak(e) {  // an escaped line break joins the lines with nothing between
                    skipToNextLine()
                    skipBlanks()
                    // Each empty line after it is a newline, not a fold (found by the kubeconfig fuzzer).
                    while Self.isBreak(byte()) {
                        out.append(Self.newline)
                        skipToNextLine()
                        skipBlanks()
                    }
                    escapedThrough = out.count
                    continue
                }
                i += 1
                let simple: [UInt8: UInt8] = [
                    UInt8(ascii: "0"): 0, UInt8(ascii: "a"): 7, UInt8(ascii: "b"): 8, UInt8(ascii: "t"): 9, Self.tab: 9,
                    UInt8(ascii: "n"): 10, UInt8(ascii: "v"): 11, UInt8(ascii: "f"): 12, UInt8(ascii: "r"): 13,
                    UInt8(ascii: "e"): 27, Self.space: 32, UInt8(ascii: "\""): 34, UInt8(ascii: "/"): 47,
                    UInt8(ascii: "\\"): 92,
                ]
                if let value = simple[e] {
                    out.append(value)
                    escapedThrough = out.count
                    continue
                }
                var scalar: UInt32
                switch e {
                case UInt8(ascii: "N"): scalar = 0x85
                case UInt8(ascii: "_"): scalar = 0xA0
                case UInt8(ascii: "L"): scalar = 0x2028
                case UInt8(ascii: "P"): scalar = 0x2029
                case UInt8(ascii: "x"): scalar = try hex(2, escape: escape)
                case UInt8(ascii: "u"): scalar = try hex(4, escape: escape)
                case UInt8(ascii: "U"): scalar = try hex(8, escape: escape)
                default: throw fail("an unknown escape \\\(Character(Unicode.Scalar(e)))", at: escape)
                }
                if (0xD800..<0xDC00).contains(scalar), byte() == UInt8(ascii: "\\"), byte(1) == UInt8(ascii: "u") {
                    // A JSON surrogate pair.
                    i += 2
                    let low = try hex(4, escape: escape)
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("an unpaired UTF-16 surrogate", at: escape) }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw fail("an escape that is not a Unicode character", at: escape) }
                out.append(contentsOf: String(Character(unicode)).utf8)
                escapedThrough = out.count
            case Self.newline, Self.carriageReturn:
                foldBreak(into: &out, keeping: escapedThrough)
            default:
                out.append(b)
                i += 1
            }
        }
    }

    private mutating func hex(_ digits: Int, escape: Int) throws(YAMLSyntaxError) -> UInt32 {
        guard i + digits <= bytes.count, let value = UInt32(String(decoding: bytes[i..<i + digits], as: UTF8.self), radix: 16)
        else { throw fail("an escape that needs \(digits) hexadecimal digits", at: escape) }
        i += digits
        return value
    }

    // MARK: - Flow collections (and JSON)

    /// Blanks, line breaks and comments between flow tokens.
    private mutating func skipFlowSpace() {
        var afterSpace = true
        while let b = byte() {
            if Self.isBlank(b) || Self.isBreak(b) {
                afterSpace = true
                i += 1
            } else if b == UInt8(ascii: "#") && afterSpace {
                while let c = byte(), !Self.isBreak(c) { i += 1 }
            } else {
                return
            }
        }
    }

    private mutating func flowNode() throws(YAMLSyntaxError) -> YAMLNode {
        depth += 1
        defer { depth -= 1 }
        if depth > 64 { throw fail("nesting deeper than 64 levels") }
        skipFlowSpace()
        switch byte() {
        case nil: throw fail("the input ends inside { } or [ ]")
        case UInt8(ascii: "{"): return try flowMapping()
        case UInt8(ascii: "["): return try flowSequence()
        case UInt8(ascii: "\""): return .scalar(try doubleQuoted(), plain: false)
        case UInt8(ascii: "'"): return .scalar(try singleQuoted(), plain: false)
        default:
            try rejectIndicator()
            return .scalar(try plainFlowScalar(), plain: true)
        }
    }

    private mutating func plainFlowScalar() throws(YAMLSyntaxError) -> String {
        var out: [UInt8] = []
        // Where the text ends: line breaks folded after the last word are not part of it (found by the kubeconfig
        // fuzzer, a key followed by empty lines and then `}` kept them as newlines).
        var contentEnd = 0
        while let b = byte() {
            if Self.isFlowIndicator(b) { break }
            if b == UInt8(ascii: ":") && (Self.isBlankOrEnd(byte(1)) || Self.isFlowIndicator(byte(1))) { break }
            if b == UInt8(ascii: "#") && (out.last.map(Self.isBlank) ?? false) { break }
            if Self.isBreak(b) {
                foldBreak(into: &out)
                continue
            }
            out.append(b)
            i += 1
            if !Self.isBlank(b) { contentEnd = out.count }
        }
        out.removeSubrange(contentEnd...)
        guard !out.isEmpty else {
            throw fail(byte().map { "expected a value, found \(Self.describe($0))" } ?? "the input ends inside { } or [ ]")
        }
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func flowMapping() throws(YAMLSyntaxError) -> YAMLNode {
        let open = i
        i += 1
        var entries: [YAMLEntry] = []
        while true {
            skipFlowSpace()
            guard let b = byte() else { throw fail("a { that never closes", at: open) }
            if b == UInt8(ascii: "}") {
                i += 1
                return .mapping(entries)
            }
            if b == UInt8(ascii: "?") && Self.isBlankOrEnd(byte(1)) { throw fail("a complex key (?)", unsupported: true) }
            let keyStart = i
            guard case .scalar(let key, _) = try flowNode() else {
                throw fail("a mapping or a list as a key", at: keyStart, unsupported: true)
            }
            if entries.contains(where: { $0.key == key }) { throw fail("the key \"\(key)\" appears twice", at: keyStart) }
            skipFlowSpace()
            var value = YAMLNode.scalar("", plain: true)
            if byte() == UInt8(ascii: ":") {
                i += 1
                skipFlowSpace()
                if byte() != UInt8(ascii: ",") && byte() != UInt8(ascii: "}") { value = try flowNode() }
                skipFlowSpace()
            }
            entries.append(YAMLEntry(key: key, value: value))
            switch byte() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): continue
            case nil: throw fail("a { that never closes", at: open)
            case let other?: throw fail("expected ',' or '}', found \(Self.describe(other))")
            }
        }
    }

    private mutating func flowSequence() throws(YAMLSyntaxError) -> YAMLNode {
        let open = i
        i += 1
        var items: [YAMLNode] = []
        while true {
            skipFlowSpace()
            guard let b = byte() else { throw fail("a [ that never closes", at: open) }
            if b == UInt8(ascii: "]") {
                i += 1
                return .sequence(items)
            }
            items.append(try flowNode())
            skipFlowSpace()
            switch byte() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): continue
            case UInt8(ascii: ":"): throw fail("a `key: value` pair directly inside [ ]; wrap it in { }", unsupported: true)
            case nil: throw fail("a [ that never closes", at: open)
            case let other?: throw fail("expected ',' or ']', found \(Self.describe(other))")
            }
        }
    }
}
