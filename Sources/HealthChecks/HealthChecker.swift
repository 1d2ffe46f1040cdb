import NIOCore
import NIOPosix
import NodeDNSCore
import NIOConcurrencyHelpers

/// Probes every node that the other rules would publish, every interval, and keeps each node's verdict by the
/// fall/rise rule: the health-check source of eligibility, which the reconciler reads as a value.
package final class HealthChecker: Sendable {
    /// What `/status` shows for one node: the last result, its latency, and the streak behind the verdict.
    package struct NodeReport: Sendable, Equatable, Codable {
        package var verdict: String
        package var lastResult: String
        package var latencySeconds: Double
        package var passesInARow: Int
        package var failuresInARow: Int
    }

    package struct Settings: Sendable {
        package var interval: Duration = .seconds(2)
        package var fall = 2
        package var rise = 2
        /// Probes in flight at once; a round of more nodes than this takes `nodes / limit` timeouts at worst.
        package var concurrency = 128
        package init() {}
    }

    private struct State {
        var streaks: [String: HealthStreak] = [:]
        var reports: [String: NodeReport] = [:]
        var rounds = 0
        var allFailing = false
    }

    package let probe: HealthProbe
    package let settings: Settings
    private let state = NIOLockedValueBox(State())
    /// What ends a wait between rounds: the cluster changed (`nodesChanged()`), or round N is due. One stream, read
    /// by the one loop in `run`, so that no wait is ever cancelled half-way through reading it.
    private enum Wakeup: Sendable {
        case changed
        case roundDue(Int)
    }
    private let wakeups: AsyncStream<Wakeup>
    private let wakeup: AsyncStream<Wakeup>.Continuation
    /// Called with each probe's result (for the metrics).
    private let onResult: @Sendable (ProbeResult) -> Void
    /// Called after a round that changed a verdict (to wake the reconciler), and with whether every probed node
    /// now fails.
    private let onChange: @Sendable (_ allFailing: Bool) -> Void

    package init(
        probe: HealthProbe, settings: Settings, onResult: @escaping @Sendable (ProbeResult) -> Void = { _ in },
        onChange: @escaping @Sendable (_ allFailing: Bool) -> Void
    ) {
        self.probe = probe
        self.settings = settings
        self.onResult = onResult
        self.onChange = onChange
        (wakeups, wakeup) = AsyncStream<Wakeup>.makeStream()
    }

    /// Says the nodes or pods changed: a node that has just become a target (revived, joined, uncordoned) is probed
    /// at once rather than at the next round, so that health checks add one probe's time to its return, not an
    /// interval.
    package func nodesChanged() { wakeup.yield(.changed) }

    /// Every probed node's verdict (a node not listed awaits its first check).
    package var verdicts: [String: NodeHealth] { state.withLockedValue { $0.streaks.mapValues(\.verdict) } }
    package var reports: [String: NodeReport] { state.withLockedValue { $0.reports } }
    /// Rounds completed so far.
    package var rounds: Int { state.withLockedValue { $0.rounds } }
    /// Every probed node fails: the controller's own network is the likelier fault.
    package var allFailing: Bool { state.withLockedValue { $0.allFailing } }

    /// Runs rounds until cancelled: `targets` gives, for each node to probe, its addresses (a node passes a round
    /// when every address passes). A round starts every interval, or at once when the last one took longer.
    package func run(targets: @Sendable () async -> [String: [String]]) async {
        var wakeups = self.wakeups.makeAsyncIterator()
        var rounds = 0
        while !Task.isCancelled {
            let started = ContinuousClock.now
            await round(targets: await targets())
            rounds += 1
            let due = rounds
            let timer = Task { [wakeup, interval = settings.interval] in
                try? await Task.sleep(until: started + interval)
                wakeup.yield(.roundDue(due))
            }
            // Between rounds, the targets that have no verdict yet are probed as soon as they appear.
            waiting: while let event = await wakeups.next() {
                switch event {
                case .roundDue(let round) where round == due:
                    break waiting
                case .roundDue:
                    continue
                case .changed:
                    let fresh = await targets().filter { node, _ in state.withLockedValue { $0.streaks[node] == nil } }
                    if !fresh.isEmpty { await round(targets: fresh, onlyThese: true) }
                }
            }
            timer.cancel()
        }
    }

    /// Probes every address once, at most `concurrency` at a time, all from one event loop: a round costs one
    /// hop between threads, not one a probe.
    private func probeAll(_ targets: [String: [String]]) async -> [String: [ProbeResult]] {
        let work = targets.sorted { $0.key < $1.key }.flatMap { node, addresses in addresses.map { (node, $0) } }
        guard !work.isEmpty else { return [:] }
        let probe = self.probe
        let loop = probe.loop
        let onResult = self.onResult
        let limit = settings.concurrency
        let round = try? await loop.flatSubmit { () -> EventLoopFuture<[String: [ProbeResult]]> in
            let done = loop.makePromise(of: [String: [ProbeResult]].self)
            let state = NIOLoopBoundBox(RoundState(), eventLoop: loop)
            @Sendable func next() {
                guard state.value.started < work.count else {
                    if state.value.finished == work.count { done.succeed(state.value.results) }
                    return
                }
                let (node, address) = work[state.value.started]
                state.value.started += 1
                probe.start(address).whenSuccess { result in
                    onResult(result)
                    state.value.results[node, default: []].append(result)
                    state.value.finished += 1
                    next()
                }
            }
            for _ in 0..<min(limit, work.count) { next() }
            return done.futureResult
        }.get()
        return round ?? [:]
    }

    private struct RoundState {
        var started = 0
        var finished = 0
        var results: [String: [ProbeResult]] = [:]
    }

    /// Probes every target once and applies the results. `onlyThese`: a few new targets probed between rounds; the
    /// other nodes keep their verdicts, and the round does not count (nor decide that every probe fails).
    package func round(targets: [String: [String]], onlyThese: Bool = false) async {
        let results = await probeAll(targets)
        let fall = settings.fall
        let rise = settings.rise
        // Every probe of this round failed: this controller's own network is the likelier fault, so no verdict moves
        // (a round can straddle the moment the network went, so verdicts wait until a round that passes somewhere).
        let everyProbeFailed = !results.isEmpty && results.values.allSatisfy { $0.allSatisfy { !$0.passed } }
        let (changed, allFailing) = state.withLockedValue { state -> (Bool, Bool) in
            // Between rounds, while every probe fails, a new node's first check says nothing either.
            let everyProbeFailed = onlyThese ? state.allFailing : everyProbeFailed
            // The first round always says so: the reconciler waits for it before its first write.
            var changed = state.rounds == 0 && !onlyThese
            // A node no longer probed is forgotten: when it returns, it awaits its first check again.
            for node in state.streaks.keys where targets[node] == nil && !onlyThese {
                state.streaks[node] = nil
                state.reports[node] = nil
                changed = true
            }
            for (node, nodeResults) in results {
                let failed = nodeResults.first { !$0.passed }
                var streak = state.streaks[node] ?? HealthStreak()
                if !everyProbeFailed,
                    streak.record(passed: failed == nil, failure: failed?.detail ?? "", fall: fall, rise: rise)
                {
                    changed = true
                }
                state.streaks[node] = streak
                let shown = failed ?? nodeResults[0]
                state.reports[node] = NodeReport(
                    verdict: streak.verdict.exclusionReason ?? "healthy", lastResult: shown.detail,
                    latencySeconds: nodeResults.map(\.latency).max()?.inSeconds ?? 0, passesInARow: streak.passes,
                    failuresInARow: streak.failures)
            }
            if onlyThese { return (changed, state.allFailing) }
            state.rounds += 1
            let allFailing = everyProbeFailed
            if allFailing != state.allFailing { changed = true }
            state.allFailing = allFailing
            return (changed, allFailing)
        }
        if changed { onChange(allFailing) }
    }
}
