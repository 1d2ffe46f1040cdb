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

/// Probes one address as a visitor would reach it: TCP (then TLS with the site's name for https), one HTTP/1.1 GET
/// with the site's Host header, and the status line read; a 2xx or 3xx passes. Nothing outlives `timeout`.
/// An answer framed by Content-Length leaves its connection open for the next probe of that address (as a browser
/// keeps one), which spares a handshake and a close per check; a kept connection that turns out closed is replaced
/// by a fresh one within the same probe, so a graceful nginx reload is no failure, and a killed nginx's refused
/// connection still is. tcp checks always connect afresh: the connection is what they check.
package struct HealthProbe: Sendable {
    package let spec: HealthCheckSpec
    /// The HTTP Host header, and for https the TLS server name and the name the certificate must carry.
    package let host: String
    package let timeout: Duration
    private let tls: NIOSSLContext?
    /// Every probe runs on this loop, where the kept connections live.
    package let loop: any EventLoop
    private let idle: IdleConnections
    /// The longest answer head read; a peer that sends more without its end is not an HTTP server.
    static let maxHeadBytes = 16384

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
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        self.loop = loop
        idle = IdleConnections(loop: loop)
    }

    /// Connections left open after a complete answer, by address; only touched on `loop`.
    private final class IdleConnections: Sendable {
        let kept: NIOLoopBoundBox<[String: KeptConnection]>
        init(loop: any EventLoop) { kept = NIOLoopBoundBox.makeBoxSendingValue([:], as: [String: KeptConnection].self, eventLoop: loop) }
    }

    private struct KeptConnection {
        var channel: any Channel
        var reader: AnswerReader
    }

    /// Probes `address` (an IPv4 or IPv6 literal).
    package func check(_ address: String) async -> ProbeResult {
        (try? await loop.flatSubmit { self.start(address) }.get())
            ?? ProbeResult(passed: false, detail: "not run", latency: .zero)
    }

    /// Starts a probe of `address`; call it on `loop`. The future never fails. A round starts every probe this
    /// way, so a thousand probes cost no thread hop each.
    package func start(_ address: String) -> EventLoopFuture<ProbeResult> {
        let started = ContinuousClock.now
        let promise = loop.makePromise(of: String?.self)  // nil: passed; else why not
        let timeout = self.timeout
        let loop = self.loop
        let inUse = NIOLoopBoundBox.makeBoxSendingValue(nil, as: (any Channel)?.self, eventLoop: loop)
        let deadline = loop.scheduleTask(in: .nanoseconds(Int64(timeout.inSeconds * 1e9))) {
            promise.fail(ProbeTimeout())
            // A connection that has not answered in time is not kept.
            inUse.value?.close(promise: nil)
        }
        let kept = idle.kept
        if spec.scheme != .tcp, let connection = kept.value.removeValue(forKey: address), connection.channel.isActive {
            // A kept connection: if it turns out closed before any answer (the server let it go), a fresh one.
            let channel = connection.channel
            inUse.value = channel
            let attempt = loop.makePromise(of: String?.self)
            connection.reader.waiting = attempt
            channel.writeAndFlush(channel.allocator.buffer(bytes: request ?? []), promise: nil)
            attempt.futureResult.whenComplete { result in
                switch result {
                case .success(let why): promise.succeed(why)
                case .failure(let error) where error is ProbeTimeout: promise.fail(error)
                case .failure:
                    channel.close(promise: nil)
                    self.connect(address, promise: promise, inUse: inUse)
                }
            }
        } else {
            connect(address, promise: promise, inUse: inUse)
        }
        let host = self.host
        let target = address.contains(":") ? "[\(address)]:\(spec.port)" : "\(address):\(spec.port)"
        return promise.futureResult.always { _ in
            deadline.cancel()
        }.map { why -> ProbeResult in
            ProbeResult(passed: why == nil, detail: "\(why ?? "ok") (\(target))", latency: started.duration(to: .now))
        }.recover { error in
            let why = Self.describe(error, timeout: timeout, host: host)
            return ProbeResult(passed: false, detail: "\(why) (\(target))", latency: started.duration(to: .now))
        }
    }

    /// A fresh connection for one probe of `address`: its answer completes `promise`; a reusable one is kept.
    private func connect(_ address: String, promise: EventLoopPromise<String?>, inUse: NIOLoopBoundBox<(any Channel)?>) {
        let request = self.request
        let tls = self.tls
        let host = self.host
        let kept = idle.kept
        let reader = NIOLoopBound(AnswerReader(request: request, waiting: promise), eventLoop: loop)
        let over = NIOLoopBoundBox.makeBoxSendingValue(false, as: Bool.self, eventLoop: loop)
        promise.futureResult.whenComplete { _ in over.value = true }
        // The probe's deadline covers connecting too.
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(timeout.inSeconds * 1e9) + 1_000_000_000))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let handler = try NIOSSLClientHandler(context: tls, serverHostname: host)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(reader.value)
                }
            }
        let connect: EventLoopFuture<any Channel>
        do {
            // An address literal, connected to directly: no resolver, no Happy Eyeballs.
            connect = bootstrap.connect(to: try SocketAddress(ipAddress: address, port: spec.port))
        } catch {
            connect = loop.makeFailedFuture(error)
        }
        connect.whenFailure { promise.fail($0) }
        connect.whenSuccess { channel in
            inUse.value = channel
            // After a complete answer the connection waits for this address's next probe; one per address.
            reader.value.onReusable = {
                if let old = kept.value.updateValue(KeptConnection(channel: channel, reader: reader.value), forKey: address),
                    old.channel !== channel
                {
                    old.channel.close(promise: nil)
                }
            }
            channel.closeFuture.whenComplete { _ in
                if let current = kept.value[address], current.channel === channel { kept.value[address] = nil }
            }
            // A probe already over (its deadline passed while connecting) leaves nothing open.
            if over.value, kept.value[address]?.channel !== channel { channel.close(promise: nil) }
        }
    }

    /// The request, the same for every probe: one HTTP/1.1 GET with the site's Host (nil for tcp).
    private var request: [UInt8]? {
        spec.scheme == .tcp
            ? nil
            : Array(
                "GET \(spec.path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: kube-node-dns-health-check\r\nAccept: */*\r\n\r\n".utf8)
    }

    private struct ProbeTimeout: Error {}

    static func describe(_ error: any Error, timeout: Duration, host: String) -> String {
        if error is ProbeTimeout { return "no answer within \(timeout.inSeconds.twoDecimals) s" }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return "no connection within \(timeout.inSeconds.twoDecimals) s"
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

/// One probe connection's reader: sends the request once connected (for tcp, passes at once), settles the waiting
/// probe at the status line, then reads the rest of the answer; an answer framed by Content-Length on HTTP/1.1
/// without `Connection: close` leaves the connection reusable, anything else closes it.
private final class AnswerReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let request: [UInt8]?
    /// The probe waiting for this connection's next answer (nil while idle).
    var waiting: EventLoopPromise<String?>?
    /// Called when an answer has been read to its end and the connection may serve the next probe.
    var onReusable: () -> Void = {}
    private var head: [UInt8] = []
    /// The body bytes still to come of the current answer; nil while its head is being read.
    private var bodyLeft: Int?

    init(request: [UInt8]?, waiting: EventLoopPromise<String?>) {
        self.request = request
        self.waiting = waiting
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let request else {
            settle(nil)
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: request)), promise: nil)
        context.fireChannelActive()
    }

    private func settle(_ why: String?) {
        waiting?.succeed(why)
        waiting = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data).readableBytesView
        if var left = bodyLeft {
            left -= bytes.count
            bodyLeft = left
            if left == 0 {
                bodyLeft = nil
                onReusable()
            } else if left < 0 {
                context.close(promise: nil)  // more than the answer said: not reusable
            }
            return
        }
        head += bytes
        // The status line settles the probe as soon as it is complete.
        if waiting != nil, let lineEnd = head.firstIndex(of: UInt8(ascii: "\n")) {
            let parts = head[..<lineEnd].split(separator: UInt8(ascii: " "), maxSplits: 2)
            if parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)), parts[1].count == 3,
                let code = Int(String(decoding: parts[1], as: UTF8.self))
            {
                settle((200..<400).contains(code) ? nil : "HTTP \(code)")
            } else {
                settle("not an HTTP answer")
                context.close(promise: nil)
                return
            }
        }
        guard let end = Self.endOfHead(head) else {
            if head.count > HealthProbe.maxHeadBytes {
                settle("not an HTTP answer")
                context.close(promise: nil)
            }
            return
        }
        // Reusable only when the answer says how long its body is, and does not close.
        let text = String(decoding: head[..<end], as: UTF8.self).lowercased()
        let lines = text.split(separator: "\r\n")
        let length = lines.first { $0.hasPrefix("content-length:") }.flatMap { Int($0.dropFirst(15).trimmingWhitespace) }
        let closes = lines.contains { $0.hasPrefix("connection:") && $0.contains("close") }
        let chunked = lines.contains { $0.hasPrefix("transfer-encoding:") }
        guard let length, !closes, !chunked, text.hasPrefix("http/1.1") else {
            context.close(promise: nil)
            return
        }
        let already = head.count - end
        head = []
        bodyLeft = length - already
        if length - already == 0 {
            bodyLeft = nil
            onReusable()
        } else if length - already < 0 {
            context.close(promise: nil)
        }
    }

    /// The index just after the blank line that ends the head, if it has arrived.
    static func endOfHead(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 3..<bytes.count
        where bytes[index] == 10 && bytes[index - 1] == 13 && bytes[index - 2] == 10 && bytes[index - 3] == 13 {
            return index + 1
        }
        return nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiting?.fail(ChannelError.eof)
        waiting = nil
        onReusable = {}  // it holds this reader: let both go with the connection
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        waiting?.fail(error)
        waiting = nil
        context.close(promise: nil)
    }
}
