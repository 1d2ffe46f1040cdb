import AsyncHTTPClient
import Emulators
import Foundation
import KubernetesAPI
import Logging
import NodeDNSCore
import NIOConcurrencyHelpers
import Testing

@testable import KubeNodeDNS

let token = "e2e-secret-token-value"

func makeEmulator() -> CloudflareEmulator {
    CloudflareEmulator(options: .init(zones: ["example.com"], tokens: [.init(token)]))
}

func ownedValues(_ cf: CloudflareEmulator, owner: String = "default") -> Set<String> {
    Set(
        cf.records(zone: "example.com").filter { $0["comment"]?.string == "kube-node-dns owner=\(owner)" }.compactMap {
            $0["content"]?.string
        })
}

/// Collects every log line so tests can look for secrets.
final class LogLines: Sendable {
    let lines = NIOLockedValueBox<[String]>([])
    func logger(level: Logger.Level = .debug) -> Logger {
        Logger(label: "e2e") { label in
            ControllerLogHandler(label: label, level: level, json: true, secrets: []) { line in
                self.lines.withLockedValue { $0.append(line) }
            }
        }
    }
}

func controller(_ env: EmulatorHarness.Running, _ extra: [String] = [], logs: LogLines = LogLines()) throws -> Controller {
    let config = try Configuration.parse(
        arguments: [
            "--dns-name=k.example.com", "--cloudflare-api-token=\(token)", "--cloudflare-api-url=\(env.cloudflareURL)",
            "--debounce=10ms", "--http-address=127.0.0.1:0",
        ] + extra,
        environment: [:])
    return try Controller.make(config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logs.logger())
}

/// Runs the controller for the body's length and always shuts it down, so that a failed `#require` in the
/// body cannot leave the task group waiting for a controller that never stops.
func whileRunning(_ controller: Controller, _ body: () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await controller.run(signals: false) }
        do {
            try await body()
        } catch {
            await controller.shutdown()
            throw error
        }
        await controller.shutdown()
        try await group.waitForAll()
    }
}

