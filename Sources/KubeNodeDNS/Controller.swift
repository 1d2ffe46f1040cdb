import CloudflareDNS
import FoundationEssentials
import HealthChecks
import KubernetesAPI
import Logging
import NIOCore
import NodeDNSCore
import ServiceLifecycle
import NIOConcurrencyHelpers

/// The whole controller: node source, reconciler, optional leader elector and ops server in one ServiceGroup.
/// The executable, the demo and the tests all build it through `Controller.make`.
package final class Controller: Sendable {
    package let config: Configuration
    package let reconciler: Reconciler
    package let metrics: ControllerMetrics
    package let store: NodeStore
    /// The serving pods, when `--serving-pods` is set.
    package let pods: PodStore?
    package let elector: LeaderElector?
    /// The active health checks, when `--health-check` is set.
    package let health: HealthChecker?
    let kube: KubeClient
    /// The Cloudflare client, when Cloudflare is the provider.
    let cloudflare: CloudflareClient?
    let cloudflareClock: any CloudflareClock
    let logger: Logger
    private let group: NIOLockedValueBox<ServiceGroup?> = NIOLockedValueBox(nil)
    /// The ops server's port once it listens, and who waits for it: one lock, so no waiter can miss the port.
    private let port = NIOLockedValueBox<(value: Int?, waiters: [CheckedContinuation<Int?, Never>])>((nil, []))

    /// Limits on waiting for the Kubernetes API: each read of an answer (a watch included) fails after
    /// `readIdle` seconds without a byte, and `/healthz` fails once the node watch has not moved on for
    /// `watchStall` seconds (a loop stuck in one read, which the read limit should never let happen).
    package struct KubeTimeouts: Sendable {
        package var readIdle: Double = 35
        package var watchStall: Double = 65
        package init(readIdle: Double = 35, watchStall: Double = 65) {
            self.readIdle = readIdle
            self.watchStall = watchStall
        }
    }

    /// Builds the controller from a parsed configuration; configuration problems throw here, before any I/O.
    /// `reconcilerClock` drives the debounce, the resync timer and the retry backoff; tests pass one they advance.
    package static func make(
        config: Configuration, cluster: ClusterConfig, logger: Logger,
        cloudflareClock: any CloudflareClock = SystemCloudflareClock(),
        reconcilerClock: any TimeSource = SystemTimeSource(), kubeTimeouts: KubeTimeouts? = nil
    ) throws -> Controller {
        try Controller(
            config: config, cluster: cluster, logger: logger, clock: cloudflareClock, reconcilerClock: reconcilerClock,
            kubeTimeouts: kubeTimeouts
                ?? KubeTimeouts(readIdle: config.kubeReadTimeout, watchStall: config.kubeReadTimeout + 30))
    }

    package let kubeTimeouts: KubeTimeouts

    private init(
        config: Configuration, cluster: ClusterConfig, logger: Logger, clock: any CloudflareClock,
        reconcilerClock: any TimeSource, kubeTimeouts: KubeTimeouts
    ) throws {
        self.kubeTimeouts = kubeTimeouts
        self.cloudflareClock = clock
        self.config = config
        self.logger = logger
        let metrics = ControllerMetrics()
        self.metrics = metrics
        let wake = Wake()
        // Everything that can refuse the configuration comes before the Kubernetes client, which must be shut down
        // once made (AsyncHTTPClient traps on a client dropped without it).
        let health = try Controller.makeHealthChecker(config: config, metrics: metrics, wake: wake, logger: logger)
        self.health = health
        let (provider, recordSettings, cloudflare) = try Controller.makeProvider(
            config: config, logger: logger, metrics: metrics, clock: clock)
        self.cloudflare = cloudflare
        kube = try KubeClient(
            config: cluster, logger: logger, userAgent: BuildInfo.userAgent,
            readIdleTimeout: .milliseconds(Int64(kubeTimeouts.readIdle * 1000)),
            exchangeDeadline: .milliseconds(Int64(config.kubeRequestTimeout * 1000)),
            onDeadline: { metrics.deadlineHit(peer: "kubernetes") })
        // The reflector keeps only the labels a rule reads: the selector's, and the load-balancer exclusion label.
        var nodeLabelKeys = config.nodeSelector?.keys ?? []
        if config.honorLoadBalancerExclusion { nodeLabelKeys.insert(EligibilityPolicy.loadBalancerExclusionLabel) }
        let nodeStore = NodeStore(wake: wake, labelKeys: nodeLabelKeys) { [health] in health?.nodesChanged() }
        store = nodeStore
        let podStore = config.servingPods.map {
            PodStore(wake: wake, labelKeys: $0.selector.keys) { [health] in health?.nodesChanged() }
        }
        pods = podStore
        let kube = self.kube
        var elector: LeaderElector?
        // Weak: the reconciler holds the elector (its write term), so a strong reference back from the elector's
        // callback would keep both alive after the controller stops (LeakSanitizer found the cycle).
        let reconcilerBox = NIOLockedValueBox(WeakReconciler())
        if config.leaderElect {
            elector = LeaderElector(
                client: kube, namespace: config.leaseNamespace ?? cluster.namespace, name: config.leaseName,
                config: LeaderElectionConfig(
                    identity: config.leaseIdentity, leaseDuration: config.leaseDuration,
                    renewDeadline: config.leaseRenewDeadline, retryPeriod: config.leaseRetryPeriod),
                logger: logger, metrics: metrics,
                onChange: { leader in
                    reconcilerBox.withLockedValue { $0.reconciler }?.leadershipChanged()
                    if leader { wake.fire() }
                })
        } else {
            metrics.leader.set(to: 1)
        }
        self.elector = elector
        let chosenElector = elector
        let identity = config.leaseIdentity
        var events: (@Sendable (NodeEvent) async -> Void)?
        if config.events && !config.dryRun {
            let namespace = config.eventNamespace
            events = { @Sendable event in
                do {
                    try await kube.createNodeEvent(
                        namespace: namespace, node: event.node, nodeUID: nodeStore.uid(of: event.node) ?? "",
                        type: event.reason.type, reason: event.reason.rawValue, message: peerText(event.message, limit: 1024),
                        component: "kube-node-dns", instance: identity)
                } catch {
                    logger.debug("could not record an Event", metadata: ["error": "\(error)"])
                }
            }
        }
        reconciler = Reconciler(
            config: config, provider: provider, recordSettings: recordSettings, store: nodeStore, pods: podStore, wake: wake,
            metrics: metrics, logger: logger,
            clock: reconcilerClock, leadership: { chosenElector.map { $0.writeTerm } ?? 0 }, events: events, health: health)
        reconcilerBox.withLockedValue { $0.reconciler = reconciler }
    }

    /// The health checker from the configuration, or nil when `--health-check` is off. A verdict that changes wakes
    /// the reconciler; every probed node failing at once is said loudly, once, and in a metric.
    static func makeHealthChecker(
        config: Configuration, metrics: ControllerMetrics, wake: Wake, logger: Logger
    ) throws -> HealthChecker? {
        guard let spec = config.healthCheck else { return nil }
        let probe: HealthProbe
        do {
            probe = try HealthProbe(
                spec: spec, host: config.healthCheckHostName, timeout: .milliseconds(Int64(config.healthCheckTimeout * 1000)),
                insecure: config.healthCheckInsecure, caFile: config.healthCheckCAFile)
        } catch {
            throw ConfigurationError(
                "\(config.healthCheckCAFile ?? "") given by --health-check-ca-file (HEALTH_CHECK_CA_FILE) is not a PEM file of CA certificates"
            )
        }
        var settings = HealthChecker.Settings()
        settings.interval = .milliseconds(Int64(config.healthCheckInterval * 1000))
        settings.fall = config.healthCheckFall
        settings.rise = config.healthCheckRise
        let saidAllFailing = NIOLockedValueBox(false)
        return HealthChecker(
            probe: probe, settings: settings,
            onResult: { metrics.healthChecked(passed: $0.passed, latency: $0.latency) },
            onChange: { allFailing in
                metrics.healthChecksAllFailing.set(to: allFailing ? 1 : 0)
                let changed = saidAllFailing.withLockedValue { said in
                    defer { said = allFailing }
                    return said != allFailing
                }
                if changed && allFailing {
                    logger.warning(
                        "every health check fails at once: this controller's own network is the likelier fault; the names keep their records (see /status)"
                    )
                } else if changed {
                    logger.notice("health checks pass again on at least one node")
                }
                wake.fire()
            })
    }

    /// The ops server's port once it listens (nil when disabled).
    func httpPort() async -> Int? {
        guard (try? config.httpBinding()) != nil else { return nil }
        return await withCheckedContinuation { continuation in
            let ready = port.withLockedValue { port -> Int? in
                if port.value == nil { port.waiters.append(continuation) }
                return port.value
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func setPort(_ value: Int) {
        let waiters = port.withLockedValue { port in
            port.value = value
            defer { port.waiters.removeAll() }
            return port.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
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

    /// The services start in list order and stop in reverse: the ops server first (so /healthz answers while the
    /// provider is still being checked) and last; the elector before the reconciler starts and after it has
    /// stopped, so the Lease is released only once no write can be in flight.
    private func runServices(signals: Bool) async throws {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let binding = try config.httpBinding() {
            services.append(.init(service: makeOpsServer(host: binding.host, port: binding.port)))
        }
        if let elector { services.append(.init(service: elector)) }
        services.append(
            .init(
                service: ReflectorSource(
                    client: kube, target: .nodes(annotation: config.nodeHostnamesAnnotation), store: store, logger: logger,
                    retryScale: config.retryScale)))
        if let pods, let rule = config.servingPods {
            let target = WatchTarget.pods(namespace: rule.namespace, labelSelector: rule.selector.text)
            services.append(
                .init(service: ReflectorSource(client: kube, target: target, store: pods, logger: logger, retryScale: config.retryScale)))
        }
        if let health, let spec = config.healthCheck {
            services.append(.init(service: HealthCheckService(checker: health, spec: spec, config: config, store: store, pods: pods)))
        }
        services.append(
            .init(
                service: reconciler,
                // A failure shuts the group down gracefully too: cancelling the ops server while a probe connects
                // can trap in NIO (a connection accepted but never served).
                successTerminationBehavior: config.once ? .gracefullyShutdownGroup : .cancelGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup))
        var groupConfig = ServiceGroupConfiguration(services: services, logger: logger)
        if signals { groupConfig.gracefulShutdownSignals = [.sigterm, .sigint] }
        let serviceGroup = ServiceGroup(configuration: groupConfig)
        group.withLockedValue { $0 = serviceGroup }
        // The group's services hold the controller (the ops server's routes read it): let go of the group once it
        // has run, or the two keep each other alive after the controller stops (LeakSanitizer found the cycle).
        defer { group.withLockedValue { $0 = nil } }
        try await serviceGroup.run()
    }

    package func shutdown() async {
        await group.withLockedValue { $0 }?.triggerGracefulShutdown()
    }

    /// Why `/healthz` fails, or nil: a watch stuck in one read, or a peer (the API server, the DNS provider) that has
    /// failed or stalled beyond `--healthz-peer-limit`; each is also in `/status`.
    func peerProblem() -> String? {
        let stalled = max(store.sinceProgress, pods?.sinceProgress ?? .zero)
        if stalled > .seconds(kubeTimeouts.watchStall) {
            return "the node or pod watch has made no progress for \(stalled.components.seconds)s"
        }
        let limit = config.healthzPeerLimit
        let silent = max(store.sinceAnswer, pods?.sinceAnswer ?? .zero)
        if silent > .seconds(limit) {
            return "the Kubernetes API has not answered as it should for \(silent.components.seconds)s"
        }
        let status = reconciler.status
        let now = Reconciler.wallClock()
        if let since = status.failingSince, now - since > limit {
            return "the DNS provider has failed every reconcile for \(Int(now - since))s: \(peerText(status.lastError ?? "no error text"))"
        }
        if let since = status.exchangeSince, now - since > limit {
            return "a reconcile has been talking to the DNS provider for \(Int(now - since))s"
        }
        return nil
    }

}

/// Runs one reflector (the nodes, or the serving pods) and feeds its store.
struct ReflectorSource<Object: SnapshotReducible>: Service {
    let client: KubeClient
    let target: WatchTarget
    let store: SnapshotStore<Object>
    let logger: Logger
    let retryScale: Double

    func run() async throws {
        var reflector = Reflector<Object>(client: client, target: target, logger: logger)
        reflector.backoff = reflector.backoff.scaled(by: retryScale)
        await cancelWhenGracefulShutdown { [reflector] in
            await reflector.run(
                onProgress: { store.progressed() }, onAnswer: { store.answered() },
                onBackoff: { store.backingOff(seconds: $0, reason: $1) }
            ) { event in store.apply(event) }
        }
    }
}

/// Runs the health checks on every replica (a standby that takes over writes from warm results), probing the
/// nodes that every other rule would publish, once the node list (and the serving pods) are synced.
struct HealthCheckService: Service {
    let checker: HealthChecker
    let spec: HealthCheckSpec
    let config: Configuration
    let store: NodeStore
    let pods: PodStore?

    func run() async throws {
        let policy = config.recordPolicy
        await cancelWhenGracefulShutdown { [checker, spec, store, pods] in
            await checker.run {
                while !(store.synced && (pods?.synced ?? true)) && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return healthCheckTargets(nodes: store.snapshots, pods: pods?.snapshots ?? [], policy: policy, spec: spec)
            }
        }
    }
}

extension Controller {
    /// One event-loop thread (and one blocking-pool thread) for the whole process: the Kubernetes and Cloudflare
    /// HTTP clients, the RFC 2136 transport and the ops server all run on NIO's singleton group. The controller's
    /// I/O is a watch and a few requests a second at most; more loops would only add stacks and resident pages.
    /// Call it once, before the first client or server is made.
    package static func useOneEventLoopThread() {
        NIOSingletons.groupLoopCountSuggestion = 1
        NIOSingletons.blockingPoolThreadCountSuggestion = 1
    }
}

/// The reconciler as the leader elector's callback sees it: without keeping it alive.
struct WeakReconciler: Sendable {
    weak var reconciler: Reconciler?
}
