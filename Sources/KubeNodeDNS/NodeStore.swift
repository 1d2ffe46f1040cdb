import KubernetesAPI
import NodeDNSCore
import NIOConcurrencyHelpers

/// How one watched kind is reduced to what decides DNS.
package protocol SnapshotReducible: WatchedObject {
    associatedtype Snapshot: Hashable & Sendable
    /// The snapshot, with only the labels whose keys are in `labelKeys`: the ones a selector looks at.
    func snapshot(labelKeys: Set<String>) -> Snapshot
    var uid: String { get }
}

extension Node: SnapshotReducible {
    package func snapshot(labelKeys: Set<String>) -> NodeSnapshot {
        NodeSnapshot(
            name: name, labels: labels.filter { labelKeys.contains($0.key) }, ready: conditions.first { $0.type == "Ready" }?.status,
            unschedulable: unschedulable, taints: taints.map { .init(key: $0.key, effect: $0.effect) },
            addresses: addresses.map { .init(type: $0.type, address: $0.address) }, deleting: deleting,
            hostnames: annotations.values.first)
    }
}

extension Pod: SnapshotReducible {
    package func snapshot(labelKeys: Set<String>) -> PodSnapshot {
        PodSnapshot(
            namespace: namespace, name: name, labels: labels.filter { labelKeys.contains($0.key) }, nodeName: nodeName,
            ready: ready == "True", terminating: terminating)
    }
}

/// The controller's picture of one kind (the nodes, or the serving pods), reduced to what decides DNS. A change
/// that leaves every snapshot equal (a status heartbeat, a label no selector names) does not wake the reconciler;
/// and the labels no selector names are not kept (a kubelet's node carries about 8).
package final class SnapshotStore<Object: SnapshotReducible>: Sendable {
    private struct State {
        var objects: [String: Object.Snapshot] = [:]
        var uids: [String: String] = [:]
        var synced = false
        var events = 0
        /// The objects changed since the reconciler last took the changes (see `takeChanges`).
        var changed: Set<String> = []
    }
    private let state = NIOLockedValueBox(State())
    private let lastProgress = NIOLockedValueBox(ContinuousClock.now)
    private let lastAnswer = NIOLockedValueBox(ContinuousClock.now)
    let wake: Wake
    /// Also told of every relevant change (the health checker, which probes a new target at once).
    let onChange: @Sendable () -> Void
    /// The label keys kept in snapshots: those the configured selector names (none without one).
    let labelKeys: Set<String>

    /// The watch moved on (a list, an event, a closed or failed watch).
    func progressed() { lastProgress.withLockedValue { $0 = .now } }
    /// How long since the watch last moved on.
    var sinceProgress: Duration { lastProgress.withLockedValue { $0 }.duration(to: .now) }
    /// The API server answered as it should (a list, an event or bookmark, a watch ended on schedule).
    func answered() { lastAnswer.withLockedValue { $0 = .now } }
    /// How long since the API server last answered as it should: an unreachable or failing server's age.
    var sinceAnswer: Duration { lastAnswer.withLockedValue { $0 }.duration(to: .now) }

    private let backoff = NIOLockedValueBox<(until: ContinuousClock.Instant, reason: String)?>(nil)
    /// The reflector waits `seconds` after trouble before it reads again.
    func backingOff(seconds: Double, reason: String) {
        backoff.withLockedValue { $0 = (.now + .seconds(seconds), reason) }
    }
    /// While the reflector waits after trouble: how long is left, and why. Changes in the cluster are not read
    /// meanwhile.
    var backoffLeft: (seconds: Double, reason: String)? {
        backoff.withLockedValue { backoff in
            guard let backoff else { return nil }
            let left = ContinuousClock.now.duration(to: backoff.until)
            return left > .zero ? (left.inSeconds, backoff.reason) : nil
        }
    }

    init(wake: Wake, labelKeys: Set<String>, onChange: @escaping @Sendable () -> Void = {}) {
        self.wake = wake
        self.onChange = onChange
        self.labelKeys = labelKeys
    }

    package var synced: Bool { state.withLockedValue { $0.synced } }
    package var snapshots: [Object.Snapshot] { state.withLockedValue { Array($0.objects.values) } }

    /// The objects that changed since the last call (nil for one that is gone), and forgets them: what the
    /// reconciler takes in, in proportion to the change and not to the cluster. With `all`, every object.
    package func takeChanges(all: Bool = false) -> [String: Object.Snapshot?] {
        state.withLockedValue { state in
            defer { state.changed = [] }
            if all { return state.objects.mapValues { Optional($0) } }
            var changes: [String: Object.Snapshot?] = [:]
            for name in state.changed { changes[name] = .some(state.objects[name]) }
            return changes
        }
    }
    var eventCount: Int { state.withLockedValue { $0.events } }
    func uid(of name: String) -> String? { state.withLockedValue { $0.uids[name] } }
    /// How many uids are kept (one per known object; a deleted object's goes with it).
    package var uidCount: Int { state.withLockedValue { $0.uids.count } }

    /// Applies one event from the reflector; wakes the reconciler only when something relevant changed.
    func apply(_ event: StoreEvent<Object>) {
        let changed = state.withLockedValue { state -> Bool in
            state.events += 1
            switch event {
            case .synced(let objects):
                var fresh: [String: Object.Snapshot] = [:]
                var uids: [String: String] = [:]
                for object in objects {
                    fresh[object.name] = object.snapshot(labelKeys: labelKeys)
                    uids[object.name] = object.uid
                }
                state.uids = uids
                let changed = !state.synced || fresh != state.objects
                // A relist that finds k changes costs the reconciler k, not the cluster's size.
                if changed {
                    for (name, snapshot) in fresh where state.objects[name] != snapshot { state.changed.insert(name) }
                    for name in state.objects.keys where fresh[name] == nil { state.changed.insert(name) }
                }
                state.objects = fresh
                state.synced = true
                return changed
            case .upsert(let object):
                let snapshot = object.snapshot(labelKeys: labelKeys)
                state.uids[object.name] = object.uid
                if state.objects[object.name] == snapshot { return false }
                state.objects[object.name] = snapshot
                state.changed.insert(object.name)
                return state.synced
            case .delete(let name):
                state.uids[name] = nil
                guard state.objects.removeValue(forKey: name) != nil else { return false }
                state.changed.insert(name)
                return state.synced
            }
        }
        if changed {
            wake.fire()
            onChange()
        }
    }
}

/// The nodes, as the reconciler sees them.
package typealias NodeStore = SnapshotStore<Node>

/// The serving pods (`--serving-pods`), as the reconciler sees them.
package typealias PodStore = SnapshotStore<Pod>

/// A level-triggered wake-up: any number of fires before the reconciler looks collapse into one.
final class Wake: Sendable {
    let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func fire() { continuation.yield() }
    func finish() { continuation.finish() }
}
