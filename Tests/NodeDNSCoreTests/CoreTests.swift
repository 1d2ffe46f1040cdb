import NodeDNSCore
import Testing

@Suite struct AddressTests {
    @Test(
        arguments: [
            ("203.0.113.7", "203.0.113.7"), ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("2001:db8::0:1", "2001:db8::1"),
            ("::ffff:1.2.3.4", nil), ("127.0.0.1", nil), ("0.0.0.0", nil), ("::1", nil), ("::", nil), ("fe80::1%eth0", nil),
            ("fe80::1", nil), ("256.1.1.1", nil), ("1.2.3", nil), ("01.2.3.4", nil), ("garbage", nil), ("", nil),
            ("2001:db8::1::2", nil),
        ] as [(String, String?)])
    func routableAddresses(text: String, canonical: String?) {
        #expect((try? IPAddress(routable: text))?.description == canonical)
    }
}

@Suite struct EligibilityTests {
    static let ready = NodeSnapshot(name: "a", labels: ["role": "web"], addresses: [.init(type: "ExternalIP", address: "203.0.113.1")])

    @Test(arguments: [
        ("ready", ready, true),
        (
            "not ready",
            {
                var n = ready
                n.ready = "False"
                return n
            }(), false
        ),
        (
            "unknown",
            {
                var n = ready
                n.ready = "Unknown"
                return n
            }(), false
        ),
        (
            "no condition",
            {
                var n = ready
                n.ready = nil
                return n
            }(), false
        ),
        (
            "cordoned",
            {
                var n = ready
                n.unschedulable = true
                return n
            }(), false
        ),
        (
            "unreachable taint",
            {
                var n = ready
                n.taints = [.init(key: "node.kubernetes.io/unreachable", effect: "NoSchedule")]
                return n
            }(), false
        ),
        (
            "other taint",
            {
                var n = ready
                n.taints = [.init(key: "dedicated", effect: "NoSchedule")]
                return n
            }(), true
        ),
    ])
    func membership(label: String, node: NodeSnapshot, eligible: Bool) {
        #expect(EligibilityPolicy().isEligible(node) == eligible, "\(label)")
    }

    /// The lifecycle controller's NoExecute condition taints are its late echo while Ready is True (it lifts them
    /// only on its next monitor pass); every other taint and every other Ready status acts as before.
    @Test(
        arguments: [
            ("unreachable:NoExecute", "True", nil, ["node.kubernetes.io/unreachable:NoExecute"]),
            ("not-ready:NoExecute", "True", nil, ["node.kubernetes.io/not-ready:NoExecute"]),
            ("unreachable:NoSchedule", "True", "tainted node.kubernetes.io/unreachable:NoSchedule", []),
            ("not-ready:NoSchedule", "True", "tainted node.kubernetes.io/not-ready:NoSchedule", []),
            ("unreachable:NoExecute", "Unknown", "not Ready (Unknown)", []),
            ("not-ready:NoExecute", "False", "not Ready (False)", []),
            ("example.com/drain:NoExecute", "True", "tainted example.com/drain:NoExecute", []),
        ] as [(String, String, String?, [String])])
    func aNoExecuteConditionTaintIsIgnoredWhileReady(taint: String, ready: String, reason: String?, ignored: [String]) {
        var policy = EligibilityPolicy()
        policy.excludedTaintKeys.insert("example.com/drain")
        var node = Self.ready
        node.ready = ready
        let parts = taint.split(separator: ":").map(String.init)
        let key = parts[0].hasPrefix("example.com") ? parts[0] : "node.kubernetes.io/" + parts[0]
        node.taints = [.init(key: key, effect: parts[1])]
        #expect(policy.ineligibility(of: node) == reason)
        #expect(policy.ignoredTaints(of: node).map { "\($0.key):\($0.effect)" } == ignored)
        let desired = desiredRecords(nodes: [node], policy: RecordPolicy(sharedNames: [try! DNSName("example.com")], eligibility: policy))
        #expect((desired.ignoredTaints["a"] ?? []) == ignored)
        #expect(desired.eligibleNodes == (reason == nil ? ["a"] : []))
    }

