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
    private var captured: [UInt8] = []
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
        func emit() throws(Malformed) {
            if captured.count > maxItemBytes { throw Malformed(description: "one list item exceeded \(maxItemBytes) bytes") }
            items.append(captured)
        }
        while index < bytes.count {
            let byte = bytes[index]
            defer { index += 1 }
            if finished {
                if !Self.isSpace(byte) { throw Malformed(description: "bytes after the end of the list, at byte \(consumed + index)") }
                continue
            }
            if inString {
                if escaped {
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
                        try emit()
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
                    try emit()
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
                    inItems = true
                    sawItems = true
                }
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if case .item(nil) = capture {  // a scalar item ends at the array's end
                    take(through: index)
                    try emit()
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
                    try emit()
                    capture = nil
                case .metadata where depth == 1:
                    take(through: index + 1)
                    metadata = captured
                    capture = nil
                default: break
                }
            case UInt8(ascii: ","):
                if case .item(nil) = capture {
                    take(through: index)
                    try emit()
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
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t")
    }
}
