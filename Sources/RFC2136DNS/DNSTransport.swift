import NIOCore
import NodeDNSCore
import NIOPosix
import NIOConcurrencyHelpers

/// How messages reach the server: TCP (RFC 7766, the default: no size limit, no spoofed answers) or UDP.
package enum DNSTransportKind: String, Sendable, CaseIterable {
    case tcp, udp
}

/// The server could not be reached or did not answer; always worth a retry.
package enum DNSTransportError: Error, Equatable, CustomStringConvertible {
    case connect(String)
    case timedOut(Double)
    case closed

    package var description: String {
        switch self {
        case .connect(let reason): "cannot connect to the DNS server: \(reason)"
        case .timedOut(let seconds): "the DNS server did not answer within \(seconds) s"
        case .closed: "the DNS server closed the connection before it answered"
        }
    }
}

/// Sends DNS messages to one server and returns the answers by message id.
package struct DNSTransport: Sendable {
    package let host: String
    package let port: Int
    /// How long to wait for an answer (for TCP: for each answer after the previous one).
    package let timeout: Double
    let group: any EventLoopGroup

    package init(host: String, port: Int, timeout: Double = 5, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.group = group
    }

    /// Every message over one TCP connection, pipelined (RFC 7766 section 6.2.1.1); answers matched by id.
    package func exchangeTCP(_ messages: [(id: UInt16, bytes: [UInt8])]) async throws -> [UInt16: [UInt8]] {
        guard !messages.isEmpty else { return [:] }
        // A TCP frame's length is two octets; a longer message cannot be sent at all.
        guard messages.allSatisfy({ $0.bytes.count <= 65_535 }) else { throw DNSTransportError.closed }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(Int64(timeout * 1000)))
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixedFrameDecoder()))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw DNSTransportError.connect("\(host):\(port): \(error)")
        }
        let wanted = Set(messages.map(\.id))
        let timeout = self.timeout
        return try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: [UInt16: [UInt8]]?.self) { group in
                group.addTask {
                    for message in messages {
                        var buffer = ByteBufferAllocator().buffer(capacity: message.bytes.count + 2)
                        buffer.writeInteger(UInt16(message.bytes.count))
                        buffer.writeBytes(message.bytes)
                        try await outbound.write(buffer)
                    }
                    return nil
                }
                let progress = Progress()
                group.addTask {
                    var answers: [UInt16: [UInt8]] = [:]
                    for try await frame in inbound {
                        progress.tick()
                        let bytes = Array(frame.readableBytesView)
                        guard bytes.count >= 12 else { continue }
                        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
                        if wanted.contains(id) { answers[id] = bytes }
                        if answers.count == wanted.count { return answers }
                    }
                    throw DNSTransportError.closed
                }
                group.addTask {
                    // Fails the exchange once no answer has come for `timeout` seconds.
                    while true {
                        let seen = progress.count
                        try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
                        if progress.count == seen { throw DNSTransportError.timedOut(timeout) }
                    }
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let answers = result { return answers }
                }
                throw DNSTransportError.closed
            }
        }
    }

    /// One message over UDP; the answer must come from the server's address and carry the same id.
    package func exchangeUDP(_ bytes: [UInt8], id: UInt16) async throws -> [UInt8] {
        let remote: SocketAddress
        do {
            remote = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw DNSTransportError.connect("\(host):\(port): \(error)")
        }
        let local = remote.protocol == .inet6 ? "::" : "0.0.0.0"
        let channel = try await DatagramBootstrap(group: group).bind(host: local, port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(
                    wrappingChannelSynchronously: channel)
            }
        }
        let timeout = self.timeout
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: bytes)))
            return try await withTimeout(seconds: timeout, { DNSTransportError.timedOut(timeout) }) {
                for try await envelope in inbound {
                    let answer = Array(envelope.data.readableBytesView)
                    guard envelope.remoteAddress == remote, answer.count >= 12,
                        UInt16(answer[0]) << 8 | UInt16(answer[1]) == id
                    else { continue }
                    return answer
                }
                throw DNSTransportError.closed
            }
        }
    }
}

/// Counts answers, so the TCP exchange's timeout measures silence rather than total time.
private final class Progress: Sendable {
    private let box = NIOLockedValueBox(0)
    var count: Int { box.withLockedValue { $0 } }
    func tick() { box.withLockedValue { $0 += 1 } }
}

/// Cuts a DNS-over-TCP stream into messages by their two-octet length (RFC 1035 section 4.2.2): at most one
/// message of 65,535 octets is ever held.
package struct LengthPrefixedFrameDecoder: ByteToMessageDecoder {
    package typealias InboundOut = ByteBuffer

    package init() {}

    package mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = Self.nextFrame(in: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    /// The next whole message in `buffer`, read past, or nil until its last byte has arrived.
    package static func nextFrame(in buffer: inout ByteBuffer) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self), buffer.readableBytes >= Int(length) + 2 else {
            return nil
        }
        buffer.moveReaderIndex(forwardBy: 2)
        return buffer.readSlice(length: Int(length))
    }
}
