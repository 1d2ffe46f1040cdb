import Emulators
import Foundation
import KubernetesAPI
import Testing

@testable import KubeNodeDNS

let requiredFlags = ["--dns-name=k.example.com", "--cloudflare-api-token=t0k3n"]

@Suite struct ConfigurationHardeningTests {
    /// Every boolean variable set to "" keeps its default: templating that renders a missing value as an empty
    /// string must not turn a safety switch off (it did for EXCLUDE_CORDONED, REQUIRE_READY and EVENTS).
    @Test(arguments: Configuration.booleanFlagNames)
    func anEmptyVariableMeansUnset(variable: String) throws {
        let defaults = try Configuration.parse(arguments: requiredFlags, environment: [:])
        let withEmpty = try Configuration.parse(arguments: requiredFlags, environment: [variable: ""])
        #expect(withEmpty.booleanValues == defaults.booleanValues, "\(variable)=\"\" changed a switch")
    }

    @Test func anEmptyVariableMeansUnsetForValuesToo() throws {
        let config = try Configuration.parse(
            arguments: requiredFlags, environment: ["CF_TTL": "", "EXCLUDE_TAINTS": "", "RESYNC_INTERVAL": "", "OWNER_ID": ""])
        #expect(config.cloudflareTTL == 120, "CF_TTL=\"\" falls back to 120, as in kubernetes-cloudflare-sync")
        #expect(config.excludeTaints == Configuration.defaultExcludedTaints)
        #expect(config.excludeTaints.count == 8 && config.excludeTaints.contains("ToBeDeletedByClusterAutoscaler"))
        #expect(config.resyncInterval == 300 && config.ownerID == "default")
        #expect(try Configuration.parse(arguments: requiredFlags + ["--exclude-taints=none"], environment: [:]).excludeTaints.isEmpty)
    }

    /// The flags and variables inherited from kubernetes-cloudflare-sync, against what the original did with them.
    @Test(arguments: [
        // (environment, flags, what the original published or used)
        (["USE_INTERNAL_IP": "true"], [String](), "internal only when no node has an external address"),
        (["SKIP_EXTERNAL_IP": "true", "USE_INTERNAL_IP": "true"], [], "internal addresses only"),
        (["CF_TTL": ""], [], "ttl 120"),
        (["CF_TTL": "300"], [], "ttl 300"),
        (["CF_PROXY": "true"], [], "proxied"),
        (["CF_PROXY": ""], [], "not proxied"),
        (["DNS_NAME": "a.example.com,b.example.com"], [], "two names"),
        ([:], ["--use-internal-ip"], "internal only when no node has an external address"),
        ([:], ["--cloudflare-ttl=60", "--cloudflare-proxy=true"], "ttl 60, proxied"),
    ])
    func inheritedFlagsMeanWhatTheyMeantInTheOriginal(environment: [String: String], flags: [String], original: String) throws {
        var env = environment
        env["CF_API_TOKEN"] = "t0k3n"
        if env["DNS_NAME"] == nil { env["DNS_NAME"] = "k.example.com" }
        let config = try Configuration.parse(arguments: flags, environment: env)
        let addresses = config.recordPolicy.addresses
        switch original {
        case "internal only when no node has an external address":
            #expect(addresses.internalWhenNoExternal && !addresses.useInternal && addresses.useExternal)
        case "internal addresses only":
            #expect(addresses.internalWhenNoExternal && !addresses.useExternal)
        case "ttl 120": #expect(config.cloudflareTTL == 120)
        case "ttl 300": #expect(config.cloudflareTTL == 300)
        case "proxied": #expect(config.cloudflareProxy)
        case "not proxied": #expect(!config.cloudflareProxy)
        case "two names": #expect(config.dnsNames.map(\.text) == ["a.example.com", "b.example.com"])
        case "ttl 60, proxied": #expect(config.cloudflareTTL == 60 && config.cloudflareProxy)
        default: Issue.record("no expectation for \(original)")
        }
    }

    @Test func aLeaseRetryPeriodOfZeroIsRefused() {
        #expect(throws: ConfigurationError.self) {
            try Configuration.parse(arguments: requiredFlags + ["--leader-elect", "--lease-retry-period=0"], environment: [:])
        }
    }
}

