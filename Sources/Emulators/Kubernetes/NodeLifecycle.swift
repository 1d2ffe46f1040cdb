import Foundation

/// The periods of the emulated node lifecycle. The defaults are Kubernetes' own; tests shorten them to run in
/// seconds.
package struct NodeLifecycleSettings: Sendable {
    /// kube-controller-manager's `--node-monitor-period`: how often the monitor pass runs.
    package var monitorPeriod: Duration = .seconds(5)
    /// `--node-monitor-grace-period`: 50 s since Kubernetes 1.32 (40 s before).
    package var gracePeriod: Duration = .seconds(50)
    /// How often an emulated kubelet renews its Lease: a quarter of its `leaseDurationSeconds` (40 s).
    package var leaseRenewInterval: Duration = .seconds(10)

    package init(monitorPeriod: Duration = .seconds(5), gracePeriod: Duration = .seconds(50), leaseRenewInterval: Duration = .seconds(10)) {
        self.monitorPeriod = monitorPeriod
        self.gracePeriod = gracePeriod
        self.leaseRenewInterval = leaseRenewInterval
    }
}

/// What the emulated lifecycle remembers between passes (kept in the emulator's store, under its lock).
struct NodeLifecycleState: Sendable {
    /// When a heartbeat of each node was last observed: a Lease renewal or a change of its Ready condition.
    var lastHeartbeat: [String: ContinuousClock.Instant] = [:]
    /// The Ready condition's status and lastHeartbeatTime last seen, to tell a heartbeat from another write.
    var readyStamp: [String: String] = [:]
    /// The nodes whose kubelet the emulator plays, and whether it is alive.
    var kubelets: [String: Bool] = [:]
}

/// The node lifecycle of a real cluster, after kube-controller-manager v1.24's node lifecycle controller and the
/// kubelet (`pkg/controller/nodelifecycle`, `pkg/kubelet/nodelease`), so that a node dies and returns in the
/// emulator with the same writes, in the same order, as in a cluster.
///
/// Reproduced:
/// - admission (`TaintNodesByCondition`): a new Node carries `node.kubernetes.io/not-ready:NoSchedule`;
/// - the event-driven NoSchedule pass: after every write of a Node, a write of its own sets
///   `not-ready:NoSchedule` for Ready False or absent, `unreachable:NoSchedule` for Unknown, and neither for True;
/// - the monitor pass, every `monitorPeriod`: a node whose kubelet the emulator plays, and whose Lease and Ready
///   heartbeat were both last seen more than `gracePeriod` ago, gets every condition `Unknown` with reason
///   `NodeStatusUnknown` (then the NoSchedule pass adds `unreachable:NoSchedule`), and its pods Ready=False; then
///   `unreachable:NoExecute` (or `not-ready:NoExecute` for Ready False), with `timeAdded`, is added, swapped or, for
///   Ready True, lifted: the late lift that holds a returning node out for up to one monitor period;
/// - "master disruption mode": when no node is Ready, the pass adds no NoExecute taint and lifts those there are;
/// - the kubelet: `startKubelet`, `killKubelet` (every renewal stops at once) and `reviveKubelet` (a fresh Ready
///   status and Lease); an emulated kubelet renews its Lease in `kube-node-lease` every `leaseRenewInterval`.
///
/// Left out: the pressure and network-unavailable conditions and their taints, `node.kubernetes.io/unschedulable`,
/// per-zone rate limits of the NoExecute tainter (it taints within the same pass), the taint manager's
/// evictions, and the kubelet's own status report every five minutes. A node whose kubelet the emulator does not
/// play is one the test writes by hand: the monitor pass never ages it out.
extension KubeAPIEmulator {
    static let notReadyKey = "node.kubernetes.io/not-ready"
    static let unreachableKey = "node.kubernetes.io/unreachable"
    private static var conditionTaintKeys: Set<String> { [notReadyKey, unreachableKey] }

