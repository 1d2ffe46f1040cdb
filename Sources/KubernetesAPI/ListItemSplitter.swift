import FoundationEssentials

/// Cuts a Kubernetes list answer (`{"kind":...,"metadata":{...},"items":[{...},...]}`) into its items while the
/// bytes arrive, so each item is decoded alone and the page is never held whole: memory stays flat however large
/// the objects are (a kubelet's node carries managedFields and its image list, 5 KB or more).
package struct ListItemSplitter {
    /// The answer is not a JSON object with an items array, or it ended early, or one item is past the cap.
    package struct Malformed: Error, CustomStringConvertible {
        package var description: String
    }

    package let maxItemBytes: Int
    /// The raw `metadata` value, once it has been seen (resourceVersion and continue are read from it).
    package private(set) var metadata: [UInt8]?

    private var depth = 0
    private var inString = false
    private var escaped = false
    private var started = false
    private var finished = false
    /// At depth 1: the key being read, the key whose value comes next, and whether a key is expected.
    private var readingKey: [UInt8]?
    private var valueKey: [UInt8]?
    private var expectingKey = false
    private var inItems = false
    /// An `items` array was seen: a list without one is malformed, never an empty list.
    private var sawItems = false
    /// What is being captured: an item (`depth` when it started, nil for a scalar) or the metadata object.
    private enum Capture {
        case item(depth: Int?)
        case metadata
    }
    private var capture: Capture?
    private var capturingItem: Bool {
        if case .item = capture { true } else { false }
    }
    private var captured: [UInt8] = []
    /// The answer with each item replaced by `0` and the blanks between tokens left out: at the end it must be JSON
    /// whose items array has as many entries as were cut, so that an answer a JSON parser would refuse is refused
    /// here too, wherever it breaks (found by the list-items fuzzer: broken text between the top-level fields was
    /// skipped, and the list read as good).
    private var skeleton: [UInt8] = []
    private var itemCount = 0
    /// Escape checking across chunks: the hex digits a `\u` still needs; JSON's eight escapes.
    private var hexDigitsDue = 0
    private static let escapes = Set("\"\\/bfnrtu".utf8)
    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }
    /// UTF-8 checking across chunks: continuation bytes still due, and the range the next one must fall in
    /// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
    private var continuationsDue = 0
    private var nextContinuation: ClosedRange<UInt8> = 0x80...0xBF
    /// The bytes of an unfinished item (or the metadata) held now: never more than `maxItemBytes`.
    package var heldBytes: Int { captured.count }
    /// The bytes of the list around its items held now: never more than `maxItemBytes` + 64 KiB.
    package var heldSkeletonBytes: Int { skeleton.count }
    private var consumed = 0

    package init(maxItemBytes: Int = KubeClient.maxAnswerBytes) { self.maxItemBytes = maxItemBytes }

    /// Feeds the next bytes; returns the items they complete, each as its own JSON text.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(Malformed) -> [[UInt8]] {
        var items: [[UInt8]] = []
        var captureStart = 0
        var index = 0
        func take(through end: Int) {
            captured.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[captureStart..<end]))
        }
        // Whether the item that ended at this byte took the byte (a closing brace or quote), or the byte only ended a
        // number or a literal (a comma, a blank, a bracket) and belongs to the list around it.
        var emittedTookByte = false
        func emit(takingByte: Bool) throws(Malformed) {
            if captured.count > maxItemBytes { throw Malformed(description: "one list item exceeded \(maxItemBytes) bytes") }
            items.append(captured)
            captured = []
            itemCount += 1
            emittedTookByte = takingByte
        }
        while index < bytes.count {
            let byte = bytes[index]
            let itemsBefore = items.count
            let wasInItem = capturingItem
            defer {
                let inItem = capturingItem
                let blank = !inString && Self.isSpace(byte)
                if items.count > itemsBefore {
                    skeleton.append(UInt8(ascii: "0"))
                    if !emittedTookByte && !blank { skeleton.append(byte) }
                } else if !inItem && !wasInItem && !blank {
                    skeleton.append(byte)
                }
                index += 1
            }
            // The fields around the items: the metadata (itself held to the item cap) and a few short ones.
            if skeleton.count > maxItemBytes + 65_536 {
                throw Malformed(description: "the list's own fields exceeded \(maxItemBytes + 65_536) bytes")
            }
            // JSON text is UTF-8, with no raw control character inside a string (RFC 8259): found by the list-items
            // fuzzer, an answer with bytes that are neither was read, where a JSON parser refuses it.
            if continuationsDue > 0 {
                guard nextContinuation.contains(byte) else {
                    throw Malformed(description: "the answer is not UTF-8, at byte \(consumed + index)")
                }
                continuationsDue -= 1
                nextContinuation = 0x80...0xBF
            } else if byte >= 0x80 {
                switch byte {
                case 0xC2...0xDF: continuationsDue = 1
                case 0xE0: (continuationsDue, nextContinuation) = (2, 0xA0...0xBF)
                case 0xE1...0xEC, 0xEE...0xEF: continuationsDue = 2
                case 0xED: (continuationsDue, nextContinuation) = (2, 0x80...0x9F)
                case 0xF0: (continuationsDue, nextContinuation) = (3, 0x90...0xBF)
                case 0xF1...0xF3: continuationsDue = 3
                case 0xF4: (continuationsDue, nextContinuation) = (3, 0x80...0x8F)
                default: throw Malformed(description: "the answer is not UTF-8, at byte \(consumed + index)")
                }
                guard inString else { throw Malformed(description: "a non-ASCII byte outside a string, at byte \(consumed + index)") }
            } else if inString && byte < 0x20 {
                throw Malformed(description: "a control character inside a string, at byte \(consumed + index)")
            }
            if finished {
                if !Self.isSpace(byte) { throw Malformed(description: "bytes after the end of the list, at byte \(consumed + index)") }
                continue
            }
            if inString {
                if hexDigitsDue > 0 {
                    guard Self.isHexDigit(byte) else {
                        throw Malformed(description: "a \\u escape without four hex digits, at byte \(consumed + index)")
                    }
                    hexDigitsDue -= 1
                } else if escaped {
                    // Found by the list-items fuzzer: `\a` in a field nobody reads was passed over; JSON has eight escapes.
                    guard Self.escapes.contains(byte) else {
                        throw Malformed(description: "an invalid escape in a string, at byte \(consumed + index)")
                    }
                    if byte == UInt8(ascii: "u") { hexDigitsDue = 4 }
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if depth == 1, readingKey != nil {
                        valueKey = readingKey
                        readingKey = nil
                    } else if case .item(nil) = capture {
                        take(through: index + 1)
                        try emit(takingByte: true)
                        capture = nil
                    }
                } else if depth == 1 && readingKey != nil {
                    readingKey!.append(byte)
                }
                continue
            }
            if Self.isSpace(byte) {
                if case .item(nil) = capture {  // a scalar item ends at a blank
                    take(through: index)
                    try emit(takingByte: false)
                    capture = nil
                }
                continue
            }
            if !started {
                guard byte == UInt8(ascii: "{") else { throw Malformed(description: "the answer is not a JSON object") }
                started = true
                depth = 1
                expectingKey = true
                continue
            }
            // An item of the items array begins.
            if inItems && depth == 2 && capture == nil && byte != UInt8(ascii: ",") && byte != UInt8(ascii: "]") {
                captured = []
                captureStart = index
                let opens = byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[")
                capture = .item(depth: opens ? depth : nil)
                if byte == UInt8(ascii: "\"") {
                    inString = true
                    continue
                }
            } else if depth == 1 && !expectingKey && capture == nil && valueKey == Array("metadata".utf8)
                && byte == UInt8(ascii: "{")
            {
                if metadata != nil { throw Malformed(description: "the answer has two metadata objects") }
                captured = []
                captureStart = index
                capture = .metadata
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 && expectingKey {
                    readingKey = []
                    expectingKey = false
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 1 && byte == UInt8(ascii: "[") && valueKey == Array("items".utf8) {
                    // Parsers disagree on which of two arrays counts (the first, the last): neither is chosen.
                    if sawItems { throw Malformed(description: "the answer has two items arrays") }
                    inItems = true
                    sawItems = true
                }
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if case .item(nil) = capture {  // a scalar item ends at the array's end
                    take(through: index)
                    try emit(takingByte: false)
                    capture = nil
                }
                depth -= 1
                if depth == 0 {
                    finished = true
                } else if depth == 1 && inItems {
                    inItems = false
                }
                switch capture {
                case .item(let start?) where start == depth:
                    take(through: index + 1)
                    try emit(takingByte: true)
                    capture = nil
                case .metadata where depth == 1:
                    take(through: index + 1)
                    // Found by the list-items fuzzer: a metadata object that began and ended in one chunk was kept
                    // whatever its size.
                    if captured.count > maxItemBytes { throw Malformed(description: "the list's metadata exceeded \(maxItemBytes) bytes") }
                    metadata = captured
                    captured = []
                    capture = nil
                default: break
                }
            case UInt8(ascii: ","):
                if case .item(nil) = capture {
                    take(through: index)
                    try emit(takingByte: false)
                    capture = nil
                }
                if depth == 1 {
                    expectingKey = true
                    valueKey = nil
                }
            default: break
            }
        }
        if capture != nil {
            take(through: bytes.count)
            if captured.count > maxItemBytes {
                throw Malformed(description: "one list item exceeded \(maxItemBytes) bytes")
            }
        }
        consumed += bytes.count
        return items
    }

    /// After the last bytes: the list must have closed.
    package func finish() throws(Malformed) {
        guard finished else {
            throw Malformed(description: started ? "the answer ended inside the list (after \(consumed) bytes)" : "the answer is empty")
        }
        guard sawItems else { throw Malformed(description: "the answer has no items array") }
        struct Skeleton: Decodable {
            var items: [Int]
        }
        guard let read = try? JSONDecoder().decode(Skeleton.self, from: Data(skeleton)) else {
            throw Malformed(description: "the answer is not valid JSON outside its items")
        }
        guard read.items.count == itemCount else {
            throw Malformed(description: "the answer's items array holds \(read.items.count) entries where \(itemCount) were read")
        }
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t")
    }
}
