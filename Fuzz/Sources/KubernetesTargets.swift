import Foundation
import KubernetesAPI
import NodeDNSCore
import Yams

/// A watch stream as an API server (or anything in between) could send it: however it is cut, the framer yields the
/// stream's non-blank lines and never holds more than its limit; each line is a watch event or refused as malformed.
@Sendable func fuzzWatchStream(_ data: [UInt8]) {
    var input = FuzzReader(data)
    let limit = 16 + Int(input.byte()) * 16
    let (stream, chunks) = input.restInChunks()
    var framer = LineFramer(maxLineBytes: limit)
    var lines: [[UInt8]] = []
    var refused = false
    for chunk in chunks {
        do {
            lines += try framer.append(chunk)
        } catch {
            refused = true
            break
        }
        require(framer.pendingBytes <= limit, "the framer holds \(framer.pendingBytes) bytes, over its limit of \(limit)")
    }
    let blank: (ArraySlice<UInt8>) -> Bool = { $0.allSatisfy { $0 == 0x20 || $0 == 0x0D || $0 == 0x09 } }
    let pieces = stream.split(separator: 0x0A, omittingEmptySubsequences: false)
    let complete = stream.last == 0x0A ? pieces.dropLast() : pieces.dropLast(1)
    if refused {
        require(pieces.contains { $0.count > limit }, "a stream with no line over \(limit) bytes was refused")
    } else {
        require(lines == complete.filter { !blank($0) }.map(Array.init), "the lines are not the stream's")
        if let last = framer.remainder { lines.append(last) }
    }
    for line in lines {
        // Both kinds the reflector watches, the node's annotation read as --node-hostnames-annotation asks.
        let node: WatchEvent<KubernetesAPI.Node>? = try? KubeClient.parseWatchLine(
            line, userInfo: [.nodeAnnotation: "kube-node-dns.io/hostnames"])
        _ = try? KubeClient.parseWatchLine(line, as: Pod.self)
        if case .added(let object)? = node { _ = object.addresses.map { try? IPAddress(parsing: $0.address) } }
    }
}

/// A list answer, however it is cut: the splitter never holds more than its item limit, and when it accepts the
/// answer, its items are the answer's `items` array, each one JSON value, as a full JSON parser reads them.
@Sendable func fuzzListItems(_ data: [UInt8]) {
    var input = FuzzReader(data)
    let limit = 16 + Int(input.byte()) * 64
    let (answer, chunks) = input.restInChunks()
    var splitter = ListItemSplitter(maxItemBytes: limit)
    var items: [[UInt8]] = []
    do {
        for chunk in chunks {
            items += try chunk.withUnsafeBytes { bytes in try splitter.feed(bytes) }
            require(splitter.heldBytes <= limit, "the splitter holds \(splitter.heldBytes) bytes, over its limit of \(limit)")
            require(
                splitter.heldSkeletonBytes <= limit + 65_536,
                "the splitter holds \(splitter.heldSkeletonBytes) bytes of the list's own fields")
        }
        try splitter.finish()
    } catch {
        return
    }
    // The client decodes each item alone, and refuses the page when one is not JSON: that is part of the reading.
    var values: [Any] = []
    for item in items {
        guard let value = try? JSONSerialization.jsonObject(with: Data(item), options: [.fragmentsAllowed]) else { return }
        values.append(value)
    }
    // Accepted: a full parser must read the same answer as an object whose items are these. One exception: a `\uD800`
    // with no pair, which parsers treat differently (Go replaces it, Foundation refuses it) and which the cutter,
    // like JSONDecoder for a field it does not read, leaves alone.
    if hasSurrogateEscape(answer) { return }
    guard let whole = try? JSONSerialization.jsonObject(with: Data(answer), options: [.fragmentsAllowed]) as? [String: Any],
        let array = whole["items"] as? [Any]
    else {
        fatalError("property violated: the splitter accepted an answer that is not a JSON object with an items array")
    }
    require(array.count == items.count, "the splitter cut \(items.count) items where the answer has \(array.count)")
    for (value, expected) in zip(values, array) {
        require(NSArray(object: value).isEqual(NSArray(object: expected)), "an item differs from the answer's")
    }
    for item in items { _ = try? JSONDecoder().decode(KubernetesAPI.Node.self, from: Data(item)) }
}

/// Whether the text holds a `\u` escape of a UTF-16 surrogate.
func hasSurrogateEscape(_ bytes: [UInt8]) -> Bool {
    guard bytes.count >= 4 else { return false }
    return (0..<(bytes.count - 3)).contains { index in
        bytes[index] == UInt8(ascii: "\\") && bytes[index + 1] == UInt8(ascii: "u")
            && (bytes[index + 2] | 0x20) == UInt8(ascii: "d")
            && [UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(bytes[index + 3] | 0x20)
    }
}

/// A kubeconfig file: the reader returns a tree or an error that gives a line and column, and never traps. When a
/// full YAML parser (Yams) also reads the text, the two agree on every field the controller reads.
@Sendable func fuzzKubeconfig(_ data: [UInt8]) {
    guard let text = String(validating: data, as: UTF8.self) else { return }
    let ours: YAMLNode?
    do {
        ours = try KubeconfigYAMLReader.parse(text)
    } catch {
        require(error.line >= 1 && error.column >= 1, "a YAML error without its line and column: \(error)")
        return
    }
    guard let yams = try? Yams.compose(yaml: text) else { return }
    let theirs = yamsTree(yams)
    for field in ["clusters", "contexts", "users", "current-context"] {
        require(
            ours?[field] == theirs[field],
            "\(field) reads as \(String(describing: ours?[field])) where Yams reads \(String(describing: theirs[field]))")
    }
}

/// Yams' node tree in the reader's terms (as the kubeconfig corpus test compares them).
func yamsTree(_ node: Yams.Node) -> YAMLNode {
    switch node {
    case .scalar(let scalar): return .scalar(scalar.string, plain: scalar.style == .plain)
    case .mapping(let mapping):
        return .mapping(mapping.map { YAMLEntry(key: $0.key.scalar?.string ?? "<not a scalar>", value: yamsTree($0.value)) })
    case .sequence(let sequence): return .sequence(sequence.map(yamsTree))
    default: return .scalar("<alias>", plain: false)
    }
}

/// A label selector that parses prints back (canonically) to a selector that parses to the same requirements.
@Sendable func fuzzLabelSelector(_ data: [UInt8]) {
    guard let text = String(validating: data, as: UTF8.self), let selector = try? LabelSelector(text) else { return }
    let printed = selector.canonicalText
    guard let again = try? LabelSelector(printed) else {
        fatalError("property violated: \"\(text)\" prints as \"\(printed)\", which does not parse")
    }
    require(again.requirements == selector.requirements, "\"\(text)\" and its print \"\(printed)\" differ")
    require(again.canonicalText == printed, "printing is not stable for \"\(text)\"")
}
