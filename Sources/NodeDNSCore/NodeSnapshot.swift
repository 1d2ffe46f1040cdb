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

    package init(
        name: String, labels: [String: String] = [:], ready: String? = "True", unschedulable: Bool = false,
        taints: [Taint] = [], addresses: [Address] = []
    ) {
        self.name = name
        self.labels = labels
        self.ready = ready
        self.unschedulable = unschedulable
        self.taints = taints
        self.addresses = addresses
    }
}

/// Which nodes may serve traffic; every switch defaults to the safe choice.
package struct EligibilityPolicy: Hashable, Sendable {
    package var requireReady = true
    package var excludeCordoned = true
    package var excludedTaintKeys: Set<String> = ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]
    package var selector: LabelSelector?

    package init() {}

    /// Nil when the node is eligible, else the reason it is not (for logs and the demo).
    package func ineligibility(of node: NodeSnapshot) -> String? {
        if requireReady && node.ready != "True" { return "not Ready (\(node.ready ?? "no Ready condition"))" }
        if excludeCordoned && node.unschedulable { return "cordoned" }
        if let taint = node.taints.first(where: { excludedTaintKeys.contains($0.key) }) {
            return "tainted \(taint.key)"
        }
        if let selector, !selector.matches(node.labels) { return "does not match selector \(selector)" }
        return nil
    }

    package func isEligible(_ node: NodeSnapshot) -> Bool { ineligibility(of: node) == nil }
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
