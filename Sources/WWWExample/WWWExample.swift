import FoundationEssentials
import Hummingbird
import Logging

/// The article's hello-world web app: one page that says which app answered and when, and a health check
/// for the kubelet. A library so that tests can serve it on a port of their choosing.
package enum WWWExample {
    package static let greeting = "Hello world from swift-www-example!"

    /// The page's text for a moment in time (RFC 3339, UTC).
    package static func page(at date: Date) -> String {
        "\(greeting) The time is \(date.formatted(.iso8601))\n"
    }

    /// The port from `PORT` (default 8080), or a message that says what is wrong with it.
    package static func port(from environment: [String: String]) -> Result<Int, PortError> {
        guard let text = environment["PORT"], !text.isEmpty else { return .success(8080) }
        guard let port = Int(text), (0...65535).contains(port) else {
            return .failure(PortError(description: "PORT=\(text) is not a port number (0-65535)"))
        }
        return .success(port)
    }

    /// A `PORT` that is not a port number; its text is the message the binary prints before exiting 2.
    package struct PortError: Error, CustomStringConvertible { package let description: String }

    /// The application; `onServerRunning` gets the bound port (useful with port 0).
    package static func application(
        host: String = "0.0.0.0", port: Int, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: page(at: Date()))))
        }
        router.get("/healthz") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain"],
                body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "swift-www-example"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }
}
