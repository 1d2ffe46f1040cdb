import Emulators
import Foundation
import KubernetesAPI
import Testing

@testable import KubeNodeDNS

/// A node that dies and returns through the emulated node lifecycle (kubelets that stop renewing their Lease, the
/// lifecycle controller's monitor pass, its NoSchedule and NoExecute taints), as in a real cluster.
@Suite(.serialized) struct NodeLifecycleTests {
    static let unreachableNoExecute = "node.kubernetes.io/unreachable:NoExecute"

    static func kube(_ settings: NodeLifecycleSettings) -> KubeAPIEmulator {
        var options = KubeAPIEmulator.Options()
        options.nodeLifecycle = settings
        return KubeAPIEmulator(options: options)
    }

    /// Passes only when the test runs them, so the lifecycle controller's late lift cannot race the assertion; the
    /// grace period is the real one, and a pass `after: grace` ages a killed kubelet's node out.
    static let manualPasses = NodeLifecycleSettings(monitorPeriod: .seconds(3600), leaseRenewInterval: .seconds(3600))
    static let grace = NodeLifecycleSettings().gracePeriod + .seconds(1)

    /// Without a faster signal, a node whose kubelet dies leaves DNS when Kubernetes marks it Unknown: after the
    /// grace period, at the latest one monitor pass later; the other node, whose kubelet renews, stays.
    @Test(
        .disabled(
            if: Sanitizer.current != nil,
            "skipped under a sanitizer: it bounds a delay in wall time (grace period, one pass and 1 s), which a sanitizer's slowdown breaks; the plain run holds it"
        ))
    func aKilledNodeLeavesAtTheGracePeriodPlusAtMostOnePass() async throws {
        let settings = NodeLifecycleSettings(
            monitorPeriod: .milliseconds(200), gracePeriod: .milliseconds(1500), leaseRenewInterval: .milliseconds(250))
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(settings), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, [], logs: logs)
            try await whileRunning(controller) {
                for (index, name) in ["a", "b"].enumerated() {
                    env.kube.putNode(NodeFixtures.node(name, external: ["203.0.113.\(index + 1)"]))
                    env.kube.startKubelet(name)
                }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                let killed = ContinuousClock.now
                env.kube.killKubelet("b")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                let out = killed.duration(to: .now)
                // The grace period counts from the last renewal, up to one renewal interval before the kill.
                #expect(out >= settings.gracePeriod - settings.leaseRenewInterval, "left before Kubernetes knew: \(out)")
                // The bound: grace + one pass, and a second of slack for a loaded machine.
                #expect(out <= settings.gracePeriod + settings.monitorPeriod + .seconds(1), "left after \(out)")
                #expect(env.kube.readyStatus(of: "b") == "Unknown")
                #expect(env.kube.readyStatus(of: "a") == "True", "a renews its Lease and stays Ready")
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("b left DNS: not Ready (Unknown)") } })
                #expect(await EmulatorHarness.eventually { env.kube.taints(of: "b").contains(Self.unreachableNoExecute) })
            }
        }
    }

    /// A revived node is back in DNS at its Ready (with serving pods, at its pod's Ready), while the lifecycle
    /// controller's NoExecute taint is still on it; the late lift then changes nothing.
    @Test(arguments: [false, true])
    func aRevivedNodeIsBackWithinASecondOfReady(servingPods: Bool) async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(Self.manualPasses), cloudflare: cf) { env in
            env.kube.createNamespace("www")
            let logs = LogLines()
            let controller = try controller(env, servingPods ? ["--serving-pods=www/app=nginx"] : [], logs: logs)
            try await whileRunning(controller) {
                for (index, name) in ["a", "b", "c"].enumerated() {
                    env.kube.putNode(NodeFixtures.node(name, external: ["203.0.113.\(index + 1)"]))
                    env.kube.putPod(NodeFixtures.pod("nginx-\(name)", node: name), namespace: "www")
                }
                env.kube.startKubelet("b")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"] })

                env.kube.killKubelet("b")
                env.kube.runMonitorPass(after: Self.grace)
                #expect(env.kube.taints(of: "b") == ["node.kubernetes.io/unreachable:NoSchedule", Self.unreachableNoExecute])
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.3"] })

                let revived = ContinuousClock.now
                env.kube.reviveKubelet("b")
                #expect(env.kube.taints(of: "b") == [Self.unreachableNoExecute], "NoSchedule goes at once, NoExecute waits")
                var ready = revived
                if servingPods {
                    // The kubelet marked the pod not Ready with the node; its readiness probe passes again now.
                    #expect(
                        await EmulatorHarness.eventually { controller.store.snapshots.contains { $0.name == "b" && $0.ready == "True" } })
                    #expect(ownedValues(cf) == ["203.0.113.1", "203.0.113.3"], "not before its nginx is Ready")
                    ready = .now
                    env.kube.mutatePod(namespace: "www", "nginx-b") { NodeFixtures.setPodReady(&$0, true) }
                }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"] })
                // How soon is the bench's `--revivals` row to measure; what this proves is the order: back while the
                // lifecycle controller's NoExecute taint is still on (its passes run only when the test runs them).
                _ = ready
                #expect(env.kube.taints(of: "b") == [Self.unreachableNoExecute], "back without waiting for the late lift")
                let status = try await get("http://127.0.0.1:\(try #require(await controller.httpPort()))/status")
                #expect(status.contains("ignores taint \(Self.unreachableNoExecute): Ready is True"), "\(status)")

                let writes = cf.exchanges.filter { $0.method != "GET" }.count
                let reconciles = controller.reconciler.status.reconciles
                env.kube.runMonitorPass()
                #expect(env.kube.taints(of: "b").isEmpty)
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.reconciles > reconciles })
                #expect(cf.exchanges.filter { $0.method != "GET" }.count == writes, "the late lift writes nothing")
            }
        }
    }

    /// Every kubelet stops (a control-plane outage seen as a mass NotReady): the names are held; every node is back
    /// at its Ready (how soon: the bench's `--revivals` row).
    @Test func aMassNotReadyHoldsTheNamesAndEveryNodeReturnsWithinASecond() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(Self.manualPasses), cloudflare: cf) { env in
            let controller = try controller(env)
            let all: Set<String> = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
            try await whileRunning(controller) {
                for (index, name) in ["a", "b", "c"].enumerated() {
                    env.kube.putNode(NodeFixtures.node(name, external: ["203.0.113.\(index + 1)"]))
                    env.kube.startKubelet(name)
                }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == all })
                // Every Lease stops at once; the lifecycle controller marks every node Unknown in one pass, and
                // enters its disruption mode (no NoExecute taint).
                for name in ["a", "b", "c"] { env.kube.killKubelet(name) }
                env.kube.runMonitorPass(after: Self.grace)
                #expect(["a", "b", "c"].allSatisfy { env.kube.taints(of: $0) == ["node.kubernetes.io/unreachable:NoSchedule"] })
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == ["k.example.com"] })
                // The window's first reconcile acted on the first node alone; the rail restores its record.
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == all }, "the name keeps its records while every node is out")

                for name in ["a", "b", "c"] { env.kube.reviveKubelet(name) }
                // The hold ends with the first node back; the name then follows the nodes as each returns.
                #expect(
                    await EmulatorHarness.eventually {
                        controller.reconciler.status.heldNames.isEmpty && controller.reconciler.lastKnownRecords?.count == 3
                            && ownedValues(cf) == all
                    })

            }
        }
    }

    /// A controller that starts while a stale NoExecute taint sits on a Ready node publishes it in its first write.
    @Test func aStaleNoExecuteTaintOnAReadyNodeDoesNotDelayTheFirstWrite() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(Self.manualPasses), cloudflare: cf) { env in
            for (index, name) in ["a", "b", "c"].enumerated() {
                var node = NodeFixtures.node(name, external: ["203.0.113.\(index + 1)"])
                if name == "b" {
                    node["spec"] = [
                        "taints": [["key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"]]
                    ]
                }
                env.kube.putNode(node)
            }
            #expect(env.kube.taints(of: "b") == ["node.kubernetes.io/not-ready:NoExecute"])
            let controller = try controller(env)
            try await whileRunning(controller) {
                #expect(await EmulatorHarness.eventually { !ownedValues(cf).isEmpty })
                #expect(ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"], "b is in the first write")
                #expect(cf.exchanges.filter { $0.method == "POST" && $0.path.hasSuffix("/dns_records/batch") }.count == 1)
            }
        }
    }
}
