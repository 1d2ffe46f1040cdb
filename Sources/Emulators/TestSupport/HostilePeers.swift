import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NodeDNSCore

/// Hostile answers for the end-to-end tests, made from what the fuzzers found: the answer bytes of each input in a
/// target's corpus (`Fuzz/Corpus/<target>/`, the libFuzzer seeds and the inputs the long runs kept), then seeded
/// mutations of them as libFuzzer makes (bit flips, JSON and DNS bytes, cuts, copies, splices), until there are
/// `count`.
package enum HostileAnswers {
    /// Where a fuzz target's input holds the answer: after the parameter bytes the target reads first.
    package enum Layout: Sendable {
        /// The whole input is the answer (dns-message).
        case whole
        /// After a fixed number of parameter bytes (cloudflare-answer: 2, tsig: 5).
        case after(Int)
        /// After `skip` bytes and then `FuzzReader.restInChunks`'s count byte and chunk sizes (the stream targets).
        case afterChunkSizes(skip: Int)
    }

    /// The fuzz corpus of the repository.
    package static let corpusDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus")

    /// The answers held by one target's corpus, in file-name order.
    package static func corpus(_ target: String, layout: Layout) throws -> [[UInt8]] {
        let directory = corpusDirectory.appendingPathComponent(target)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        return try names.map { name in
            let input = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
            let start: Int
            switch layout {
            case .whole: start = 0
            case .after(let count): start = count
            case .afterChunkSizes(let skip):
                start = input.count > skip ? skip + 1 + Int(input[skip] % 8) : skip
            }
            return start < input.count ? Array(input[start...]) : []
        }
    }

    /// `count` answers: every seed once, then mutations of them (the same `seed` gives the same answers).
    package static func make(count: Int, from seeds: [[UInt8]], seed: UInt64, maxBytes: Int = 65_536) -> [[UInt8]] {
        precondition(!seeds.isEmpty, "no seeds")
        var random = SplitMix64(seed: seed)
        var answers = Array(seeds.prefix(count))
        while answers.count < count {
            var bytes = seeds[Int.random(in: 0..<seeds.count, using: &random)]
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                mutate(&bytes, seeds: seeds, using: &random)
            }
            answers.append(Array(bytes.prefix(maxBytes)))
        }
        return answers
    }

    /// Bytes a parser treats specially: JSON's structure and escapes, line breaks, DNS's compression pointers.
    private static let interesting: [UInt8] = [0, 0x0A, 0x0D, 0x22, 0x2C, 0x3A, 0x5B, 0x5C, 0x5D, 0x7B, 0x7D, 0x7F, 0x80, 0xC0, 0xFF]

    private static func mutate(_ bytes: inout [UInt8], seeds: [[UInt8]], using random: inout SplitMix64) {
        let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
        switch Int.random(in: 0..<7, using: &random) {
        case 0 where !bytes.isEmpty: bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        case 1 where !bytes.isEmpty: bytes[position] = interesting.randomElement(using: &random)!
        case 2: bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
        case 3 where !bytes.isEmpty: bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...16, using: &random)))
        case 4 where !bytes.isEmpty:
            let piece = bytes[position..<min(bytes.count, position + Int.random(in: 1...64, using: &random))]
            bytes.insert(contentsOf: Array(piece), at: Int.random(in: 0...bytes.count, using: &random))
        case 5:
            let other = seeds[Int.random(in: 0..<seeds.count, using: &random)]
            bytes = Array(bytes.prefix(position)) + other.suffix(Int.random(in: 0...other.count, using: &random))
        default: bytes = Array(bytes.prefix(position))
        }
    }
}

/// A DNS server over TCP that answers every query with the next hostile answer and closes the connection: half are
/// framed messages with the query's id put in (so they reach the parser past the id check), the rest are sent
/// with their own bytes, id and framing as they came.
package final class HostileDNSServer: Sendable {
    /// The answers, and how many were given: shared by every connection's handler.
    private final class Script: Sendable {
        let answers: [[UInt8]]
        let served = NIOLockedValueBox(0)
        init(_ answers: [[UInt8]]) { self.answers = answers }

        func next() -> (index: Int, answer: [UInt8]) {
            let index = served.withLockedValue { count in
                defer { count += 1 }
                return count
            }
            return (index, answers[index % answers.count])
        }
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let script: Script
        let received = NIOLockedValueBox<[UInt8]>([])
        init(script: Script) { self.script = script }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(buffer: unwrapInboundIn(data))
            let query: [UInt8]? = received.withLockedValue { held in
                held += bytes
                guard held.count >= 2 else { return nil }
                let end = 2 + (Int(held[0]) << 8 | Int(held[1]))
                return held.count >= end ? Array(held[2..<end]) : nil
            }
            guard let query, query.count >= 2 else { return }
            let (index, answer) = script.next()
            var reply: [UInt8]
            if index % 2 == 0 {
                var message = answer
                if message.count >= 2 { message.replaceSubrange(0..<2, with: query[0..<2]) }
                message = Array(message.prefix(65_535))
                reply = [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
            } else {
                reply = answer
            }
            if reply.isEmpty { reply = [0] }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: reply))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    private let script: Script
    private let channel: any Channel

    /// Answers served so far (after the last of `answers`, they start again from the first).
    package var answered: Int { script.served.withLockedValue { $0 } }
    package var port: Int { channel.localAddress?.port ?? 0 }

    /// Starts on a free loopback port.
    package init(answers: [[UInt8]]) async throws {
        precondition(!answers.isEmpty, "no answers")
        let script = Script(answers)
        self.script = script
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(Handler(script: script)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    package func stop() async {
        try? await channel.close()
    }
}