    /// Every departure signal a cluster gives before a node goes away leaves the node out at once, whatever the
    /// taint's effect and while Ready is still True, with a reason that names who gave it.
    @Test(
        arguments: EligibilityPolicy.departureTaints.flatMap { taint in
            ["NoSchedule", "PreferNoSchedule", "NoExecute"].map { (taint.key, $0, taint.value) }
        })
    func aDepartureTaintLeavesTheNodeOut(key: String, effect: String, who: String) {
        var node = Self.ready
        node.taints = [.init(key: key, effect: effect)]
        #expect(EligibilityPolicy().ineligibility(of: node) == "tainted \(key):\(effect): \(who)")
        #expect(EligibilityPolicy().ignoredTaints(of: node).isEmpty)
    }

    @Test func theLoadBalancerExclusionLabelAndADeletionTimestampLeaveTheNodeOut() {
        var labelled = Self.ready
        labelled.labels[EligibilityPolicy.loadBalancerExclusionLabel] = ""
        #expect(
            EligibilityPolicy().ineligibility(of: labelled)
                == "labelled node.kubernetes.io/exclude-from-external-load-balancers=")
        var policy = EligibilityPolicy()
        policy.honorLoadBalancerExclusion = false
        #expect(policy.isEligible(labelled), "the switch turns the label rule off")
        var deleting = Self.ready
        deleting.deleting = true
        #expect(EligibilityPolicy().exclusionReasons(of: deleting) == ["being deleted (deletionTimestamp set)"])
        #expect(!policy.isEligible(deleting), "a node being deleted always leaves")
    }

    @Test func selector() throws {
        var policy = EligibilityPolicy()
        policy.selector = try LabelSelector("role in (web,edge),!spot")
        #expect(policy.isEligible(Self.ready))
        var spot = Self.ready
        spot.labels["spot"] = "true"
        #expect(!policy.isEligible(spot))
        #expect(throws: LabelSelector.Invalid.self) { try LabelSelector("role in web") }
    }
}

/// Eligibility with serving pods: the node serves only with a Ready, non-terminating pod of the rule bound to it.
@Suite struct ServingPodTests {
    static let rule = ServingPodRule(namespace: "www", selector: try! LabelSelector("app=nginx"))
    static let node = NodeSnapshot(name: "n1", addresses: [.init(type: "ExternalIP", address: "203.0.113.1")])

    static func pod(
        namespace: String = "www", labels: [String: String] = ["app": "nginx"], node: String? = "n1", ready: Bool = true,
        terminating: Bool = false
    ) -> PodSnapshot {
        PodSnapshot(namespace: namespace, name: "nginx-x", labels: labels, nodeName: node, ready: ready, terminating: terminating)
    }

    @Test(
        arguments: [
            ("a Ready pod on the node", [pod()], nil),
            ("no pod", [], "no Ready pod of www/app=nginx on it"),
            ("a pod not Ready", [pod(ready: false)], "no Ready pod of www/app=nginx on it (1 not Ready)"),
            ("a pod terminating", [pod(terminating: true)], "no Ready pod of www/app=nginx on it (terminating)"),
            ("a pod on another node", [pod(node: "n2")], "no Ready pod of www/app=nginx on it"),
            ("a pod in another namespace", [pod(namespace: "default")], "no Ready pod of www/app=nginx on it"),
            ("a pod that does not match the selector", [pod(labels: ["app": "web"])], "no Ready pod of www/app=nginx on it"),
            ("one pod terminating, its replacement Ready", [pod(terminating: true), pod()], nil),
        ] as [(String, [PodSnapshot], String?)])
    func aNodeServesOnlyWithAReadyServingPod(label: String, pods: [PodSnapshot], reason: String?) {
        var eligibility = EligibilityPolicy()
        eligibility.servingPods = Self.rule
        #expect(eligibility.ineligibility(of: Self.node, pods: pods) == reason, "\(label)")
        let policy = RecordPolicy(sharedNames: [try! DNSName("k.example.com")], eligibility: eligibility)
        let state = desiredRecords(nodes: [Self.node], pods: pods, policy: policy)
        #expect(state.eligibleNodes == (reason == nil ? ["n1"] : []), "\(label)")
        #expect(state.exclusions["n1"]?.first == reason, "\(label)")
    }

