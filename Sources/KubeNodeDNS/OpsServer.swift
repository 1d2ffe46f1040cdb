import FoundationEssentials
import Hummingbird
import Logging
import NIOCore
import NodeDNSCore
import ServiceLifecycle

extension Controller {
    /// The ops server: /healthz, /readyz, /metrics and /status, with the port published once it listens.
    func makeOpsServer(host: String, port: Int) -> some Service {
        let router = Router()
        // Alive unless the node watch is stuck: a loop that has not moved on for the stall limit will not recover
        // by itself, so the kubelet should restart it.
        router.get("healthz") { [self] _, _ -> Response in
            guard let problem = peerProblem() else {
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
            }
            return Response(
                status: .serviceUnavailable,
                body: .init(byteBuffer: ByteBuffer(string: Redactor(secrets: config.secrets).redact(problem) + "\n")))
        }
        // Ready means able to lead: the node list is synced and the provider's credentials were verified. The
        // same for the leader and a standby, so rollouts and drains proceed; transient provider errors never flip it.
        router.get("readyz") { [reconciler, config] _, _ -> Response in
            guard let reason = reconciler.notReadyReason else {
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
            }
            return Response(
                status: .serviceUnavailable,
                body: .init(byteBuffer: ByteBuffer(string: Redactor(secrets: config.secrets).redact(reason) + "\n")))
        }
        router.get("status") { [self] request, _ -> Response in
            let json = request.uri.queryParameters.get("format") == "json"
            var headers = HTTPFields()
            headers[.contentType] = json ? "application/json" : "text/plain; charset=utf-8"
            let report = Redactor(secrets: config.secrets).redact(json ? statusReport().json : statusReport().text)
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: report)))
        }
        router.get("metrics") { [metrics, reconciler, store, pods] _, _ -> Response in
            metrics.update(from: reconciler.status, watchProgressAge: max(store.sinceProgress, pods?.sinceProgress ?? .zero))
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: metrics.text())))
        }
        var quiet = logger
        quiet.logLevel = .warning
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [weak self, logger] channel in
                let bound = channel.localAddress?.port ?? port
                logger.info("serving /healthz, /readyz, /status and /metrics", metadata: ["port": "\(bound)"])
                self?.setPort(bound)
            }, logger: quiet)
    }
}
