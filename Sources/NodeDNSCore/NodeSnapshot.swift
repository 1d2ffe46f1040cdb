/// The few facts about a Node that decide DNS, so that a heartbeat changing nothing else compares equal.
package struct NodeSnapshot: Hashable, Sendable {
    /// A node address as the API reports it (`ExternalIP`, `InternalIP`, `Hostname`, ...).
    package struct Address: Hashable, Sendable {
        package var type: String
        package var address: String
        package init(type: String, address: String) {
            self.type = type
            self.address = address
        }
    }

    /// A taint's key and effect; the value does not decide eligibility.
    package struct Taint: Hashable, Sendable {
        package var key: String
        package var effect: String
        package init(key: String, effect: String) {
            self.key = key
            self.effect = effect
        }
    }

    package var name: String
    package var labels: [String: String]
    /// The `Ready` condition's status: "True", "False", "Unknown", or nil when absent.
    package var ready: String?
    package var unschedulable: Bool
    package var taints: [Taint]
    package var addresses: [Address]
    /// `metadata.deletionTimestamp` is set: a finalizer (Karpenter's, a cloud provider's) holds the Node while the
    /// machine is taken away.
    package var deleting: Bool
    /// The value of the `--node-hostnames-annotation` annotation (comma-separated names), when the flag names one.
    package var hostnames: String?

    package init(
        name: String, labels: [String: String] = [:], ready: String? = "True", unschedulable: Bool = false,
        taints: [Taint] = [], addresses: [Address] = [], deleting: Bool = false, hostnames: String? = nil
    ) {
        self.hostnames = hostnames
        self.name = name
        self.labels = labels
        self.ready = ready
        self.unschedulable = unschedulable
        self.taints = taints
        self.addresses = addresses
        self.deleting = deleting
    }
}

/// The few facts about a Pod that decide whether its node serves: where it is bound, whether it is Ready, and
/// whether it has begun terminating.
package struct PodSnapshot: Hashable, Sendable {
    package var namespace: String
    package var name: String
    package var labels: [String: String]
    /// `spec.nodeName`; nil while the pod is not scheduled.
    package var nodeName: String?
    /// The `Ready` condition is `True`.
    package var ready: Bool
    /// `metadata.deletionTimestamp` is set: the pod is shutting down, even if it still answers.
    package var terminating: Bool

    package init(
        namespace: String, name: String, labels: [String: String] = [:], nodeName: String?, ready: Bool,
        terminating: Bool = false
    ) {
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.nodeName = nodeName
        self.ready = ready
        self.terminating = terminating
    }
}

/// The pods that serve a node's port 80 (the nginx DaemonSet): a node is published only while one of them is
/// bound to it, Ready and not terminating. `--serving-pods NAMESPACE/SELECTOR`.
package struct ServingPodRule: Hashable, Sendable, CustomStringConvertible {
    package var namespace: String
    package var selector: LabelSelector

    package init(namespace: String, selector: LabelSelector) {
        self.namespace = namespace
        self.selector = selector
    }

    package var description: String { "\(namespace)/\(selector)" }

    /// Whether `pod` serves traffic on `node` now.
    package func serves(_ pod: PodSnapshot, on node: String) -> Bool {
        pod.namespace == namespace && selector.matches(pod.labels) && pod.nodeName == node && pod.ready && !pod.terminating
    }
}

