import CloudflareDNS
import Foundation
import Hummingbird
import KubernetesAPI
import Logging
import NodeDNSCore
import ServiceLifecycle
import Synchronization

/// The whole controller: node source, reconciler, optional leader elector and ops server in one ServiceGroup.
/// The executable, the demo and the tests all build it through `Controller.make`.
package final class Controller: Sendable {
    package let config: Configuration
    package let reconciler: Reconciler
    package let metrics: ControllerMetrics
    package let store: NodeStore
    package let elector: LeaderElector?
    let kube: KubeClient
    let cloudflare: CloudflareClient
    let logger: Logger
    private let group: Mutex<ServiceGroup?> = Mutex(nil)
    private let portBox = Mutex<Int?>(nil)
    private let portWaiters = Mutex<[CheckedContinuation<Int?, Never>]>([])

    /// Builds the controller from a parsed configuration; configuration problems throw here, before any I/O.
    package static func make(
        config: Configuration, cluster: ClusterConfig, logger: Logger,
        cloudflareClock: any CloudflareClock = SystemCloudflareClock()
    ) throws -> Controller {
        try Controller(config: config, cluster: cluster, logger: logger, clock: cloudflareClock)
    }

    private init(config: Configuration, cluster: ClusterConfig, logger: Logger, clock: any CloudflareClock) throws {
        self.config = config
        self.logger = logger
        let metrics = ControllerMetrics()
        self.metrics = metrics
        kube = try KubeClient(config: cluster, logger: logger)
        let credentials: CloudflareCredentials =
            config.cloudflareToken.map { .token($0) } ?? .globalKey(email: config.cloudflareEmail ?? "", key: config.cloudflareKey ?? "")
        cloudflare = CloudflareClient(
            baseURL: config.cloudflareAPIURL, credentials: credentials, logger: logger,
            rateLimit: config.cloudflareRateLimit, clock: clock,
            observer: { endpoint, status in metrics.providerCall(endpoint: endpoint, status: status) })
        let provider = CloudflareProvider(
            client: cloudflare, ownerID: config.ownerID, zoneID: config.cloudflareZoneID,
            batchSize: config.cloudflareBatchSize, logger: logger)
        let wake = Wake()
        let nodeStore = NodeStore(wake: wake)
        store = nodeStore
        let kube = self.kube
        var elector: LeaderElector?
        let reconcilerBox = Mutex<Reconciler?>(nil)
        if config.leaderElect {
            elector = LeaderElector(
                client: kube, namespace: config.leaseNamespace ?? cluster.namespace, name: config.leaseName,
                config: LeaderElectionConfig(
                    identity: config.leaseIdentity, leaseDuration: config.leaseDuration,
                    renewDeadline: config.leaseRenewDeadline, retryPeriod: config.leaseRetryPeriod),
                logger: logger, metrics: metrics,
                onChange: { leader in
                    reconcilerBox.withLock { $0?.invalidate() }
                    if leader { wake.fire() }
                })
        } else {
            metrics.leader.set(to: 1)
        }
        self.elector = elector
        let chosenElector = elector
        let identity = config.leaseIdentity
        var events: (@Sendable (String, String, String, String) async -> Void)?
        if config.events && !config.dryRun {
            let namespace = config.eventNamespace
            events = { @Sendable (node: String, type: String, reason: String, message: String) async -> Void in
                do {
                    try await kube.createNodeEvent(
                        namespace: namespace, node: node, nodeUID: nodeStore.uid(of: node) ?? "", type: type,
                        reason: reason, message: message, component: "kube-node-dns", instance: identity)
                } catch {
                    logger.debug("could not record an Event", metadata: ["error": "\(error)"])
                }
            }
        }
        reconciler = Reconciler(
            config: config, provider: provider, store: nodeStore, wake: wake, metrics: metrics, logger: logger,
            canWrite: { chosenElector?.canWrite ?? true }, events: events)
        reconcilerBox.withLock { $0 = reconciler }
    }

    /// The ops server's port once it listens (nil when disabled).
    package func httpPort() async -> Int? {
        guard (try? config.httpBinding()) != nil else { return nil }
        if let port = portBox.withLock({ $0 }) { return port }
        return await withCheckedContinuation { continuation in
            let ready = portBox.withLock { $0 }
            if let ready { continuation.resume(returning: ready) } else { portWaiters.withLock { $0.append(continuation) } }
        }
    }

    private func setPort(_ port: Int) {
        portBox.withLock { $0 = port }
        for waiter in portWaiters.withLock({ list in
            defer { list.removeAll() }
            return list
        }) { waiter.resume(returning: port) }
    }

    /// Checks credentials and zones. A configuration problem (a bad token, a name outside every zone) is worth
    /// exiting for; Cloudflare being down or rate-limiting at start is not: that is retried with backoff.
    package func prepare() async throws {
        let scope = ManagedScope(names: Set(config.dnsNames), template: config.nodeNameTemplate)
        var backoff = Backoff(initial: 1, maximum: 60)
        while true {
            do {
                try await reconciler.provider.prepare(scope: scope)
                return
            } catch let error as CloudflareError where error.isRetryable {
                let wait = backoff.next(random: Double.random(in: 0..<1))
                logger.warning(
                    "cannot check the Cloudflare credentials yet; retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(String(format: "%.1f", wait))s"])
                try await Task.sleep(for: .seconds(wait))
            }
        }
    }

    /// Runs until SIGTERM/SIGINT (when `signals`), `shutdown()`, or, with --once, the first successful sync.
    package func run(signals: Bool = true) async throws {
        do {
            try await runServices(signals: signals)
        } catch {
            await kube.shutdown()
            throw error
        }
        await kube.shutdown()
    }

    private func runServices(signals: Bool) async throws {
        try await prepare()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let binding = try config.httpBinding() {
            services.append(.init(service: makeOpsServer(host: binding.host, port: binding.port)))
        }
        services.append(
            .init(
                service: reconciler,
                successTerminationBehavior: config.once ? .gracefullyShutdownGroup : .cancelGroup,
                failureTerminationBehavior: .cancelGroup))
        services.append(.init(service: NodeSource(client: kube, store: store, logger: logger)))
        if let elector { services.append(.init(service: elector)) }
        var groupConfig = ServiceGroupConfiguration(services: services, logger: logger)
        if signals { groupConfig.gracefulShutdownSignals = [.sigterm, .sigint] }
        let serviceGroup = ServiceGroup(configuration: groupConfig)
        group.withLock { $0 = serviceGroup }
        try await serviceGroup.run()
    }

    package func shutdown() async {
        await group.withLock { $0 }?.triggerGracefulShutdown()
    }

    private func makeOpsServer(host: String, port: Int) -> some Service {
        let router = Router()
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { [reconciler] _, _ -> Response in
            let status = reconciler.status
            if status.firstSyncDone && status.providerHealthy {
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
            }
            let reason = !status.firstSyncDone ? "first sync not done" : "provider failing: \(status.lastError ?? "unknown")"
            return Response(
                status: .serviceUnavailable,
                body: .init(byteBuffer: ByteBuffer(string: Redactor(secrets: self.config.secrets).redact(reason) + "\n")))
        }
        router.get("metrics") { [metrics] _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: metrics.text())))
        }
        var quiet = logger
        quiet.logLevel = .warning
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [weak self] channel in self?.setPort(channel.localAddress?.port ?? port) }, logger: quiet)
    }
}

/// Runs the node watcher and feeds the node store.
struct NodeSource: Service {
    let client: KubeClient
    let store: NodeStore
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await NodeWatcher(client: client, logger: logger).run { event in store.apply(event) }
        }
    }
}
