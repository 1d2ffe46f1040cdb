/// Node objects as a kubelet would register them, for the demo, the tests and the benchmarks.
package enum NodeFixtures {
    package static func node(
        _ name: String, external: [String] = [], internal: [String] = [], ready: String = "True",
        unschedulable: Bool = false, labels: [String: String] = [:], heartbeat: String = "2026-01-01T00:00:00Z"
    ) -> JSON {
        var addresses: [JSON] = external.map { address -> JSON in ["type": "ExternalIP", "address": .string(address)] }
        addresses += `internal`.map { address -> JSON in ["type": "InternalIP", "address": .string(address)] }
        addresses.append(["type": "Hostname", "address": .string(name)])
        var spec: [String: JSON] = [:]
        if unschedulable { spec["unschedulable"] = true }
        return [
            "metadata": ["name": .string(name), "labels": .object(labels.mapValues { .string($0) })],
            "spec": .object(spec),
            "status": [
                "addresses": .array(addresses),
                "conditions": [
                    [
                        "type": "Ready", "status": .string(ready), "reason": "KubeletReady",
                        "lastHeartbeatTime": .string(heartbeat), "lastTransitionTime": "2026-01-01T00:00:00Z",
                    ]
                ],
            ],
        ]
    }

    /// Sets the Ready condition's status (and, as a kubelet does, its heartbeat).
    package static func setReady(_ node: inout JSON, _ status: String) {
        var conditions = node[path: ["status", "conditions"]]?.array ?? []
        if let index = conditions.firstIndex(where: { $0["type"]?.string == "Ready" }) {
            conditions[index]["status"] = .string(status)
        } else {
            conditions.append(["type": "Ready", "status": .string(status)])
        }
        var status = node["status"]?.object ?? [:]
        status["conditions"] = .array(conditions)
        node["status"] = .object(status)
    }

    package static func setHeartbeat(_ node: inout JSON, _ time: String) {
        var conditions = node[path: ["status", "conditions"]]?.array ?? []
        for index in conditions.indices { conditions[index]["lastHeartbeatTime"] = .string(time) }
        var status = node["status"]?.object ?? [:]
        status["conditions"] = .array(conditions)
        node["status"] = .object(status)
    }

    package static func setUnschedulable(_ node: inout JSON, _ value: Bool) {
        var spec = node["spec"]?.object ?? [:]
        spec["unschedulable"] = value ? true : nil
        node["spec"] = .object(spec)
    }

    /// A pod as the DaemonSet controller, the scheduler and the kubelet leave it: bound to `node`, with a Ready
    /// condition, and the fields a real pod carries around the ones the controller reads.
    package static func pod(
        _ name: String, node: String?, ready: Bool = true, labels: [String: String] = ["app": "nginx"]
    ) -> JSON {
        var spec: [String: JSON] = [
            "containers": [["name": "nginx", "image": "nginx:1.27", "ports": [["containerPort": 80, "hostPort": 80]]]],
            "hostNetwork": true, "terminationGracePeriodSeconds": 30,
        ]
        if let node { spec["nodeName"] = .string(node) }
        return [
            "metadata": ["name": .string(name), "labels": .object(labels.mapValues { .string($0) })],
            "spec": .object(spec),
            "status": [
                "phase": .string(node == nil ? "Pending" : "Running"),
                "conditions": [
                    ["type": "PodScheduled", "status": .string(node == nil ? "False" : "True")],
                    ["type": "Ready", "status": .string(ready ? "True" : "False")],
                ],
            ],
        ]
    }

    /// Sets a pod's Ready condition, as the kubelet does when the readiness probe passes or fails.
    package static func setPodReady(_ pod: inout JSON, _ ready: Bool) {
        var conditions = pod[path: ["status", "conditions"]]?.array ?? []
        if let index = conditions.firstIndex(where: { $0["type"]?.string == "Ready" }) {
            conditions[index]["status"] = .string(ready ? "True" : "False")
        } else {
            conditions.append(["type": "Ready", "status": .string(ready ? "True" : "False")])
        }
        var status = pod["status"]?.object ?? [:]
        status["conditions"] = .array(conditions)
        pod["status"] = .object(status)
    }
}
