import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import ServiceLifecycle
import NIOConcurrencyHelpers

/// Stops an emulator's server by graceful shutdown. Cancelling the serving task instead can leave a connection
/// accepted but never handed to the server, and NIO then traps ("Deinited NIOAsyncWriter without calling
/// finish()"): the crash the fault soak met when it restarted the Kubernetes emulator under reconnecting replicas.
package final class ServerStopper: Sendable {
    private enum State {
        case waiting
        case running(ServiceGroup)
        case stopRequested
    }
    private let state = NIOLockedValueBox(State.waiting)

    package init() {}

    /// Called by the server once it runs; false when a stop was asked for before that.
    fileprivate func attach(_ group: ServiceGroup) -> Bool {
        state.withLockedValue { state in
            if case .stopRequested = state { return false }
            state = .running(group)
            return true
        }
    }

    /// Asks the server to finish its connections and return.
    package func stop() async {
        let group = state.withLockedValue { state -> ServiceGroup? in
            if case .running(let group) = state { return group }
            state = .stopRequested
            return nil
        }
        await group?.triggerGracefulShutdown()
    }
}

/// One HTTP request as an emulator sees it: decoded path, ordered query pairs, headers and body bytes.
package struct EmulatorRequest: Sendable {
    package var method: String
    package var path: String
    package var query: [(String, String)]
    package var headers: [String: String]  // lower-cased names
    package var body: [UInt8]

    package init(method: String, path: String, query: [(String, String)], headers: [String: String], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    package func queryValue(_ name: String) -> String? { query.last(where: { $0.0 == name })?.1 }
    package func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// An emulator's answer: either a whole body, or a stream of lines written as they come (watch).
package enum EmulatorResponse: Sendable {
    case full(status: Int, headers: [(String, String)], body: [UInt8])
    case stream(
        status: Int, headers: [(String, String)], lines: AsyncStream<[UInt8]>,
        timers: @Sendable () async -> Void, onEnd: @Sendable () -> Void)

    package static func json(_ status: Int, _ value: JSON, headers: [(String, String)] = []) -> EmulatorResponse {
        .full(status: status, headers: [("Content-Type", "application/json")] + headers, body: value.bytes)
    }

    package var status: Int {
        switch self {
        case .full(let status, _, _), .stream(let status, _, _, _, _): status
        }
    }

    /// This answer sent `bytes` at a time with `interval` between (a peer on a bad link, or a hostile one): a whole
    /// body is dripped to its end; a stream (a watch) sends a byte of its next line now and then and never a whole
    /// line, as a peer that keeps a connection busy without delivering.
    package func dripped(bytes: Int, interval: Duration) -> EmulatorResponse {
        let (drip, continuation) = AsyncStream<[UInt8]>.makeStream()
        switch self {
        case .full(let status, let headers, let body):
            return .stream(
                status: status, headers: headers, lines: drip,
                timers: {
                    var offset = 0
                    while offset < body.count && !Task.isCancelled {
                        continuation.yield(Array(body[offset..<min(offset + bytes, body.count)]))
                        offset += bytes
                        try? await Task.sleep(for: interval)
                    }
                    continuation.finish()
                }, onEnd: { continuation.finish() })
        case .stream(let status, let headers, _, _, let onEnd):
            return .stream(
                status: status, headers: headers, lines: drip,
                timers: {
                    while !Task.isCancelled {
                        continuation.yield(Array(" ".utf8))
                        try? await Task.sleep(for: interval)
                    }
                    continuation.finish()
                },
                onEnd: {
                    continuation.finish()
                    onEnd()
                })
        }
    }
}

/// Runs an emulator's handler on a Hummingbird server bound to 127.0.0.1.
package enum EmulatorServer {
    /// Splits a raw query string into decoded pairs, in order.
    package static func parseQuery(_ raw: String?) -> [(String, String)] {
        guard let raw, !raw.isEmpty else { return [] }
        return raw.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(String(parts[0]))
            let value = parts.count > 1 ? decode(String(parts[1])) : ""
            return (name, value)
        }
    }

    private static func decode(_ text: String) -> String {
        let plusless = text.replacingOccurrences(of: "+", with: " ")
        return plusless.removingPercentEncoding ?? plusless
    }

    /// Serves until `stopper` stops it (gracefully) or the surrounding task is cancelled; `onReady` receives the
    /// bound port. `host` is a loopback address: 127.0.0.1, or another of 127.0.0.0/8 for a stand-in node.
    package static func serve(
        host: String = "127.0.0.1", port: Int, tls: TLSConfiguration? = nil, logger: Logger, stopper: ServerStopper? = nil,
        handler: @escaping @Sendable (EmulatorRequest) async -> EmulatorResponse,
        onReady: @escaping @Sendable (Int) async -> Void
    ) async throws {
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: 64 * 1024 * 1024)
            var headers: [String: String] = [:]
            for field in request.headers {
                let name = field.name.canonicalName
                headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
            }
            let emulatorRequest = EmulatorRequest(
                method: request.method.rawValue, path: request.uri.path,
                query: parseQuery(request.uri.query), headers: headers,
                body: Array(body.readableBytesView))
            let answer = await handler(emulatorRequest)
            return makeResponse(answer)
        }
        let http1 = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [HeaderCaseInstaller()]))
        let server: HTTPServerBuilder = try tls.map { try .tls(http1, tlsConfiguration: $0) } ?? http1
        let app = Application(
            responder: responder, server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onReady(channel.localAddress?.port ?? port) },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        guard stopper?.attach(group) ?? true else { return }
        try await group.run()
    }

    private static func fields(_ headers: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let name = HTTPField.Name(name) { fields.append(.init(name: name, value: value)) }
        }
        return fields
    }

    private static func makeResponse(_ answer: EmulatorResponse) -> Response {
        switch answer {
        case .full(let status, let headers, let body):
            return Response(
                status: .init(code: status), headers: fields(headers), body: .init(byteBuffer: ByteBuffer(bytes: body)))
        case .stream(let status, let headers, let lines, let timers, let onEnd):
            var streamed = fields(headers)
            streamed[.transferEncoding] = "chunked"
            return Response(
                status: .init(code: status), headers: streamed,
                body: .init { writer in
                    defer { onEnd() }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { await timers() }
                        for await line in lines {
                            try await writer.write(ByteBuffer(bytes: line))
                        }
                        group.cancelAll()
                    }
                    try await writer.finish(nil)
                })
        }
    }
}

