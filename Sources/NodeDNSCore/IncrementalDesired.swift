/// One node's part of the desired state, worked out from that node alone (its snapshot, its pods, its health
/// verdict): why it is out, or the addresses it offers, and its per-node names.
package struct NodeContribution: Hashable, Sendable {
    /// What it was worked out from, so that an unchanged node is not worked out again.
    package var node: NodeSnapshot
    var pods: [PodSnapshot]
    var health: NodeHealth?
    var perNodeName: DNSName?
    /// The names it asks for by annotation and gets.
    var hostnames: [DNSName]
    var ignoredTaints: [String]
    /// Why it is out; empty when it is published.
    package var reasons: [String]
    /// The addresses it offers when published, in its own order, and per type (canonical text).
    package var addresses: [String]
    var values: [RecordType: [String]]
    var skipped: [SkippedAddress]

    package var published: Bool { reasons.isEmpty }
    /// The names that carry this node's addresses alone.
    var ownNames: [DNSName] { (perNodeName.map { [$0] } ?? []) + hostnames }
}

extension NodeContribution {
    init(
        node: NodeSnapshot, pods: [PodSnapshot], health: NodeHealth?, hostnames: [DNSName], policy: RecordPolicy,
        addressPolicy: AddressPolicy
    ) {
        self.node = node
        self.pods = pods
        self.health = health
        self.hostnames = hostnames
        perNodeName = policy.nodeNameTemplate.flatMap { $0.name(for: node.name) }
        skipped = []
        if policy.nodeNameTemplate != nil && perNodeName == nil {
            skipped.append(SkippedAddress(node: node.name, reason: "its name cannot be a DNS label"))
        }
        ignoredTaints = policy.eligibility.ignoredTaints(of: node).map { "\($0.key):\($0.effect)" }
        reasons = policy.eligibility.exclusionReasons(of: node, pods: pods, health: health)
        values = [:]
        addresses = []
        guard reasons.isEmpty else { return }
        let usable = usableAddresses(of: node, policy: addressPolicy, skipped: &skipped)
        guard !usable.isEmpty else {
            skipped.append(SkippedAddress(node: node.name, reason: "has no usable address"))
            reasons = ["no usable address"]
            return
        }
        addresses = usable.map(\.description)
        for address in usable { values[address.isIPv4 ? .a : .aaaa, default: []].append(address.description) }
    }
}

