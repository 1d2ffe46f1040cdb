import Emulators
import Foundation
import NodeDNSCore
import Testing

@testable import KubeNodeDNS

/// Names Nodes ask for through `--node-hostnames-annotation`, end to end against the Cloudflare emulator.
@Suite struct NodeHostnameTests {
    static let key = "kube-node-dns.io/hostnames"

    static func node(_ name: String, _ address: String, hostnames: String?, ready: String = "True") -> JSON {
        var node = NodeFixtures.node(name, external: [address], ready: ready)
        if let hostnames { node["metadata"]?["annotations"] = [key: .string(hostnames)] }
        return node
    }

    static func values(_ cf: CloudflareEmulator, _ name: String) -> Set<String> {
        Set(cf.records(zone: "example.com").filter { $0["name"]?.string == name }.compactMap { $0["content"]?.string })
    }

    static func events(_ env: EmulatorHarness.Running, node: String, reason: String) -> [String] {
        env.kube.objects("events").filter {
            $0[path: ["involvedObject", "name"]]?.string == node && $0["reason"]?.string == reason
        }.compactMap { $0["message"]?.string }
    }

    @Test func aNodeGetsTheNamesItAsksForAndAContestedNameGoesToNeither() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let flag = "--node-hostnames-annotation=\(Self.key)"
            let first = try controller(env, [flag])
            try await whileRunning(first) {
                env.kube.putNode(Self.node("a", "203.0.113.1", hostnames: "edge-1.example.com, edge.example.org"))
                #expect(await EmulatorHarness.eventually { Self.values(cf, "edge-1.example.com") == ["203.0.113.1"] })
                let record = try #require(cf.records(zone: "example.com").first { $0["name"]?.string == "edge-1.example.com" })
                #expect(record["comment"]?.string == "kube-node-dns owner=default hostname")
                #expect(
                    await EmulatorHarness.eventually {
                        Self.events(env, node: "a", reason: "DNSHostnameRefused").contains {
                            $0.contains("edge.example.org is outside the DNS zones the provider writes in (example.com)")
                        }
                    })
                // b claims the same name: neither node gets it, and both are told why.
                env.kube.putNode(Self.node("b", "203.0.113.2", hostnames: "edge-1.example.com"))
                #expect(await EmulatorHarness.eventually { Self.values(cf, "edge-1.example.com").isEmpty })
                #expect(
                    await EmulatorHarness.eventually {
                        Self.events(env, node: "a", reason: "DNSHostnameRefused").contains { $0.contains("also claimed by b") }
                            && Self.events(env, node: "b", reason: "DNSHostnameRefused").contains { $0.contains("also claimed by a") }
                    })
                let port = try #require(await first.httpPort())
                let metrics = try await get("http://127.0.0.1:\(port)/metrics")
                #expect(metrics.contains(#"kube_node_dns_node_hostnames{state="refused"} 3"#))
                // b lets go: the name is a's again; a node out of DNS has its names emptied.
                env.kube.putNode(Self.node("b", "203.0.113.2", hostnames: nil))
                #expect(await EmulatorHarness.eventually { Self.values(cf, "edge-1.example.com") == ["203.0.113.1"] })
                let status = try await get("http://127.0.0.1:\(port)/status")
                #expect(status.contains("names: edge-1.example.com"))
                #expect(status.contains("name refused: edge.example.org is outside"))
                env.kube.putNode(Self.node("a", "203.0.113.1", hostnames: "edge-1.example.com", ready: "False"))
                #expect(await EmulatorHarness.eventually { Self.values(cf, "edge-1.example.com").isEmpty })
                env.kube.putNode(Self.node("a", "203.0.113.1", hostnames: "edge-1.example.com"))
                #expect(await EmulatorHarness.eventually { Self.values(cf, "edge-1.example.com") == ["203.0.113.1"] })
            }
            // a is deleted while no controller runs: the next one finds its name by the mark, and removes it.
            #expect(env.kube.deleteNode("a"))
            let next = try controller(env, [flag])
            try await whileRunning(next) {
                #expect(await EmulatorHarness.eventually { Self.values(cf, "edge-1.example.com").isEmpty })
                #expect(Self.values(cf, "k.example.com") == ["203.0.113.2"])
            }
        }
    }
}
