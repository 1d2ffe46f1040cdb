import NIOCore
import NIOPosix
import NIOSSL
import NodeDNSCore

/// One probe's outcome: passed or not, with what a user reads ("connection refused (203.0.113.2:80)").
package struct ProbeResult: Sendable, Equatable {
    package var passed: Bool
    package var detail: String
    package var latency: Duration
}

/// Probes one address as a visitor would reach it: a fresh connection each time (TCP, then TLS with the site's
/// name for https), one HTTP/1.1 GET with the site's Host header, and the status line read; a 2xx or 3xx passes.
/// Nothing outlives `timeout`.
package struct HealthProbe: Sendable {
    package let spec: HealthCheckSpec
    /// The HTTP Host header, and for https the TLS server name and the name the certificate must carry.
    package let host: String
    package let timeout: Duration
    private let tls: NIOSSLContext?
    /// The longest status line read; a peer that sends more without a line end is not an HTTP server.
    static let maxStatusLineBytes = 4096

    /// `insecure` skips certificate verification (https); `caFile` is a PEM bundle trusted instead of the system's.
    package init(spec: HealthCheckSpec, host: String, timeout: Duration, insecure: Bool = false, caFile: String? = nil) throws {
        self.spec = spec
        self.host = host
        self.timeout = timeout
        if spec.scheme == .https {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if insecure { configuration.certificateVerification = .none }
            if let caFile { configuration.trustRoots = .file(caFile) }
            tls = try NIOSSLContext(configuration: configuration)
        } else {
            tls = nil
        }
    }

    /// Probes `address` (an IPv4 or IPv6 literal).
    package func check(_ address: String) async -> ProbeResult {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        return (try? await loop.flatSubmit { self.start(address, on: loop) }.get())
            ?? ProbeResult(passed: false, detail: "not run", latency: .zero)
    }

    /// Starts a probe of `address` from `loop` (call it on that loop); the future never fails. A round starts
    /// every probe this way, so a thousand probes cost no thread hop each.
    package func start(_ address: String, on loop: any EventLoop) -> EventLoopFuture<ProbeResult> {
        let started = ContinuousClock.now
        let promise = loop.makePromise(of: String?.self)  // nil: passed; else why not
        let timeout = self.timeout
        let deadline = loop.scheduleTask(in: .nanoseconds(Int64(timeout.inSeconds * 1e9))) {
            promise.fail(ProbeTimeout())
        }
        let request = self.request
        let tls = self.tls
        let host = self.host
        let port = spec.port
        // The deadline above covers connecting too.
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(timeout.inSeconds * 1e9) + 1_000_000_000))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let handler = try NIOSSLClientHandler(context: tls, serverHostname: host)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(StatusLineReader(request: request, promise: promise))
                }
            }
        let connect: EventLoopFuture<any Channel>
        do {
            // An address literal, connected to directly: no resolver, no Happy Eyeballs.
            connect = bootstrap.connect(to: try SocketAddress(ipAddress: address, port: port))
        } catch {
            connect = loop.makeFailedFuture(error)
        }
        connect.whenFailure { promise.fail($0) }
        return promise.futureResult.always { _ in
            deadline.cancel()
            connect.whenSuccess { $0.close(promise: nil) }
        }.map { why -> ProbeResult in
            let target = address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
            return ProbeResult(
                passed: why == nil, detail: "\(why ?? "ok") (\(target))", latency: started.duration(to: .now))
        }.recover { error in
            let target = address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
            let why = Self.describe(error, timeout: timeout, host: host)
            return ProbeResult(passed: false, detail: "\(why) (\(target))", latency: started.duration(to: .now))
        }
    }

    /// The request, the same for every probe: one HTTP/1.1 GET with the site's Host (nil for tcp).
    private var request: [UInt8]? {
        spec.scheme == .tcp
            ? nil
            : Array(
                "GET \(spec.path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: kube-node-dns-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                    .utf8)
    }

    private struct ProbeTimeout: Error {}

    static func describe(_ error: any Error, timeout: Duration, host: String) -> String {
        if error is ProbeTimeout { return "no answer within \(timeout.inSeconds.twoDecimals) s" }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return "no connection within \(timeout.inSeconds.twoDecimals) s"
        }
        if let error = error as? NIOConnectionError {
            let errors = error.connectionErrors.map { "\($0.error)" }
            if errors.contains(where: { $0.contains("refused") || $0.contains("111") }) { return "connection refused" }
            return "cannot connect: \(errors.first ?? "\(error)")"
        }
        if let error = error as? IOError {
            if error.errnoCode == 111 { return "connection refused" }
            if error.errnoCode == 104 { return "connection reset" }
            return "cannot connect: \(error)"
        }
        if let error = error as? NIOSSLError {
            if case .handshakeFailed(let inner) = error { return "TLS handshake failed: \(inner)" }
            return "TLS: \(error)"
        }
        if let error = error as? NIOSSLExtraError {
            if error == .failedToValidateHostname { return "TLS: the certificate does not carry the name \(host)" }
            return "TLS: \(error)"
        }
        if let error = error as? ChannelError, error == .eof || error == .ioOnClosedChannel || error == .alreadyClosed {
            return "the connection closed before an answer"
        }
        return peerText("\(error)")
    }
}

/// Sends the request once connected (for tcp, passes at once), and reads the answer up to its status line.
private final class StatusLineReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let request: [UInt8]?
    let promise: EventLoopPromise<String?>
    var received: [UInt8] = []

    init(request: [UInt8]?, promise: EventLoopPromise<String?>) {
        self.request = request
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let request else {
            promise.succeed(nil)
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytesView
        guard let end = received.firstIndex(of: UInt8(ascii: "\n")) else {
            if received.count > HealthProbe.maxStatusLineBytes {
                promise.succeed("not an HTTP answer")
                context.close(promise: nil)
            }
            return
        }
        let line = received[..<end]
        // "HTTP/1.1 200 OK": the version, then three digits.
        let parts = line.split(separator: UInt8(ascii: " "), maxSplits: 2)
        if parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)), parts[1].count == 3,
            let code = Int(String(decoding: parts[1], as: UTF8.self))
        {
            promise.succeed((200..<400).contains(code) ? nil : "HTTP \(code)")
        } else {
            promise.succeed("not an HTTP answer")
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
