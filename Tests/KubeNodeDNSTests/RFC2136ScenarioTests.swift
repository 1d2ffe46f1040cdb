import Emulators
import Foundation
import KubernetesAPI
import Logging
import NodeDNSCore
import Testing

@testable import KubeNodeDNS

/// The kube-node-dns scenario against real authoritative servers over RFC 2136, each checked with `dig`.
@Suite(.serialized) struct RFC2136ScenarioTests {
    static let installed = RealDNSServer.Kind.forTests

    static func configuration(_ server: RealDNSServer, _ extra: [String] = []) throws -> Configuration {
        try Configuration.parse(
            arguments: [
                "--provider=rfc2136", "--rfc2136-server=127.0.0.1:\(server.port)", "--rfc2136-zone=\(server.zone)",
                "--rfc2136-tsig-key-name=\(server.keyName)", "--rfc2136-tsig-secret=\(server.secret)",
                "--dns-name=www.\(server.zone)", "--debounce=300ms", "--http-address=127.0.0.1:0", "--rfc2136-ttl=120",
            ] + extra,
            environment: [:])
    }

    /// Runs the kube emulator for the body, with the given nodes present before the controller starts.
    static func withKube(_ body: @Sendable (KubeAPIEmulator, String) async throws -> Void) async throws {
        let kube = KubeAPIEmulator()
        try await EmulatorHarness.serving({ try await kube.run(logger: EmulatorHarness.quietLogger, onReady: $0) }) { port in
            try await body(kube, "http://127.0.0.1:\(port)")
        }
    }

