import KubernetesAPI
import NodeDNSCore
import Synchronization

/// The controller's picture of the cluster's nodes, reduced to what decides DNS. A change that leaves
/// every snapshot equal (a status heartbeat) does not wake the reconciler.
package final class NodeStore: Sendable {
    private struct State {
        var nodes: [String: NodeSnapshot] = [:]
        var uids: [String: String] = [:]
        var synced = false
        var events = 0
    }
    private let state = Mutex(State())
    private let lastProgress = Mutex(ContinuousClock.now)
    let wake: Wake

    /// The node watch moved on (a list, an event, a closed or failed watch).
    func progressed() { lastProgress.withLock { $0 = .now } }
    /// How long since the node watch last moved on.
    var sinceProgress: Duration { lastProgress.withLock { $0 }.duration(to: .now) }

    init(wake: Wake) { self.wake = wake }

    package var synced: Bool { state.withLock { $0.synced } }
    package var snapshots: [NodeSnapshot] { state.withLock { Array($0.nodes.values) } }
    package var eventCount: Int { state.withLock { $0.events } }
    func uid(of node: String) -> String? { state.withLock { $0.uids[node] } }
    /// How many node uids are kept (one per known node; a deleted node's goes with it).
    package var uidCount: Int { state.withLock { $0.uids.count } }

    static func snapshot(_ node: Node) -> NodeSnapshot {
        NodeSnapshot(
            name: node.name, labels: node.labels, ready: node.conditions.first { $0.type == "Ready" }?.status,
            unschedulable: node.unschedulable, taints: node.taints.map { .init(key: $0.key, effect: $0.effect) },
            addresses: node.addresses.map { .init(type: $0.type, address: $0.address) })
    }

    /// Applies one event from the watcher; wakes the reconciler only when something relevant changed.
    func apply(_ event: NodeStoreEvent) {
        let changed = state.withLock { state -> Bool in
            state.events += 1
            switch event {
            case .synced(let nodes):
                var fresh: [String: NodeSnapshot] = [:]
                var uids: [String: String] = [:]
                for node in nodes {
                    fresh[node.name] = NodeStore.snapshot(node)
                    uids[node.name] = node.uid
                }
                state.uids = uids
                let changed = !state.synced || fresh != state.nodes
                state.nodes = fresh
                state.synced = true
                return changed
            case .upsert(let node):
                let snapshot = NodeStore.snapshot(node)
                state.uids[node.name] = node.uid
                if state.nodes[node.name] == snapshot { return false }
                state.nodes[node.name] = snapshot
                return state.synced
            case .delete(let name):
                state.uids[name] = nil
                return state.nodes.removeValue(forKey: name) != nil && state.synced
            }
        }
        if changed { wake.fire() }
    }
}

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
