import AsyncHTTPClient
import Emulators
import Foundation
import KubernetesAPI
import Testing

@testable import KubeNodeDNS

/// Deletes a pod through the API, as `kubectl delete pod` or a DaemonSet rollout does.
func deletePodThroughTheAPI(_ env: EmulatorHarness.Running, namespace: String, _ name: String) async throws -> Int {
    var request = HTTPClientRequest(url: "\(env.kubeURL)/api/v1/namespaces/\(namespace)/pods/\(name)")
    request.method = .DELETE
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
    _ = try await response.body.collect(upTo: 1 << 20)
    return Int(response.status.code)
}

@Suite(.serialized) struct ServingPodEndToEndTests {
    static let flags = ["--serving-pods=www/app=nginx"]

    /// A node that is Ready before its nginx is published only once its pod is Ready; a pod that starts
    /// terminating takes its node out at once; every pod gone at once holds the names.
    @Test func aNodeIsPublishedOnlyWhileItsServingPodIsReady() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.createNamespace("www")
            let logs = LogLines()
            let controller = try controller(env, Self.flags, logs: logs)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                env.kube.putPod(NodeFixtures.pod("nginx-a", node: "a"), namespace: "www")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })

                // b joins Ready; its nginx is scheduled but not Ready yet.
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                env.kube.putPod(NodeFixtures.pod("nginx-b", node: "b", ready: false), namespace: "www")
                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue {
                            $0.contains { $0.contains("b is not published: no Ready pod of www/app=nginx on it") }
                        }
                    })
                #expect(ownedValues(cf) == ["203.0.113.1"], "b must not be published before its nginx is Ready")
                env.kube.mutatePod(namespace: "www", "nginx-b") { NodeFixtures.setPodReady(&$0, true) }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("b joined DNS: 203.0.113.2") } })

                // A graceful delete of nginx-b: deletionTimestamp first, and b leaves before the pod is gone.
                // (How fast is the benchmark's to say, not a timed test's: the bench's reaction rows.)
                let deleted = try await deletePodThroughTheAPI(env, namespace: "www", "nginx-b")
                #expect(deleted == 200)
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                #expect(env.kube.objects("pods").contains { $0[path: ["metadata", "name"]]?.string == "nginx-b" })
                #expect(
                    logs.lines.withLockedValue {
                        $0.contains { $0.contains("b left DNS: no Ready pod of www/app=nginx on it (terminating)") }
                    })
                #expect(env.kube.finishTermination(namespace: "www", "nginx-b"))

                // Every serving pod gone at once (a DaemonSet deleted): the name keeps its last records.
                env.kube.putPod(NodeFixtures.pod("nginx-b2", node: "b"), namespace: "www")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                for pod in ["nginx-a", "nginx-b2"] { env.kube.mutatePod(namespace: "www", pod) { NodeFixtures.setPodReady(&$0, false) } }
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == ["k.example.com"] })
                #expect(ownedValues(cf) == ["203.0.113.1", "203.0.113.2"])

                // The Events say the same.
                let reasons = Set(env.kube.objects("events").compactMap { $0["reason"]?.string })
                #expect(reasons.isSuperset(of: ["DNSNodeJoined", "DNSNodeLeft", "DNSNodeExcluded"]), "\(reasons)")
            }
        }
    }

    /// An API server restart loses no pod change: the pods watch resumes as the node watch does.
    @Test func thePodWatchSurvivesAnAPIServerRestart() async throws {
        let cf = makeEmulator()
        let kube = RestartableKube(emulator: KubeAPIEmulator())
        await kube.start()
        kube.emulator.createNamespace("www")
        try await EmulatorHarness.serving({ try await cf.run(logger: EmulatorHarness.quietLogger, onReady: $0) }) { cfPort in
            let config = try Configuration.parse(
                arguments: [
                    "--dns-name=k.example.com", "--cloudflare-api-token=\(token)",
                    "--cloudflare-api-url=http://127.0.0.1:\(cfPort)/client/v4", "--debounce=10ms", "--http-address=off",
                ] + Self.flags, environment: [:])
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: "http://127.0.0.1:\(kube.port)"), logger: LogLines().logger())
            try await whileRunning(controller) {
                kube.emulator.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                kube.emulator.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                kube.emulator.putPod(NodeFixtures.pod("nginx-a", node: "a"), namespace: "www")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                await kube.stop()
                // Written while the API server is down, as etcd keeps it.
                kube.emulator.putPod(NodeFixtures.pod("nginx-b", node: "b"), namespace: "www")
                await kube.start()
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
            }
        }
        await kube.stop()
    }

    /// The pods reflector follows the node reflector's rules: a dropped watch and a 410 lose nothing.
    @Test func thePodWatchSurvivesDroppedWatchesAnd410() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.createNamespace("www")
            let controller = try controller(env, Self.flags)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                env.kube.putPod(NodeFixtures.pod("nginx-a", node: "a"), namespace: "www")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                env.kube.dropWatches()
                env.kube.putPod(NodeFixtures.pod("nginx-b", node: "b"), namespace: "www")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                env.kube.compactNow()
                env.kube.dropWatches()
                env.kube.mutatePod(namespace: "www", "nginx-a") { NodeFixtures.setPodReady(&$0, false) }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.2"] })
                // A pod in another namespace, or with other labels, never counts.
                env.kube.putPod(NodeFixtures.pod("other-a", node: "a"), namespace: "default")
                env.kube.putPod(NodeFixtures.pod("web-a", node: "a", labels: ["app": "web"]), namespace: "www")
                env.kube.putNode(NodeFixtures.node("c", external: ["203.0.113.3"]))
                #expect(await EmulatorHarness.eventually { controller.store.snapshots.count == 3 })
                #expect(ownedValues(cf) == ["203.0.113.2"])
                #expect(controller.pods?.snapshots.map(\.name).sorted() == ["nginx-a", "nginx-b", "web-a"].filter { $0 != "web-a" })
            }
        }
    }

    /// /status lists every node with every rule that leaves it out.
    @Test func statusSaysWhyEachNodeIsInOrOut() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.createNamespace("www")
            let logs = LogLines()
            let controller = try controller(env, Self.flags + ["--node-selector=role!=batch"], logs: logs)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("ok", external: ["203.0.113.1"]))
                env.kube.putPod(NodeFixtures.pod("nginx-ok", node: "ok"), namespace: "www")
                env.kube.putNode(NodeFixtures.node("down", external: ["203.0.113.2"], ready: "False"))
                env.kube.putNode(NodeFixtures.node("cordoned", external: ["203.0.113.3"], unschedulable: true))
                env.kube.putPod(NodeFixtures.pod("nginx-cordoned", node: "cordoned"), namespace: "www")
                env.kube.putNode(NodeFixtures.node("batch", external: ["203.0.113.4"], labels: ["role": "batch"]))
                env.kube.putNode(NodeFixtures.node("nopod", external: ["203.0.113.5"]))
                env.kube.putNode(NodeFixtures.node("noaddress", external: ["not-an-address"]))
                env.kube.putPod(NodeFixtures.pod("nginx-noaddress", node: "noaddress"), namespace: "www")
                // Cloudflare holds the record a moment before the controller has read the answer and recorded it.
                #expect(
                    await EmulatorHarness.eventually {
                        ownedValues(cf) == ["203.0.113.1"]
                            && controller.reconciler.lastKnownRecords?.contains { $0.value == "203.0.113.1" } == true
                    })
                let port = try #require(await controller.httpPort())
                let text = try await get("http://127.0.0.1:\(port)/status")
                for expected in [
                    "ok", "published", "203.0.113.1", "down", "not Ready (False)", "tainted node.kubernetes.io/not-ready",
                    "cordoned", "does not match selector role!=batch", "no Ready pod of www/app=nginx on it",
                    "no usable address", "k.example.com", "owned", "Cloudflare requests in the last 5 minutes",
                ] {
                    #expect(text.contains(expected), "missing \(expected) in:\n\(text)")
                }
                let json = try await get("http://127.0.0.1:\(port)/status?format=json")
                #expect(json.contains("\"nodes\":[") && json.contains("\"reasons\":[") && !json.contains(token))
                // The log line and the Node Event say the same, once, for each reason.
                let why = [
                    ("down", "not Ready (False)"), ("cordoned", "cordoned"), ("batch", "does not match selector role!=batch"),
                    ("nopod", "no Ready pod of www/app=nginx on it"), ("noaddress", "no usable address"),
                ]
                #expect(
                    await EmulatorHarness.eventually {
                        env.kube.objects("events").filter { $0["reason"]?.string == "DNSNodeExcluded" }.count >= why.count
                    })
                let lines = logs.lines.withLockedValue { $0 }
                let events = env.kube.objects("events")
                for (node, reason) in why {
                    let said = lines.filter { $0.contains("\(node) is not published:") && $0.contains(reason) }
                    #expect(said.count == 1, "\(node): \(said)")
                    #expect(
                        events.contains {
                            $0[path: ["involvedObject", "name"]]?.string == node && ($0["message"]?.string ?? "").contains(reason)
                        }, "no Event for \(node)")
                }
            }
        }
    }
}

