import Emulators
import Foundation
import KubernetesAPI
import NodeDNSCore
import Testing

@testable import KubeNodeDNS

/// A cluster announces many departures before the node goes away; each one takes the node out of DNS at once,
/// while Kubernetes still calls it Ready, and says why.
@Suite(.serialized) struct DepartureSignalTests {
    /// The signals, each applied to its own node: what is done to the Node, and the reason the controller gives.
    static let signals: [(node: String, apply: @Sendable (inout JSON) -> Void, reason: String)] =
        EligibilityPolicy.departureTaints.enumerated().map { index, taint in
            let effect = ["NoSchedule", "NoExecute", "PreferNoSchedule"][index % 3]
            return (
                "n\(index + 1)", { @Sendable in NodeFixtures.addTaint(&$0, key: taint.key, effect: effect, value: "1764900000") },
                "tainted \(taint.key):\(effect): \(taint.value)"
            )
        } + [
            (
                "n7", { @Sendable in NodeFixtures.setLabel(&$0, EligibilityPolicy.loadBalancerExclusionLabel, "true") },
                "labelled node.kubernetes.io/exclude-from-external-load-balancers=true"
            )
        ]

    static func address(_ node: String) -> String { "203.0.113.\(Int(node.dropFirst())! + 1)" }

    /// Nodes n0 (which stays) to n8 (deleted while a finalizer holds it), all Ready and published first.
    static func putNodes(_ kube: KubeAPIEmulator) {
        for index in 0...8 {
            var node = NodeFixtures.node("n\(index)", external: [address("n\(index)")])
            if index == 8 { NodeFixtures.addFinalizer(&node, "karpenter.sh/termination") }
            kube.putNode(node)
        }
    }

    /// Applies every signal, and deletes n8.
    static func announceDepartures(_ kube: KubeAPIEmulator) {
        for signal in signals { kube.mutateNode(signal.node, signal.apply) }
        kube.deleteNode("n8")
    }

    static var allReasons: [(node: String, reason: String)] {
        signals.map { ($0.node, $0.reason) } + [("n8", "being deleted (deletionTimestamp set)")]
    }

    @Test func everySignalTakesItsNodeOutOnCloudflare() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, [], logs: logs)
            try await whileRunning(controller) {
                Self.putNodes(env.kube)
                let all = Set((0...8).map { Self.address("n\($0)") })
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == all })
                Self.announceDepartures(env.kube)
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == [Self.address("n0")] })
                #expect(env.kube.objects("nodes").count == 9, "n8 is still there, held by its finalizer")
                #expect(
                    await EmulatorHarness.eventually {
                        env.kube.objects("events").filter { $0["reason"]?.string == "DNSNodeLeft" }.count >= Self.allReasons.count
                    })
                let lines = logs.lines.withLockedValue { $0 }
                let events = env.kube.objects("events")
                let status = try await get("http://127.0.0.1:\(await controller.httpPort()!)/status")
                for (node, reason) in Self.allReasons {
                    #expect(lines.filter { $0.contains("\(node) left DNS: \(reason)") }.count == 1, "\(node): \(reason)")
                    #expect(
                        events.contains {
                            $0[path: ["involvedObject", "name"]]?.string == node && $0["message"]?.string == "\(node) left DNS: \(reason)"
                        }, "no Event for \(node)")
                    #expect(status.contains(reason), "/status does not say \(reason)")
                }
            }
        }
    }

    @Test func everySignalTakesItsNodeOutOverRFC2136() async throws {
        guard let kind = RFC2136ScenarioTests.installed.first else { return }
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let www = "www.\(server.zone)"
        try await RFC2136ScenarioTests.withKube { kube, kubeURL in
            Self.putNodes(kube)
            let logs = LogLines()
            let config = try RFC2136ScenarioTests.configuration(server)
            let controller = try Controller.make(config: config, cluster: ClusterConfig(server: kubeURL), logger: logs.logger())
            try await whileRunning(controller) {
                let all = Set((0...8).map { Self.address("n\($0)") })
                #expect(await EmulatorHarness.eventually { server.values(www, "A") == all }, "on \(kind)")
                Self.announceDepartures(kube)
                #expect(await EmulatorHarness.eventually { server.values(www, "A") == [Self.address("n0")] }, "on \(kind)")
                let lines = logs.lines.withLockedValue { $0 }
                for (node, reason) in Self.allReasons {
                    #expect(lines.contains { $0.contains("\(node) left DNS: \(reason)") }, "\(node): \(reason)")
                }
            }
        }
    }
}