/// Which nodes may serve traffic; every switch defaults to the safe choice.
package struct EligibilityPolicy: Hashable, Sendable {
    package var requireReady = true
    package var excludeCordoned = true
    package var excludedTaintKeys: Set<String> = EligibilityPolicy.defaultExcludedTaintKeys
    /// Leave out a node labelled `node.kubernetes.io/exclude-from-external-load-balancers` (any value): Kubernetes'
    /// own way to tell every load balancer to leave a node out, and here DNS is the load balancer.
    package var honorLoadBalancerExclusion = true
    package var selector: LabelSelector?
    /// When set, a node must also run a Ready, non-terminating serving pod.
    package var servingPods: ServingPodRule?

    package init() {}

    /// Kubernetes' label that tells external load balancers to leave a node out.
    package static let loadBalancerExclusionLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

    /// The taints a cluster puts on a node before it goes away, with who sets each: a node carrying one leaves
    /// DNS whatever the taint's effect.
    package static let departureTaints: KeyValuePairs<String, String> = [
        "ToBeDeletedByClusterAutoscaler": "cluster-autoscaler is removing it",
        "cloud.google.com/impending-node-termination": "GKE announced its termination",
        "karpenter.sh/disrupted": "Karpenter is disrupting it",
        "aws-node-termination-handler/spot-itn": "AWS announced a Spot interruption",
        "node.cloudprovider.kubernetes.io/shutdown": "its cloud provider reports it shut down",
        "node.kubernetes.io/out-of-service": "an administrator declared it out of service",
    ]

    /// `--exclude-taints`' default: the lifecycle controller's condition taints and every departure taint.
    package static let defaultExcludedTaintKeys: Set<String> = conditionTaintKeys.union(departureTaints.map(\.key))

    /// The node lifecycle controller's condition taints. It writes each twice: with effect NoSchedule, lifted within
    /// a tenth of a second of Ready=True, and with effect NoExecute, lifted only on its next monitor pass
    /// (`--node-monitor-period`, 5 s by default).
    package static let conditionTaintKeys: Set<String> = ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]

    /// The taints in `excludedTaintKeys` that leave nobody out: a condition taint with effect NoExecute while the
    /// node's Ready condition is True is the lifecycle controller's late echo of a condition that has ended. On the
    /// way out nothing is lost, since the controller writes the condition before the taint.
    package func ignoredTaints(of node: NodeSnapshot) -> [NodeSnapshot.Taint] {
        guard node.ready == "True" else { return [] }
        return node.taints.filter { Self.isLateEcho($0) && excludedTaintKeys.contains($0.key) }
    }

    private static func isLateEcho(_ taint: NodeSnapshot.Taint) -> Bool {
        taint.effect == "NoExecute" && conditionTaintKeys.contains(taint.key)
    }

    /// Every rule that leaves the node out, in a fixed order (empty when it is eligible); `pods` are the pods
    /// bound to it (others are ignored); `health` is the health checks' verdict (nil when they are off).
    package func exclusionReasons(of node: NodeSnapshot, pods: [PodSnapshot] = [], health: NodeHealth? = nil) -> [String] {
        var reasons: [String] = []
        if node.deleting { reasons.append("being deleted (deletionTimestamp set)") }
        if requireReady && node.ready != "True" { reasons.append("not Ready (\(node.ready ?? "no Ready condition"))") }
        if excludeCordoned && node.unschedulable { reasons.append("cordoned") }
        for taint in node.taints where excludedTaintKeys.contains(taint.key) {
            if node.ready == "True" && Self.isLateEcho(taint) { continue }
            let who = Self.departureTaints.first { $0.key == taint.key }.map { ": \($0.value)" } ?? ""
            reasons.append("tainted \(taint.key):\(taint.effect)\(who)")
        }
        if honorLoadBalancerExclusion, let value = node.labels[Self.loadBalancerExclusionLabel] {
            reasons.append("labelled \(Self.loadBalancerExclusionLabel)=\(value)")
        }
        if let selector, !selector.matches(node.labels) { reasons.append("does not match selector \(selector)") }
        if let servingPods, !pods.contains(where: { servingPods.serves($0, on: node.name) }) {
            let own = pods.filter {
                $0.nodeName == node.name && $0.namespace == servingPods.namespace && servingPods.selector.matches($0.labels)
            }
            let detail =
                own.contains { $0.terminating } ? " (terminating)" : own.isEmpty ? "" : " (\(own.count) not Ready)"
            reasons.append("no Ready pod of \(servingPods) on it\(detail)")
        }
        // Only a node that every other rule publishes is probed, so only then does its verdict count.
        if reasons.isEmpty, let reason = health?.exclusionReason { reasons.append(reason) }
        return reasons
    }

    /// Nil when the node is eligible, else the first reason it is not.
    package func ineligibility(of node: NodeSnapshot, pods: [PodSnapshot] = []) -> String? {
        exclusionReasons(of: node, pods: pods).first
    }

    package func isEligible(_ node: NodeSnapshot, pods: [PodSnapshot] = []) -> Bool {
        exclusionReasons(of: node, pods: pods).isEmpty
    }
}

/// Which of a node's addresses are published.
package struct AddressPolicy: Hashable, Sendable {
    /// Publish ExternalIP addresses (the original's default; off with `--skip-external-ip`).
    package var useExternal = true
    /// Always publish InternalIP addresses beside the external ones (`--always-use-internal-ip`).
    package var useInternal = false
    /// Publish InternalIP addresses of a node that has no usable ExternalIP (`--internal-ip-fallback`).
    package var internalFallback = false
    /// The original's `--use-internal-ip`: InternalIP addresses only when no eligible node has a usable external
    /// address at all (a cluster without external addresses), never mixed with external ones.
    package var internalWhenNoExternal = false

    package init(
        useExternal: Bool = true, useInternal: Bool = false, internalFallback: Bool = false,
        internalWhenNoExternal: Bool = false
    ) {
        self.useExternal = useExternal
        self.useInternal = useInternal
        self.internalFallback = internalFallback
        self.internalWhenNoExternal = internalWhenNoExternal
    }
}