    /// A stored node's Ready condition status, nil when the node or the condition is absent.
    package func readyStatus(of node: String) -> String? {
        store.withLockedValue { $0.objects["nodes"]?[node] }.flatMap(KubeAPIEmulator.readyStatus)
    }

    /// A stored node's taints as `key:effect`, in order.
    package func taints(of node: String) -> [String] {
        let object = store.withLockedValue { $0.objects["nodes"]?[node] }
        return (object?[path: ["spec", "taints"]]?.array ?? []).map { "\($0["key"]?.string ?? ""):\($0["effect"]?.string ?? "")" }
    }

    // MARK: the kubelet's part

    /// Starts playing `node`'s kubelet: it posts Ready=True now and renews its Lease until killed.
    package func startKubelet(_ node: String) { reviveKubelet(node) }

    /// The node's kubelet stops at once (a kernel panic, a Spot VM reclaimed): no more status, no more renewals.
    package func killKubelet(_ node: String) {
        store.withLockedValue { store in
            if store.lifecycle.kubelets[node] != nil { store.lifecycle.kubelets[node] = false }
        }
    }

    /// The node's kubelet is back: it posts a fresh Ready=True status and renews its Lease.
    package func reviveKubelet(_ node: String) {
        let lifecycle = options.nodeLifecycle != nil
        store.withLockedValue { store in
            guard let old = store.objects["nodes"]?[node] else { return }
            store.lifecycle.kubelets[node] = true
            KubeAPIEmulator.renewLease(&store, node)
            let now = WireTime.seconds()
            var conditions = old[path: ["status", "conditions"]]?.array ?? []
            if !conditions.contains(where: { $0["type"]?.string == "Ready" }) { conditions.append(["type": "Ready"]) }
            conditions = conditions.map { condition in
                var condition = condition
                let healthy: JSON = condition["type"]?.string == "Ready" ? "True" : "False"
                if condition["status"] != healthy { condition["lastTransitionTime"] = .string(now) }
                condition["status"] = healthy
                condition["lastHeartbeatTime"] = .string(now)
                if condition["type"]?.string == "Ready" {
                    condition["reason"] = "KubeletReady"
                    condition["message"] = "kubelet is posting ready status"
                }
                return condition
            }
            var new = old
            new["status"] = KubePatch.merge(old["status"], ["conditions": .array(conditions)])
            _ = KubeAPIEmulator.commit(&store, KubeAPIEmulator.nodes, key: node, old: old, new: new, lifecycle: lifecycle)
        }
    }

    private static func renewLease(_ store: inout Store, _ node: String) {
        let key = KubeAPIEmulator.key("kube-node-lease", node)
        let spec: JSON = ["holderIdentity": .string(node), "leaseDurationSeconds": 40, "renewTime": .string(WireTime.micros())]
        if let old = store.objects["leases"]?[key] {
            var new = old
            new["spec"] = spec
            _ = commit(&store, leases, key: key, old: old, new: new, lifecycle: false)
        } else {
            let lease: JSON = ["metadata": ["name": .string(node), "namespace": "kube-node-lease"], "spec": spec]
            _ = insert(&store, leases, key: key, object: lease, lifecycle: false)
        }
    }

    // MARK: the controller's part

    /// Admission's taint on a new Node.
    static func admitNewNode(_ node: JSON) -> JSON {
        var node = node
        var taints = node[path: ["spec", "taints"]]?.array ?? []
        if !taints.contains(where: { $0["key"]?.string == notReadyKey && $0["effect"]?.string == "NoSchedule" }) {
            taints.append(["key": .string(notReadyKey), "effect": "NoSchedule"])
        }
        node["spec"] = KubePatch.merge(node["spec"], ["taints": .array(taints)])
        return node
    }

