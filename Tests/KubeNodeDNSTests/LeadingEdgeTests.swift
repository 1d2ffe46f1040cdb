import Emulators
import Foundation
import KubernetesAPI
import NodeDNSCore
import Testing

@testable import KubeNodeDNS

/// Reconcile at the first event, collapse what follows within --debounce, and keep the all-at-once rail when a
/// mass NotReady arrives node by node. The reconciler's clock is injected, so nothing depends on machine speed.
@Suite(.serialized) struct LeadingEdgeTests {
    func batches(_ cf: CloudflareEmulator) -> Int {
        cf.exchanges.filter { $0.method == "POST" && $0.path.hasSuffix("/dns_records/batch") }.count
    }

    /// Moves the clock past the collapse window until the reconciler waits for changes with no window open:
    /// the quiet period after which the next change is reconciled at once.
    func settle(_ controller: Controller, _ clock: ManualClock) async {
        _ = await EmulatorHarness.eventually {
            let state = controller.reconciler.idle
            if let end = state.windowEnd, end > clock.now() {
                clock.advance(by: end - clock.now())
                return false
            }
            return state.waiting
        }
    }

    func ready(_ controller: Controller, _ names: Set<String>, _ value: String) -> Bool {
        let seen = controller.store.snapshots.filter { names.contains($0.name) }
        return seen.count == names.count && seen.allSatisfy { $0.ready == value }
    }

    @Test func theFirstChangeIsReconciledAtOnceAndTheNextWaitsForTheWindow() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let clock = ManualClock()
            // A 10 s window on a clock that only the test moves: anything reconciled without a clock move was
            // reconciled at the leading edge.
            let config = try configuration(env, ["--debounce=10s", "--resync-interval=1h"])
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: env.kubeURL), logger: LogLines().logger(level: .info),
                reconcilerClock: clock)
            try await whileRunning(controller) {
                for index in 1...3 { env.kube.putNode(NodeFixtures.node("n\(index)", external: ["203.0.113.\(index)"])) }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"] })
                await settle(controller, clock)  // a quiet period: the window of the first sync is over

                env.kube.mutateNode("n1") { NodeFixtures.setReady(&$0, "False") }
                #expect(
                    await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.2", "203.0.113.3"] },
                    "reconciled without waiting for the debounce")
                // The next change falls inside the window: it waits for the window to close.
                env.kube.mutateNode("n2") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { clock.sleeping == 2 }, "the reconciler waits for the window")
                #expect(ownedValues(cf) == ["203.0.113.2", "203.0.113.3"])
                clock.advance(by: 10)
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.3"] }, "the follow-up")
            }
        }
    }

    @Test func aBurstOf100ChangesIn50msCostsAtMostThreeWrites() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let clock = ManualClock()
            let config = try configuration(
                env, ["--debounce=100ms", "--resync-interval=1h", "--node-name-template={node}.nodes.example.com"])
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: env.kubeURL), logger: LogLines().logger(level: .info),
                reconcilerClock: clock)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("seed", external: ["198.51.100.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf).contains("198.51.100.1") })
                await settle(controller, clock)
                let before = batches(cf)
                // 100 nodes join, 0.5 ms apart on the reconciler's clock.
                for index in 0..<100 {
                    env.kube.putNode(NodeFixtures.node("b\(index)", external: ["203.0.113.\(index + 1)"]))
                    clock.advance(by: 0.0005)
                }
                let all = Set((0..<100).map { "b\($0)" })
                #expect(await EmulatorHarness.eventually { ready(controller, all, "True") }, "the store has every node")
                await settle(controller, clock)  // the window closes: its follow-up runs
                let perNode = {
                    Set(
                        cf.records(zone: "example.com").filter { ($0["name"]?.string ?? "").hasSuffix(".nodes.example.com") }
                            .compactMap { $0["name"]?.string })
                }
                #expect(await EmulatorHarness.eventually { perNode().count == 101 }, "every node has its name")
                await settle(controller, clock)
                #expect(perNode().count == 101)
                #expect(batches(cf) - before <= 3, "\(batches(cf) - before) writes for the burst")
                #expect(ownedValues(cf).count == 101, "every address is published")
            }
        }
    }

    /// The node lifecycle controller marks nodes NotReady one after another; the first reconcile of the window
    /// acts on the first alone, and the window's follow-up restores it when every node has left the name.
    @Test func aMassNotReadyArrivingNodeByNodeKeepsTheFullSet() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let clock = ManualClock()
            let config = try configuration(env, ["--debounce=100ms", "--resync-interval=1h"])
            let logs = LogLines()
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logs.logger(level: .info),
                reconcilerClock: clock)
            try await whileRunning(controller) {
                let full: Set = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"]
                for index in 1...5 { env.kube.putNode(NodeFixtures.node("n\(index)", external: ["203.0.113.\(index)"])) }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == full })
                await settle(controller, clock)

                env.kube.mutateNode("n1") { NodeFixtures.setReady(&$0, "False") }
                #expect(
                    await EmulatorHarness.eventually {
                        ownedValues(cf) == full.subtracting(["203.0.113.1"])
                            && controller.reconciler.lastKnownRecords?.contains { $0.value == "203.0.113.1" } == false
                    }, "the leading edge acts on the first NotReady alone")
                for index in 2...5 {
                    clock.advance(by: 0.005)
                    env.kube.mutateNode("n\(index)") { NodeFixtures.setReady(&$0, "False") }
                }
                #expect(await EmulatorHarness.eventually { ready(controller, ["n1", "n2", "n3", "n4", "n5"], "False") })
                await settle(controller, clock)  // the window closes: one follow-up for the four
                #expect(
                    await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == ["k.example.com"] })
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == full }, "the name ends with its full set")
                // A node comes back: the hold ends and the name follows the nodes again. As in a real cluster, its
                // not-ready:NoSchedule taint goes in a write of its own after Ready=True.
                await settle(controller, clock)
                env.kube.mutateNode("n5") { NodeFixtures.setReady(&$0, "True") }
                #expect(await EmulatorHarness.eventually { controller.store.snapshots.contains { $0.name == "n5" && $0.taints.isEmpty } })
                await settle(controller, clock)
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.5"] })
            }
        }
    }
}
