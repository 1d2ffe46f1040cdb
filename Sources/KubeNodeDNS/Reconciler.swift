import Foundation
import KubernetesAPI
import Logging
import NodeDNSCore
import ServiceLifecycle
import Synchronization

/// What the reconciler has done, for /readyz, the demo and tests.
package struct ReconcileStatus: Sendable {
    package var firstSyncDone = false
    package var providerHealthy = false
    package var lastError: String?
    package var reconciles = 0
    package var writes = 0
    package var lastChanges = ChangeSet()
    package var heldNames: [DNSName] = []
    package var conflicts: [ExistingRecord] = []
}

/// Level-triggered reconcile loop: waits for the first full node list, collapses bursts with a debounce,
/// plans against the provider's records, writes only when leader, retries with backoff, re-reads on a timer.
package final class Reconciler: Service, Sendable {
    let config: Configuration
    let provider: any DNSProvider
    let store: NodeStore
    let wake: Wake
    let metrics: ControllerMetrics
    let logger: Logger
    let canWrite: @Sendable () -> Bool
    let events: (@Sendable (_ node: String, _ type: String, _ reason: String, _ message: String) async -> Void)?
    private let statusBox = Mutex(ReconcileStatus())
    private let cache = Mutex<[ExistingRecord]?>(nil)
    private let reportedConflicts = ReportedOnce<String>()
    private let reportedSkips = ReportedOnce<SkippedAddress>()

    init(
        config: Configuration, provider: any DNSProvider, store: NodeStore, wake: Wake,
        metrics: ControllerMetrics,
        logger: Logger, canWrite: @escaping @Sendable () -> Bool,
        events: (@Sendable (String, String, String, String) async -> Void)?
    ) {
        self.config = config
        self.provider = provider
        self.store = store
        self.wake = wake
        self.metrics = metrics
        self.logger = logger
        self.canWrite = canWrite
        self.events = events
    }

    package var status: ReconcileStatus { statusBox.withLock { $0 } }

    /// Forgets the provider's records so the next reconcile reads them again (after leadership changes).
    func invalidate() { cache.withLock { $0 = nil } }

    package func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await self.loop()
            }
        } catch is CancellationError {
            return  // graceful shutdown
        }
    }

    private func loop() async throws {
        var backoff = Backoff(initial: 0.5, maximum: 60)
        var lastFullRead = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [wake, config] in
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(config.resyncInterval))
                    wake.fire()
                }
            }
            for await _ in wake.stream {
                if config.debounce > 0 { try await Task.sleep(for: .seconds(config.debounce)) }
                guard store.synced else { continue }
                if !config.dryRun && !canWrite() {
                    invalidate()
                    continue
                }
                if lastFullRead.duration(to: .now) >= .seconds(config.resyncInterval) { invalidate() }
                do {
                    let fullRead = try await reconcileOnce()
                    if fullRead { lastFullRead = .now }
                    backoff.reset()
                    if config.once {
                        group.cancelAll()
                        return
                    }
                } catch {
                    invalidate()
                    let delay = backoff.next(random: Double.random(in: 0..<1))
                    statusBox.withLock {
                        $0.providerHealthy = false
                        $0.lastError = "\(error)"
                    }
                    metrics.ready.set(to: 0)
                    metrics.reconciled(result: "error")
                    logger.error(
                        "reconcile failed; retrying",
                        metadata: ["error": "\(error)", "retryIn": "\(String(format: "%.2f", delay))s"])
                    group.addTask { [wake] in
                        try await Task.sleep(for: .seconds(delay))
                        wake.fire()
                    }
                }
            }
        }
    }

    /// One reconcile; returns whether it read the provider in full.
    @discardableResult
    func reconcileOnce() async throws -> Bool {
        let started = ContinuousClock.now
        let policy = config.recordPolicy
        let desired = desiredRecords(nodes: store.snapshots, policy: policy)
        metrics.eligibleNodes.set(to: Double(desired.eligibleNodes.count))
        // Bad addresses on a node are warned about once (while they stay), not on every reconcile.
        let newlySkipped = reportedSkips.fresh(desired.skipped, key: { $0 })
        for skipped in newlySkipped { logger.warning("skipped an address that cannot go into DNS", metadata: ["detail": "\(skipped)"]) }
        let scope = ManagedScope(
            names: desired.managedNames.union(config.dnsNames), template: config.nodeNameTemplate)
        var fullRead = false
        var current: [ExistingRecord]
        if let cached = cache.withLock({ $0 }) {
            current = cached
        } else {
            current = try await provider.records(in: scope)
            fullRead = true
        }
        let settings = provider.normalized(
            RecordSettings(ttl: config.cloudflareTTL, proxied: config.cloudflareProxy))
        let planPolicy = PlanPolicy(
            settings: settings, allowEmpty: config.allowEmpty, takeOwnership: config.takeOwnership,
            protectedNames: Set(config.dnsNames))
        let changes = plan(desired: desired.sets, current: current, policy: planPolicy)
        await report(changes)
        if changes.isEmpty || config.dryRun {
            if config.dryRun && !changes.isEmpty {
                for line in Reconciler.describe(changes) { logger.notice("dry run: would \(line)") }
            }
            cache.withLock { $0 = current }
            finish(changes, current: current, started: started, wrote: false)
            return fullRead
        }
        guard canWrite() else {
            logger.info("not the leader any more; skipping the write")
            return fullRead
        }
        let created = try await provider.apply(changes)
        let after = changes.applied(to: current, created: created)
        cache.withLock { $0 = after }
        metrics.changed(action: "create", count: changes.creates.count)
        metrics.changed(action: "update", count: changes.updates.count)
        metrics.changed(action: "delete", count: changes.deletes.count)
        for line in Reconciler.describe(changes) { logger.info("dns: \(line)") }
        finish(changes, current: after, started: started, wrote: true)
        await emitEvents(changes)
        return fullRead
    }

    private func finish(
        _ changes: ChangeSet, current: [ExistingRecord], started: ContinuousClock.Instant, wrote: Bool
    ) {
        metrics.reconcileDuration.record(started.duration(to: .now))
        metrics.managedRecords.set(to: Double(current.filter(\.owned).count))
        metrics.conflicts.set(to: Double(changes.conflicts.count))
        metrics.ready.set(to: 1)
        metrics.reconciled(result: wrote ? "changed" : "unchanged")
        statusBox.withLock {
            $0.firstSyncDone = true
            $0.providerHealthy = true
            $0.lastError = nil
            $0.reconciles += 1
            if wrote { $0.writes += changes.writeCount }
            $0.lastChanges = changes
            $0.heldNames = changes.heldNames
            $0.conflicts = changes.conflicts
        }
    }

    static func describe(_ changes: ChangeSet) -> [String] {
        changes.creates.map { "add \($0.key) \($0.value)" } + changes.updates.map { "update \($0)" }
            + changes.deletes.map { "remove \($0.key) \($0.value)" }
    }

    private func report(_ changes: ChangeSet) async {
        for name in changes.heldNames {
            logger.warning(
                "every node left \(name) at once; keeping its last records (set --allow-empty to let it empty)"
            )
        }
        let fresh = reportedConflicts.fresh(changes.conflicts, key: \.id)
        for conflict in fresh {
            logger.warning(
                "conflict: a record on a managed name is not ours; leaving it alone",
                metadata: ["record": "\(conflict)", "owner": "\(conflict.ownerNote)"])
        }
        guard let events, !fresh.isEmpty else { return }
        // A foreign record that carries a node's address is reported on that node too (once per conflict).
        let byAddress = nodesByAddress()
        for conflict in fresh.prefix(100) {
            guard let node = byAddress[conflict.value] else { continue }
            await events(
                node, "Warning", "DNSRecordConflict",
                "\(conflict.key) \(conflict.value) exists but is not ours (\(conflict.ownerNote)); left alone, see --take-ownership"
            )
        }
    }

    /// Which node reports each canonical address (records hold canonical text; a node may report
    /// 2001:DB8::0:1 for 2001:db8::1).
    private func nodesByAddress() -> [String: String] {
        var byAddress: [String: String] = [:]
        for node in store.snapshots {
            for address in node.addresses {
                byAddress[(try? IPAddress(parsing: address.address))?.description ?? address.address] =
                    node.name
            }
        }
        return byAddress
    }

    private func emitEvents(_ changes: ChangeSet) async {
        guard let events else { return }
        let byAddress = nodesByAddress()
        var budget = 100
        for create in changes.creates where budget > 0 {
            guard let node = byAddress[create.value] else { continue }
            budget -= 1
            await events(node, "Normal", "DNSRecordAdded", "added \(create.key) \(create.value)")
        }
        for delete in changes.deletes where budget > 0 {
            guard let node = byAddress[delete.value] else { continue }
            budget -= 1
            await events(node, "Normal", "DNSRecordRemoved", "removed \(delete.key) \(delete.value)")
        }
    }
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