    /// Notes a heartbeat: a renewal of a node's Lease, or a write that changes its Ready condition's status or
    /// lastHeartbeatTime (a node first seen counts as one, as the controller starts its grace period then).
    static func observeHeartbeat(_ store: inout Store, _ resource: Resource, key: String, _ object: JSON) {
        let now = ContinuousClock.now
        if resource.plural == "leases" {
            guard object[path: ["metadata", "namespace"]]?.string == "kube-node-lease",
                let node = object[path: ["metadata", "name"]]?.string
            else { return }
            store.lifecycle.lastHeartbeat[node] = now
        } else if resource.plural == "nodes" {
            let ready = object[path: ["status", "conditions"]]?.array?.first { $0["type"]?.string == "Ready" }
            let stamp = "\(ready?["status"]?.string ?? "-") \(ready?["lastHeartbeatTime"]?.string ?? "-")"
            if store.lifecycle.readyStamp[key] != stamp || store.lifecycle.lastHeartbeat[key] == nil {
                store.lifecycle.readyStamp[key] = stamp
                store.lifecycle.lastHeartbeat[key] = now
            }
        }
    }

    /// The event-driven pass: the node's NoSchedule condition taint follows its Ready condition, in a write of its own.
    static func noScheduleTaintPass(_ store: inout Store, key: String) {
        guard let old = store.objects["nodes"]?[key] else { return }
        let wanted: String? =
            switch readyStatus(old) {
            case "True": nil
            case "Unknown": unreachableKey
            default: notReadyKey
            }
        if let new = withConditionTaint(old, effect: "NoSchedule", key: wanted, timeAdded: false) {
            _ = commit(&store, nodes, key: key, old: old, new: new, lifecycle: false)
        }
    }

    /// The node with `key` (or none) as its only condition taint of `effect`; nil when it already is.
    private static func withConditionTaint(_ node: JSON, effect: String, key: String?, timeAdded: Bool) -> JSON? {
        let taints = node[path: ["spec", "taints"]]?.array ?? []
        let current = taints.filter { conditionTaintKeys.contains($0["key"]?.string ?? "") && $0["effect"]?.string == effect }
        if current.map({ $0["key"]?.string }) == (key.map { [$0] } ?? []) { return nil }
        var kept = taints.filter { !(conditionTaintKeys.contains($0["key"]?.string ?? "") && $0["effect"]?.string == effect) }
        if let key {
            var taint: JSON = ["key": .string(key), "effect": .string(effect)]
            if timeAdded { taint["timeAdded"] = .string(WireTime.seconds()) }
            kept.append(taint)
        }
        var node = node
        node["spec"] = KubePatch.merge(node["spec"], ["taints": kept.isEmpty ? .null : .array(kept)])
        if kept.isEmpty, var spec = node["spec"]?.object {
            spec["taints"] = nil
            node["spec"] = .object(spec)
        }
        return node
    }

    /// Runs one monitor pass now, besides the periodic ones: for tests that set long periods and decide themselves
    /// when the lifecycle controller's pass comes. `after` runs it as if that much time had passed since now: a
    /// killed kubelet's silence counts that much longer, while a live one would have renewed meanwhile.
    package func runMonitorPass(after elapsed: Duration = .zero) {
        if let settings = options.nodeLifecycle { monitorNodes(gracePeriod: settings.gracePeriod, elapsed: elapsed) }
    }

