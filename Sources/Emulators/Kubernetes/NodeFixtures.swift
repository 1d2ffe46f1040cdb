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

    /// A node as a kubelet registers it and keeps it up to date, about 5 KB of JSON with the managedFields the API
    /// server adds: the labels and annotations kubeadm and the kubelet set, the four pressure and Ready conditions,
    /// capacity, nodeInfo, daemon endpoints and the list of images on the node. The benchmarks list thousands.
    package static func kubeletNode(_ name: String, external: [String], index: Int = 0) -> JSON {
        var node = self.node(
            name, external: external, internal: ["10.\(index / 65536 % 256).\(index / 256 % 256).\(index % 256)"],
            labels: [
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "cx22",
                "topology.kubernetes.io/region": "eu-central", "topology.kubernetes.io/zone": "fsn1-dc14",
            ])
        var metadata = node["metadata"]?.object ?? [:]
        metadata["annotations"] = [
            "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
            "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            "csi.volume.kubernetes.io/nodeid": .string(#"{"csi.hetzner.cloud":"\#(40_000_000 + index)"}"#),
        ]
        node["metadata"] = .object(metadata)
        node["spec"] = [
            "podCIDR": .string("10.244.\(index % 256).0/24"), "podCIDRs": [.string("10.244.\(index % 256).0/24")],
            "providerID": .string("hcloud://\(40_000_000 + index)"),
        ]
        let time = "2026-01-01T00:00:00Z"
        func condition(_ type: String, _ status: String, _ reason: String, _ message: String) -> JSON {
            [
                "type": .string(type), "status": .string(status), "reason": .string(reason), "message": .string(message),
                "lastHeartbeatTime": .string(time), "lastTransitionTime": .string(time),
            ]
        }
        var status = node["status"]?.object ?? [:]
        status["conditions"] = [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status. AppArmor enabled"),
        ]
        let resources: JSON = [
            "cpu": "2", "ephemeral-storage": "39937312Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": "3911548Ki",
            "pods": "110",
        ]
        status["capacity"] = resources
        status["allocatable"] = resources
        status["daemonEndpoints"] = ["kubeletEndpoint": ["Port": 10250]]
        status["nodeInfo"] = [
            "architecture": "amd64", "bootID": .string("5c1e6a4e-0d0b-4a4e-9d6f-\(String(100_000_000_000 + index))"),
            "containerRuntimeVersion": "containerd://1.7.22", "kernelVersion": "6.1.0-27-amd64",
            "kubeProxyVersion": "v1.31.2", "kubeletVersion": "v1.31.2",
            "machineID": .string(String(repeating: "a1b2c3d4", count: 4)), "operatingSystem": "linux",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "systemUUID": .string("4c4c4544-0042-3510-8052-\(String(100_000_000_000 + index))"),
        ]
        let images: [(String, String, Int)] = [
            ("docker.io/library/nginx", "1.27.3", 72_000_000), ("registry.k8s.io/kube-proxy", "v1.31.2", 30_200_000),
            ("ghcr.io/example/kube-node-dns", "0.5.0", 13_900_000), ("ghcr.io/example/swift-www-example", "0.5.0", 9_100_000),
            ("docker.io/flannel/flannel", "v0.26.1", 32_000_000), ("docker.io/flannel/flannel-cni-plugin", "v1.5.1", 4_900_000),
            ("registry.k8s.io/coredns/coredns", "v1.11.3", 18_500_000), ("registry.k8s.io/pause", "3.10", 320_000),
            ("docker.io/hetznercloud/hcloud-csi-driver", "v2.10.0", 21_000_000),
            ("registry.k8s.io/metrics-server/metrics-server", "v0.7.2", 19_400_000),
        ]
        status["images"] = .array(
            images.enumerated().map { offset, image in
                let digest = String(repeating: String(format4(offset * 7919 + 4099)), count: 16)
                return [
                    "names": [.string("\(image.0)@sha256:\(digest)"), .string("\(image.0):\(image.1)")],
                    "sizeBytes": .int(Int64(image.2)),
                ]
            })
        node["status"] = .object(status)
        return node
    }

    private static func format4(_ value: Int) -> String {
        let hex = String(value % 65536, radix: 16)
        return String(repeating: "0", count: 4 - hex.count) + hex
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

    /// Adds a taint as cluster-autoscaler, Karpenter or a cloud's termination handler does (a value, an effect).
    package static func addTaint(_ node: inout JSON, key: String, effect: String, value: String = "") {
        var spec = node["spec"]?.object ?? [:]
        var taints = spec["taints"]?.array ?? []
        var taint: [String: JSON] = ["key": .string(key), "effect": .string(effect)]
        if !value.isEmpty { taint["value"] = .string(value) }
        taints.append(.object(taint))
        spec["taints"] = .array(taints)
        node["spec"] = .object(spec)
    }

    /// Sets (or, with nil, removes) one label.
    package static func setLabel(_ node: inout JSON, _ key: String, _ value: String?) {
        var metadata = node["metadata"]?.object ?? [:]
        var labels = metadata["labels"]?.object ?? [:]
        labels[key] = value.map { .string($0) }
        metadata["labels"] = .object(labels)
        node["metadata"] = .object(metadata)
    }

    /// Adds a finalizer, as Karpenter's `karpenter.sh/termination` holds a Node while its instance goes away.
    package static func addFinalizer(_ node: inout JSON, _ finalizer: String) {
        var metadata = node["metadata"]?.object ?? [:]
        metadata["finalizers"] = .array((metadata["finalizers"]?.array ?? []) + [.string(finalizer)])
        node["metadata"] = .object(metadata)
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
