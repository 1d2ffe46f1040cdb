import Foundation
import NodeDNSCore

/// The cost of one node's change in the reconcile step alone (no I/O), in instructions: the reference (the full
/// recomputation over the whole cluster, as every reconcile did before the incremental state) against the
/// incremental step. Run under callgrind, which counts inside the two measured functions only:
///
///     valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measuredFullReaction*' \
///         --toggle-collect='*measuredIncrementalReaction*' kube-node-dns-bench --reaction-cost 15000
///
/// Each reaction flips one node's Ready condition (out, then back), as the end-to-end benchmark does; the cluster
/// has one shared name and one per-node name per node, with kubelet-shaped addresses (an ExternalIP and an
/// InternalIP each).
enum ReactionCost {
    static let shared = try! DNSName("k.example.com")

    static func policy() -> RecordPolicy {
        RecordPolicy(sharedNames: [shared], nodeNameTemplate: try! NodeNameTemplate("{node}.nodes.example.com"))
    }

    static func node(_ index: Int, ready: String = "True") -> NodeSnapshot {
        NodeSnapshot(
            name: "node-\(index)", ready: ready,
            addresses: [
                .init(type: "InternalIP", address: "10.\(index / 65536 % 256).\(index / 256 % 256).\(index % 256)"),
                .init(type: "ExternalIP", address: "100.\(64 + index / 65536 % 64).\(index / 256 % 256).\(index % 256)"),
            ])
    }

    /// The provider's records once every node is written: owned, as a read would give them.
    static func records(for desired: DesiredState) -> [ExistingRecord] {
        let settings = RecordSettings(ttl: 120, proxied: false)
        var records: [ExistingRecord] = []
        for (key, values) in desired.sets {
            for value in values {
                records.append(ExistingRecord(id: "\(key)|\(value)", key: key, value: value, settings: settings, owned: true))
            }
        }
        return records
    }

    static let planPolicy = PlanPolicy(settings: RecordSettings(ttl: 120, proxied: false), protectedNames: [shared])

    /// The reference: everything recomputed over the whole cluster, as each reconcile did before (the desired state,
    /// the plan over every record, the hold baseline, every node's place, the records after the write).
    @inline(never)
    static func measuredFullReaction(nodes: [NodeSnapshot], current: inout [ExistingRecord]) -> Int {
        let desired = desiredRecords(nodes: nodes, policy: policy())
        let existing = Set(nodes.flatMap { $0.addresses.map { IPAddress.canonicalText($0.address) } })
        var policy = planPolicy
        policy.holdBaseline = windowBaseline(of: current, protected: [shared]).mapValues { $0.intersection(existing) }
        let changes = plan(desired: desired.sets, current: current, policy: policy)
        var membership: [String: [String]] = [:]
        for (node, addresses) in desired.published { membership[node] = addresses.sorted() }
        for (node, reasons) in desired.exclusions { membership[node] = reasons }
        let created = changes.creates.map {
            ExistingRecord(id: "\($0.key)|\($0.value)", key: $0.key, value: $0.value, settings: $0.settings, owned: true)
        }
        current = changes.applied(to: current, created: created)
        return changes.writeCount + membership.count
    }

    /// The incremental step: the changed node taken in, the names it touched planned, the records updated.
    @inline(never)
    static func measuredIncrementalReaction(engine: inout ReconcileEngine, change: NodeSnapshot) -> Int {
        react(engine: &engine, change: change)
    }

    static func react(engine: inout ReconcileEngine, change: NodeSnapshot) -> Int {
        engine.observe(changed: [change.name: change])
        let decision = engine.decide(planPolicy: planPolicy, windowBaseline: engine.windowBaseline(protected: [shared]))
        let created = decision.changes.creates.map {
            ExistingRecord(id: "\($0.key)|\($0.value)", key: $0.key, value: $0.value, settings: $0.settings, owned: true)
        }
        engine.applied(decision.changes, created: created)
        return decision.changes.writeCount + decision.transitions.count
    }

    static func run(size: Int, reactions: Int, full: Bool = true, incremental: Bool = true) {
        var nodes = (0..<size).map { node($0) }
        let start = desiredRecords(nodes: nodes, policy: policy())
        var current = records(for: start)
        var engine = ReconcileEngine(policy: policy())
        engine.observe(changed: Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, Optional($0)) }))
        engine.load(current)
        _ = engine.decide(planPolicy: planPolicy, windowBaseline: [:])
        // Two reactions first, not measured: the first after a full read pays once for tables the read left shared.
        _ = react(engine: &engine, change: node(size - 1, ready: "False"))
        _ = react(engine: &engine, change: node(size - 1))
        var fullWrites = 0
        var incrementalWrites = 0
        for step in 0..<reactions {
            let index = (step / 2 * 7919) % size
            let flipped = node(index, ready: step % 2 == 0 ? "False" : "True")
            nodes[index] = flipped
            if full { fullWrites += measuredFullReaction(nodes: nodes, current: &current) }
            if incremental { incrementalWrites += measuredIncrementalReaction(engine: &engine, change: flipped) }
        }
        print(
            "reaction cost at \(size) nodes: \(reactions) reactions; writes and moves, full \(fullWrites), incremental \(incrementalWrites)"
        )
    }
}