@Suite(.serialized) struct LivenessTests {
    /// /healthz answers from the first second, while Cloudflare is still down at start; /readyz says why not yet.
    @Test func healthzAnswersWhileCloudflareIsDownAtStart() async throws {
        let cf = makeEmulator()
        cf.outage(seconds: 60)
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let controller = try controller(env)
            try await whileRunning(controller) {
                let port = try #require(await controller.httpPort())
                #expect(try await get("http://127.0.0.1:\(port)/healthz") == "ok\n")
                #expect(await EmulatorHarness.eventually { controller.store.synced })
                let ready = try await getWithStatus("http://127.0.0.1:\(port)/readyz")
                #expect(ready.status == 503 && ready.text.contains("credentials"), "\(ready)")
                cf.outage(seconds: 0)
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                #expect(try await get("http://127.0.0.1:\(port)/readyz") == "ok\n")
            }
        }
    }

    /// A proxy in front of the API server freezes every open connection (no FIN, no RST, the kernel still ACKs), as
    /// after a control-plane upgrade or a load-balancer failover. With the default settings the node watch is given
    /// up and replaced within 45 s (client-go over HTTP/2 pings: 42.6 s; our former 2-minute idle timeout: 117.6 s); a
    /// node that joined meanwhile is published then. The watches before the freeze are healthy, quiet ones that end
    /// on schedule, never a false alarm.
    @Test func aFrozenAPIServerConnectionIsReplacedWithin45Seconds() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let proxy = try await FreezingProxy(upstreamPort: env.kubePort)
            let logs = LogLines()
            let config = try configuration(env, ["--events=false"])
            #expect(config.kubeReadTimeout == 35, "the default")
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: "http://127.0.0.1:\(proxy.port)"), logger: logs.logger())
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                proxy.freezeOpenConnections()
                let frozen = ContinuousClock.now
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually(timeout: 90) { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                let noticed = frozen.duration(to: .now)
                print(
                    "frozen API server connection: node watch replaced and b published \(noticed.inSeconds.twoDecimals) s after the freeze")
                #expect(noticed < .seconds(45), "noticed after \(noticed)")
            }
            await proxy.stop()
        }
    }

    /// A quiet, healthy watch with the default settings ends on schedule, before the read idle timeout: nothing is
    /// said as a failure, however long the cluster stays quiet.
    @Test func aQuietWatchIsNeverTakenForAFrozenOne() async throws {
        #expect(Reflector<Node>.watchTimeouts(readIdle: .seconds(35)) == 16...25, "the default: 10 to 19 s of margin")
        #expect(Reflector<Node>.watchTimeouts(readIdle: .seconds(120)) == 73...110)
        // The same rule at a 13 s read idle timeout (watches of 2 to 3 s), through five quiet watches.
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try Controller.make(
                config: try configuration(env, ["--events=false"]), cluster: ClusterConfig(server: env.kubeURL),
                logger: logs.logger(), kubeTimeouts: .init(readIdle: 13, watchStall: 60))
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                let before = env.kube.watchesStarted
                #expect(await EmulatorHarness.eventually(timeout: 60) { env.kube.watchesStarted >= before + 5 })
                let warnings = logs.lines.withLockedValue { $0.filter { $0.contains("\"level\":\"warning\"") } }
                #expect(warnings.isEmpty, "\(warnings)")
            }
        }
    }

    /// An API server that sends the headers and then nothing: the reads time out and are retried, and a loop
    /// stuck anyway turns /healthz red so the kubelet restarts the pod.
    @Test func aStalledAPIServerTurnsHealthzRed() async throws {
        let stalling = try await StallingServer(answer: StallingServer.headersThenNothing)
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let config = try configuration(env, [])
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: "http://127.0.0.1:\(stalling.port)"), logger: LogLines().logger(),
                kubeTimeouts: .init(readIdle: 30, watchStall: 1))
            try await whileRunning(controller) {
                let port = try #require(await controller.httpPort())
                #expect(
                    await EmulatorHarness.eventually {
                        (try? await getWithStatus("http://127.0.0.1:\(port)/healthz"))?.status == 503
                    })
                let body = try await getWithStatus("http://127.0.0.1:\(port)/healthz")
                #expect(body.text.contains("no progress"), "\(body)")
            }
        }
        await stalling.stop()
    }

    @Test func readsOfAStalledAnswerTimeOutAndAreRetried() async throws {
        let stalling = try await StallingServer(answer: StallingServer.headersThenNothing)
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let controller = try Controller.make(
                config: try configuration(env, []), cluster: ClusterConfig(server: "http://127.0.0.1:\(stalling.port)"),
                logger: LogLines().logger(), kubeTimeouts: .init(readIdle: 0.5, watchStall: 30))
            try await whileRunning(controller) {
                #expect(await EmulatorHarness.eventually { stalling.requests >= 3 }, "the stalled list is given up and retried")
                let port = try #require(await controller.httpPort())
                #expect(try await get("http://127.0.0.1:\(port)/healthz") == "ok\n")
            }
        }
        await stalling.stop()
    }

    @Test func aDeletedNodesUIDIsForgotten() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let controller = try controller(env)
            try await whileRunning(controller) {
                for index in 0..<20 { env.kube.putNode(NodeFixtures.node("n\(index)", external: ["203.0.113.\(index + 1)"])) }
                #expect(await EmulatorHarness.eventually { controller.store.uidCount == 20 })
                for index in 0..<19 { env.kube.deleteNode("n\(index)") }
                #expect(await EmulatorHarness.eventually { controller.store.snapshots.count == 1 })
                #expect(controller.store.uidCount == 1)
            }
        }
    }
}

