import Foundation

/// The libFuzzer entry point: one binary holds every target, and `KUBE_NODE_DNS_FUZZ_TARGET` names the one this run
/// drives (`scripts/fuzz TARGET SECONDS` sets it). Each target asserts properties of a parser, not only that it
/// returns: a violated property traps, and libFuzzer saves the input that did it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = count == 0 || start == nil ? [] : Array(UnsafeBufferPointer(start: start, count: count))
    selectedTarget(bytes)
    return 0
}

/// Every target by name: the corpus of each lives in `Fuzz/Corpus/<name>/`.
let fuzzTargets: [String: @Sendable ([UInt8]) -> Void] = [
    "dns-message": fuzzDNSMessage,
    "tsig": fuzzTSIG,
    "dns-tcp-frames": fuzzDNSTCPFrames,
    "watch-stream": fuzzWatchStream,
    "list-items": fuzzListItems,
    "cloudflare-answer": fuzzCloudflareAnswer,
    "kubeconfig": fuzzKubeconfig,
    "label-selector": fuzzLabelSelector,
    "dns-name": fuzzDNSName,
    "ip-address": fuzzIPAddress,
    "duration": fuzzDuration,
    "go-flags": fuzzGoFlags,
]

let selectedTarget: @Sendable ([UInt8]) -> Void = {
    let name = ProcessInfo.processInfo.environment["KUBE_NODE_DNS_FUZZ_TARGET"] ?? ""
    guard let target = fuzzTargets[name] else {
        FileHandle.standardError.write(
            Data("set KUBE_NODE_DNS_FUZZ_TARGET to one of: \(fuzzTargets.keys.sorted().joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}()

/// A property every input must keep; a violation stops the run with the reason (libFuzzer saves the input).
func require(_ condition: Bool, _ reason: @autoclosure () -> String) {
    if !condition { fatalError("property violated: \(reason())") }
}

/// Reads a fuzzer's bytes as the parameters of one case: a few small numbers first, then the rest as the input.
struct FuzzReader {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next byte, or 0 once the bytes are used up.
    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    /// Everything not read yet.
    mutating func rest() -> [UInt8] {
        defer { index = bytes.count }
        return index < bytes.count ? Array(bytes[index...]) : []
    }

    /// The rest of the bytes, after up to seven chunk sizes read first: the whole, and the whole cut as a network
    /// could cut it (what the stream targets feed their framers).
    mutating func restInChunks() -> (whole: [UInt8], chunks: [[UInt8]]) {
        let sizes = (0..<Int(byte() % 8)).map { _ in byte() }
        let whole = rest()
        return (whole, Self.chunks(whole, sizes: sizes))
    }

    /// The bytes cut into chunks whose sizes come from `sizes` (1 to 256 each, cycling).
    private static func chunks(_ data: [UInt8], sizes: [UInt8]) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var offset = 0
        var turn = 0
        while offset < data.count {
            let size = sizes.isEmpty ? data.count : Int(sizes[turn % sizes.count]) + 1
            chunks.append(Array(data[offset..<min(data.count, offset + size)]))
            offset += size
            turn += 1
        }
        return chunks
    }
}
