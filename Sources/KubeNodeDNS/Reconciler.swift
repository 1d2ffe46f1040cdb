import FoundationEssentials
import HealthChecks
import KubernetesAPI
import Logging
import NodeDNSCore
import ServiceLifecycle
import Synchronization

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
    let events: (@Sendable (NodeEvent) async -> Void)?
    /// The health checks' verdicts, when `--health-check` is set.
    let health: HealthChecker?
    private let statusBox = Mutex(ReconcileStatus())
    /// What the loop remembers between reconciles, under one lock so that it is always seen whole.
    private struct Memory {
        /// The provider's records as last read or written (nil before the first read, or after a failure).
        var cache: [ExistingRecord]?
        /// When the provider was last read in full (this reconciler's clock); the resync timer counts from it.
        var lastFullRead: Double
        /// The shared names' owned values before and after the collapse window's reconciles so far, for the
        /// all-at-once rail (see `PlanPolicy.holdBaseline`); emptied after a quiet period.
        var windowBaseline: [RecordKey: Set<String>] = [:]
        /// Whether the loop waits for the next change, and when the current collapse window ends.
        var waiting = false
        var windowEnd: Double?
        /// What each node's place in DNS was at the last reconcile, so a change is said once.
        var membership: [String: Membership] = [:]
    }
    private let memory: Mutex<Memory>
    private let leadershipWaiters = Waiters()
    private let reportedConflicts = ReportedOnce<String>()
    private let reportedSkips = ReportedOnce<SkippedAddress>()
    private let reportedBlocks = ReportedOnce<DNSName>()

    /// Whether the loop is waiting for the next change, and when the current collapse window ends (on the
    /// reconciler's clock): tests that drive the clock use it to know the loop has gone quiet.
    var idle: (waiting: Bool, windowEnd: Double?) { memory.withLock { ($0.waiting, $0.windowEnd) } }

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
        self.events = events
        self.memory = Mutex(Memory(lastFullRead: clock.now()))
    }

    package var status: ReconcileStatus { statusBox.withLock { $0 } }

    /// Why this replica cannot lead, or nil when it can: the node list is synced and the provider's credentials were
    /// verified, with no operator-fixable provider failure since. The same for the leader and a standby.
    package var notReadyReason: String? {
        let status = self.status
        if !store.synced { return "waiting for the first full node list" }
        if let pods, !pods.synced { return "waiting for the first full list of serving pods" }
        if !status.credentialsVerified { return "checking the DNS provider's credentials" }
        return status.operatorProblem
    }

    /// The provider's records as last read or written (nil before the first read, or after a failure).
    package var lastKnownRecords: [ExistingRecord]? { memory.withLock { $0.cache } }

    /// Forgets the provider's records so the next reconcile reads them again (after leadership changes).
    func invalidate() { memory.withLock { $0.cache = nil } }

    /// Leadership changed: the records are read again, and a write waiting under the old term is cancelled.
    func leadershipChanged() {
        invalidate()
        leadershipWaiters.resumeAll()
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
        let scope = ManagedScope(names: Set(config.dnsNames), template: config.nodeNameTemplate)
        var backoff = Backoff(initial: 1, maximum: 60)
        while true {
            do {
                try await provider.prepare(scope: scope)
                statusBox.withLock { $0.credentialsVerified = true }
                return
            } catch  where Task.isCancelled {
                throw CancellationError()  // a shutdown while the provider was being asked: not its failure
            } catch let error as any DNSProviderError where !error.needsOperator {
                let wait = backoff.next(random: Double.random(in: 0..<1))
                logger.warning(
                    "cannot check the DNS provider's credentials yet; retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(Reconciler.seconds(wait))"])
                statusBox.withLock { $0.lastError = "\(error)" }
                try await clock.sleep(seconds: wait)
            }
        }
    }

    static func seconds(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }

    private func loop() async throws {
        var backoff = Backoff(initial: 0.5, maximum: 60)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                // Drift repair: a full read at most one interval after the last one, whatever woke the loop since.
                while !Task.isCancelled {
                    let due = self.memory.withLock { $0.lastFullRead } + config.resyncInterval
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
                memory.withLock { ($0.waiting, $0.windowEnd) = (true, windowEnd) }
                guard await changes.next() != nil else { break }
                memory.withLock { $0.waiting = false }
                if let end = windowEnd, clock.now() < end {
                    try await clock.sleep(seconds: end - clock.now())
                } else {
                    // A quiet period: the all-at-once rail starts again from the records as they are.
                    memory.withLock { $0.windowBaseline = [:] }
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
                if clock.now() - memory.withLock({ $0.lastFullRead }) >= config.resyncInterval { invalidate() }
                do {
                    let outcome = try await reconcileOnce(term: term, holdBaseline: memory.withLock { $0.windowBaseline })
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
                    statusBox.withLock {
                        $0.lastError = message
                        $0.lastResult = "error"
                        $0.lastReconcileAt = Reconciler.wallClock()
                        $0.failuresInARow += 1
                        if $0.failingSince == nil { $0.failingSince = Reconciler.wallClock() }
                        if needsOperator { $0.operatorProblem = message }
                    }
                    metrics.reconciled(result: "error")
                    metrics.ready.set(to: notReadyReason == nil ? 1 : 0)
                    logger.error(
                        "reconcile failed; retrying",
                        metadata: ["error": "\(error)", "retryIn": "\(Reconciler.seconds(delay))"])
                    try await clock.sleep(seconds: delay)
                    wake.fire()
                }
            }
        }
    }

    static func wallClock() -> Double { Date().timeIntervalSince1970 }

    /// Runs a write, and cancels it the moment the leadership term it was planned under ends.
    private func whileLeading<T: Sendable>(term: Int?, _ write: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let term, !config.dryRun else { return try await write() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await write() }
            group.addTask { [leadership, leadershipWaiters] in
                while true {
                    let seen = leadershipWaiters.generation
                    guard leadership() == term else { return nil }
                    await leadershipWaiters.wait(after: seen)
                    try Task.checkCancellation()
                }
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else { throw WriteNotAuthorized() }
            return result
        }
    }

    /// One reconcile; returns whether it read the provider in full, and whether it wrote.
    func reconcileOnce(term: Int?, holdBaseline: [RecordKey: Set<String>] = [:]) async throws -> (fullRead: Bool, wrote: Bool) {
        let started = ContinuousClock.now
        statusBox.withLock { $0.exchangeSince = Reconciler.wallClock() }
        defer { statusBox.withLock { $0.exchangeSince = nil } }
        let readStarted = clock.now()
        let policy = config.recordPolicy
        // One consistent view of the cluster for the whole reconcile: the plan, the hold and the reports all see it.
        let nodes = store.snapshots
        let desired = desiredRecords(nodes: nodes, pods: pods?.snapshots ?? [], health: health?.verdicts, policy: policy)
        metrics.eligibleNodes.set(to: Double(desired.eligibleNodes.count))
        // Bad addresses on a node are warned about once (while they stay), not on every reconcile.
        let newlySkipped = reportedSkips.fresh(desired.skipped, key: { $0 })
        for skipped in newlySkipped { logger.warning("skipped an address that cannot go into DNS", metadata: ["detail": "\(skipped)"]) }
        let scope = ManagedScope(
            names: desired.managedNames.union(config.dnsNames), template: config.nodeNameTemplate)
        var fullRead = false
        var current: [ExistingRecord]
        if let cached = memory.withLock({ $0.cache }) {
            current = cached
        } else {
            current = try await provider.records(in: scope)
            fullRead = true
            memory.withLock { $0.lastFullRead = readStarted }
        }
        let settings = recordSettings
        var planPolicy = PlanPolicy(
            settings: settings, allowEmpty: config.allowEmpty, takeOwnership: config.takeOwnership,
            protectedNames: Set(config.dnsNames))
        // A value is held back only while its node still exists: a deleted node is not coming back.
        let existing = Set(
            nodes.flatMap { $0.addresses.map { (try? IPAddress(parsing: $0.address))?.description ?? $0.address } })
        planPolicy.holdBaseline = holdBaseline.mapValues { $0.intersection(existing) }.filter { !$0.value.isEmpty }
        let changes = plan(desired: desired.sets, current: current, policy: planPolicy)
        recordBaseline(current, protected: planPolicy.protectedNames, replacing: true)
        await report(changes, nodes: nodes)
        // The values a held name keeps: a node whose addresses are among them has not left DNS, whatever its rules say.
        let held = Set(changes.heldNames)
        let heldValues = Set(current.filter { $0.owned && held.contains($0.key.name) }.map(\.value))
            .union(planPolicy.holdBaseline.filter { held.contains($0.key.name) }.flatMap(\.value))
        await reportMembership(desired, heldValues: heldValues, heldNames: changes.heldNames)
        if changes.isEmpty || config.dryRun {
            if config.dryRun && !changes.isEmpty {
                for line in Reconciler.describe(changes) { logger.notice("dry run: would \(line)") }
            }
            memory.withLock { $0.cache = current }
            finish(changes, current: current, started: started, wrote: false)
            return (fullRead, false)
        }
        guard leadership() == term else { throw WriteNotAuthorized() }
        let provider = self.provider
        let leadership = self.leadership
        let created = try await whileLeading(term: term) {
            try await provider.apply(changes, authorized: { leadership() == term })
        }
        let after = changes.applied(to: current, created: created)
        recordBaseline(after, protected: planPolicy.protectedNames, replacing: false)
        memory.withLock { $0.cache = after }
        metrics.changed(action: "create", count: changes.creates.count)
        metrics.changed(action: "update", count: changes.updates.count)
        metrics.changed(action: "delete", count: changes.deletes.count)
        for line in Reconciler.describe(changes) { logger.info("dns: \(line)") }
        finish(changes, current: after, started: started, wrote: true)
        await emitEvents(changes, nodes: nodes)
        return (fullRead, true)
    }

    /// The next window's baseline: the shared names' owned values before this reconcile's write and after it, so a
    /// name every node leaves within the window that this reconcile opens is held at what it had when it opened.
    private func recordBaseline(_ records: [ExistingRecord], protected: Set<DNSName>, replacing: Bool) {
        var next: [RecordKey: Set<String>] = [:]
        for record in records where record.owned && protected.contains(record.key.name) && record.key.type != .cname {
            next[record.key, default: []].insert(record.value)
        }
        memory.withLock { memory in
            if replacing {
                memory.windowBaseline = next
            } else {
                for (key, values) in next { memory.windowBaseline[key, default: []].formUnion(values) }
            }
        }
    }

    private func finish(
        _ changes: ChangeSet, current: [ExistingRecord], started: ContinuousClock.Instant, wrote: Bool
    ) {
        metrics.reconcileDuration.record(started.duration(to: .now))
        metrics.managedRecords.set(to: Double(current.filter(\.owned).count))
        metrics.conflicts.set(to: Double(changes.conflicts.count))
        metrics.reconciled(result: wrote ? "changed" : "unchanged")
        statusBox.withLock {
            $0.firstSyncDone = true
            $0.operatorProblem = nil
            $0.lastError = nil
            $0.lastResult = wrote ? "changed" : "unchanged"
            $0.lastReconcileAt = Reconciler.wallClock()
            $0.failuresInARow = 0
            $0.failingSince = nil
            $0.reconciles += 1
            if wrote { $0.writes += changes.writeCount }
            $0.lastChanges = changes
            $0.heldNames = changes.heldNames
            $0.blockedNames = changes.blockedNames
            $0.conflicts = changes.conflicts
        }
        metrics.ready.set(to: notReadyReason == nil ? 1 : 0)
    }

    /// Says once, when it changes, why each node is in or out of DNS: in the log and in the Node's Events. A node
    /// that the rules leave out while a held name still carries its addresses is "held", not "left DNS"; it leaves
    /// when the hold ends.
    private func reportMembership(_ desired: DesiredState, heldValues: Set<String>, heldNames: [DNSName]) async {
        let (lines, transitions) = memory.withLock {
            memory -> ([String], [NodeEvent]) in
            let known = memory.membership
            var transitions: [NodeEvent] = []
            var next: [String: Membership] = [:]
            for (node, addresses) in desired.published {
                let now = Membership.published(addresses.sorted())
                next[node] = now
                if known[node] != now {
                    transitions.append(
                        NodeEvent(node, .joined, "\(node) joined DNS: \(addresses.sorted().joined(separator: ", "))"))
                }
            }
            for (node, reasons) in desired.exclusions {
                let why = reasons.joined(separator: "; ")
                let wasPublished: [String]? =
                    switch known[node] {
                    case .published(let addresses), .held(_, let addresses): addresses
                    default: nil
                    }
                if let addresses = wasPublished, addresses.contains(where: heldValues.contains) {
                    let now = Membership.held(reasons, addresses)
                    next[node] = now
                    guard known[node] != now else { continue }
                    let names = heldNames.map(\.text).joined(separator: ", ")
                    transitions.append(
                        NodeEvent(
                            node, .held, "\(node) is out by the rules (\(why)), but its records are held: every node left \(names) at once")
                    )
                    continue
                }
                let now = Membership.excluded(reasons)
                next[node] = now
                guard known[node] != now else { continue }
                if wasPublished != nil {
                    transitions.append(NodeEvent(node, .left, "\(node) left DNS: \(why)"))
                } else {
                    transitions.append(NodeEvent(node, .excluded, "\(node) is not published: \(why)"))
                }
            }
            memory.membership = next
            return (transitions.map(\.message), transitions)
        }
        for line in lines { logger.info("\(line)") }
        guard let events, !config.dryRun else { return }
        for transition in transitions.prefix(100) { await events(transition) }
    }

    static func describe(_ changes: ChangeSet) -> [String] {
        changes.creates.map { "add \($0.key) \($0.value)" } + changes.updates.map { "update \($0)" }
            + changes.deletes.map { "remove \($0.key) \($0.value)" }
    }

    private func report(_ changes: ChangeSet, nodes: [NodeSnapshot]) async {
        for name in changes.heldNames {
            logger.warning(
                "every node left \(name) at once; keeping its last records (set --allow-empty to let it empty)"
            )
        }
        let freshBlocks = reportedBlocks.fresh(changes.blockedNames, key: { $0 })
        for name in freshBlocks {
            logger.warning("\(name) has a CNAME, which excludes A and AAAA records; leaving the name alone (other names go on)")
        }
        let fresh = reportedConflicts.fresh(changes.conflicts, key: \.id)
        for conflict in fresh {
            logger.warning(
                "conflict: a record on a managed name is not ours; leaving it alone",
                metadata: ["record": "\(conflict)", "owner": "\(conflict.ownerNote)"])
        }
        guard let events else { return }
        // A blocked per-node name is reported on its node.
        if let template = config.nodeNameTemplate, !freshBlocks.isEmpty {
            for node in nodes {
                guard let name = template.name(for: node.name), freshBlocks.contains(name) else { continue }
                await events(
                    NodeEvent(
                        node.name, .nameBlocked,
                        "\(name) has a CNAME, which excludes A and AAAA records; remove it for this node's name to follow it"))
            }
        }
        guard !fresh.isEmpty else { return }
        // A foreign record that carries a node's address is reported on that node too (once per conflict).
        let byAddress = Reconciler.nodesByAddress(nodes)
        for conflict in fresh.prefix(100) {
            guard let node = byAddress[conflict.value] else { continue }
            await events(
                NodeEvent(
                    node, .conflict,
                    "\(conflict.key) \(conflict.value) exists but is not ours (\(conflict.ownerNote)); left alone, see --take-ownership"))
        }
    }

    /// Which node reports each canonical address (records hold canonical text; a node may report
    /// 2001:DB8::0:1 for 2001:db8::1).
    private static func nodesByAddress(_ nodes: [NodeSnapshot]) -> [String: String] {
        var byAddress: [String: String] = [:]
        for node in nodes {
            for address in node.addresses {
                byAddress[(try? IPAddress(parsing: address.address))?.description ?? address.address] =
                    node.name
            }
        }
        return byAddress
    }

    private func emitEvents(_ changes: ChangeSet, nodes: [NodeSnapshot]) async {
        guard let events else { return }
        let byAddress = Reconciler.nodesByAddress(nodes)
        var budget = 100
        for create in changes.creates where budget > 0 {
            guard let node = byAddress[create.value] else { continue }
            budget -= 1
            await events(NodeEvent(node, .recordAdded, "added \(create.key) \(create.value)"))
        }
        for delete in changes.deletes where budget > 0 {
            guard let node = byAddress[delete.value] else { continue }
            budget -= 1
            await events(NodeEvent(node, .recordRemoved, "removed \(delete.key) \(delete.value)"))
        }
    }
}