@Suite(.serialized) struct ExplainTests {
    /// `--help` states the range of every bounded flag.
    @Test func helpStatesEveryBoundedRange() async throws {
        let process = try kubeNodeDNS(["--help"])
        #expect(await process.waitForExit() == 0)
        #expect(await EmulatorHarness.eventually { process.lines.contains { $0.contains("--kube-read-timeout") } })
        let help = process.lines.joined(separator: "\n")
        for expected in [
            "takes 1 to 100", "takes 1 to 3500", "takes at least 1s", "takes at least 100ms", "1 (automatic) or 60 to 86400",
        ] {
            #expect(help.contains(expected), "missing \(expected)")
        }
    }

    /// `--dry-run --once` writes nothing and prints the table of nodes and names, so a new user sees what would
    /// happen before granting the token edit rights.
    @Test func dryRunOncePrintsTheTable() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"], unschedulable: true))
            let process = try startController(env, ["--dry-run", "--once", "--http-address=off"])
            #expect(await process.waitForExit() == 0)
            #expect(await EmulatorHarness.eventually { process.lines.contains { $0.hasPrefix("NAME ") } })
            let output = process.lines.joined(separator: "\n")
            #expect(output.contains("would add k.example.com A 203.0.113.1"), "\(output)")
            let rows = process.lines.filter { $0.hasPrefix("a ") || $0.hasPrefix("b ") }
            #expect(rows.contains { $0.contains("published") && $0.contains("203.0.113.1") }, "\(rows)")
            #expect(rows.contains { $0.contains("left out") && $0.contains("cordoned") }, "\(rows)")
            #expect(!cf.exchanges.contains { $0.method != "GET" }, "a dry run writes nothing")
        }
    }
}
