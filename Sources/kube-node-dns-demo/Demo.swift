import Emulators
import Foundation
import KubeNodeDNS
import KubernetesAPI
import Logging
import NodeDNSCore

/// The newcomer's first command: both emulators in-process, the real controller between them, and a story.
@main
struct Demo {
    static let zone = "example.com"
    static let name = "kubernetes.example.com"
    /// The site's name, kept as a CNAME to `name` (the article's last step).
    static let site = "www.example.com"
    static let token = "demo-token-not-a-secret"

    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let rfc2136 = arguments == ["--provider", "rfc2136"] || arguments == ["--provider=rfc2136"]
        guard arguments.isEmpty || rfc2136 || arguments == ["--provider=cloudflare"] || arguments == ["--provider", "cloudflare"]
        else {
            print("usage: kube-node-dns-demo [--provider cloudflare|rfc2136]")
            exit(2)
        }
        if rfc2136 && !RealDNSServer.Kind.bind.isInstalled {
            print(
                "the RFC 2136 demo runs a throwaway BIND 9 and checks it with dig; install them first:\n    sudo apt-get install bind9 bind9-utils bind9-dnsutils"
            )
            exit(2)
        }
        let ok: Bool
        do {
            ok = try await run(rfc2136: rfc2136)
        } catch {
            print("demo failed: \(error)")
            exit(1)
        }
        exit(ok ? 0 : 1)
    }

    static func table(_ cloudflare: CloudflareEmulator) -> String {
        let rows = cloudflare.records(zone: zone).filter { [name, site].contains($0["name"]?.string) }
            .map { record -> String in
                let content = record["content"]?.string ?? ""
                let comment = record["comment"]?.string ?? "(no comment)"
                let type = (record["type"]?.string ?? "").padding(toLength: 5, withPad: " ", startingAt: 0)
                let owner = (record["name"]?.string ?? "").padding(toLength: name.count, withPad: " ", startingAt: 0)
                return "    \(type)  \(owner)  \(content.padding(toLength: 22, withPad: " ", startingAt: 0))  \(comment)"
            }.sorted()
        return rows.isEmpty ? "    (no records)" : rows.joined(separator: "\n")
    }

    /// Where the demo's records live, and how it reads them back: the Cloudflare emulator, or a real BIND.
    struct Backend: Sendable {
        var title: String
        var arguments: [String]
        /// The addresses kube-node-dns owns on the name.
        var owned: @Sendable () -> Set<String>
        var table: @Sendable () -> String
        /// Whether the foreign record is exactly as it was, and how it reads now.
        var foreign: @Sendable () -> (unchanged: Bool, text: String)
        /// The site's CNAME as the provider holds it (the whole record, so that any change shows), or nil.
        var siteCNAME: @Sendable () -> String?
        var secret: String
    }

    static func cloudflareBackend(_ cloudflare: CloudflareEmulator, url: String) -> Backend {
        let foreign = cloudflare.seed(zone: zone, type: "A", name: name, content: "198.51.100.99", ttl: 300, comment: "added by hand")
        return Backend(
            title: "Cloudflare emulator at \(url)",
            arguments: ["--cloudflare-api-token=\(token)", "--cloudflare-api-url=\(url)"],
            owned: {
                Set(
                    cloudflare.records(zone: zone).filter {
                        $0["name"]?.string == name && $0["comment"]?.string == "kube-node-dns owner=demo"
                    }.compactMap { $0["content"]?.string })
            },
            table: { table(cloudflare) },
            foreign: {
                let now = cloudflare.records(zone: zone).first { $0["id"] == foreign?["id"] }
                return (now == foreign, "\(now?["content"]?.string ?? "gone") \"\(now?["comment"]?.string ?? "")\"")
            },
            siteCNAME: {
                cloudflare.records(zone: zone).first { $0["name"]?.string == site && $0["type"]?.string == "CNAME" }
                    .map { "\($0)" }
            }, secret: token)
    }

    static func bindBackend(_ server: RealDNSServer) throws -> Backend {
        let fqdn = name
        try server.nsupdate(["update add \(fqdn) 300 A 198.51.100.99"])
        let foreign = server.dig(fqdn, "A")
        @Sendable func owned() -> Set<String> {
            let marker = server.dig("_kube-node-dns.\(fqdn)", "TXT").joined(separator: " ")
            return server.values(fqdn, "A").filter { marker.contains("\"A \($0)\"") }
        }
        return Backend(
            title: "a real BIND 9 on 127.0.0.1:\(server.port) (zone \(server.zone), TSIG key \(server.keyName))",
            arguments: [
                "--provider=rfc2136", "--rfc2136-server=127.0.0.1:\(server.port)", "--rfc2136-zone=\(server.zone)",
                "--rfc2136-tsig-key-name=\(server.keyName)", "--rfc2136-tsig-secret=\(server.secret)",
            ],
            owned: owned,
            table: {
                let lines = (server.dig(fqdn, "A") + server.dig("_kube-node-dns.\(fqdn)", "TXT") + server.dig(site, "CNAME"))
                    .map { "    " + $0 }
                return lines.isEmpty ? "    (no records)" : lines.joined(separator: "\n")
            },
            foreign: {
                let line = server.dig(fqdn, "A").first { $0.hasSuffix(" 198.51.100.99") }
                return (line != nil && foreign.contains(line!), line ?? "gone")
            },
            siteCNAME: {
                let lines = server.dig(site, "CNAME") + server.dig("_kube-node-dns.\(site)", "TXT")
                return lines.isEmpty ? nil : lines.joined(separator: "\n")
            }, secret: server.secret)
    }

    /// A node's nginx as the health checks see it: `/nginx-health` answering 200 on the node's InternalIP, a
    /// loopback address (127.0.80.N) so that no probe leaves the machine, until the demo kills it. The controller
    /// probes `http://{internal_address}:PORT/nginx-health` as the kit probes `http://{address}/nginx-health`.
    final class StandInNginx: Sendable {
        let stopper = ServerStopper()

        /// Starts it on `address` (port 0: any free port, which every other stand-in then takes on its own address).
        static func start(address: String, port: Int) async throws -> (StandInNginx, port: Int) {
            let nginx = StandInNginx()
            let (ports, ready) = AsyncStream<Int>.makeStream()
            Task {
                do {
                    try await EmulatorServer.serve(
                        host: address, port: port, logger: EmulatorHarness.quietLogger, stopper: nginx.stopper,
                        handler: { request in
                            request.path == "/nginx-health" ? .full(status: 200, headers: [], body: Array("ok\n".utf8)) : .json(404, [:])
                        }, onReady: { ready.yield($0) })
                } catch {
                    print("the stand-in nginx on \(address):\(port) failed: \(error)")
                }
                ready.finish()
            }
            var iterator = ports.makeAsyncIterator()
            guard let bound = await iterator.next() else {
                throw CommandLineOptions.Invalid(description: "cannot listen on \(address):\(port) for the demo's stand-in nginx")
            }
            return (nginx, bound)
        }

        /// As a SIGKILL would: the port closes, and connections are refused.
        func kill() async { await stopper.stop() }
    }

    /// The node lifecycle with a shortened grace period and monitor pass, so that the story takes seconds.
    static let lifecycle = NodeLifecycleSettings(monitorPeriod: .seconds(2), gracePeriod: .seconds(4), leaseRenewInterval: .seconds(1))

    static func run(rfc2136: Bool) async throws -> Bool {
        let cloudflare = CloudflareEmulator(options: .init(zones: [zone], tokens: [.init(token)]))
        let bind = rfc2136 ? try await RealDNSServer(kind: .bind, zone: zone) : nil
        defer { bind?.kill() }
        var kubeOptions = KubeAPIEmulator.Options()
        kubeOptions.nodeLifecycle = lifecycle
        return try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: kubeOptions), cloudflare: cloudflare) { env in
            let backend = try bind.map(bindBackend) ?? cloudflareBackend(cloudflare, url: env.cloudflareURL)
            print("kube-node-dns demo: Kubernetes API emulator at \(env.kubeURL), records in \(backend.title)\n")
            print("0. Somebody else already has a record on \(name) (kube-node-dns does not own it):")
            print(backend.table())

            // Each node's nginx, for the health checks (the kit's settings: every 1 s, 500 ms to answer, out after 2
            // failures): node-N's on 127.0.80.N, all on one port.
            let (firstNginx, nginxPort) = try await StandInNginx.start(address: "127.0.80.1", port: 0)
            var nginxes = ["node-1": firstNginx]
            for index in 2...5 {
                nginxes["node-\(index)"] = try await StandInNginx.start(address: "127.0.80.\(index)", port: nginxPort).0
            }
            var config = try Configuration.parse(
                arguments: [
                    "--dns-name=\(name)", "--cname-names=\(site)", "--debounce=20ms", "--http-address=off", "--owner-id=demo",
                    "--log-level=info",
                    "--serving-pods=www/app=nginx", "--health-check=http://{internal_address}:\(nginxPort)/nginx-health",
                    "--health-check-interval=1s", "--health-check-timeout=500ms",
                ] + backend.arguments, environment: [:])
            config.leaseIdentity = "demo"
            // The controller's own explanations (why a node joins or leaves) print under each step.
            var logger = Logger(label: "kube-node-dns") { label in
                ControllerLogHandler(label: label, level: .info, json: false, secrets: [backend.secret]) { line in
                    guard !line.contains(" dns: ") else { return }
                    print("    log: " + line.split(separator: " ", maxSplits: 1).last.map(String.init)!)
                }
            }
            logger.logLevel = .info
            env.kube.createNamespace("www")
            config.leaseIdentity = "demo"
            let controller = try Controller.make(config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logger)
            var passed = true
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await controller.run(signals: false) }
                func step(
                    _ title: String, expect: Set<String>, _ change: () -> Void, during: () -> Void = {}
                ) async {
                    let before = controller.reconciler.status.reconciles
                    change()
                    let reached = await EmulatorHarness.eventually {
                        during()
                        guard controller.reconciler.status.reconciles > before else { return false }
                        return backend.owned() == expect
                    }
                    passed = passed && reached
                    print("\n\(title)\(reached ? "" : "  <-- DID NOT CONVERGE")")
                    print(backend.table())
                }
                let kube = env.kube
                await step(
                    "1. Three nodes come up, Ready, each with its nginx pod Ready:", expect: ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
                ) {
                    for index in 1...3 {
                        kube.putNode(NodeFixtures.node("node-\(index)", external: ["203.0.113.\(index)"], internal: ["127.0.80.\(index)"]))
                        kube.startKubelet("node-\(index)")
                        kube.putPod(NodeFixtures.pod("nginx-\(index)", node: "node-\(index)"), namespace: "www")
                    }
                }
                // The site's name, written once beside the first records: the article's CNAME step, done for you.
                let cnameWritten = await EmulatorHarness.eventually { backend.siteCNAME() != nil }
                let cnameAtStart = backend.siteCNAME()
                passed = passed && cnameWritten
                print("    \(site) is a CNAME to \(name)\(cnameWritten ? "" : "  <-- NOT WRITTEN")")
                let grace = Demo.lifecycle.gracePeriod
                let killed = ContinuousClock.now
                var unknownAt = killed
                await step(
                    "2. node-2's kubelet dies (a kernel panic). Kubernetes marks it Unknown after its grace period (\(String(format: "%.1f", grace.inSeconds)) s "
                        + "in this demo; 50 s by default), and its address leaves DNS at once:",
                    expect: ["203.0.113.1", "203.0.113.3"]
                ) {
                    kube.killKubelet("node-2")
                } during: {
                    if unknownAt == killed && kube.readyStatus(of: "node-2") == "Unknown" { unknownAt = .now }
                }
                print(
                    "    Kubernetes: Unknown after \(String(format: "%.1f", killed.duration(to: unknownAt).inSeconds)) s; DNS: \(Int(unknownAt.duration(to: .now).inSeconds * 1000)) ms later"
                )
                var readyAt = ContinuousClock.now
                await step(
                    "3. node-2's kubelet and nginx are back: it returns at its Ready, not when the lifecycle controller lifts its "
                        + "unreachable:NoExecute taint on its next pass (every \(String(format: "%.0f", Demo.lifecycle.monitorPeriod.inSeconds)) s here, 5 s by default):",
                    expect: ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
                ) {
                    kube.reviveKubelet("node-2")
                    readyAt = .now
                    kube.mutatePod(namespace: "www", "nginx-2") { NodeFixtures.setPodReady(&$0, true) }
                }
                let lateTaint = kube.taints(of: "node-2").contains("node.kubernetes.io/unreachable:NoExecute")
                print(
                    "    back in DNS \(Int(readyAt.duration(to: .now).inSeconds * 1000)) ms after Ready; the NoExecute taint \(lateTaint ? "is still on it" : "is gone already")"
                )
                await step("4. node-3 is cordoned (kubectl cordon): it leaves.", expect: ["203.0.113.1", "203.0.113.2"]) {
                    kube.mutateNode("node-3") { NodeFixtures.setUnschedulable(&$0, true) }
                }
                await step(
                    "5. node-4 joins the cluster, Ready, but its nginx is still starting: not published yet.",
                    expect: ["203.0.113.1", "203.0.113.2"]
                ) {
                    kube.putNode(NodeFixtures.node("node-4", external: ["203.0.113.4"], internal: ["127.0.80.4"]))
                    kube.startKubelet("node-4")
                    kube.putPod(NodeFixtures.pod("nginx-4", node: "node-4", ready: false), namespace: "www")
                }
                // The demo's pacing, as nginx would take a moment to pull and start.
                try await Task.sleep(for: .seconds(2))
                await step(
                    "6. Two seconds later node-4's nginx is Ready: only now does node-4 join.",
                    expect: ["203.0.113.1", "203.0.113.2", "203.0.113.4"]
                ) {
                    kube.mutatePod(namespace: "www", "nginx-4") { NodeFixtures.setPodReady(&$0, true) }
                }
                await step(
                    "6b. node-5 joins, Ready, with its nginx Ready.", expect: ["203.0.113.1", "203.0.113.2", "203.0.113.4", "203.0.113.5"]
                ) {
                    kube.putNode(NodeFixtures.node("node-5", external: ["203.0.113.5"], internal: ["127.0.80.5"]))
                    kube.putPod(NodeFixtures.pod("nginx-5", node: "node-5"), namespace: "www")
                }
                await step(
                    "6c. cluster-autoscaler picks node-5 for scale-down (taint ToBeDeletedByClusterAutoscaler): it leaves DNS at "
                        + "once, while Kubernetes still calls it Ready and before the autoscaler drains and deletes it.",
                    expect: ["203.0.113.1", "203.0.113.2", "203.0.113.4"]
                ) {
                    kube.mutateNode("node-5") {
                        NodeFixtures.addTaint(&$0, key: "ToBeDeletedByClusterAutoscaler", effect: "NoSchedule", value: "1764900000")
                    }
                }
                _ = kube.deleteNode("node-5")
                let died = ContinuousClock.now
                await nginxes["node-4"]?.kill()
                await step(
                    "6d. node-4's nginx dies (an OOM kill, a crash) while Kubernetes still calls node-4 and its pod Ready: the "
                        + "health checks (every 1 s, out after 2 failures) take it out.",
                    expect: ["203.0.113.1", "203.0.113.2"]
                ) {}
                print(
                    "    out of DNS \(String(format: "%.1f", died.duration(to: .now).inSeconds)) s after nginx died; Kubernetes "
                        + "would notice only when the kubelet's readiness probe fails, and not at all for a hang behind a "
                        + "passing probe")
                let restarted = ContinuousClock.now
                nginxes["node-4"] = try await StandInNginx.start(address: "127.0.80.4", port: nginxPort).0
                await step(
                    "6e. node-4's nginx is restarted: back after 2 passing checks.", expect: ["203.0.113.1", "203.0.113.2", "203.0.113.4"]
                ) {}
                print("    back in DNS \(String(format: "%.1f", restarted.duration(to: .now).inSeconds)) s after nginx restarted")
                await step(
                    "7. node-1's nginx starts terminating (a DaemonSet rollout): node-1 leaves before nginx stops.",
                    expect: ["203.0.113.2", "203.0.113.4"]
                ) {
                    kube.mutatePod(namespace: "www", "nginx-1") { pod in
                        var metadata = pod["metadata"]?.object ?? [:]
                        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                        pod["metadata"] = .object(metadata)
                    }
                }
                await step("8. node-1 is deleted.", expect: ["203.0.113.2", "203.0.113.4"]) {
                    _ = kube.deleteNode("node-1")
                    kube.finishTermination(namespace: "www", "nginx-1")
                }
                let writesBefore = controller.reconciler.status.writes
                await step(
                    "9. Every node goes NotReady at once: the records are kept and a warning is logged.",
                    expect: ["203.0.113.2", "203.0.113.4"]
                ) {
                    for node in ["node-2", "node-4"] { kube.mutateNode(node) { NodeFixtures.setReady(&$0, "False") } }
                }
                let held = await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == [name] }
                // The two NotReady writes may reach the controller a moment apart: the first reconcile then acts on
                // node-2 alone, and the rail puts its record back when node-4 follows (two writes, the same records).
                let outageWrites = controller.reconciler.status.writes - writesBefore
                let cnameUntouched = backend.siteCNAME() == cnameAtStart
                passed = passed && held && backend.owned() == ["203.0.113.2", "203.0.113.4"] && cnameUntouched
                print("    \(site)'s CNAME: \(cnameUntouched ? "untouched" : "CHANGED (bug)") while \(name) is held")
                print(
                    "    held names: \(controller.reconciler.status.heldNames.map(\.text)) (record writes during the outage: \(outageWrites)"
                        + (outageWrites == 0 ? ")" : ": node-2 left first, and its record was put back when node-4 followed)"))

                let (foreignSafe, foreignText) = backend.foreign()
                passed = passed && foreignSafe
                print("\n10. The record somebody else owns was \(foreignSafe ? "never touched" : "CHANGED (bug)"): \(foreignText)")
                if bind == nil {
                    let calls = cloudflare.exchanges
                    let writes = calls.filter { $0.method != "GET" }.count
                    print(
                        "\nCloudflare API calls: \(calls.count) in all (\(calls.count - writes) reads, \(writes) writes), for 13 changes.")
                } else {
                    print(
                        "\nRecord writes: \(controller.reconciler.status.writes), in \(controller.reconciler.status.reconciles) reconciles."
                    )
                }
                await controller.shutdown()
                try await group.waitForAll()
            }
            for nginx in nginxes.values { await nginx.kill() }
            print(passed ? "\ndemo passed: DNS followed the nodes and nothing foreign was touched." : "\ndemo FAILED: see the marks above.")
            return passed
        }
    }
}