/// A node's place in DNS: published with these addresses, or left out for these reasons.
enum Membership: Equatable, Sendable {
    case published([String])
    case excluded([String])
    /// Out by the rules (these reasons), but a held name still carries these addresses of it.
    case held([String], [String])
}

/// Problems reported once while they last: each call gives the items not seen the call before, so a
/// problem that goes away and comes back is reported again.
final class ReportedOnce<Key: Hashable & Sendable>: Sendable {
    private let seen = Mutex<Set<Key>>([])

    func fresh<Item>(_ current: [Item], key: (Item) -> Key) -> [Item] {
        let keys = current.map(key)
        let isNew = seen.withLock { seen in
            defer { seen = Set(keys) }
            return keys.map { !seen.contains($0) }
        }
        return zip(current, isNew).filter(\.1).map(\.0)
    }
}

/// Tasks parked until the next leadership change; cancellation-safe, so a finished write leaves no waiter behind.
final class Waiters: Sendable {
    private enum Slot {
        case pending
        case waiting(CheckedContinuation<Void, Never>)
        case cancelled
    }
    private struct State {
        var generation = 0
        var next = 0
        var slots: [Int: Slot] = [:]
    }
    private let state = Mutex(State())

    /// Counts the `resumeAll()` calls so far.
    var generation: Int { state.withLock { $0.generation } }

    /// Returns once `generation` has moved past `seen` (at once if it already has), or when the task is cancelled.
    func wait(after seen: Int) async {
        let id = state.withLock { state -> Int in
            state.next += 1
            state.slots[state.next] = .pending
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if case .cancelled = state.slots[id] {
                        state.slots[id] = nil
                        return true
                    }
                    if state.generation != seen {
                        state.slots[id] = nil
                        return true
                    }
                    state.slots[id] = .waiting(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let parked = state.withLock { state -> CheckedContinuation<Void, Never>? in
                switch state.slots[id] {
                case .waiting(let continuation):
                    state.slots[id] = nil
                    return continuation
                case .pending:
                    state.slots[id] = .cancelled
                    return nil
                case .cancelled, nil:
                    return nil
                }
            }
            parked?.resume()
        }
    }

    func resumeAll() {
        let parked = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation += 1
            var parked: [CheckedContinuation<Void, Never>] = []
            for (id, slot) in state.slots {
                if case .waiting(let continuation) = slot {
                    parked.append(continuation)
                    state.slots[id] = nil
                }
            }
            return parked
        }
        for continuation in parked { continuation.resume() }
    }
}