@Suite(.serialized) struct EndToEndTests {
    @Test func followsNodesIgnoresHeartbeatsAndKeepsSecrets() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, logs: logs)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                env.kube.mutateNode("b") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                // A status heartbeat changes nothing relevant: the store sees it, the provider does not.
                let callsBefore = cf.exchanges.count
                let eventsBefore = controller.store.eventCount
                env.kube.mutateNode("a") { NodeFixtures.setHeartbeat(&$0, "2026-01-01T00:00:10Z") }
                #expect(await EmulatorHarness.eventually { controller.store.eventCount > eventsBefore })
                env.kube.mutateNode("b") { NodeFixtures.setReady(&$0, "True") }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(cf.exchanges.count - callsBefore == 1, "only the write for b, nothing for the heartbeat")
                // A watch drop and a compaction mid-run lose nothing.
                env.kube.dropWatches()
                env.kube.compactNow()
                env.kube.putNode(NodeFixtures.node("c", external: ["203.0.113.3"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"] })
                // Cloudflare storms end in convergence.
                cf.faults.inject(status: 429, count: 2, retryAfter: 1)
                cf.faults.inject(status: 502, count: 2)
                env.kube.deleteNode("a")
                #expect(await EmulatorHarness.eventually(timeout: 30) { ownedValues(cf) == ["203.0.113.2", "203.0.113.3"] })
                // Ops endpoints.
                let port = await controller.httpPort()!
                let metrics = try await get("http://127.0.0.1:\(port)/metrics")
                #expect(metrics.contains("kube_node_dns_dns_changes_total") && metrics.contains("kube_node_dns_eligible_nodes 2"))
                #expect(!metrics.contains(token))
                let ready = try await get("http://127.0.0.1:\(port)/readyz")
                #expect(ready == "ok\n")
                let events = env.kube.objects("events")
                #expect(events.contains { $0["reason"]?.string == "DNSRecordAdded" })
                #expect(!events.contains { $0.serialized().contains(token) })
            }
            #expect(!logs.lines.withLockedValue { $0.contains { $0.contains(token) } })
        }
    }

    @Test func storyCordonJoinDeleteAllNotReadyAndAForeignRecord() async throws {
        let cf = makeEmulator()
        // Somebody else's record on the managed name, with node c's address: a conflict, never touched.
        let foreign = try #require(
            cf.seed(zone: "example.com", type: "A", name: "k.example.com", content: "203.0.113.3", ttl: 300, comment: "by hand"))
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, logs: logs)
            try await whileRunning(controller) {
                for (index, name) in ["a", "b", "c"].enumerated() {
                    env.kube.putNode(NodeFixtures.node(name, external: ["203.0.113.\(index + 1)"]))
                }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(
                    await EmulatorHarness.eventually {
                        env.kube.objects("events").contains {
                            $0["reason"]?.string == "DNSRecordConflict" && $0[path: ["involvedObject", "name"]]?.string == "c"
                        }
                    })
                env.kube.mutateNode("b") { NodeFixtures.setUnschedulable(&$0, true) }  // cordoned
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                env.kube.putNode(NodeFixtures.node("d", external: ["203.0.113.4"]))  // joins
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.4"] })
                env.kube.deleteNode("a")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.4"] })
                // Every node NotReady at once: the name keeps its last records, and says why.
                for name in ["b", "c", "d"] { env.kube.mutateNode(name) { NodeFixtures.setReady(&$0, "False") } }
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == ["k.example.com"] })
                // d's record is held: d has not left DNS, and the log and its Event say so.
                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue {
                            $0.contains {
                                $0.contains("d is out by the rules (not Ready (False)")
                                    && $0.contains("but its records are held: every node left k.example.com at once")
                            }
                        }
                    }, "\(logs.lines.withLockedValue { $0 }.filter { $0.contains("DNS") || $0.contains("held") })")
                #expect(
                    !logs.lines.withLockedValue { $0.contains { $0.contains("d left DNS") } },
                    "\(logs.lines.withLockedValue { $0 }.filter { $0.contains("DNS") || $0.contains("held") })")
                #expect(
                    await EmulatorHarness.eventually {
                        env.kube.objects("events").contains {
                            $0["reason"]?.string == "DNSNodeHeld" && $0[path: ["involvedObject", "name"]]?.string == "d"
                        }
                    })
                #expect(ownedValues(cf) == ["203.0.113.4"])
                #expect(cf.records(zone: "example.com").first { $0["id"] == foreign["id"] } == foreign, "the foreign record is untouched")
                #expect(!cf.exchanges.contains { $0.body?.serialized().contains(foreign["id"]?.string ?? "-") == true })
            }
        }
    }

    @Test func dryRunWritesNothingAndOnceExits() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            try await controller(env, ["--dry-run", "--once"]).run(signals: false)
            #expect(cf.exchanges.allSatisfy { $0.method == "GET" } && cf.records(zone: "example.com").isEmpty)
            try await controller(env, ["--once"]).run(signals: false)
            #expect(ownedValues(cf) == ["203.0.113.1"])
        }
    }

    @Test func twoReplicasOnlyTheLeaderWritesAndShutdownHandsOver() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let lease = ["--leader-elect", "--lease-duration=3s", "--lease-renew-deadline=2s", "--lease-retry-period=100ms"]
            let first = try controller(env, lease + ["--lease-identity=one"])
            let second = try controller(env, lease + ["--lease-identity=two"])
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await first.run(signals: false) }
                #expect(await EmulatorHarness.eventually { first.elector?.canWrite == true })
                group.addTask { try await second.run(signals: false) }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(second.elector?.canWrite == false && second.reconciler.status.writes == 0)
                let stoppedAt = ContinuousClock.now
                await first.shutdown()
                #expect(await EmulatorHarness.eventually { second.elector?.canWrite == true })
                #expect(stoppedAt.duration(to: .now) < .seconds(3), "released, not expired")
                env.kube.putNode(NodeFixtures.node("c", external: ["203.0.113.3"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"] })
                await second.shutdown()
                try await group.waitForAll()
            }
        }
    }

    @Test(arguments: [
        (["--cloudflare-api-token=t"], "no DNS name"),
        (["--dns-name=k.example.com"], "no Cloudflare credentials"),
        (["--dns-name=k.example.com", "--cloudflare-api-token=t", "--cloudflare-ttl=5"], "--cloudflare-ttl (CF_TTL)"),
        (["--dns-name=bad_name!.example.com", "--cloudflare-api-token=t"], "--dns-name (DNS_NAME)"),
        (["--dns-name=k.example.com", "--cloudflare-api-token=t", "--node-selector=role in web"], "--node-selector"),
        (["--dns-name=k.example.com", "--cloudflare-api-token=t", "--bogus"], "unknown flag --bogus"),
        (["--dns-name=k.example.com", "--cloudflare-api-token=t", "--debounce=fast"], "--debounce (DEBOUNCE)"),
        (["--dns-name=k.example.com", "--cloudflare-api-token-file=/nonexistent/token"], "cannot read /nonexistent/token"),
        (["--cloudflare-api-token=t", "--node-name-template={node}.n.example.com", "--cname-names=www.example.com"], "needs a --dns-name"),
        (["--dns-name=k.example.com", "--cloudflare-api-token=t", "--cname-names=k.example.com"], "is also a --dns-name"),
        (
            [
                "--dns-name=k.example.com", "--cloudflare-api-token=t", "--node-name-template={node}.n.example.com",
                "--cname-names=a.n.example.com",
            ],
            "is a per-node name of --node-name-template"
        ),
        (
            ["--dns-name=k.example.com", "--cloudflare-api-token=t", "--cname-names=www.example.com=api.example.com"],
            "which is not a --dns-name"
        ),
        (
            ["--dns-name=k.example.com", "--cloudflare-api-token=t", "--cname-names=www.example.com=api.example.com,api.example.com"],
            "a chain or a cycle"
        ),
        (["--dns-name=k.example.com", "--cloudflare-api-token=t", "--cname-names=www.example.com,www.example.com"], "listed twice"),
        (["--dns-name=k.example.com", "--cloudflare-api-token=t", "--cname-names=www!.example.com"], "--cname-names (CNAME_NAMES)"),
        (
            [
                "--dns-name=k.example.com", "--provider=rfc2136", "--rfc2136-server=127.0.0.1", "--rfc2136-zone=example.com",
                "--rfc2136-tsig-key-name=k", "--rfc2136-tsig-secret=c2VjcmV0", "--cname-names=www.example.org",
            ],
            "www.example.org is not inside --rfc2136-zone example.com"
        ),
        (
            [
                "--dns-name=k.example.com", "--provider=rfc2136", "--rfc2136-server=127.0.0.1", "--rfc2136-zone=example.com",
                "--rfc2136-tsig-key-name=k", "--rfc2136-tsig-secret=c2VjcmV0", "--cname-names=example.com",
            ],
            "is the apex of --rfc2136-zone example.com"
        ),
    ])
    func badFlagsSayWhatToFix(arguments: [String], message: String) {
        let error = #expect(throws: ConfigurationError.self) { try Configuration.parse(arguments: arguments, environment: [:]) }
        #expect(error?.description.contains(message) == true, "\(String(describing: error))")
    }

    @Test func originalFlagsAndEnvironmentKeepWorking() throws {
        let config = try Configuration.parse(
            arguments: ["-dns-name", "a.example.com,b.example.com", "--cloudflare-proxy=false", "--use-internal-ip"],
            environment: ["CF_API_TOKEN": "t", "CF_TTL": "300", "CF_PROXY": "true", "NODE_SELECTOR": "role=web"])
        #expect(config.dnsNames.map(\.text) == ["a.example.com", "b.example.com"])
        #expect(config.cloudflareTTL == 300 && !config.cloudflareProxy && config.useInternalIP)
        #expect(config.nodeSelector?.text == "role=web")
    }

    @Test func cnameNamesPointAtTheFirstDNSNameUnlessTold() throws {
        let config = try Configuration.parse(
            arguments: ["--dns-name=a.example.com,b.example.com"],
            environment: ["CF_API_TOKEN": "t", "CNAME_NAMES": "www.example.com, api.example.com=b.example.com"])
        #expect(
            config.cnames == [
                try DNSName("www.example.com"): try DNSName("a.example.com"), try DNSName("api.example.com"): try DNSName("b.example.com"),
            ])
        #expect(config.recordPolicy.cnames == config.cnames)
    }
}

func get(_ url: String) async throws -> String {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
    return String(buffer: try await response.body.collect(upTo: 1 << 20))
}