/// The desired state kept up to date node by node: a change to one node costs work for that node and the names it
/// touches, not for the whole cluster. `desiredRecords` (the full recomputation) is the reference it must always
/// equal; a property test holds it to that after every event. Pure: a value the reconciler keeps, with no I/O.
///
/// Two rules look at every node at once, and with them a change recomputes everything: `--use-internal-ip`
/// (internal addresses only when no eligible node has an external one) and `--node-hostnames-annotation` (a name
/// two nodes claim goes to neither); their claims are read again on every update.
package struct IncrementalDesired: Sendable {
    package let policy: RecordPolicy
    package private(set) var contributions: [String: NodeContribution] = [:]
    /// The desired record sets, as `desiredRecords(...).sets`.
    package private(set) var sets: [RecordKey: Set<String>] = [:]
    package private(set) var managedNames: Set<DNSName> = []
    package private(set) var hostnames = HostnameClaims()
    package private(set) var eligibleCount = 0
    /// Per type: how many published nodes offer each value, and each value that is some node's first of the type.
    private var valueCounts: [RecordType: [String: Int]] = [:]
    private var firstCounts: [RecordType: [String: Int]] = [:]
    /// Per shared name and type: every offered value and every first value, by descending rendezvous score.
    private var rankedAll: [RecordKey: RankedValues] = [:]
    private var rankedFirst: [RecordKey: RankedValues] = [:]

    struct RankedValue: Hashable, Sendable {
        var score: UInt64
        var value: String
        /// The order `rendezvousSubset` keeps: the highest (score, value) first.
        static func precedes(_ lhs: RankedValue, _ rhs: RankedValue) -> Bool { (lhs.score, lhs.value) > (rhs.score, rhs.value) }
    }

    package init(policy: RecordPolicy) {
        self.policy = policy
        managedNames = Set(policy.sharedNames).union(policy.cnames.keys)
        for (name, target) in policy.cnames { sets[RecordKey(name: name, type: .cname)] = [target.text] }
    }

    /// Whether a change to one node can change other nodes' contributions, so that every update recomputes them all.
    private var looksAtEveryNode: Bool { policy.addresses.internalWhenNoExternal }

    /// Brings the state up to date: `changed` holds the nodes that changed since the last update (nil for a node
    /// that is gone), `touched` the nodes whose pods or health verdict may have changed. Only those are worked out
    /// again (all of them under the rules that look at every node). Returns the record keys whose desired set
    /// changed, and the nodes whose contribution changed.
    @discardableResult
    package mutating func update(
        changed: [String: NodeSnapshot?], touched: Set<String> = [], podsByNode: [String: [PodSnapshot]] = [:],
        health: [String: NodeHealth]? = nil
    ) -> (keys: Set<RecordKey>, nodes: Set<String>) {
        var changedKeys: Set<RecordKey> = []
        var changedNodes: Set<String> = []
        var addressPolicy = policy.addresses
        var candidates = touched.union(changed.keys)
        func node(_ name: String) -> NodeSnapshot? {
            if let change = changed[name] { return change }
            return contributions[name]?.node
        }
        if looksAtEveryNode || policy.readsNodeHostnames {
            var all = contributions.mapValues(\.node)
            for (name, snapshot) in changed { all[name] = snapshot }
            if looksAtEveryNode {
                candidates = Set(all.keys).union(contributions.keys)
                addressPolicy.useInternal = !Self.anyEligibleExternal(nodes: all, podsByNode: podsByNode, health: health, policy: policy)
            }
            if policy.readsNodeHostnames {
                let claims = HostnameClaims(nodes: all.values, policy: policy)
                if claims != hostnames {
                    for (node, names) in claims.accepted where hostnames.accepted[node] != names { candidates.insert(node) }
                    for (node, names) in hostnames.accepted where claims.accepted[node] != names { candidates.insert(node) }
                    managedNames.subtract(hostnames.managedNames.subtracting(claims.managedNames))
                    hostnames = claims
                }
            }
        }
        for name in candidates {
            let old = contributions[name]
            guard let snapshot = node(name) else {
                if let old {
                    remove(old, changedKeys: &changedKeys)
                    contributions[name] = nil
                    changedNodes.insert(name)
                }
                continue
            }
            let pods = podsByNode[name] ?? []
            let verdict = health.map { $0[name] ?? .awaitingFirstCheck }
            let accepted = hostnames.accepted[name] ?? []
            if let old, !looksAtEveryNode, old.node == snapshot, old.pods == pods, old.health == verdict, old.hostnames == accepted {
                continue
            }
            let new = NodeContribution(
                node: snapshot, pods: pods, health: verdict, hostnames: accepted, policy: policy, addressPolicy: addressPolicy)
            if let old, old == new { continue }
            if let old { remove(old, changedKeys: &changedKeys) }
            add(new, changedKeys: &changedKeys)
            contributions[name] = new
            changedNodes.insert(name)
        }
        // A contested name stays managed (so that it empties) after its claimants' contributions moved.
        managedNames.formUnion(hostnames.managedNames)
        changedKeys.formUnion(refreshShared())
        return (changedKeys, changedNodes)
    }

    /// The nodes known now.
    package var nodeNames: Dictionary<String, NodeContribution>.Keys { contributions.keys }
    /// A node's snapshot as last taken in.
    package func node(_ name: String) -> NodeSnapshot? { contributions[name]?.node }
    /// A node's skipped addresses now.
    package func skipped(of name: String) -> [SkippedAddress] { contributions[name]?.skipped ?? [] }

    private static func anyEligibleExternal(
        nodes: [String: NodeSnapshot], podsByNode: [String: [PodSnapshot]], health: [String: NodeHealth]?, policy: RecordPolicy
    ) -> Bool {
        var ignored: [SkippedAddress] = []
        return nodes.values.contains { node in
            policy.eligibility.exclusionReasons(
                of: node, pods: podsByNode[node.name] ?? [], health: health.map { $0[node.name] ?? .awaitingFirstCheck }
            ).isEmpty
                && !usableAddresses(of: node, policy: AddressPolicy(useExternal: policy.addresses.useExternal), skipped: &ignored)
                    .isEmpty
        }
    }

    private mutating func add(_ contribution: NodeContribution, changedKeys: inout Set<RecordKey>) {
        if let name = contribution.perNodeName { managedNames.insert(name) }
        guard contribution.published else { return }
        eligibleCount += 1
        for (type, values) in contribution.values {
            for name in contribution.ownNames {
                let key = RecordKey(name: name, type: type)
                sets[key, default: []].formUnion(values)
                changedKeys.insert(key)
            }
            for value in values { count(value, type: type, by: 1, first: false) }
            if let first = values.first { count(first, type: type, by: 1, first: true) }
        }
    }

    private mutating func remove(_ contribution: NodeContribution, changedKeys: inout Set<RecordKey>) {
        if let name = contribution.perNodeName { managedNames.remove(name) }
        guard contribution.published else { return }
        eligibleCount -= 1
        for (type, values) in contribution.values {
            for name in contribution.ownNames {
                let key = RecordKey(name: name, type: type)
                // Each own name belongs to this node alone (a contested name goes to nobody), so its set goes.
                sets[key] = nil
                changedKeys.insert(key)
            }
            for value in values { count(value, type: type, by: -1, first: false) }
            if let first = values.first { count(first, type: type, by: -1, first: true) }
        }
    }

    /// Counts a value in or out; one that appears or disappears enters or leaves each shared name's ranking.
    private mutating func count(_ value: String, type: RecordType, by delta: Int, first: Bool) {
        let before = (first ? firstCounts : valueCounts)[type]?[value] ?? 0
        let after = before + delta
        if first {
            firstCounts[type, default: [:]][value] = after == 0 ? nil : after
        } else {
            valueCounts[type, default: [:]][value] = after == 0 ? nil : after
        }
        guard (before == 0) != (after == 0) else { return }
        for name in policy.sharedNames {
            let key = RecordKey(name: name, type: type)
            let ranked = RankedValue(score: stableHash(name.text + "\u{0}" + value), value: value)
            if first {
                rankedFirst[key, default: RankedValues()].place(ranked, present: after > 0)
            } else {
                rankedAll[key, default: RankedValues()].place(ranked, present: after > 0)
            }
        }
    }

    /// Each shared name's set from the rankings: the whole offer while it fits the cap, else the best-ranked of the
    /// nodes' first addresses (over the cap a name picks nodes, not addresses), as `desiredRecords` does.
    private mutating func refreshShared() -> Set<RecordKey> {
        var changed: Set<RecordKey> = []
        for type in RecordType.addressTypes {
            let total = valueCounts[type]?.count ?? 0
            for name in policy.sharedNames {
                let key = RecordKey(name: name, type: type)
                let ranked = total > policy.maxValuesPerName ? rankedFirst[key] : rankedAll[key]
                let set = Set((ranked?.prefix(max(policy.maxValuesPerName, 0)) ?? []).map(\.value))
                let next: Set<String>? = set.isEmpty ? nil : set
                if sets[key] != next {
                    sets[key] = next
                    changed.insert(key)
                }
            }
        }
        return changed
    }

    /// The whole state, as `desiredRecords` gives it (the reports and the property test read it; O(nodes)).
    package var state: DesiredState {
        var state = DesiredState(sets: sets, managedNames: managedNames)
        state.hostnames = hostnames
        var offered: [RecordType: [(node: String, values: [String])]] = [:]
        for (name, contribution) in contributions.sorted(by: { $0.key < $1.key }) {
            state.skipped += contribution.skipped
            if !contribution.ignoredTaints.isEmpty { state.ignoredTaints[name] = contribution.ignoredTaints }
            guard contribution.published else {
                state.exclusions[name] = contribution.reasons
                continue
            }
            state.eligibleNodes.append(name)
            state.published[name] = contribution.addresses
            for (type, values) in contribution.values { offered[type, default: []].append((name, values)) }
        }
        for nodes in offered.values where Set(nodes.flatMap(\.values)).count > policy.maxValuesPerName {
            for (node, all) in nodes where all.count > 1 { state.extraAddresses[node, default: []] += all.dropFirst() }
        }
        return state
    }
}

