import Testing

@testable import NodeDNSCore

/// The incremental desired state against the reference (`desiredRecords`, the full recomputation): random event
/// sequences (joins, leaves, Ready flips, label, taint, address, pod, health and annotation changes, deletes, and
/// relists that change many nodes at once), checked after every event, under several rule sets.
@Suite struct IncrementalDesiredTests {
    /// A rule set to run the sequences under.
    struct Rules: Sendable, CustomTestStringConvertible {
        var label: String
        var policy: RecordPolicy
        var pods = false
        var health = false
        var testDescription: String { label }
    }

    static let shared = try! DNSName("k.example.com")

    static let rules: [Rules] = {
        let base = RecordPolicy(sharedNames: [shared])
        var capped = RecordPolicy(
            sharedNames: [shared, try! DNSName("k2.example.com")], nodeNameTemplate: try! NodeNameTemplate("{node}.nodes.example.com"),
            maxValuesPerName: 3)
        capped.cnames = [try! DNSName("www.example.com"): shared]
        var selected = RecordPolicy(sharedNames: [shared], maxValuesPerName: 4)
        selected.eligibility.selector = try! LabelSelector("role=web")
        selected.eligibility.servingPods = ServingPodRule(namespace: "www", selector: try! LabelSelector("app=nginx"))
        var annotated = RecordPolicy(sharedNames: [shared], nodeNameTemplate: try! NodeNameTemplate("{node}.nodes.example.com"))
        annotated.readsNodeHostnames = true
        annotated.hostnameZones = [try! DNSName("example.com")]
        var internalOnly = RecordPolicy(sharedNames: [shared], addresses: AddressPolicy(internalWhenNoExternal: true))
        internalOnly.maxValuesPerName = 5
        return [
            Rules(label: "one shared name", policy: base),
            Rules(label: "two shared names over the cap, per-node names, a CNAME", policy: capped),
            Rules(label: "a selector, serving pods and health checks", policy: selected, pods: true, health: true),
            Rules(label: "names from annotations", policy: annotated),
            Rules(label: "--use-internal-ip", policy: internalOnly),
        ]
    }()

    /// A random cluster that changes one step at a time.
    struct World {
        var random: SplitMix64
        var nodes: [String: NodeSnapshot] = [:]
        var pods: [String: PodSnapshot] = [:]
        var health: [String: NodeHealth] = [:]

        mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

        mutating func randomNode(_ name: String) -> NodeSnapshot {
            var addresses: [NodeSnapshot.Address] = []
            let index = Int(random.next() % 40)
            if chance(85) { addresses.append(.init(type: "ExternalIP", address: "203.0.113.\(index)")) }
            if chance(30) { addresses.append(.init(type: "ExternalIP", address: "2001:db8::\(index)")) }
            if chance(10) {
                addresses.append(.init(type: "ExternalIP", address: pick(["127.0.0.1", "garbage", "203.0.113.\(index + 1)"])))
            }
            if chance(60) { addresses.append(.init(type: "InternalIP", address: "10.0.0.\(index)")) }
            var taints: [NodeSnapshot.Taint] = []
            if chance(10) { taints.append(.init(key: "node.kubernetes.io/not-ready", effect: pick(["NoSchedule", "NoExecute"]))) }
            if chance(5) { taints.append(.init(key: "ToBeDeletedByClusterAutoscaler", effect: "NoSchedule")) }
            var hostnames: String?
            if chance(40) {
                hostnames = pick([
                    "edge.example.com", "\(name)-x.example.com", "edge.example.com,e2.example.com", "bad!.example.com",
                    "edge.example.org", "k.example.com", "",
                ])
            }
            return NodeSnapshot(
                name: name, labels: chance(80) ? ["role": "web"] : ["role": "batch"],
                ready: pick(["True", "True", "True", "False", "Unknown"]),
                unschedulable: chance(10), taints: taints, addresses: addresses, deleting: chance(5), hostnames: hostnames)
        }