    @Test func everyRuleThatLeavesANodeOutIsListed() {
        var eligibility = EligibilityPolicy()
        eligibility.servingPods = Self.rule
        var node = Self.node
        node.ready = "False"
        node.unschedulable = true
        node.taints = [.init(key: "node.kubernetes.io/not-ready", effect: "NoSchedule")]
        #expect(
            eligibility.exclusionReasons(of: node, pods: [])
                == [
                    "not Ready (False)", "cordoned", "tainted node.kubernetes.io/not-ready:NoSchedule",
                    "no Ready pod of www/app=nginx on it",
                ])
    }
}

@Suite struct DesiredTests {
    func node(_ name: String, _ external: String, internal: String? = nil) -> NodeSnapshot {
        var addresses = [NodeSnapshot.Address(type: "ExternalIP", address: external)]
        if let internalIP = `internal` { addresses.append(.init(type: "InternalIP", address: internalIP)) }
        return NodeSnapshot(name: name, addresses: addresses)
    }

    @Test func sharedAndPerNodeNames() throws {
        let policy = RecordPolicy(
            sharedNames: [try DNSName("k.example.com")], nodeNameTemplate: try NodeNameTemplate("{node}.nodes.example.com"))
        let state = desiredRecords(nodes: [node("a", "203.0.113.1"), node("b", "2001:db8::2"), node("c", "garbage")], policy: policy)
        #expect(state.sets[RecordKey(name: try DNSName("k.example.com"), type: .a)] == ["203.0.113.1"])
        #expect(state.sets[RecordKey(name: try DNSName("k.example.com"), type: .aaaa)] == ["2001:db8::2"])
        #expect(state.sets[RecordKey(name: try DNSName("a.nodes.example.com"), type: .a)] == ["203.0.113.1"])
        #expect(state.skipped.contains { $0.node == "c" })
        #expect(state.managedNames.contains(try DNSName("c.nodes.example.com")))
    }

    @Test func internalFallback() throws {
        let policy = RecordPolicy(sharedNames: [try DNSName("k.example.com")], addresses: AddressPolicy(internalFallback: true))
        let bare = NodeSnapshot(name: "x", addresses: [.init(type: "InternalIP", address: "10.0.0.5")])
        let state = desiredRecords(nodes: [bare, node("y", "203.0.113.9", internal: "10.0.0.6")], policy: policy)
        #expect(state.sets[RecordKey(name: try DNSName("k.example.com"), type: .a)] == ["10.0.0.5", "203.0.113.9"])
    }

    /// The three ways to publish InternalIP addresses, each against the same cluster: the original's
    /// `--use-internal-ip` falls back only when no eligible node has an external address at all.
    @Test(arguments: [
        // (policy, nodes with external addresses?, expected shared A set)
        ("use-internal-ip", true, ["203.0.113.9"]),
        ("use-internal-ip", false, ["10.0.0.5", "10.0.0.6"]),
        ("always-use-internal-ip", true, ["10.0.0.5", "10.0.0.6", "203.0.113.9"]),
        ("internal-ip-fallback", true, ["10.0.0.5", "203.0.113.9"]),
        ("none", true, ["203.0.113.9"]),
        ("none", false, []),
    ])
    func internalAddressPolicies(policyName: String, withExternal: Bool, expected: [String]) throws {
        var addresses = AddressPolicy()
        switch policyName {
        case "use-internal-ip": addresses.internalWhenNoExternal = true
        case "always-use-internal-ip": addresses.useInternal = true
        case "internal-ip-fallback": addresses.internalFallback = true
        default: break
        }
        let policy = RecordPolicy(sharedNames: [try DNSName("k.example.com")], addresses: addresses)
        let bare = NodeSnapshot(name: "x", addresses: [.init(type: "InternalIP", address: "10.0.0.5")])
        let other =
            withExternal
            ? node("y", "203.0.113.9", internal: "10.0.0.6")
            : NodeSnapshot(name: "y", addresses: [.init(type: "InternalIP", address: "10.0.0.6")])
        let state = desiredRecords(nodes: [bare, other], policy: policy)
        #expect(state.sets[RecordKey(name: try DNSName("k.example.com"), type: .a)] ?? [] == Set(expected))
    }

