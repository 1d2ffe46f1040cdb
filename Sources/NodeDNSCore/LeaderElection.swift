/// A Lease's leader-election fields, in the form the state machine reasons about (times in microseconds since the epoch).
package struct LeaseRecord: Hashable, Sendable {
    package var holderIdentity: String?
    package var leaseDurationSeconds: Int
    package var acquireTimeMicros: Int64?
    package var renewTimeMicros: Int64?
    package var leaseTransitions: Int

    package init(
        holderIdentity: String?, leaseDurationSeconds: Int, acquireTimeMicros: Int64?, renewTimeMicros: Int64?,
        leaseTransitions: Int
    ) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTimeMicros = acquireTimeMicros
        self.renewTimeMicros = renewTimeMicros
        self.leaseTransitions = leaseTransitions
    }
}

/// The timings of leader election, as in client-go (lease 15 s, renew deadline 10 s, retry 2 s).
package struct LeaderElectionConfig: Hashable, Sendable {
    package var identity: String
    package var leaseDuration: Double = 15
    package var renewDeadline: Double = 10
    package var retryPeriod: Double = 2

    package init(identity: String, leaseDuration: Double = 15, renewDeadline: Double = 10, retryPeriod: Double = 2) {
        self.identity = identity
        self.leaseDuration = leaseDuration
        self.renewDeadline = renewDeadline
        self.retryPeriod = retryPeriod
    }
}

/// What the elector should do with the Lease it just read.
package enum LeaseDecision: Hashable, Sendable {
    case create(LeaseRecord)
    case update(LeaseRecord)
    /// Another holder's lease is still valid by our local clock.
    case wait(holder: String)
}

/// client-go's leader-election rules as a pure state machine: expiry is judged by the local
/// monotonic clock from when a record was last seen to change, never by the holder's timestamps.
package struct LeaderElectionState: Sendable {
    package let config: LeaderElectionConfig
    package private(set) var observed: LeaseRecord?
    package private(set) var observedAt: Double = 0
    package private(set) var isLeader = false
    package private(set) var lastRenewal: Double?

    package init(config: LeaderElectionConfig) { self.config = config }

    /// Decides from the Lease as read now (nil when it does not exist).
    package mutating func decide(current: LeaseRecord?, now: Double, wallMicros: Int64) -> LeaseDecision {
        guard let current else {
            return .create(
                LeaseRecord(
                    holderIdentity: config.identity, leaseDurationSeconds: Int(config.leaseDuration.rounded(.up)),
                    acquireTimeMicros: wallMicros, renewTimeMicros: wallMicros, leaseTransitions: 0))
        }
        if observed != current {
            observed = current
            observedAt = now
        }
        let holder = current.holderIdentity ?? ""
        let valid = observedAt + Double(current.leaseDurationSeconds) > now
        if !holder.isEmpty && holder != config.identity && valid {
            if isLeader { isLeader = false }
            return .wait(holder: holder)
        }
        var next = LeaseRecord(
            holderIdentity: config.identity, leaseDurationSeconds: Int(config.leaseDuration.rounded(.up)),
            acquireTimeMicros: current.acquireTimeMicros, renewTimeMicros: wallMicros,
            leaseTransitions: current.leaseTransitions)
        if holder != config.identity {
            next.acquireTimeMicros = wallMicros
            next.leaseTransitions = current.leaseTransitions + 1
        }
        return .update(next)
    }

    /// The create or update was accepted: we hold the lease.
    package mutating func written(_ record: LeaseRecord, now: Double) {
        observed = record
        observedAt = now
        isLeader = true
        lastRenewal = now
    }

    /// A read or write failed (409 included). Returns true when this failure ends our leadership,
    /// because no renewal succeeded within the renew deadline.
    package mutating func failed(now: Double) -> Bool {
        guard isLeader, let lastRenewal else { return false }
        if now - lastRenewal >= config.renewDeadline {
            isLeader = false
            return true
        }
        return false
    }

    /// Whether a leader's lease has run past the renew deadline without renewal (checked before each write).
    package func leadershipValid(now: Double) -> Bool {
        guard isLeader, let lastRenewal else { return false }
        return now - lastRenewal < config.renewDeadline
    }

    /// The record that releases the lease on shutdown (client-go's ReleaseOnCancel), or nil when not leader.
    package mutating func release(wallMicros: Int64) -> LeaseRecord? {
        guard isLeader, let observed else { return nil }
        isLeader = false
        return LeaseRecord(
            holderIdentity: nil, leaseDurationSeconds: 1, acquireTimeMicros: wallMicros, renewTimeMicros: wallMicros,
            leaseTransitions: observed.leaseTransitions)
    }

    /// Leadership ends at once (for example the lease was taken by another holder).
    package mutating func lose() { isLeader = false }
}

/// Exponential backoff with half of each delay jittered (from half the delay to all of it); the caller supplies the
/// random fraction so tests are deterministic. The one backoff of the project.
package struct Backoff: Sendable {
    package var initial: Double
    package var maximum: Double
    package var multiplier: Double
    package private(set) var attempt = 0

    package init(initial: Double = 0.2, maximum: Double = 30, multiplier: Double = 2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
    }

    /// The next delay in seconds: half fixed, half jittered, capped at `maximum`.
    package mutating func next(random: Double) -> Double {
        var base = initial
        for _ in 0..<min(attempt, 64) { base *= multiplier }
        base = min(base, maximum)
        attempt += 1
        return base / 2 + base / 2 * min(max(random, 0), 1)
    }

    package mutating func reset() { attempt = 0 }

    /// Whether the `failures`-th failure in a row is worth a log line: the first, then the 2nd, 4th, 8th and so on,
    /// each saying the count. A peer that keeps failing stays visible without a line per retry (10,000 hostile
    /// answers make 14 lines, not 10,000); `/status` and the metrics count every one.
    package static func isWorthSaying(failures: Int) -> Bool {
        failures > 0 && failures & (failures - 1) == 0
    }

    /// The same backoff with every wait multiplied by `factor` (the hostile-peer tests' fast retries).
    package func scaled(by factor: Double) -> Backoff {
        Backoff(initial: initial * factor, maximum: maximum * factor, multiplier: multiplier)
    }
}