/// Fault switches shared by both emulators: injected statuses, delays and a request log.
package final class FaultSwitches: Sendable {
    /// One injected failure, answered instead of the real response for the next `remaining` requests.
    package struct InjectedFailure: Sendable {
        package var status: Int
        package var retryAfter: Int?
        package var remaining: Int
        /// A raw answer (content type and bytes) instead of the emulator's own error body: a proxy's HTML page,
        /// malformed or truncated JSON, an oversized line.
        package var raw: (contentType: String, body: [UInt8])?
    }

    /// Bad answers a real network path produces, for the bad-input tests.
    package enum BadAnswer: String, Sendable, CaseIterable {
        case proxyHTML = "proxy-html"
        case malformedJSON = "malformed-json"
        case truncatedJSON = "truncated-json"
        case wrongContentType = "wrong-content-type"
        case oversizedLine = "oversized-line"
        /// A list whose `items` is null: an error, never an empty list.
        case listWithoutItems = "list-without-items"

        package var failure: (status: Int, contentType: String, body: [UInt8]) {
            switch self {
            case .proxyHTML:
                return (502, "text/html", Array("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>".utf8))
            case .malformedJSON:
                return (200, "application/json", Array(#"{"kind":"NodeList","items":[{"metadata":"#.utf8) + [0x7B, 0x7D, 0x5D])
            case .truncatedJSON:
                return (
                    200, "application/json",
                    Array(#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"na"#.utf8)
                )
            case .wrongContentType: return (200, "text/plain", Array("OK".utf8))
            case .oversizedLine: return (200, "application/json", Array(repeating: UInt8(ascii: "x"), count: 17 << 20))
            case .listWithoutItems:
                return (
                    200, "application/json",
                    Array(#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":null}"#.utf8)
                )
            }
        }
    }

    /// A request as recorded for assertions.
    package struct RecordedRequest: Sendable, Hashable {
        package var method: String
        package var path: String
        package var query: String
        package var status: Int
    }

    private struct State {
        var failures: [InjectedFailure] = []
        /// The next answers to drip, and how: requests whose `PATH?QUERY` contains `matching`.
        var drips: [(matching: String, remaining: Int, bytes: Int, interval: Duration)] = []
        var delayMilliseconds = 0
        var delayed = 0
        var recording = true
        var requests: [RecordedRequest] = []
    }

    private let state = NIOLockedValueBox(State())

    package init() {}

    package func inject(status: Int, count: Int, retryAfter: Int? = nil) {
        state.withLockedValue { $0.failures.append(InjectedFailure(status: status, retryAfter: retryAfter, remaining: count, raw: nil)) }
    }

    /// Answers the next `count` requests with `answer` instead of the real response.
    package func inject(_ answer: BadAnswer, count: Int = 1) {
        let failure = answer.failure
        inject(status: failure.status, contentType: failure.contentType, body: failure.body, count: count)
    }

    /// Answers the next request with this status and body (a hostile peer's own answer).
    package func inject(status: Int, contentType: String, body: [UInt8], count: Int = 1) {
        state.withLockedValue {
            $0.failures.append(InjectedFailure(status: status, retryAfter: nil, remaining: count, raw: (contentType, body)))
        }
    }

    /// Drips the next `count` answers to requests whose `PATH?QUERY` contains `matching` (`bytes` every `interval`).
    package func drip(matching: String, count: Int = 1, bytes: Int = 1, interval: Duration = .milliseconds(100)) {
        state.withLockedValue { $0.drips.append((matching, count, bytes, interval)) }
    }

    /// The drip the answer to this request gets, if one is pending for it.
    package func takeDrip(for request: EmulatorRequest) -> (bytes: Int, interval: Duration)? {
        let target = request.path + "?" + request.query.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        return state.withLockedValue { state in
            guard let index = state.drips.firstIndex(where: { target.contains($0.matching) }) else { return nil }
            let drip = state.drips[index]
            state.drips[index].remaining -= 1
            if state.drips[index].remaining <= 0 { state.drips.remove(at: index) }
            return (drip.bytes, drip.interval)
        }
    }

    package func clearFailures() { state.withLockedValue { $0.failures.removeAll() } }

    /// Injected answers not given yet.
    package var pendingFailures: Int { state.withLockedValue { $0.failures.reduce(0) { $0 + $1.remaining } } }

    /// Disarms every injected failure, drip and delay not yet met.
    package func disarm() {
        state.withLockedValue {
            $0.failures.removeAll()
            $0.drips.removeAll()
            $0.delayMilliseconds = 0
        }
    }

    package func setDelay(milliseconds: Int) { state.withLockedValue { $0.delayMilliseconds = max(0, milliseconds) } }

    /// Holds a request for the delay `setDelay` asks for (if any); `delayed` counts the requests held meanwhile.
    package func delay() async {
        let milliseconds = state.withLockedValue { state in
            if state.delayMilliseconds > 0 { state.delayed += 1 }
            return state.delayMilliseconds
        }
        guard milliseconds > 0 else { return }
        try? await Task.sleep(for: .milliseconds(milliseconds))
        state.withLockedValue { $0.delayed -= 1 }
    }

    /// Requests being held by `delay()` now: a slow exchange in progress.
    package var delayed: Int { state.withLockedValue { $0.delayed } }

    /// Takes one injected failure, if any is pending.
    package func nextFailure() -> InjectedFailure? {
        state.withLockedValue { state in
            guard var first = state.failures.first else { return nil }
            first.remaining -= 1
            if first.remaining <= 0 { state.failures.removeFirst() } else { state.failures[0] = first }
            return first
        }
    }

    package func record(_ request: EmulatorRequest, status: Int) {
        let query = request.query.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        state.withLockedValue {
            guard $0.recording else { return }
            $0.requests.append(RecordedRequest(method: request.method, path: request.path, query: query, status: status))
            if $0.requests.count > 200_000 { $0.requests.removeFirst(100_000) }
        }
    }

    package var requests: [RecordedRequest] { state.withLockedValue { $0.requests } }
    package func clearRequests() { state.withLockedValue { $0.requests.removeAll() } }
}

/// RFC 3339 timestamps for the wire.
package enum WireTime {
    package static func seconds(_ date: Date = Date()) -> String {
        var style = Date.ISO8601FormatStyle()
        style.timeZone = .gmt
        return date.formatted(style)
    }

    package static func micros(_ date: Date = Date()) -> String {
        let whole = seconds(date).dropLast()  // drop Z
        let fraction = Int((date.timeIntervalSince1970 * 1_000_000).rounded()) % 1_000_000
        let text = String(fraction)
        return whole + "." + String(repeating: "0", count: 6 - text.count) + text + "Z"
    }
}

/// NIO writes `transfer-encoding: chunked` in lower case; a Go apiserver writes `Transfer-Encoding`, and some
/// clients (Python's http.client dict of headers) look it up case-sensitively. This installs a byte-level
/// rewriter just below the HTTP encoder so the watch stream's header reads as the real server's does.
final class HeaderCaseInstaller: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        if let encoder = try? pipeline.handler(type: HTTPResponseEncoder.self) {
            try? pipeline.addHandler(TransferEncodingCase(), position: .before(encoder))
        }
    }
}

/// Rewrites `\r\ntransfer-encoding: chunked\r\n` in a response head to `Transfer-Encoding` (same length).
final class TransferEncodingCase: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private static let needle = Array("\r\ntransfer-encoding: chunked\r\n".utf8)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var buffer = unwrapOutboundIn(data)
        let view = buffer.readableBytesView
        if view.starts(with: Array("HTTP/1.".utf8)), let range = find(view) {
            let offset = buffer.readerIndex + range
            buffer.setBytes(Array("\r\nTransfer-Encoding".utf8), at: offset)
        }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    private func find(_ view: ByteBufferView) -> Int? {
        let bytes = Array(view.prefix(4096))
        let needle = TransferEncodingCase.needle
        guard bytes.count >= needle.count else { return nil }
        for start in 0...(bytes.count - needle.count) where bytes[start] == 13 {
            if Array(bytes[start..<start + needle.count]) == needle { return start }
        }
        return nil
    }
}