    @Test func capChangesAtMostOneValueWhenANodeJoins() {
        let values = Set((1...40).map { "203.0.113.\($0)" })
        let before = rendezvousSubset(of: values, key: "k.example.com", count: 12)
        for extra in 41...80 {
            let after = rendezvousSubset(of: values.union(["203.0.113.\(extra)"]), key: "k.example.com", count: 12)
            #expect(after.count == 12)
            #expect(before.subtracting(after).count <= 1)
        }
    }

    /// One node with thousands of ExternalIPs cannot crowd the others out of a capped name: over the cap, each node
    /// offers one address per family, and the rest are named in the state (`/status`).
    @Test(arguments: [(2000, 3), (11, 2), (5, 12)])
    func theCapPicksNodesNotAddresses(crowd: Int, others: Int) throws {
        let name = try DNSName("k.example.com")
        let crowded = NodeSnapshot(
            name: "crowded",
            addresses: (0..<crowd).map { .init(type: "ExternalIP", address: "198.51.\(100 + $0 / 250).\($0 % 250 + 1)") }
                + [.init(type: "ExternalIP", address: "2001:db8::1"), .init(type: "ExternalIP", address: "2001:db8::2")])
        let rest = (1...others).map { NodeSnapshot(name: "n\($0)", addresses: [.init(type: "ExternalIP", address: "203.0.113.\($0)")]) }
        let state = desiredRecords(nodes: [crowded] + rest, policy: RecordPolicy(sharedNames: [name]))
        let shared = state.sets[RecordKey(name: name, type: .a)] ?? []
        #expect(crowd + others > RecordPolicy.defaultMaxValuesPerName, "every case is over the cap")
        #expect(shared.count == min(others + 1, RecordPolicy.defaultMaxValuesPerName))
        if others + 1 <= RecordPolicy.defaultMaxValuesPerName {
            #expect(shared.isSuperset(of: rest.map { $0.addresses[0].address }), "every other node keeps its place")
            #expect(shared.contains("198.51.100.1"), "the crowded node offers its first address")
        }
        #expect(state.extraAddresses["crowded"]?.count == crowd - 1)
        #expect(state.sets[RecordKey(name: name, type: .aaaa)] == ["2001:db8::1", "2001:db8::2"], "2 AAAA values: under the cap")
    }
}

@Suite struct PlanTests {
    static let name = try! DNSName("k.example.com")
    static let key = RecordKey(name: name, type: .a)
    static let settings = RecordSettings(ttl: 120, proxied: false)

    func record(_ id: String, _ value: String, owned: Bool = true, ttl: Int = 120) -> ExistingRecord {
        ExistingRecord(id: id, key: Self.key, value: value, settings: RecordSettings(ttl: ttl, proxied: false), owned: owned)
    }

    /// A CNAME on one name blocks that name only, even with --take-ownership, and is reported as a conflict.
    @Test(arguments: [false, true])
    func aCNAMEBlocksOnlyItsName(takeOwnership: Bool) throws {
        let other = RecordKey(name: try DNSName("b.example.com"), type: .a)
        let cname = ExistingRecord(
            id: "c1", key: RecordKey(name: Self.name, type: .cname), value: "elsewhere.example.net", settings: Self.settings,
            owned: false)
        let changes = plan(
            desired: [Self.key: ["203.0.113.1"], other: ["203.0.113.1"]], current: [cname, record("r1", "203.0.113.9")],
            policy: PlanPolicy(settings: Self.settings, takeOwnership: takeOwnership))
        #expect(changes.blockedNames == [Self.name])
        #expect(changes.conflicts.map(\.id) == ["c1"])
        #expect(changes.creates.map(\.key) == [other], "the other name goes on")
        #expect(changes.updates.isEmpty && changes.deletes.isEmpty, "nothing on the blocked name is touched")
    }

