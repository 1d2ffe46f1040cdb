import FoundationEssentials
import HealthChecks
import KubernetesAPI
import Logging
import NodeDNSCore
import ServiceLifecycle
import NIOConcurrencyHelpers

/// What the reconciler has done and whether this replica is able to lead, for /readyz, /status, the demo and tests.
package struct ReconcileStatus: Sendable {
    package var firstSyncDone = false
    /// The provider accepted the credentials at start (and nothing since said they are bad).
    package var credentialsVerified = false
    /// A provider failure only an operator can fix (bad credentials, a missing permission, a name outside every
    /// zone); while set, /readyz fails with it. Transient failures never land here.
    package var operatorProblem: String?
    package var lastError: String?
    /// When the last reconcile ended (seconds since 1970) and how: changed, unchanged or error.
    package var lastReconcileAt: Double?
    package var lastResult: String?
    package var reconciles = 0
    package var failuresInARow = 0
    package var writes = 0
    package var lastChanges = ChangeSet()
    package var heldNames: [DNSName] = []
    package var blockedNames: [DNSName] = []
    package var conflicts: [ExistingRecord] = []
    /// Since when (seconds since 1970) every reconcile has failed; nil while the last one succeeded.
    package var failingSince: Double?
    /// Since when the reconcile in progress has been talking to the provider; nil between reconciles.
    package var exchangeSince: Double?
}

