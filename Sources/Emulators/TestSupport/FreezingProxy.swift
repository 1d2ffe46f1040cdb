import NIOCore
import NIOPosix
import NIOConcurrencyHelpers

/// A TCP proxy on loopback that can freeze every connection open at that moment: it goes on reading (so the kernel
/// keeps ACKing) but forwards nothing either way and closes nothing, as a load balancer or a control plane that
/// fails over without a FIN or a RST leaves its clients' connections. New connections are forwarded as before.
package final class FreezingProxy: Sendable {
    /// One accepted connection and its upstream; frozen once, frozen for good.
    private final class Pair: Sendable {
        let frozen = NIOLockedValueBox(false)
    }

    /// Forwards what one side reads to the other side's channel, until the pair is frozen.
    private final class Forwarder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let pair: Pair
        let peer: NIOLockedValueBox<(any Channel)?>
        init(pair: Pair, peer: (any Channel)?) {
            self.pair = pair
            self.peer = NIOLockedValueBox(peer)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !pair.frozen.withLockedValue({ $0 }), let peer = peer.withLockedValue({ $0 }) else { return }
            peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            guard !pair.frozen.withLockedValue({ $0 }) else { return }
            peer.withLockedValue { $0 }?.close(promise: nil)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// The connections so far: their pairs (to freeze) and channels (to close on stop, frozen ones included).
    private final class Registry: Sendable {
        let pairs = NIOLockedValueBox<[Pair]>([])
        let channels = NIOLockedValueBox<[any Channel]>([])
    }

    private let channel: any Channel
    private let registry = Registry()
    package var port: Int { channel.localAddress?.port ?? 0 }

    /// Starts on a free loopback port, forwarding to `127.0.0.1:upstreamPort`.
    package init(upstreamPort: Int) async throws {
        let registry = self.registry
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { client in
                let pair = Pair()
                registry.pairs.withLockedValue { $0.append(pair) }
                registry.channels.withLockedValue { $0.append(client) }
                let toUpstream = Forwarder(pair: pair, peer: nil)
                return ClientBootstrap(group: client.eventLoop)
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture {
                            try upstream.pipeline.syncOperations.addHandler(Forwarder(pair: pair, peer: client))
                        }
                    }
                    .connect(host: "127.0.0.1", port: upstreamPort)
                    .flatMapThrowing { upstream in
                        registry.channels.withLockedValue { $0.append(upstream) }
                        toUpstream.peer.withLockedValue { $0 = upstream }
                        try client.pipeline.syncOperations.addHandler(toUpstream)
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// Freezes every connection open now; later ones are forwarded.
    package func freezeOpenConnections() {
        for pair in registry.pairs.withLockedValue({ $0 }) { pair.frozen.withLockedValue { $0 = true } }
    }

    package func stop() async {
        for channel in registry.channels.withLockedValue({ $0 }) { try? await channel.close() }
        try? await channel.close()
    }
}
