/// A node's place in DNS, as the last reconcile decided it, so that a change is said once.
package enum Membership: Equatable, Sendable {
    case published([String])
    case excluded([String])
    /// Out by the rules (these reasons), but a held name still carries these addresses of it.
    case held([String], [String])
}

/// What one reconcile decided, with no I/O done: the changes to write, and the report that explains them.
package struct ReconcileDecision: Sendable {
    /// What to write. Its conflicts and blocked names are those of every managed name, not only the planned ones.
    package var changes: ChangeSet
    /// The hold rail's baseline as the plan used it (only values of nodes that still exist).
    package var holdBaseline: [RecordKey: Set<String>]
    /// The nodes whose place changed, in the order to say it.
    package var transitions: [NodeEvent]
    /// Addresses newly skipped on the nodes that changed (a bad address is said once, while it lasts).
    package var newlySkipped: [SkippedAddress]
    /// Why names Nodes ask for are refused, by node.
    package var refusedHostnames: [String: [String]]
    /// Published nodes.
    package var eligibleNodes: Int
}

/// Everything the reconcile step keeps between reconciles, and the step itself: the desired state (kept node by
/// node), the provider's records by name, each node's last place in DNS, and what each name's last plan found. A
/// change to a few nodes plans only the names whose desired records changed (and the shared and CNAME names, which
/// the rails look at every time); a full read of the provider plans everything. Pure: a value with no I/O, which
/// the reconcile loop keeps under its lock.
package struct ReconcileEngine: Sendable {
    package private(set) var desired: IncrementalDesired
    /// The provider's records by name, as last read or written; nil until read (and after any failure).
    package private(set) var records: [DNSName: [ExistingRecord]]?
    /// Each node's place in DNS as the last decision said it.
    package var membership: [String: Membership] = [:]
    /// What the last plan of each name found that must not be touched.
    private var conflicts: [DNSName: [ExistingRecord]] = [:]
    private var blocked: Set<DNSName> = []
    /// Keys and nodes changed since the last decision.
    private var pendingKeys: Set<RecordKey> = []
    private var pendingNodes: Set<String> = []
    private var pendingSkipped: [SkippedAddress] = []
    private var planEverything = true
    private var lastHeld: (names: [DNSName], values: Set<String>) = ([], [])
    /// Which nodes report each canonical address (all their addresses, usable or not), for the hold and the Events.
    private var nodesByAddress: [String: Set<String>] = [:]

    package init(policy: RecordPolicy) { desired = IncrementalDesired(policy: policy) }

    /// The owned records, counted.
    package private(set) var ownedCount = 0

    /// Takes in what changed in the cluster (see `IncrementalDesired.update`).
    package mutating func observe(
        changed: [String: NodeSnapshot?], touched: Set<String> = [], podsByNode: [String: [PodSnapshot]] = [:],
        health: [String: NodeHealth]? = nil
    ) {
        let names = touched.union(changed.keys)
        let before = Dictionary(uniqueKeysWithValues: names.map { ($0, (desired.node($0), desired.skipped(of: $0))) })
        let (keys, moved) = desired.update(changed: changed, touched: touched, podsByNode: podsByNode, health: health)
        pendingKeys.formUnion(keys)
        pendingNodes.formUnion(moved)
        for (name, (oldNode, oldSkipped)) in before {
            let newNode = desired.node(name)
            if oldNode != newNode {
                for address in oldNode?.addresses ?? [] { nodesByAddress[IPAddress.canonicalText(address.address)]?.remove(name) }
                for address in newNode?.addresses ?? [] {
                    nodesByAddress[IPAddress.canonicalText(address.address), default: []].insert(name)
                }
            }
            // A bad address is said once while it lasts: only those the node did not have before.
            let old = Set(oldSkipped)
            pendingSkipped += desired.skipped(of: name).filter { !old.contains($0) }
        }
    }

    /// The provider's records, read in full: the next decision plans every name.
    package mutating func load(_ current: [ExistingRecord]) {
        var byName: [DNSName: [ExistingRecord]] = [:]
        for record in current { byName[record.key.name, default: []].append(record) }
        records = byName
        ownedCount = current.filter(\.owned).count
        planEverything = true
    }

    /// Forgets the records (after a failure, or leadership changing hands): the next decision needs a full read.
    package mutating func invalidate() { records = nil }

    /// Plans the names that changed (every name after a full read or with `everything`), against the records.
    package mutating func decide(
        planPolicy basePolicy: PlanPolicy, windowBaseline: [RecordKey: Set<String>], everything: Bool = false
    ) -> ReconcileDecision {
        let records = self.records ?? [:]
        let policy = desired.policy
        var planPolicy = basePolicy
        // A value is held back only while its node still exists: a deleted node is not coming back.
        planPolicy.holdBaseline = windowBaseline.mapValues { $0.filter { !(nodesByAddress[$0]?.isEmpty ?? true) } }
            .filter { !$0.value.isEmpty }
        let full = planEverything || everything
        var names: Set<DNSName>
        if full {
            names = Set(records.keys).union(desired.managedNames).union(desired.sets.keys.map(\.name))
        } else {
            names = Set(pendingKeys.map(\.name)).union(policy.sharedNames).union(policy.cnames.keys)
        }
        var wanted: [RecordKey: Set<String>] = [:]
        var current: [ExistingRecord] = []
        for name in names {
            for type in RecordType.allCases where type != .other {
                let key = RecordKey(name: name, type: type)
                if let set = desired.sets[key] { wanted[key] = set }
            }
            current += records[name] ?? []
        }
        var changes = plan(desired: wanted, current: current, policy: planPolicy)
        // What the plan found, per name, merged with what earlier plans found on the names not planned now.
        if full {
            conflicts = [:]
            blocked = []
        } else {
            for name in names { conflicts[name] = nil }
            blocked.subtract(names)
        }
        for conflict in changes.conflicts { conflicts[conflict.key.name, default: []].append(conflict) }
        blocked.formUnion(changes.blockedNames)
        changes.conflicts = conflicts.keys.sorted().flatMap { conflicts[$0]! }
        changes.blockedNames = blocked.sorted()

        // The values a held name keeps: a node whose addresses are among them has not left DNS, whatever its rules say.
        let held = Set(changes.heldNames)
        let heldValues = Set(current.filter { $0.owned && held.contains($0.key.name) }.map(\.value))
            .union(planPolicy.holdBaseline.filter { held.contains($0.key.name) }.flatMap(\.value))
        // A hold that starts, ends or moves can change any node's place; otherwise only the changed nodes' can.
        let everyNode = full || changes.heldNames != lastHeld.names || heldValues != lastHeld.values
        lastHeld = (changes.heldNames, heldValues)
        let nodes = everyNode ? Set(desired.nodeNames).union(membership.keys) : pendingNodes
        let transitions = moveMembership(of: nodes, heldValues: heldValues, heldNames: changes.heldNames)
        let skipped = pendingSkipped
        pendingSkipped = []
        pendingKeys = []
        pendingNodes = []
        planEverything = false
        return ReconcileDecision(
            changes: changes, holdBaseline: planPolicy.holdBaseline, transitions: transitions, newlySkipped: skipped,
            refusedHostnames: desired.hostnames.refused, eligibleNodes: desired.eligibleCount)
    }

    /// The write went through: the records as they are now.
    package mutating func applied(_ changes: ChangeSet, created: [ExistingRecord]) {
        guard records != nil else { return }
        var touched: Set<DNSName> = []
        for record in changes.deletes { touched.insert(record.key.name) }
        for update in changes.updates { touched.insert(update.record.key.name) }
        for record in created { touched.insert(record.key.name) }
        let createdByName = Dictionary(grouping: created, by: \.key.name)
        // In place: a copy of the records would cost the whole cluster.
        for name in touched {
            let before = records![name] ?? []
            let after = changes.applied(to: before, created: createdByName[name] ?? [])
            ownedCount += after.filter(\.owned).count - before.filter(\.owned).count
            records![name] = after.isEmpty ? nil : after
        }
    }

    /// What the provider must read in full: every managed name, the CNAME names, the names Nodes ask for.
    package func scope(template: NodeNameTemplate?) -> ManagedScope {
        let policy = desired.policy
        return ManagedScope(
            names: desired.managedNames, template: template, cnames: Set(policy.cnames.keys),
            hostnames: desired.hostnames.managedNames, readsHostnames: policy.readsNodeHostnames)
    }

    /// The records at these names, as last read or written.
    package func records(at names: [DNSName]) -> [ExistingRecord] { names.flatMap { records?[$0] ?? [] } }

    /// Every record as last read or written, for /status and tests.
    package var allRecords: [ExistingRecord]? { records.map { $0.values.flatMap { $0 } } }

    /// The nodes that report a canonical address (for an Event on the node whose record changed).
    package func nodes(reporting address: String) -> Set<String> { nodesByAddress[address] ?? [] }

    /// Why each of `nodes` is in or out of DNS, and which of them moved. A node that the rules leave out while a held
    /// name still carries its addresses is "held", not "left DNS"; it leaves when the hold ends.
    private mutating func moveMembership(of nodes: Set<String>, heldValues: Set<String>, heldNames: [DNSName]) -> [NodeEvent] {
        var joined: [NodeEvent] = []
        var others: [NodeEvent] = []
        for node in nodes.sorted() {
            let known = membership[node]
            guard let contribution = desired.contributions[node] else {
                membership[node] = nil
                continue
            }
            if contribution.published {
                let now = Membership.published(contribution.addresses.sorted())
                membership[node] = now
                if known != now {
                    joined.append(
                        NodeEvent(node, .joined, "\(node) joined DNS: \(contribution.addresses.sorted().joined(separator: ", "))"))
                }
                continue
            }
            let reasons = contribution.reasons
            let why = reasons.joined(separator: "; ")
            let wasPublished: [String]? =
                switch known {
                case .published(let addresses), .held(_, let addresses): addresses
                default: nil
                }
            // Held: a held name still carries its addresses (it may have left in the window's first reconcile and
            // been put back when the rest followed).
            let own = contribution.node.addresses.map { IPAddress.canonicalText($0.address) }.filter(heldValues.contains)
            let heldAddresses = Set((wasPublished ?? []).filter(heldValues.contains) + own)
            if !heldAddresses.isEmpty {
                let now = Membership.held(reasons, heldAddresses.sorted())
                membership[node] = now
                guard known != now else { continue }
                let names = heldNames.map(\.text).joined(separator: ", ")
                others.append(
                    NodeEvent(
                        node, .held, "\(node) is out by the rules (\(why)), but its records are held: every node left \(names) at once"))
                continue
            }
            let now = Membership.excluded(reasons)
            membership[node] = now
            guard known != now else { continue }
            if wasPublished != nil {
                others.append(NodeEvent(node, .left, "\(node) left DNS: \(why)"))
            } else {
                others.append(NodeEvent(node, .excluded, "\(node) is not published: \(why)"))
            }
        }
        return joined + others
    }
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

extension ReconcileEngine {
    /// The protected names' owned values now (see `windowBaseline(of:protected:)`), from their records alone.
    package func windowBaseline(protected: Set<DNSName>) -> [RecordKey: Set<String>] {
        NodeDNSCore.windowBaseline(of: protected.flatMap { records?[$0] ?? [] }, protected: protected)
    }
}
