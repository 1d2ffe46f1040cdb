import FoundationEssentials
import KubernetesAPI
import Logging
import NodeDNSCore
import ServiceLifecycle
import NIOConcurrencyHelpers

/// Leader election on a coordination.k8s.io/v1 Lease with client-go's rules; only the leader writes DNS,
/// losing the Lease stops writing at once, and graceful shutdown releases it so another replica takes over.
package final class LeaderElector: Service, Sendable {
    private let client: KubeClient
    private let namespace: String
    private let name: String
    private let state: NIOLockedValueBox<LeaderElectionState>
    private let logger: Logger
    private let metrics: ControllerMetrics
    private let onChange: @Sendable (Bool) -> Void
    /// The clock of the Lease's timing and the retry period's waits (tests inject one they move).
    private let clock: any TimeSource
    /// Counts the times this replica became leader, so a write planned in one term is never sent in a later one.
    private let termCounter = NIOLockedValueBox(0)
    private let holderBox = NIOLockedValueBox<String?>(nil)

    init(
        client: KubeClient, namespace: String, name: String, config: LeaderElectionConfig, logger: Logger,
        metrics: ControllerMetrics, clock: any TimeSource = SystemTimeSource(), onChange: @escaping @Sendable (Bool) -> Void
    ) {
        self.clock = clock
        self.client = client
        self.namespace = namespace
        self.name = name
        self.state = NIOLockedValueBox(LeaderElectionState(config: config))
        self.logger = logger
        self.metrics = metrics
        self.onChange = onChange
    }

    private var now: Double { clock.now() }

    /// True only while the Lease is held and was renewed within the renew deadline.
    package var canWrite: Bool { state.withLockedValue { $0.leadershipValid(now: now) } }
    package var identity: String { state.withLockedValue { $0.config.identity } }
    /// The current term while this replica may write, else nil.
    package var writeTerm: Int? { canWrite ? termCounter.withLockedValue { $0 } : nil }
    /// Who holds the Lease as last read (nil before the first read or while it is free).
    package var holder: String? { holderBox.withLockedValue { $0 } }
    package var leaseName: String { "\(namespace)/\(name)" }

    private func lease(from record: LeaseRecord, resourceVersion: String?) -> Lease {
        Lease(
            name: name, namespace: namespace, resourceVersion: resourceVersion, holderIdentity: record.holderIdentity ?? "",
            leaseDurationSeconds: record.leaseDurationSeconds,
            acquireTime: record.acquireTimeMicros.map { MicroTime.format(micros: $0) },
            renewTime: record.renewTimeMicros.map { MicroTime.format(micros: $0) }, leaseTransitions: record.leaseTransitions)
    }

    private func record(from lease: Lease) -> LeaseRecord {
        LeaseRecord(
            holderIdentity: lease.holderIdentity, leaseDurationSeconds: lease.leaseDurationSeconds ?? 15,
            acquireTimeMicros: lease.acquireTime.flatMap(MicroTime.parse), renewTimeMicros: lease.renewTime.flatMap(MicroTime.parse),
            leaseTransitions: lease.leaseTransitions ?? 0)
    }

    /// One round of client-go's tryAcquireOrRenew.
    func tryAcquireOrRenew() async {
        let wasLeader = state.withLockedValue { $0.isLeader }
        // The renewal counts from before the request, as in client-go: a slow answer must not stretch the time
        // this replica believes it leads beyond what a standby sees.
        let started = now
        let deadline = state.withLockedValue { $0.config.renewDeadline }
        do {
            try await LeaderElector.within(seconds: deadline) { [self] in
                let current = try await client.getLease(namespace: namespace, name: name)
                holderBox.withLockedValue { $0 = current?.holderIdentity.flatMap { $0.isEmpty ? nil : $0 } }
                let decision = state.withLockedValue { $0.decide(current: current.map(record), now: now, wallMicros: MicroTime.now()) }
                switch decision {
                case .wait(let holder):
                    if wasLeader { transition(false, reason: "the Lease is held by \(holder)") }
                    return
                case .create(let record):
                    _ = try await client.createLease(lease(from: record, resourceVersion: nil))
                    state.withLockedValue { $0.written(record, now: started) }
                case .update(let record):
                    _ = try await client.updateLease(lease(from: record, resourceVersion: current?.resourceVersion))
                    state.withLockedValue { $0.written(record, now: started) }
                }
                holderBox.withLockedValue { $0 = identity }
                if !wasLeader { transition(true, reason: "acquired the Lease") }
            }
        } catch {
            let lost = state.withLockedValue { $0.failed(now: now) }
            logger.debug("lease round failed", metadata: ["error": "\(error)"])
            if lost { transition(false, reason: "could not renew the Lease within the renew deadline (\(error))") }
        }
    }

    /// Runs `body`, and gives up with a timeout error once `seconds` have passed (one Lease round is bounded by the
    /// renew deadline, so a stalled API server cannot keep a leader believing it still leads).
    static func within(seconds: Double, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withTimeout(seconds: seconds, { LeaseRoundTimeout(seconds: seconds) }, body)
    }

    private func transition(_ leader: Bool, reason: String) {
        if leader { termCounter.withLockedValue { $0 += 1 } }
        if leader {
            logger.info("became leader", metadata: ["identity": "\(identity)", "lease": "\(namespace)/\(name)", "reason": "\(reason)"])
        } else {
            state.withLockedValue { $0.lose() }
            logger.warning("stopped leading; writes stop now", metadata: ["identity": "\(identity)", "reason": "\(reason)"])
        }
        metrics.leader.set(to: leader ? 1 : 0)
        onChange(leader)
    }

    /// One Lease round took longer than the renew deadline.
    struct LeaseRoundTimeout: Error, CustomStringConvertible {
        let seconds: Double
        var description: String { "the Lease round took longer than the renew deadline (\(seconds)s)" }
    }

    package func run() async throws {
        metrics.leader.set(to: 0)
        let period = state.withLockedValue { $0.config.retryPeriod }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.tryAcquireOrRenew()
                try? await self.clock.sleep(seconds: period)
            }
        }
        await release()
    }

    /// Gives the Lease up (client-go's ReleaseOnCancel) so a standby takes over without waiting for expiry.
    func release() async {
        let released = state.withLockedValue { $0.release(wallMicros: MicroTime.now()) }
        guard let released else { return }
        metrics.leader.set(to: 0)
        onChange(false)
        do {
            guard let current = try await client.getLease(namespace: namespace, name: name),
                current.holderIdentity == identity
            else { return }
            _ = try await client.updateLease(lease(from: released, resourceVersion: current.resourceVersion))
            logger.info("released the Lease", metadata: ["lease": "\(namespace)/\(name)"])
        } catch {
            logger.warning("could not release the Lease; it expires on its own", metadata: ["error": "\(error)"])
        }
    }
}