    /// One monitor pass of the node lifecycle controller (see the type's comment).
    func monitorNodes(gracePeriod: Duration, elapsed: Duration = .zero) {
        store.withLockedValue { store in
            let now = ContinuousClock.now + elapsed
            let names = (store.objects["nodes"] ?? [:]).keys.sorted()
            for name in store.lifecycle.kubelets.keys where store.objects["nodes"]?[name] == nil {
                store.lifecycle.kubelets[name] = nil
            }
            for name in names where store.lifecycle.kubelets[name] != nil {
                guard let old = store.objects["nodes"]?[name], KubeAPIEmulator.readyStatus(old) != "Unknown" else { continue }
                let alive = store.lifecycle.kubelets[name] == true
                let seen = alive && elapsed > .zero ? now : store.lifecycle.lastHeartbeat[name] ?? now
                guard now - seen > gracePeriod else { continue }
                KubeAPIEmulator.markUnknown(&store, name, old)
            }
            let all = (store.objects["nodes"] ?? [:]).values
            let disrupted = !all.isEmpty && all.allSatisfy { KubeAPIEmulator.readyStatus($0) != "True" }
            for name in names {
                guard let old = store.objects["nodes"]?[name] else { continue }
                let wanted: String? =
                    if disrupted {
                        nil
                    } else {
                        switch KubeAPIEmulator.readyStatus(old) {
                        case "True": nil
                        case "Unknown": KubeAPIEmulator.unreachableKey
                        default: KubeAPIEmulator.notReadyKey
                        }
                    }
                if let new = KubeAPIEmulator.withConditionTaint(old, effect: "NoExecute", key: wanted, timeAdded: true) {
                    _ = KubeAPIEmulator.commit(&store, KubeAPIEmulator.nodes, key: name, old: old, new: new, lifecycle: false)
                }
            }
        }
    }

    /// The kubelet stopped posting: every condition Unknown (then the NoSchedule pass), and its pods not Ready.
    private static func markUnknown(_ store: inout Store, _ name: String, _ old: JSON) {
        let now = WireTime.seconds()
        var conditions = old[path: ["status", "conditions"]]?.array ?? []
        if !conditions.contains(where: { $0["type"]?.string == "Ready" }) { conditions.append(["type": "Ready"]) }
        conditions = conditions.map { condition in
            var condition = condition
            condition["status"] = "Unknown"
            condition["reason"] = "NodeStatusUnknown"
            condition["message"] = "Kubelet stopped posting node status."
            condition["lastTransitionTime"] = .string(now)
            return condition
        }
        var new = old
        new["status"] = KubePatch.merge(old["status"], ["conditions": .array(conditions)])
        _ = commit(&store, nodes, key: name, old: old, new: new, lifecycle: true)
        for (key, pod) in store.objects["pods"] ?? [:] where pod[path: ["spec", "nodeName"]]?.string == name {
            var podConditions = pod[path: ["status", "conditions"]]?.array ?? []
            guard let index = podConditions.firstIndex(where: { $0["type"]?.string == "Ready" }),
                podConditions[index]["status"]?.string != "False"
            else { continue }
            podConditions[index]["status"] = "False"
            podConditions[index]["lastTransitionTime"] = .string(now)
            var newPod = pod
            newPod["status"] = KubePatch.merge(pod["status"], ["conditions": .array(podConditions)])
            _ = commit(&store, pods, key: key, old: pod, new: newPod, lifecycle: false)
        }
    }

    /// Renews the Lease of every live emulated kubelet.
    func renewKubeletLeases() {
        store.withLockedValue { store in
            for (node, alive) in store.lifecycle.kubelets where alive { KubeAPIEmulator.renewLease(&store, node) }
        }
    }

    /// Runs the monitor pass and the kubelets' renewals until cancelled.
    func runNodeLifecycle(_ settings: NodeLifecycleSettings) async {
        let clock = ContinuousClock()
        var nextMonitor = clock.now + settings.monitorPeriod
        var nextRenewal = clock.now + settings.leaseRenewInterval
        while !Task.isCancelled {
            do { try await clock.sleep(until: min(nextMonitor, nextRenewal)) } catch { return }
            let now = clock.now
            if now >= nextRenewal {
                renewKubeletLeases()
                nextRenewal = max(nextRenewal + settings.leaseRenewInterval, now)
            }
            if now >= nextMonitor {
                monitorNodes(gracePeriod: settings.gracePeriod)
                nextMonitor = max(nextMonitor + settings.monitorPeriod, now)
            }
        }
    }
}