    /// Random desired and current states: applying the plan reaches the desired state, planning again is empty,
    /// and no foreign record is ever in a plan.
    @Test(arguments: 0..<300)
    func planProperties(seed: Int) {
        var rng = SplitMix64(seed: UInt64(seed))
        let pool = (1...8).map { "203.0.113.\($0)" }
        let desired = Set(pool.filter { _ in rng.next() % 2 == 0 })
        var current: [ExistingRecord] = []
        for (index, value) in pool.enumerated() where rng.next() % 3 == 0 {
            current.append(record("r\(index)", value, owned: rng.next() % 4 != 0, ttl: rng.next() % 3 == 0 ? 300 : 120))
            if rng.next() % 5 == 0 { current.append(record("d\(index)", value)) }
        }
        let policy = PlanPolicy(settings: Self.settings, allowEmpty: true)
        let changes = plan(desired: [Self.key: desired], current: current, policy: policy)
        let foreignIDs = Set(current.filter { !$0.owned }.map(\.id))
        #expect(!changes.updates.contains { foreignIDs.contains($0.record.id) })
        #expect(!changes.deletes.contains { foreignIDs.contains($0.id) })
        let after = changes.applied(
            to: current,
            created: changes.creates.enumerated().map {
                ExistingRecord(
                    id: "new\($0.offset)", key: $0.element.key, value: $0.element.value, settings: $0.element.settings, owned: true)
            })
        let foreignValues = Set(current.filter { !$0.owned }.map(\.value))
        let owned = after.filter(\.owned)
        let ownedValues = Set(owned.map(\.value))
        #expect(desired.subtracting(foreignValues).isSubset(of: ownedValues) && ownedValues.isSubset(of: desired))
        #expect(owned.count == Set(owned.map(\.value)).count, "no duplicates")
        #expect(owned.allSatisfy { $0.settings == Self.settings })
        #expect(after.filter { !$0.owned } == current.filter { !$0.owned })
        #expect(plan(desired: [Self.key: desired], current: after, policy: policy).isEmpty)
    }

    @Test func safetyRailKeepsLastGoodSet() {
        let current = [record("1", "203.0.113.1")]
        let held = plan(desired: [:], current: current, policy: PlanPolicy(settings: Self.settings, protectedNames: [Self.name]))
        #expect(held.isEmpty && held.heldNames == [Self.name])
        let allowed = plan(
            desired: [:], current: current, policy: PlanPolicy(settings: Self.settings, allowEmpty: true, protectedNames: [Self.name]))
        #expect(allowed.deletes.map(\.id) == ["1"])
    }

    /// The collapse window's baseline: a record its first reconcile removed comes back when every node has left;
    /// while some node remains, the baseline changes nothing.
    @Test(arguments: [
        (["203.0.113.2"], [String]()),
        ([String](), ["203.0.113.1"]),
    ])
    func holdBaselineRestoresWhatTheWindowRemoved(wanted: [String], restored: [String]) {
        let current = [record("2", "203.0.113.2")]
        var policy = PlanPolicy(settings: Self.settings, protectedNames: [Self.name])
        policy.holdBaseline = [Self.key: ["203.0.113.1", "203.0.113.2"]]
        let desired: [RecordKey: Set<String>] = wanted.isEmpty ? [:] : [Self.key: Set(wanted)]
        let changes = plan(desired: desired, current: current, policy: policy)
        #expect(changes.creates.map(\.value) == restored)
        #expect(changes.heldNames == (wanted.isEmpty ? [Self.name] : []))
        #expect(changes.deletes.isEmpty)
    }

