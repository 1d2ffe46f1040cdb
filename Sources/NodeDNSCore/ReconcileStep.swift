/// A node's place in DNS, as the last reconcile decided it, so that a change is said once.
package enum Membership: Equatable, Sendable {
    case published([String])
    case excluded([String])
    /// Out by the rules (these reasons), but a held name still carries these addresses of it.
    case held([String], [String])
}

/// Everything one reconcile decides from: a single consistent picture of the cluster, the provider's records, the
/// rules, and what the loop remembers (the collapse window's baseline and each node's last place in DNS).
package struct ReconcileInput: Sendable {
    package var nodes: [NodeSnapshot]
    package var pods: [PodSnapshot]
    /// The health checks' verdicts, or nil when health checks are off.
    package var health: [String: NodeHealth]?
    /// The provider's records, as last read or written.
    package var current: [ExistingRecord]
    package var policy: RecordPolicy
    /// How to plan; its `holdBaseline` is filled in by the step from `windowBaseline`.
    package var planPolicy: PlanPolicy
    /// The shared names' owned values seen so far in this collapse window (see `PlanPolicy.holdBaseline`).
    package var windowBaseline: [RecordKey: Set<String>]
    /// Each node's place in DNS at the last reconcile.
    package var membership: [String: Membership]

    package init(
        nodes: [NodeSnapshot], pods: [PodSnapshot] = [], health: [String: NodeHealth]? = nil, current: [ExistingRecord],
        policy: RecordPolicy, planPolicy: PlanPolicy, windowBaseline: [RecordKey: Set<String>] = [:],
        membership: [String: Membership] = [:]
    ) {
        self.nodes = nodes
        self.pods = pods
        self.health = health
        self.current = current
        self.policy = policy
        self.planPolicy = planPolicy
        self.windowBaseline = windowBaseline
        self.membership = membership
    }
}

/// What one reconcile decided, with no I/O done: the changes to write, and the report that explains them.
package struct ReconcileDecision: Sendable {
    package var desired: DesiredState
    package var changes: ChangeSet
    /// The hold rail's baseline as the plan used it (only values of nodes that still exist).
    package var holdBaseline: [RecordKey: Set<String>]
    /// Each node's place in DNS now, to remember for the next reconcile.
    package var membership: [String: Membership]
    /// The nodes whose place changed, in the order to say it.
    package var transitions: [NodeEvent]
}

/// The reconcile step: from one consistent input to the changes and the report. Pure and deterministic; the loop
/// around it reads the provider, writes, and turns the report into logs and Events.
package func decideReconcile(_ input: ReconcileInput) -> ReconcileDecision {
    let desired = desiredRecords(nodes: input.nodes, pods: input.pods, health: input.health, policy: input.policy)
    var planPolicy = input.planPolicy
    // A value is held back only while its node still exists: a deleted node is not coming back.
    let existing = Set(input.nodes.flatMap { $0.addresses.map { IPAddress.canonicalText($0.address) } })
    planPolicy.holdBaseline = input.windowBaseline.mapValues { $0.intersection(existing) }.filter { !$0.value.isEmpty }
    let changes = plan(desired: desired.sets, current: input.current, policy: planPolicy)
    // The values a held name keeps: a node whose addresses are among them has not left DNS, whatever its rules say.
    let held = Set(changes.heldNames)
    let heldValues = Set(input.current.filter { $0.owned && held.contains($0.key.name) }.map(\.value))
        .union(planPolicy.holdBaseline.filter { held.contains($0.key.name) }.flatMap(\.value))
    var addresses: [String: [String]] = [:]
    for node in input.nodes where !heldValues.isEmpty {
        addresses[node.name] = node.addresses.map { IPAddress.canonicalText($0.address) }.filter(heldValues.contains).sorted()
    }
    let (membership, transitions) = membershipTransitions(
        desired, known: input.membership, heldValues: heldValues, heldNames: changes.heldNames, addresses: addresses)
    return ReconcileDecision(
        desired: desired, changes: changes, holdBaseline: planPolicy.holdBaseline, membership: membership,
        transitions: transitions)
}

/// The all-at-once rail's memory: the owned values of the protected names in `records`, which the next reconciles
/// of a collapse window may hold a name at.
package func windowBaseline(of records: [ExistingRecord], protected: Set<DNSName>) -> [RecordKey: Set<String>] {
    var baseline: [RecordKey: Set<String>] = [:]
    for record in records where record.owned && protected.contains(record.key.name) && record.key.type != .cname {
        baseline[record.key, default: []].insert(record.value)
    }
    return baseline
}

/// Why each node is in or out of DNS, and which nodes moved. A node that the rules leave out while a held name still
/// carries its addresses is "held", not "left DNS"; it leaves when the hold ends.
private func membershipTransitions(
    _ desired: DesiredState, known: [String: Membership], heldValues: Set<String>, heldNames: [DNSName],
    addresses: [String: [String]]
) -> ([String: Membership], [NodeEvent]) {
    var transitions: [NodeEvent] = []
    var next: [String: Membership] = [:]
    for (node, addresses) in desired.published.sorted(by: { $0.key < $1.key }) {
        let now = Membership.published(addresses.sorted())
        next[node] = now
        if known[node] != now {
            transitions.append(NodeEvent(node, .joined, "\(node) joined DNS: \(addresses.sorted().joined(separator: ", "))"))
        }
    }
    for (node, reasons) in desired.exclusions.sorted(by: { $0.key < $1.key }) {
        let why = reasons.joined(separator: "; ")
        let wasPublished: [String]? =
            switch known[node] {
            case .published(let addresses), .held(_, let addresses): addresses
            default: nil
            }
        // Held: a held name still carries its addresses (it may have left in the window's first reconcile and been
        // put back when the rest followed).
        let heldAddresses = (wasPublished ?? []).filter(heldValues.contains) + (addresses[node] ?? [])
        if !heldAddresses.isEmpty {
            let now = Membership.held(reasons, Array(Set(heldAddresses)).sorted())
            next[node] = now
            guard known[node] != now else { continue }
            let names = heldNames.map(\.text).joined(separator: ", ")
            transitions.append(
                NodeEvent(
                    node, .held, "\(node) is out by the rules (\(why)), but its records are held: every node left \(names) at once"))
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
    return (next, transitions)
}
