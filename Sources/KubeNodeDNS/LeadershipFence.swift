import NodeDNSCore
import NIOConcurrencyHelpers

/// Fences writes to a leadership term: a write planned under a term is cancelled the moment that term ends.
final class LeadershipFence: Sendable {
    /// The term this replica holds now, or nil when it may not write.
    let leadership: @Sendable () -> Int?
    private let waiters = Waiters()

    init(leadership: @escaping @Sendable () -> Int?) { self.leadership = leadership }

    /// Leadership changed: a write waiting under the old term is cancelled.
    func changed() { waiters.resumeAll() }

    /// Runs a write, and cancels it (throwing `WriteNotAuthorized`) the moment the term it was planned under ends.
    func run<T: Sendable>(term: Int, _ write: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await write() }
            group.addTask { [leadership, waiters] in
                while true {
                    let seen = waiters.generation
                    guard leadership() == term else { return nil }
                    await waiters.wait(after: seen)
                    try Task.checkCancellation()
                }
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else { throw WriteNotAuthorized() }
            return result
        }
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
    private let state = NIOLockedValueBox(State())

    /// Counts the `resumeAll()` calls so far.
    var generation: Int { state.withLockedValue { $0.generation } }

    /// Returns once `generation` has moved past `seen` (at once if it already has), or when the task is cancelled.
    func wait(after seen: Int) async {
        let id = state.withLockedValue { state -> Int in
            state.next += 1
            state.slots[state.next] = .pending
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool in
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
            let parked = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
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
        let parked = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
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