    @Test func addressChangeBecomesOneUpdate() {
        let changes = plan(
            desired: [Self.key: ["203.0.113.9"]], current: [record("1", "203.0.113.1")], policy: PlanPolicy(settings: Self.settings))
        #expect(changes.creates.isEmpty && changes.deletes.isEmpty && changes.updates.count == 1)
    }

    @Test func takeOwnershipAdopts() {
        let changes = plan(
            desired: [Self.key: ["203.0.113.1"]], current: [record("1", "203.0.113.1", owned: false)],
            policy: PlanPolicy(settings: Self.settings, takeOwnership: true))
        #expect(changes.updates.first?.adopt == true && changes.conflicts.isEmpty)
    }
}

@Suite struct LeaderElectionTests {
    let config = LeaderElectionConfig(identity: "a", leaseDuration: 15, renewDeadline: 10, retryPeriod: 2)

    @Test func createsThenRenews() {
        var state = LeaderElectionState(config: config)
        guard case .create(let record) = state.decide(current: nil, now: 0, wallMicros: 1) else {
            Issue.record("expected create")
            return
        }
        state.written(record, now: 0)
        #expect(state.isLeader)
        guard case .update(let renewed) = state.decide(current: record, now: 2, wallMicros: 2) else {
            Issue.record("expected update")
            return
        }
        #expect(renewed.acquireTimeMicros == record.acquireTimeMicros && renewed.leaseTransitions == 0)
    }

    @Test func waitsForAnotherHolderUntilLocalExpiry() {
        var state = LeaderElectionState(config: config)
        let other = LeaseRecord(
            holderIdentity: "b", leaseDurationSeconds: 15, acquireTimeMicros: 0, renewTimeMicros: 0, leaseTransitions: 3)
        #expect(state.decide(current: other, now: 100, wallMicros: 0) == .wait(holder: "b"))
        #expect(state.decide(current: other, now: 114, wallMicros: 0) == .wait(holder: "b"))
        guard case .update(let taken) = state.decide(current: other, now: 115.5, wallMicros: 9) else {
            Issue.record("expected takeover")
            return
        }
        #expect(taken.leaseTransitions == 4 && taken.holderIdentity == "a")
    }

    @Test func losesLeadershipAfterRenewDeadlineAndReleases() {
        var state = LeaderElectionState(config: config)
        let record = LeaseRecord(
            holderIdentity: "a", leaseDurationSeconds: 15, acquireTimeMicros: 0, renewTimeMicros: 0, leaseTransitions: 0)
        state.written(record, now: 0)
        #expect(!state.failed(now: 5) && state.leadershipValid(now: 5))
        #expect(state.failed(now: 10) && !state.isLeader)
        state.written(record, now: 20)
        let released = state.release(wallMicros: 5)
        #expect(released?.holderIdentity == nil && released?.leaseDurationSeconds == 1 && !state.isLeader)
    }

    @Test func backoffGrowsAndResets() {
        var backoff = Backoff(initial: 1, maximum: 8)
        let delays = (0..<6).map { _ in backoff.next(random: 1) }
        #expect(delays == [1, 2, 4, 8, 8, 8])
        backoff.reset()
        #expect(backoff.next(random: 0) == 0.5)
        var scaled = Backoff(initial: 1, maximum: 8).scaled(by: 0.001)
        #expect((0..<5).map { _ in scaled.next(random: 1) } == [0.001, 0.002, 0.004, 0.008, 0.008])
    }

    /// A failure that lasts is said at the 1st, 2nd, 4th, 8th... in a row.
    @Test(arguments: [(0, false), (1, true), (2, true), (3, false), (4, true), (6, false), (8, true), (1000, false), (1024, true)])
    func aLastingFailureIsSaidAtPowersOfTwo(failures: Int, said: Bool) {
        #expect(Backoff.isWorthSaying(failures: failures) == said)
    }