@Suite(.serialized) struct TemplateHardeningTests {
    /// A template that is not `{node}.suffix`: a node deleted while the controller was stopped still has its record
    /// removed at the next start (it was left forever, pointing at a released address), and the per-node names
    /// cost one read together, not one per node.
    @Test func aNodeDeletedWhileStoppedLosesItsRecordWithAnyTemplate() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let flags = ["--node-name-template={node}-k8s.example.com"]
            for index in 1...4 { env.kube.putNode(NodeFixtures.node("n\(index)", external: ["203.0.113.\(index)"])) }
            let first = try controller(env, flags)
            try await whileRunning(first) {
                #expect(await EmulatorHarness.eventually { cf.hasRecord(zone: "example.com", name: "n4-k8s.example.com") })
            }
            #expect(env.kube.deleteNode("n4"))
            cf.clearExchanges()
            let second = try controller(env, flags)
            try await whileRunning(second) {
                #expect(
                    await EmulatorHarness.eventually { !cf.hasRecord(zone: "example.com", name: "n4-k8s.example.com") },
                    "the deleted node's record is removed")
                #expect(ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
            }
            let reads = cf.exchanges.filter { $0.method == "GET" && $0.path.hasSuffix("/dns_records") }.count
            #expect(reads == 2, "one read for the shared name and one for every per-node name, got \(reads)")
        }
    }

    @Test(arguments: ["{node}.{node}.example.com", "nodes.example.com"])
    func aTemplateOneReadCannotCoverIsRefused(template: String) {
        #expect(throws: ConfigurationError.self) {
            try Configuration.parse(arguments: requiredFlags + ["--node-name-template=\(template)"], environment: [:])
        }
    }
}

@Suite(.serialized) struct CNAMEHardeningTests {
    /// A CNAME on one per-node name blocks only that name: the shared name keeps following the nodes, the CNAME
    /// is never touched, and the log names it. A CNAME placed between the read and the write makes Cloudflare
    /// refuse the whole batch: it is split, the good writes land, and the error names the refused one.
    @Test func aCNAMEOnAManagedNameBlocksOnlyThatName() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            cf.seed(zone: "example.com", type: "CNAME", name: "n1.nodes.example.com", content: "elsewhere.example.net")
            let controller = try controller(env, ["--node-name-template={node}.nodes.example.com"], logs: logs)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("n1", external: ["203.0.113.1"]))
                env.kube.putNode(NodeFixtures.node("n2", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(await EmulatorHarness.eventually { cf.hasRecord(zone: "example.com", name: "n2.nodes.example.com") })
                #expect(!cf.hasRecord(zone: "example.com", name: "n1.nodes.example.com", content: "203.0.113.1"))
                #expect(cf.hasRecord(zone: "example.com", name: "n1.nodes.example.com", content: "elsewhere.example.net"))
                #expect(
                    await EmulatorHarness.eventually { controller.reconciler.status.blockedNames.map(\.text) == ["n1.nodes.example.com"] })
                #expect(logs.lines.withLockedValue { $0.filter { $0.contains("n1.nodes.example.com has a CNAME") }.count == 1 })

                // A CNAME behind the controller's back, between its read and its next write.
                cf.seed(zone: "example.com", type: "CNAME", name: "n3.nodes.example.com", content: "elsewhere.example.net")
                env.kube.putNode(NodeFixtures.node("n3", external: ["203.0.113.3"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf).contains("203.0.113.3") }, "the shared name still follows")
                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue {
                            $0.contains { $0.contains("Cloudflare refused add n3.nodes.example.com A 203.0.113.3") }
                        }
                    }, "the refused operation is named")
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.blockedNames.count == 2 })
                #expect(cf.hasRecord(zone: "example.com", name: "n3.nodes.example.com", content: "elsewhere.example.net"))
            }
        }
    }
}

@Suite(.serialized) struct AccountTokenTests {
    /// Cloudflare answers an account-owned token with 401 at /user/tokens/verify; the controller verifies it at
    /// its account's endpoint instead and starts (it exited 1 with "Invalid API Token").
    @Test func anAccountOwnedTokenStartsTheController() async throws {
        let accountToken = "account-owned-token-value"
        let cf = CloudflareEmulator(options: .init(zones: ["example.com"], tokens: [.init(accountToken, accountOwned: true)]))
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let controller = try Controller.make(
                config: try configuration(env, [], token: accountToken), cluster: ClusterConfig(server: env.kubeURL),
                logger: LogLines().logger())
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
            }
            let paths = cf.exchanges.map(\.path)
            #expect(paths.contains { $0.hasSuffix("/user/tokens/verify") })
            #expect(paths.contains { $0.hasSuffix("/accounts/\(CloudflareEmulator.accountID)/tokens/verify") })
        }
    }

    @Test func aTokenThatNeitherEndpointAcceptsStopsWithAClearMessage() async throws {
        let cf = CloudflareEmulator(options: .init(zones: ["example.com"], tokens: [.init("valid-but-not-ours")]))
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let controller = try Controller.make(
                config: try configuration(env, [], token: "not-a-known-token"), cluster: ClusterConfig(server: env.kubeURL),
                logger: LogLines().logger())
            await #expect(throws: (any Error).self) { try await controller.run(signals: false) }
        }
    }
}
