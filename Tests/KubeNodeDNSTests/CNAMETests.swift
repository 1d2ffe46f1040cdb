import Emulators
import Foundation
import NodeDNSCore
import Testing

@testable import KubeNodeDNS

/// The article's last DNS step, done by the controller: `--cname-names` against the Cloudflare emulator, whose every
/// exchange the test script checks against Cloudflare's published schema.
@Suite struct CNAMETests {
    static func cnames(_ cf: CloudflareEmulator, named name: String) -> [JSON] {
        cf.records(zone: "example.com").filter { $0["name"]?.string == name && $0["type"]?.string == "CNAME" }
    }

    /// The `/status` CNAME line of `name`, its columns' padding collapsed.
    static func line(_ status: String, _ name: String) -> String? {
        status.split(separator: "\n").first { $0.hasPrefix(name + " ") && $0.contains(" -> ") }.map {
            $0.split(separator: " ").joined(separator: " ")
        }
    }

    @Test(arguments: [false, true])
    func theArticlesCNAMEIsWrittenOnceAndLeftAloneWhileItsTargetIsHeld(proxied: Bool) async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let controller = try controller(env, ["--cname-names=www.example.com", "--cloudflare-proxy=\(proxied)"])
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                // Written, and the loop waits again.
                #expect(
                    await EmulatorHarness.eventually {
                        ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "k.example.com"] && controller.reconciler.idle.waiting
                    })
                let written = try #require(Self.cnames(cf, named: "www.example.com").first)
                #expect(written["content"]?.string == "k.example.com")
                #expect(written["comment"]?.string == "kube-node-dns owner=default")
                #expect(written["proxied"]?.bool == proxied, "proxied follows --cloudflare-proxy")

                // Every node leaves at once: k.example.com is held, and the CNAME is not touched.
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"], ready: "False"))
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"], ready: "False"))
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == ["k.example.com"] })
                #expect(Self.cnames(cf, named: "www.example.com") == [written], "the same record, unmodified")
                // (The two NotReady changes may reach the controller a moment apart: a's record can leave and be put
                // back by the hold. The CNAME is written by neither: the same record, same id and modified_on.)
                #expect(controller.reconciler.status.lastChanges.creates.allSatisfy { $0.key.type != .cname })

                let port = try #require(await controller.httpPort())
                let status = try await get("http://127.0.0.1:\(port)/status")
                #expect(Self.line(status, "www.example.com") == "www.example.com -> k.example.com (in place)")
                let json = try await get("http://127.0.0.1:\(port)/status?format=json")
                #expect(json.contains(#""cnames":[{"name":"www.example.com","state":"in_place","target":"k.example.com"}]"#))
                let metrics = try await get("http://127.0.0.1:\(port)/metrics")
                #expect(metrics.contains(#"kube_node_dns_cnames{state="in_place"} 1"#))
            }
        }
    }

    @Test func aRecordThatIsNotOursOnACNAMENameIsAConflictAndOnlyAForeignCNAMEIsAdopted() async throws {
        let cf = makeEmulator()
        let txt = try #require(cf.seed(zone: "example.com", type: "TXT", name: "www.example.com", content: "site-verification=abc"))
        let theirs = try #require(cf.seed(zone: "example.com", type: "CNAME", name: "api.example.com", content: "elsewhere.example.net"))
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let reporting = try controller(env, ["--cname-names=www.example.com,api.example.com"], logs: logs)
            try await whileRunning(reporting) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(
                    await EmulatorHarness.eventually {
                        ownedValues(cf) == ["203.0.113.1"] && reporting.reconciler.status.conflicts.count == 2
                    })
                #expect(cf.records(zone: "example.com").contains(txt) && cf.records(zone: "example.com").contains(theirs), "both untouched")
                #expect(Self.cnames(cf, named: "www.example.com").isEmpty)
                let port = try #require(await reporting.httpPort())
                let status = try await get("http://127.0.0.1:\(port)/status")
                #expect(Self.line(status, "api.example.com") == "api.example.com -> k.example.com (conflict)")
                #expect(status.contains("in the way: www.example.com TXT site-verification=abc"))
                let metrics = try await get("http://127.0.0.1:\(port)/metrics")
                #expect(metrics.contains(#"kube_node_dns_cnames{state="conflict"} 2"#))
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("conflict") && $0.contains("api.example.com CNAME") } })
            }
            // --take-ownership adopts the foreign CNAME, and nothing else.
            let adopting = try controller(env, ["--cname-names=www.example.com,api.example.com", "--take-ownership"])
            try await whileRunning(adopting) {
                #expect(
                    await EmulatorHarness.eventually {
                        Self.cnames(cf, named: "api.example.com").map { $0["content"]?.string } == ["k.example.com"]
                            && Self.cnames(cf, named: "api.example.com").first?["comment"]?.string == "kube-node-dns owner=default"
                    })
                #expect(Self.cnames(cf, named: "api.example.com").first?["id"] == theirs["id"], "the same record, adopted")
                #expect(cf.records(zone: "example.com").contains(txt))
                #expect(Self.cnames(cf, named: "www.example.com").isEmpty)
            }
        }
    }

    @Test func theKitsEarlierLayoutMovesToTheCNAMEInOneWrite() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            // Before: the addresses on www itself.
            let before = try controller(env, ["--dns-name=www.example.com"])
            try await whileRunning(before) {
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
            }
            // After: DNS_NAME=k.example.com (the controller's default here) and CNAME_NAMES=www.example.com.
            let after = try controller(env, ["--cname-names=www.example.com"])
            try await whileRunning(after) {
                #expect(
                    await EmulatorHarness.eventually {
                        Self.cnames(cf, named: "www.example.com").map { $0["content"]?.string } == ["k.example.com"]
                    })
                let onWWW = cf.records(zone: "example.com").filter { $0["name"]?.string == "www.example.com" }
                #expect(onWWW.count == 1, "the A record gave way to the CNAME")
                #expect(cf.hasRecord(zone: "example.com", name: "k.example.com", content: "203.0.113.1"))
            }
        }
    }
}