    @Test(arguments: installed)
    func theScenario(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let www = "www.\(server.zone)"
        try await Self.withKube { kube, kubeURL in
            for (name, address) in [("a", "203.0.113.1"), ("b", "203.0.113.2"), ("c", "203.0.113.3")] {
                kube.putNode(NodeFixtures.node(name, external: [address]))
            }
            // A record someone else owns on the managed name, at its own TTL (not ours, 120): it must stay
            // byte-identical, so ours join its RRset at its TTL.
            try server.nsupdate(["update add \(www) 300 A 198.51.100.7"])
            let foreign = server.dig(www, "A")
            #expect(foreign == ["\(www). 300 IN A 198.51.100.7"])
            let logs = LogLines()
            let config = try Self.configuration(server, ["--resync-interval=1s"])
            let controller = try Controller.make(config: config, cluster: ClusterConfig(server: kubeURL), logger: logs.logger())
            try await whileRunning(controller) {
                let all: Set = ["198.51.100.7", "203.0.113.1", "203.0.113.2", "203.0.113.3"]
                #expect(await EmulatorHarness.eventually { server.values(www, "A") == all }, "start with 3 nodes, on \(kind)")
                #expect(server.dig(www, "A").contains("\(www). 300 IN A 198.51.100.7"), "the foreign record is unchanged")
                let marker = server.dig("_kube-node-dns.\(www)", "TXT")
                #expect(marker.count == 1 && marker[0].contains("kube-node-dns owner=default") && !marker[0].contains("198.51.100.7"))

                kube.mutateNode("b") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { server.values(www, "A") == all.subtracting(["203.0.113.2"]) }, "NotReady")
                kube.mutateNode("c") { NodeFixtures.setUnschedulable(&$0, true) }
                #expect(await EmulatorHarness.eventually { server.values(www, "A") == ["198.51.100.7", "203.0.113.1"] }, "cordon")
                kube.putNode(NodeFixtures.node("d", external: ["203.0.113.4", "2001:db8::4"]))
                #expect(
                    await EmulatorHarness.eventually { server.values(www, "A") == ["198.51.100.7", "203.0.113.1", "203.0.113.4"] }, "join")
                #expect(await EmulatorHarness.eventually { server.values(www, "AAAA") == ["2001:db8::4"] }, "IPv6 gives AAAA")
                _ = kube.deleteNode("a")
                #expect(await EmulatorHarness.eventually { server.values(www, "A") == ["198.51.100.7", "203.0.113.4"] }, "delete")

                // Every node NotReady at once: the name keeps its records.
                kube.mutateNode("b") { NodeFixtures.setReady(&$0, "True") }
                #expect(await EmulatorHarness.eventually { server.values(www, "A") == ["198.51.100.7", "203.0.113.2", "203.0.113.4"] })
                kube.mutateNode("b") { NodeFixtures.setReady(&$0, "False") }
                kube.mutateNode("d") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == [www] })
                #expect(server.values(www, "A") == ["198.51.100.7", "203.0.113.2", "203.0.113.4"], "held")
                kube.mutateNode("b") { NodeFixtures.setReady(&$0, "True") }
                kube.mutateNode("d") { NodeFixtures.setReady(&$0, "True") }

                // Steady state: resyncs read, and write nothing.
                // b and d may come back in two reconciles (the first at once, the second after the window), each
                // once the node lifecycle has lifted its not-ready taint. While the name is held its A records do
                // not move, so they say nothing of what the loop has seen: d's AAAA does (it goes when d is out of
                // a name that b keeps, and comes back with d). Once every record is final, the reconcile in flight
                // (which may be the one that wrote it, its count not yet added) is let finish; every later one
                // starts from the final cluster.
                #expect(
                    await EmulatorHarness.eventually {
                        server.values(www, "A") == ["198.51.100.7", "203.0.113.2", "203.0.113.4"]
                            && server.values(www, "AAAA") == ["2001:db8::4"]
                            && controller.store.snapshots.allSatisfy { $0.taints.isEmpty && $0.ready == "True" }
                            && controller.reconciler.status.heldNames.isEmpty
                    })
                let settled = controller.reconciler.status.reconciles
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.reconciles >= settled + 1 })
                let writes = controller.reconciler.status.writes
                let reconciles = controller.reconciler.status.reconciles
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.reconciles >= reconciles + 2 })
                #expect(controller.reconciler.status.writes == writes, "no writes in steady state")

                // Drift: a managed record deleted behind the controller's back comes back at the next resync.
                try server.nsupdate(["update delete \(www) A 203.0.113.4"])
                #expect(!server.values(www, "A").contains("203.0.113.4"))
                #expect(await EmulatorHarness.eventually { server.values(www, "A").contains("203.0.113.4") }, "drift repaired")

                // The server stops and comes back: retries, then convergence.
                await server.stop()
                kube.mutateNode("d") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.failuresInARow >= 1 })
                try await server.start()
                #expect(
                    await EmulatorHarness.eventually { server.values(www, "A") == ["198.51.100.7", "203.0.113.2"] },
                    "converged after the restart")
                #expect(server.dig(www, "A").contains("\(www). 300 IN A 198.51.100.7"), "the foreign record is still unchanged")
                // The secret is in none of what the ops server shows.
                let port = try #require(await controller.httpPort())
                for path in ["status", "status?format=json", "metrics", "readyz"] {
                    let (_, text) = try await getWithStatus("http://127.0.0.1:\(port)/\(path)")
                    #expect(!text.contains(server.secret), "/\(path) never shows the TSIG secret")
                }
                let (_, metrics) = try await getWithStatus("http://127.0.0.1:\(port)/metrics")
                #expect(metrics.contains("kube_node_dns_rfc2136_messages_total{operation=\"update\",outcome=\"NOERROR\"}"))
            }
            #expect(!logs.lines.withLockedValue { $0 }.joined().contains(server.secret), "the TSIG secret is never logged")
        }
    }

    @Test(arguments: installed)
    func aWrongKeyStopsStartUpWithAdvice(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        try await Self.withKube { kube, kubeURL in
            kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            let wrong = Data((0..<32).map { UInt8($0) }).base64EncodedString()
            var config = try Self.configuration(server)
            config.rfc2136Secret = wrong
            let logs = LogLines()
            let controller = try Controller.make(config: config, cluster: ClusterConfig(server: kubeURL), logger: logs.logger())
            var message = ""
            do {
                try await controller.run(signals: false)
            } catch {
                message = "\(error)"
            }
            print("rfc2136 wrong key on \(kind): \(message)")
            #expect(message.contains("TSIG") || message.contains("REFUSED"), "\(kind): \(message)")
            #expect(message.contains("--rfc2136-tsig") || message.contains("update-policy"), "the error says what to check: \(message)")
            #expect(!message.contains(wrong) && !logs.lines.withLockedValue { $0 }.joined().contains(wrong))
            #expect(server.values("www.\(server.zone)", "A").isEmpty, "nothing was written")
        }
    }
}