        /// One event; returns the nodes it may have changed.
        mutating func step(rules: Rules) -> Set<String> {
            let names = (0..<30).map { "node-\($0)" }
            switch random.next() % 10 {
            case 0, 1, 2:  // a join or a whole new picture of one node
                let name = pick(names)
                nodes[name] = randomNode(name)
                return [name]
            case 3:  // a delete
                let name = pick(names)
                nodes[name] = nil
                return [name]
            case 4:  // a Ready flip
                guard let name = nodes.keys.sorted().randomElement(using: &random) else { return [] }
                nodes[name]!.ready = nodes[name]!.ready == "True" ? "False" : "True"
                return [name]
            case 5:  // an address change
                guard let name = nodes.keys.sorted().randomElement(using: &random) else { return [] }
                nodes[name]!.addresses = randomNode(name).addresses
                return [name]
            case 6 where rules.pods:  // a pod changes, moves or goes
                let pod = "nginx-\(random.next() % 20)"
                let old = pods[pod]?.nodeName
                if chance(20) {
                    pods[pod] = nil
                } else {
                    pods[pod] = PodSnapshot(
                        namespace: "www", name: pod, labels: ["app": "nginx"], nodeName: pick(names), ready: chance(80),
                        terminating: chance(10))
                }
                return Set([old, pods[pod]?.nodeName].compactMap { $0 })
            case 7 where rules.health:
                let name = pick(names)
                health[name] = pick([.healthy, .healthy, .unhealthy("HTTP 503"), .awaitingFirstCheck])
                return [name]
            case 8:  // a relist: many nodes at once
                var changed: Set<String> = []
                for _ in 0..<Int(random.next() % 12) {
                    let name = pick(names)
                    if chance(20) { nodes[name] = nil } else { nodes[name] = randomNode(name) }
                    changed.insert(name)
                }
                return changed
            default:  // a label or taint change
                guard let name = nodes.keys.sorted().randomElement(using: &random) else { return [] }
                let fresh = randomNode(name)
                nodes[name]!.labels = fresh.labels
                nodes[name]!.taints = fresh.taints
                nodes[name]!.hostnames = fresh.hostnames
                return [name]
            }
        }
    }

    static func podsByNode(_ pods: [String: PodSnapshot]) -> [String: [PodSnapshot]] {
        var result: [String: [PodSnapshot]] = [:]
        for pod in pods.values.sorted(by: { $0.name < $1.name }) { if let node = pod.nodeName { result[node, default: []].append(pod) } }
        return result
    }

    @Test(arguments: rules) func theIncrementalStateAlwaysEqualsTheFullRecomputation(_ rules: Rules) {
        for seed in UInt64(1)...8 {
            var world = World(random: SplitMix64(seed: seed &* 7919))
            var incremental = IncrementalDesired(policy: rules.policy)
            var previous = incremental.sets
            for event in 0..<400 {
                let candidates = world.step(rules: rules)
                let podsByNode = Self.podsByNode(world.pods)
                let health = rules.health ? world.health : nil
                let changed = Dictionary(uniqueKeysWithValues: candidates.map { ($0, world.nodes[$0]) })
                let (changedKeys, _) = incremental.update(
                    changed: changed, touched: candidates, podsByNode: podsByNode, health: health)
                let reference = desiredRecords(
                    nodes: Array(world.nodes.values), pods: Array(world.pods.values.sorted { $0.name < $1.name }), health: health,
                    policy: rules.policy)
                let state = incremental.state
                let context = "seed \(seed), event \(event)"
                #expect(state.sets == reference.sets, "\(context)")
                #expect(state.managedNames == reference.managedNames, "\(context)")
                #expect(state.published == reference.published, "\(context)")
                #expect(state.exclusions == reference.exclusions, "\(context)")
                #expect(
                    state.eligibleNodes == reference.eligibleNodes && incremental.eligibleCount == reference.eligibleNodes.count,
                    "\(context)")
                #expect(Set(state.skipped) == Set(reference.skipped), "\(context)")
                #expect(state.ignoredTaints == reference.ignoredTaints, "\(context)")
                #expect(state.extraAddresses.mapValues(Set.init) == reference.extraAddresses.mapValues(Set.init), "\(context)")
                #expect(state.hostnames == reference.hostnames, "\(context)")
                // Every key whose set changed is reported, so that planning only those keys misses nothing.
                let moved = Set(previous.keys).union(incremental.sets.keys).filter { previous[$0] != incremental.sets[$0] }
                #expect(moved.isSubset(of: changedKeys), "\(context): \(moved.subtracting(changedKeys))")
                previous = incremental.sets
                if state.sets != reference.sets { return }  // one failure tells enough
            }
        }
    }

    @Test func anUnchangedNodeCostsNothingAndReportsNoKey() {
        var incremental = IncrementalDesired(policy: RecordPolicy(sharedNames: [Self.shared]))
        let node = NodeSnapshot(name: "a", addresses: [.init(type: "ExternalIP", address: "203.0.113.1")])
        let first = incremental.update(changed: ["a": node])
        #expect(first.keys == [RecordKey(name: Self.shared, type: .a)] && first.nodes == ["a"])
        let again = incremental.update(changed: ["a": node])
        #expect(again.keys.isEmpty && again.nodes.isEmpty)
    }
}
