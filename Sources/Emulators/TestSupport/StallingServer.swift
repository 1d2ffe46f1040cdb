import NIOCore
import NIOPosix
import NIOConcurrencyHelpers

/// An HTTP server that answers every request with the same bytes and then goes silent, keeping the connection
/// open: a half-open connection after a load balancer's failover, or an API server that sends the headers and
/// nothing more. With an empty answer it closes at once instead (a watch that ends before it starts).
package final class StallingServer: Sendable {
    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let answer: @Sendable (String) -> String
        let counter: Counter
        init(answer: @escaping @Sendable (String) -> String, counter: Counter) {
            self.answer = answer
            self.counter = counter
        }
        func channelActive(context: ChannelHandlerContext) {
            counter.connections.withLockedValue { $0 += 1 }
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            guard let requestLine = text.split(separator: "\r\n").first, text.contains("\r\n\r\n") else { return }
            counter.value.withLockedValue { $0.append((String(requestLine), ContinuousClock.now)) }
            let bytes = Array(answer(String(requestLine)).utf8)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        }
    }

    private let channel: any Channel
    private let counter: Counter
    package var port: Int { channel.localAddress?.port ?? 0 }
    /// Requests received so far.
    package var requests: Int { counter.value.withLockedValue { $0.count } }
    /// The request lines received so far (`GET /api/v1/nodes?watch=true HTTP/1.1`).
    package var requestLines: [String] { counter.value.withLockedValue { $0.map(\.line) } }
    /// The request lines received so far, each with the instant it arrived: for tests of a client's pacing.
    package var requestArrivals: [(line: String, at: ContinuousClock.Instant)] { counter.value.withLockedValue { $0 } }

    /// Connections accepted so far (a DNS client's too, which sends no HTTP request line).
    package var connections: Int { counter.connections.withLockedValue { $0 } }

    private final class Counter: Sendable {
        let value = NIOLockedValueBox<[(line: String, at: ContinuousClock.Instant)]>([])
        let connections = NIOLockedValueBox(0)
    }

    /// Starts on a free loopback port; the same `answer` is sent, whole, for each request.
    package convenience init(answer: String) async throws {
        try await self.init { _ in answer }
    }

    /// Starts on a free loopback port; `answer` gets each request line and gives the whole answer to send.
    package init(answer: @escaping @Sendable (String) -> String) async throws {
        let counter = Counter()
        self.counter = counter
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(Handler(answer: answer, counter: counter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// Headers of a 200 streaming JSON answer, then silence: a watch or a list that stalls after the headers.
    package static let headersThenNothing =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    /// A complete, empty 200 answer: a watch that ends at once with no event.
    package static let emptyAnswer =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"

    /// A complete 200 answer carrying `json`.
    package static func json(_ json: String) -> String {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json
    }

    package func stop() async {
        try? await channel.close()
    }
}

/// A loopback TCP port that refuses every connection, and that no other test can take meanwhile: a socket bound to
/// it that never listens (a stopped server's port can be handed to the next server that binds port 0).
package final class RefusingPort: Sendable {
    private let descriptor: Int32
    package let port: Int

    package init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        // Bound without SO_REUSEADDR, so another socket cannot bind the port beside it and listen there.
        let bound = try SocketAddress(ipAddress: "127.0.0.1", port: 0).withSockAddr { bind(descriptor, $0, socklen_t($1)) }
        guard bound == 0 else {
            let code = errno
            close(descriptor)
            throw IOError(errnoCode: code, reason: "bind")
        }
        self.descriptor = descriptor
        // The port the kernel picked; nothing listens there, so NIO's channel types do not apply.
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        precondition(named == 0, "getsockname failed on a bound socket: errno \(errno)")
        port = Int(UInt16(bigEndian: local.sin_port))
    }

    deinit { close(descriptor) }
}