/// Level-triggered reconcile loop: waits for the first full node list, collapses bursts with a debounce,
/// plans against the provider's records, writes only when leader, retries with backoff, re-reads on a timer.
package final class Reconciler: Service, Sendable {
    let config: Configuration
    let provider: any DNSProvider
    /// The TTL (and proxying) the provider's records carry, as the provider reports them back: the composition root's choice.
    let recordSettings: RecordSettings
    let store: NodeStore
    let pods: PodStore?
    let wake: Wake
    let metrics: ControllerMetrics
    let logger: Logger
    let clock: any TimeSource
    /// The leadership term this replica holds now, or nil when it may not write (a standby, or a lost Lease).
    let leadership: @Sendable () -> Int?
    /// The health checks' verdicts, when `--health-check` is set.
    let health: HealthChecker?
    /// What the loop remembers between reconciles, under one lock so that it is always seen whole.
    private struct Memory {
        /// What the loop has done, as /status shows it.
        var status = ReconcileStatus()
        /// The reconcile step's state: the desired records kept node by node, the provider's records as last read
        /// or written, each node's last place in DNS. Nil until the first reconcile.
        var engine: ReconcileEngine?
        /// The serving pods by node, kept from the pod store's changes, and the node each pod was on.
        var podsByNode: [String: [PodSnapshot]] = [:]
        var podNodes: [String: String] = [:]
        /// The health verdicts the engine last took in.
        var health: [String: NodeHealth]?
        /// When the provider was last read in full (this reconciler's clock); the resync timer counts from it.
        var lastFullRead: Double
        /// The shared names' owned values before and after the collapse window's reconciles so far, for the
        /// all-at-once rail (see `PlanPolicy.holdBaseline`); emptied after a quiet period.
        var windowBaseline: [RecordKey: Set<String>] = [:]
        /// Whether the loop waits for the next change, and when the current collapse window ends.
        var waiting = false
        var windowEnd: Double?
        /// The zones the provider writes in, read once after `prepare` when Nodes may ask for names.
        var hostnameZones: [DNSName]?
    }
    private let memory: NIOLockedValueBox<Memory>
    private let fence: LeadershipFence
    private let reporter: DecisionReporter

    /// Whether the loop is waiting for the next change, and when the current collapse window ends (on the
    /// reconciler's clock): tests that drive the clock use it to know the loop has gone quiet.
    var idle: (waiting: Bool, windowEnd: Double?) { memory.withLockedValue { ($0.waiting, $0.windowEnd) } }

    init(
        config: Configuration, provider: any DNSProvider, recordSettings: RecordSettings, store: NodeStore, pods: PodStore?, wake: Wake,
        metrics: ControllerMetrics, logger: Logger, clock: any TimeSource,
        leadership: @escaping @Sendable () -> Int?,
        events: (@Sendable (NodeEvent) async -> Void)?, health: HealthChecker? = nil
    ) {
        self.health = health
        self.config = config
        self.provider = provider
        self.recordSettings = recordSettings
        self.store = store
        self.pods = pods
        self.wake = wake
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.leadership = leadership
        self.fence = LeadershipFence(leadership: leadership)
        self.reporter = DecisionReporter(logger: logger, events: events, nodeNameTemplate: config.nodeNameTemplate)
        self.memory = NIOLockedValueBox(Memory(lastFullRead: clock.now()))
    }

    package var status: ReconcileStatus { memory.withLockedValue { $0.status } }

    /// Why this replica cannot lead, or nil when it can: the node list is synced and the provider's credentials were
    /// verified, with no operator-fixable provider failure since. The same for the leader and a standby.
    package var notReadyReason: String? {
        let status = self.status
        if !store.synced { return "waiting for the first full node list" }
        if let pods, !pods.synced { return "waiting for the first full list of serving pods" }
        if !status.credentialsVerified { return "checking the DNS provider's credentials" }
        return status.operatorProblem
    }

    /// The rules as this reconciler applies them: the configuration's, with the provider's zones for the names Nodes
    /// ask for.
    package var recordPolicy: RecordPolicy {
        var policy = config.recordPolicy
        policy.hostnameZones = memory.withLockedValue { $0.hostnameZones }
        return policy
    }

    /// The provider's records as last read or written (nil before the first read, or after a failure).
    package var lastKnownRecords: [ExistingRecord]? { memory.withLockedValue { $0.engine?.allRecords } }

    /// Forgets the provider's records so the next reconcile reads them again (after leadership changes).
    func invalidate() { memory.withLockedValue { $0.engine?.invalidate() } }

    /// Leadership changed: the records are read again, and a write waiting under the old term is cancelled.
    func leadershipChanged() {
        invalidate()
        fence.changed()
    }

    package func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await self.prepare()
                try await self.loop()
            }
        } catch is CancellationError {
            return  // graceful shutdown
        }
    }

    /// Checks credentials and zones. What only an operator can fix (a bad token, a name outside every zone) is
    /// thrown, and the process exits with it; the provider being down or rate-limiting at start is retried.
    func prepare() async throws {
        let scope = ManagedScope(
            names: Set(config.dnsNames), template: config.nodeNameTemplate, cnames: Set(config.cnames.keys))
        var backoff = Backoff(initial: 1, maximum: 60).scaled(by: config.retryScale)
        var failures = 0
        while true {
            do {
                try await provider.prepare(scope: scope)
                if config.nodeHostnamesAnnotation != nil {
                    let zones = try await provider.zoneNames()
                    memory.withLockedValue { $0.hostnameZones = zones }
                }
                memory.withLockedValue { $0.status.credentialsVerified = true }
                return
            } catch  where Task.isCancelled {
                throw CancellationError()  // a shutdown while the provider was being asked: not its failure
            } catch let error as any DNSProviderError where !error.needsOperator {
                let wait = backoff.next(random: Double.random(in: 0..<1))
                failures += 1
                if Backoff.isWorthSaying(failures: failures) {
                    logger.warning(
                        "cannot check the DNS provider's credentials yet; retrying",
                        metadata: ["error": "\(error)", "retryIn": "\(Reconciler.seconds(wait))", "failuresInARow": "\(failures)"])
                }
                memory.withLockedValue { $0.status.lastError = "\(error)" }
                try await clock.sleep(seconds: wait)
            }
        }
    }

    static func seconds(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }

    private func loop() async throws {
        var backoff = Backoff(initial: 0.5, maximum: 60).scaled(by: config.retryScale)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Drift repair: a full read at most one interval after the last one, whatever woke the loop since.
                while !Task.isCancelled {
                    let due = self.memory.withLockedValue { $0.lastFullRead } + config.resyncInterval
                    let now = clock.now()
                    if now >= due {
                        wake.fire()
                        try await clock.sleep(seconds: config.resyncInterval)
                    } else {
                        try await clock.sleep(seconds: due - now)
                    }
                }
            }
            // Leading edge: the first change after a quiet period is reconciled at once. Changes that arrive while
            // it runs, or within --debounce after it, wait for the window to close and share one follow-up.
            var windowEnd: Double?
            var healthWaitEnds: Double?
            var startupPagesReleased = false
            var changes = wake.stream.makeAsyncIterator()
            while true {
                memory.withLockedValue { ($0.waiting, $0.windowEnd) = (true, windowEnd) }
                guard await changes.next() != nil else { break }
                memory.withLockedValue { $0.waiting = false }
                if let end = windowEnd, clock.now() < end {
                    try await clock.sleep(seconds: end - clock.now())
                } else {
                    // A quiet period: the all-at-once rail starts again from the records as they are.
                    memory.withLockedValue { $0.windowBaseline = [:] }
                }
                guard store.synced, pods?.synced ?? true else { continue }
                // The first round of health checks runs before the first write, for at most one timeout longer.
                if let health, health.rounds == 0 {
                    if healthWaitEnds == nil {
                        let wait = config.healthCheckTimeout + 0.25
                        healthWaitEnds = clock.now() + wait
                        group.addTask { [clock, wake] in
                            try await clock.sleep(seconds: wait)
                            wake.fire()
                        }
                    }
                    if clock.now() < healthWaitEnds! { continue }
                }
                let term = leadership()
                if !config.dryRun && term == nil {
                    invalidate()
                    continue
                }
                if clock.now() - memory.withLockedValue({ $0.lastFullRead }) >= config.resyncInterval { invalidate() }
                do {
                    let outcome = try await reconcileOnce(term: term, holdBaseline: memory.withLockedValue { $0.windowBaseline })
                    if outcome.fullRead { ProcessMemory.releaseFreed() }
                    if !startupPagesReleased && config.releaseStartupPages {
                        startupPagesReleased = true
                        ProcessMemory.releaseStartupPages()
                    }
                    // Only a reconcile that wrote opens a window. One that changed nothing (a returning node's
                    // Ready=True while its NoSchedule taint is still on) must not make the next change wait.
                    windowEnd = outcome.wrote ? clock.now() + config.debounce : nil
                    backoff.reset()
                    if config.once {
                        group.cancelAll()
                        return
                    }
                } catch is WriteNotAuthorized {
                    invalidate()
                    logger.notice("leadership ended before the write was sent; dropped it")
                } catch is CancellationError {
                    throw CancellationError()
                } catch  where Task.isCancelled {
                    // A shutdown in mid-reconcile, whatever error the client turned it into: not a failure.
                    throw CancellationError()
                } catch {
                    invalidate()
                    let delay = backoff.next(random: Double.random(in: 0..<1))
                    let needsOperator = (error as? any DNSProviderError)?.needsOperator ?? false
                    let message = Redactor(secrets: config.secrets).redact("\(error)")
                    let failures = memory.withLockedValue {
                        $0.status.lastError = message
                        $0.status.lastResult = "error"
                        $0.status.lastReconcileAt = Reconciler.wallClock()
                        $0.status.failuresInARow += 1
                        if $0.status.failingSince == nil { $0.status.failingSince = Reconciler.wallClock() }
                        if needsOperator { $0.status.operatorProblem = message }
                        return $0.status.failuresInARow
                    }
                    metrics.reconciled(result: "error")
                    metrics.ready.set(to: notReadyReason == nil ? 1 : 0)
                    if Backoff.isWorthSaying(failures: failures) {
                        logger.error(
                            "reconcile failed; retrying",
                            metadata: [
                                "error": "\(error)", "retryIn": "\(Reconciler.seconds(delay))", "failuresInARow": "\(failures)",
                            ])
                    }
                    try await clock.sleep(seconds: delay)
                    wake.fire()
                }
            }
        }
    }

    static func wallClock() -> Double { Date().timeIntervalSince1970 }

    /// One reconcile; returns whether it read the provider in full, and whether it wrote.
    func reconcileOnce(term: Int?, holdBaseline: [RecordKey: Set<String>] = [:]) async throws -> (fullRead: Bool, wrote: Bool) {
        let started = ContinuousClock.now
        memory.withLockedValue { $0.status.exchangeSince = Reconciler.wallClock() }
        defer { memory.withLockedValue { $0.status.exchangeSince = nil } }
        let readStarted = clock.now()
        takeInChanges()
        var fullRead = false
        if memory.withLockedValue({ $0.engine?.records == nil }) {
            let scope = memory.withLockedValue { $0.engine!.scope(template: config.nodeNameTemplate) }
            let current = try await provider.records(in: scope)
            fullRead = true
            memory.withLockedValue {
                $0.engine!.load(current)
                $0.lastFullRead = readStarted
            }
        }
        let planPolicy = PlanPolicy(
            settings: recordSettings, allowEmpty: config.allowEmpty, takeOwnership: config.takeOwnership,
            protectedNames: Set(config.dnsNames))
        let decision = memory.withLockedValue { memory in
            let decision = memory.engine!.decide(planPolicy: planPolicy, windowBaseline: holdBaseline, everything: config.dryRun)
            memory.windowBaseline = memory.engine!.windowBaseline(protected: planPolicy.protectedNames)
            return decision
        }
        metrics.eligibleNodes.set(to: Double(decision.eligibleNodes))
        if config.nodeHostnamesAnnotation != nil {
            let accepted = memory.withLockedValue { $0.engine!.desired.hostnames.accepted.values.joined().count }
            metrics.nodeHostnamesAccepted.set(to: Double(accepted))
            metrics.nodeHostnamesRefused.set(to: Double(decision.refusedHostnames.values.joined().count))
        }
        let changes = decision.changes
        await reporter.report(decision, nodesReporting: nodesReporting, nodeNames: nodeNames)
        if changes.isEmpty || config.dryRun {
            if config.dryRun && !changes.isEmpty {
                for line in DecisionReporter.describe(changes) { logger.notice("dry run: would \(line)") }
            }
            finish(changes, started: started, wrote: false)
            return (fullRead, false)
        }
        guard let term, leadership() == term else { throw WriteNotAuthorized() }
        let provider = self.provider
        let leadership = self.leadership
        let created = try await fence.run(term: term) {
            try await provider.apply(changes, authorized: { leadership() == term })
        }
        memory.withLockedValue {
            $0.engine!.applied(changes, created: created)
            // The next window may hold a name at what it had before this write and after it.
            for (key, values) in $0.engine!.windowBaseline(protected: planPolicy.protectedNames) {
                $0.windowBaseline[key, default: []].formUnion(values)
            }
        }
        metrics.changed(action: "create", count: changes.creates.count)
        metrics.changed(action: "update", count: changes.updates.count)
        metrics.changed(action: "delete", count: changes.deletes.count)
        finish(changes, started: started, wrote: true)
        await reporter.reportWritten(changes, nodesReporting: nodesReporting)
        return (fullRead, true)
    }

    /// Takes in what changed in the cluster since the last reconcile: the nodes, the serving pods (mapped to the
    /// nodes they were and are on) and the health verdicts. In proportion to the change, not to the cluster (the
    /// health verdicts, a small value per node, are compared whole).
    private func takeInChanges() {
        let first = memory.withLockedValue { $0.engine == nil }
        let policy = first ? recordPolicy : nil  // the engine keeps the rules it was made with
        let nodeChanges = store.takeChanges(all: first)
        let podChanges = pods?.takeChanges(all: first) ?? [:]
        let verdicts = health?.verdicts
        memory.withLockedValue { memory in
            if memory.engine == nil, let policy { memory.engine = ReconcileEngine(policy: policy) }
            var touched: Set<String> = []
            for (name, pod) in podChanges {
                if let old = memory.podNodes[name] {
                    memory.podsByNode[old]?.removeAll { $0.name == name }
                    if memory.podsByNode[old]?.isEmpty == true { memory.podsByNode[old] = nil }
                    touched.insert(old)
                }
                memory.podNodes[name] = pod?.nodeName
                if let pod, let node = pod.nodeName {
                    memory.podsByNode[node, default: []].append(pod)
                    memory.podsByNode[node]!.sort { $0.name < $1.name }
                    touched.insert(node)
                }
            }
            if let verdicts, verdicts != memory.health {
                let old = memory.health ?? [:]
                for name in Set(verdicts.keys).union(old.keys) where verdicts[name] != old[name] { touched.insert(name) }
                memory.health = verdicts
            }
            memory.engine!.observe(changed: nodeChanges, touched: touched, podsByNode: memory.podsByNode, health: verdicts)
        }
    }

    /// The nodes that report a canonical address.
    private func nodesReporting(_ address: String) -> Set<String> {
        memory.withLockedValue { $0.engine?.nodes(reporting: address) ?? [] }
    }

    /// Every node known now.
    private func nodeNames() -> [String] { memory.withLockedValue { $0.engine.map { Array($0.desired.nodeNames) } ?? [] } }

    private func finish(_ changes: ChangeSet, started: ContinuousClock.Instant, wrote: Bool) {
        metrics.reconcileDuration.record(started.duration(to: .now))
        let (owned, atCNAMEs) = memory.withLockedValue {
            ($0.engine?.ownedCount ?? 0, $0.engine?.records(at: Array(config.cnames.keys)) ?? [])
        }
        metrics.managedRecords.set(to: Double(owned))
        if !config.cnameNames.isEmpty {
            let states = CNAMEState.of(config.cnames, records: atCNAMEs, takeOwnership: config.takeOwnership).values.map(\.label)
            for (label, gauge) in metrics.cnames { gauge.set(to: Double(states.filter { $0 == label }.count)) }
        }
        metrics.conflicts.set(to: Double(changes.conflicts.count))
        metrics.reconciled(result: wrote ? "changed" : "unchanged")
        let recovered = memory.withLockedValue {
            let failuresBefore = $0.status.failuresInARow
            $0.status.firstSyncDone = true
            $0.status.operatorProblem = nil
            $0.status.lastError = nil
            $0.status.lastResult = wrote ? "changed" : "unchanged"
            $0.status.lastReconcileAt = Reconciler.wallClock()
            $0.status.failuresInARow = 0
            $0.status.failingSince = nil
            $0.status.reconciles += 1
            if wrote { $0.status.writes += changes.writeCount }
            $0.status.lastChanges = changes
            $0.status.heldNames = changes.heldNames
            $0.status.blockedNames = changes.blockedNames
            $0.status.conflicts = changes.conflicts
            return failuresBefore
        }
        if recovered > 0 {
            logger.notice("reconcile succeeded again", metadata: ["failuresBefore": "\(recovered)"])
        }
        metrics.ready.set(to: notReadyReason == nil ? 1 : 0)
    }
}
