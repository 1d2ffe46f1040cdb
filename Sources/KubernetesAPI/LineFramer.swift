/// Splits a watch stream into lines however the bytes were chunked, refusing a line past a size cap.
package struct LineFramer: Sendable {
    /// A line grew past the cap without a newline: the stream is not a watch stream, or it is hostile.
    package struct LineTooLong: Error, CustomStringConvertible {
        package let limit: Int
        package var description: String { "a watch line exceeded \(limit) bytes" }
    }

    package let maxLineBytes: Int
    private var pending: [UInt8] = []

    package init(maxLineBytes: Int = KubeClient.maxAnswerBytes) { self.maxLineBytes = maxLineBytes }

    /// Appends bytes and returns the complete lines they finish (without the newline; blank lines dropped).
    package mutating func append(_ bytes: some Collection<UInt8>) throws(LineTooLong) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if bytes[index] == 0x0A {
                // Checked before the bytes are kept, so the buffer never grows past the cap.
                if pending.count + bytes.distance(from: start, to: index) > maxLineBytes { throw LineTooLong(limit: maxLineBytes) }
                pending.append(contentsOf: bytes[start..<index])
                if pending.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) { lines.append(pending) }
                pending.removeAll(keepingCapacity: true)
                start = bytes.index(after: index)
            }
            index = bytes.index(after: index)
        }
        if pending.count + bytes.distance(from: start, to: bytes.endIndex) > maxLineBytes { throw LineTooLong(limit: maxLineBytes) }
        pending.append(contentsOf: bytes[start..<bytes.endIndex])
        return lines
    }

    /// The bytes of an unfinished line held now: never more than `maxLineBytes`.
    package var pendingBytes: Int { pending.count }

    /// What is left when the stream ends: a last line without its newline, if any.
    package var remainder: [UInt8]? {
        pending.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) ? pending : nil
    }
}
