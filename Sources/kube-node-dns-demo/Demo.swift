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
    static let token = "demo-token-not-a-secret"

    static func main() async {
        let ok: Bool
        do {
            ok = try await run()
        } catch {
            print("demo failed: \(error)")
            exit(1)
        }
        exit(ok ? 0 : 1)
    }

    static func table(_ cloudflare: CloudflareEmulator) -> String {
        let rows = cloudflare.records(zone: zone).filter { $0["name"]?.string == name }
            .map { record -> String in
                let content = record["content"]?.string ?? ""
                let comment = record["comment"]?.string ?? "(no comment)"
                return
                    "    \(record["type"]?.string ?? "")  \(name)  \(content.padding(toLength: 15, withPad: " ", startingAt: 0))  \(comment)"
            }.sorted()
        return rows.isEmpty ? "    (no records)" : rows.joined(separator: "\n")
    }

    static func run() async throws -> Bool {
        let cloudflare = CloudflareEmulator(options: .init(zones: [zone], tokens: [.init(token)]))
        return try await EmulatorHarness.withEmulators(cloudflare: cloudflare) { env in
            print("kube-node-dns demo: Kubernetes API emulator at \(env.kubeURL), Cloudflare emulator at \(env.cloudflareURL)\n")
            let foreign = cloudflare.seed(zone: zone, type: "A", name: name, content: "198.51.100.99", ttl: 300, comment: "added by hand")
            print("0. Somebody else already has a record on \(name) (it carries no kube-node-dns owner mark):")
            print(table(cloudflare))

            var config = try Configuration.parse(
                arguments: [
                    "--dns-name=\(name)", "--cloudflare-api-token=\(token)", "--cloudflare-api-url=\(env.cloudflareURL)",
                    "--debounce=20ms", "--http-address=off", "--owner-id=demo", "--log-level=info",
                    "--serving-pods=www/app=nginx",
                ], environment: [:])
            config.leaseIdentity = "demo"
            // The controller's own explanations (why a node joins or leaves) print under each step.
            var logger = Logger(label: "kube-node-dns") { label in
                ControllerLogHandler(label: label, level: .info, json: false, secrets: [token]) { line in
                    guard !line.contains(" dns: ") else { return }
                    print("    log: " + line.split(separator: " ", maxSplits: 1).last.map(String.init)!)
                }
            }
            logger.logLevel = .info
            env.kube.createNamespace("www")
            let controller = try Controller.make(config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logger)
            var passed = true
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await controller.run(signals: false) }
                func step(_ title: String, expect: Set<String>, _ change: () -> Void) async {
                    let before = controller.reconciler.status.reconciles
                    change()
                    let reached = await EmulatorHarness.eventually {
                        guard controller.reconciler.status.reconciles > before else { return false }
                        let values = Set(
                            cloudflare.records(zone: zone).filter {
                                $0["name"]?.string == name && $0["comment"]?.string == "kube-node-dns owner=demo"
                            }.compactMap { $0["content"]?.string })
                        return values == expect
                    }
                    passed = passed && reached
                    print("\n\(title)\(reached ? "" : "  <-- DID NOT CONVERGE")")
                    print(table(cloudflare))
                }
                let kube = env.kube
                await step(
                    "1. Three nodes come up, Ready, each with its nginx pod Ready:", expect: ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
                ) {
                    for index in 1...3 {
                        kube.putNode(NodeFixtures.node("node-\(index)", external: ["203.0.113.\(index)"], internal: ["10.0.0.\(index)"]))
                        kube.putPod(NodeFixtures.pod("nginx-\(index)", node: "node-\(index)"), namespace: "www")
                    }
                }
                await step("2. node-2 goes NotReady: its address leaves DNS.", expect: ["203.0.113.1", "203.0.113.3"]) {
                    kube.mutateNode("node-2") { NodeFixtures.setReady(&$0, "False") }
                }
                await step("3. node-3 is cordoned (kubectl cordon): it leaves too.", expect: ["203.0.113.1"]) {
                    kube.mutateNode("node-3") { NodeFixtures.setUnschedulable(&$0, true) }
                }
                await step(
                    "4. node-4 joins the cluster, Ready, but its nginx is still starting: not published yet.", expect: ["203.0.113.1"]
                ) {
                    kube.putNode(NodeFixtures.node("node-4", external: ["203.0.113.4"]))
                    kube.putPod(NodeFixtures.pod("nginx-4", node: "node-4", ready: false), namespace: "www")
                }
                // The demo's pacing, as nginx would take a moment to pull and start.
                try await Task.sleep(for: .seconds(2))
                await step(
                    "5. Two seconds later node-4's nginx is Ready: only now does node-4 join.", expect: ["203.0.113.1", "203.0.113.4"]
                ) {
                    kube.mutatePod(namespace: "www", "nginx-4") { NodeFixtures.setPodReady(&$0, true) }
                }
                await step(
                    "6. node-1's nginx starts terminating (a DaemonSet rollout): node-1 leaves before nginx stops.",
                    expect: ["203.0.113.4"]
                ) {
                    kube.mutatePod(namespace: "www", "nginx-1") { pod in
                        var metadata = pod["metadata"]?.object ?? [:]
                        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                        pod["metadata"] = .object(metadata)
                    }
                }
                await step("7. node-1 is deleted.", expect: ["203.0.113.4"]) {
                    _ = kube.deleteNode("node-1")
                    kube.finishTermination(namespace: "www", "nginx-1")
                }
                let writesBefore = cloudflare.exchanges.filter { $0.method != "GET" }.count
                await step("8. Every node goes NotReady at once: the records are kept and a warning is logged.", expect: ["203.0.113.4"]) {
                    kube.mutateNode("node-4") { NodeFixtures.setReady(&$0, "False") }
                }
                let held = await EmulatorHarness.eventually { controller.reconciler.status.heldNames.map(\.text) == [name] }
                let outageWrites = cloudflare.exchanges.filter { $0.method != "GET" }.count - writesBefore
                passed = passed && held && outageWrites == 0
                print(
                    "    held names: \(controller.reconciler.status.heldNames.map(\.text)) (Cloudflare writes during the outage: \(outageWrites))"
                )

                let untouched = cloudflare.records(zone: zone).first { $0["id"] == foreign?["id"] }
                let foreignSafe = untouched == foreign
                passed = passed && foreignSafe
                print(
                    "\n9. The record somebody else owns was \(foreignSafe ? "never touched" : "CHANGED (bug)"): \(untouched?["content"]?.string ?? "gone") \"\(untouched?["comment"]?.string ?? "")\""
                )
                let calls = cloudflare.exchanges
                let writes = calls.filter { $0.method != "GET" }.count
                print("\nCloudflare API calls: \(calls.count) in all (\(calls.count - writes) reads, \(writes) writes), for 8 changes.")
                await controller.shutdown()
                try await group.waitForAll()
            }
            print(passed ? "\ndemo passed: DNS followed the nodes and nothing foreign was touched." : "\ndemo FAILED: see the marks above.")
            return passed
        }
    }
}