/// Values in descending rendezvous order, kept in chunks of at most 512, so that an insertion or a removal moves a
/// chunk and not the whole ranking: the cost of one node's change stays flat as the cluster grows.
struct RankedValues: Sendable {
    private var chunks: [[IncrementalDesired.RankedValue]] = []
    private static let chunkLimit = 512

    /// The first of `count` positions at which `precedesValue` is false (the binary search both lookups use).
    private static func boundary(_ count: Int, _ precedesValue: (Int) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if precedesValue(middle) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Where a value is, or belongs: its chunk (the first whose last value does not precede it, else the last
    /// chunk) and its position in that chunk.
    private func location(of value: IncrementalDesired.RankedValue) -> (chunk: Int, position: Int) {
        let precedes = IncrementalDesired.RankedValue.precedes
        let chunk = min(Self.boundary(chunks.count) { precedes(chunks[$0].last!, value) }, chunks.count - 1)
        return (chunk, Self.boundary(chunks[chunk].count) { precedes(chunks[chunk][$0], value) })
    }

    /// Puts a value in (`present`) or takes it out.
    mutating func place(_ value: IncrementalDesired.RankedValue, present: Bool) {
        guard !chunks.isEmpty else {
            if present { chunks = [[value]] }
            return
        }
        let (index, position) = location(of: value)
        if present {
            chunks[index].insert(value, at: position)
            if chunks[index].count > Self.chunkLimit {
                let upper = Array(chunks[index][(Self.chunkLimit / 2)...])
                chunks[index].removeSubrange((Self.chunkLimit / 2)...)
                chunks.insert(upper, at: index + 1)
            }
        } else if position < chunks[index].count, chunks[index][position] == value {
            chunks[index].remove(at: position)
            if chunks[index].isEmpty { chunks.remove(at: index) }
        }
    }

    /// The first `count` values, best first.
    func prefix(_ count: Int) -> [IncrementalDesired.RankedValue] {
        var result: [IncrementalDesired.RankedValue] = []
        for chunk in chunks {
            guard result.count < count else { break }
            result += chunk.prefix(count - result.count)
        }
        return result
    }
}