    /// 10,000 refused answers in a row make 14 lines, not 10,000.
    @Test func tenThousandFailuresAreSaidFourteenTimes() {
        #expect((1...10_000).filter(Backoff.isWorthSaying(failures:)).count == 14)
    }
}

@Suite struct HealthRuleTests {
    @Test(
        arguments: [
            ("http://{address}/nginx-health", "http://{address}:80/nginx-health"),
            ("http://{address}:8080/", "http://{address}:8080/"),
            ("https://{address}/healthz?full=1", "https://{address}:443/healthz?full=1"),
            ("http://{internal_address}", "http://{internal_address}:80/"),
            ("tcp://{address}:443", "tcp://{address}:443"),
        ])
    func specsThatParse(text: String, canonical: String) throws {
        #expect(try HealthCheckSpec(text).description == canonical)
    }

    @Test(
        arguments: [
            ("ftp://{address}/", "want http://"), ("http://203.0.113.1/", "the host must be {address}"),
            ("http://{address}:0/", "the port must be 1 to 65535"), ("tcp://{address}", "a tcp check needs a port"),
            ("tcp://{address}:80/x", "a tcp check has no path"), ("http://{address}/a b", "printable ASCII"),
        ])
    func specsThatAreRefused(text: String, message: String) {
        #expect(throws: HealthCheckSpec.Invalid.self) { try HealthCheckSpec(text) }
        do {
            _ = try HealthCheckSpec(text)
        } catch {
            #expect(error.description.contains(message), "\(error)")
        }
    }

    /// The fall/rise rule over a sequence of results (P pass, F fail): the verdict after each.
    @Test(
        arguments: [
            ("P", "healthy"),  // published at its first pass
            ("F", "awaiting"), ("FF", "out"),  // never passed: out (with a reason) after fall failures
            ("PF", "healthy"), ("PFF", "out"),  // fall = 2
            ("PFFP", "out"), ("PFFPP", "healthy"),  // rise = 2
            ("PFFPFP", "out"),  // a flap does not bring it back
            ("PFPFPF", "healthy"),  // never two failures in a row
        ])
    func fallAndRise(sequence: String, expected: String) {
        var streak = HealthStreak()
        var transitions = 0
        for result in sequence {
            if streak.record(passed: result == "P", failure: "connection refused (203.0.113.2:80)", fall: 2, rise: 2) {
                transitions += 1
            }
        }
        switch streak.verdict {
        case .healthy: #expect(expected == "healthy")
        case .awaitingFirstCheck: #expect(expected == "awaiting")
        case .unhealthy(let reason):
            #expect(expected == "out")
            #expect(reason == "health check failed twice: connection refused (203.0.113.2:80)")
        }
        #expect(transitions <= sequence.count)
    }

    @Test func aFailingNodeIsLeftOutWithItsReasonAndAnUncheckedOneAwaitsItsFirstPass() throws {
        let nodes = ["a", "b", "c"].enumerated().map { index, name in
            NodeSnapshot(name: name, addresses: [.init(type: "ExternalIP", address: "203.0.113.\(index + 1)")])
        }
        let policy = RecordPolicy(sharedNames: [try DNSName("k.example.com")])
        let desired = desiredRecords(
            nodes: nodes, health: ["a": .healthy, "b": .unhealthy("health check failed twice: HTTP 503 (203.0.113.2:80)")],
            policy: policy)
        #expect(desired.eligibleNodes == ["a"])
        #expect(desired.exclusions["b"] == ["health check failed twice: HTTP 503 (203.0.113.2:80)"])
        #expect(desired.exclusions["c"] == ["awaiting its first passing health check"])
        // Only nodes every other rule publishes are probed.
        var cordoned = nodes
        cordoned[2].unschedulable = true
        let spec = try HealthCheckSpec("http://{address}/nginx-health")
        #expect(healthCheckTargets(nodes: cordoned, policy: policy, spec: spec) == ["a": ["203.0.113.1"], "b": ["203.0.113.2"]])
    }
}
