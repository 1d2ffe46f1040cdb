import Emulators
import Foundation
import KubernetesAPI
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import KubeNodeDNS

/// Puts node-1..3 (203.0.113.1..3) and waits until Cloudflare holds their three records.
func publishThreeNodes(_ env: EmulatorHarness.Running, _ cf: CloudflareEmulator) async -> Bool {
    for index in 1...3 { env.kube.putNode(NodeFixtures.node("node-\(index)", external: ["203.0.113.\(index)"])) }
    return await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"] }
}

/// Broken or hostile answers over real sockets: refused rather than reinterpreted, so DNS does not change while they
/// last; the controller reads again with backoff and converges once they are good; no peer text forges a log line.
@Suite(.serialized) struct HostileAnswerTests {
    static let all: Set<String> = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]

    /// The API server alone: the hostile object is the only writer of the test's nodes.
    static func kube() -> KubeAPIEmulator { KubeAPIEmulator(options: .init(nodeLifecycle: nil)) }

    static func nodeRequests(_ kube: KubeAPIEmulator) -> Int {
        kube.faults.requests.filter { $0.path == "/api/v1/nodes" }.count
    }

    /// A node whose answer has a field of the wrong type is refused: it does not leave DNS (as a node "without an
    /// address" or "without a Ready condition" would), the failure is said once with where it broke, and the node is
    /// read again once its answer is good.
    @Test(
        arguments: [
            ("status is null", JSON.null, "status"),
            ("addresses is a string", ["addresses": "203.0.113.2"], "addresses"),
            ("an address is a number", ["addresses": [["type": "ExternalIP", "address": 7]]], "address"),
            ("Ready's status is a boolean", ["conditions": [["type": "Ready", "status": true]]], "status"),
        ] as [(String, JSON, String)])
    func aMalformedNodeChangesNothingInDNS(label: String, status: JSON, field: String) async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, [], logs: logs)
            try await whileRunning(controller) {
                #expect(await publishThreeNodes(env, cf))
                let writes = cf.exchanges.filter { $0.method != "GET" }.count
                let before = Self.nodeRequests(env.kube)
                env.kube.mutateNode("node-2") { $0["status"] = status }
                let refused = { logs.lines.withLockedValue { $0.filter { $0.contains("\"warning\"") && $0.contains("malformed answer") } } }
                #expect(await EmulatorHarness.eventually { !refused().isEmpty }, "\(label): refused and said")
                // The refusal was acted on: at least two more reads (the relist after the event, and one after
                // backoff) found the same answer, and DNS never moved.
                #expect(await EmulatorHarness.eventually { Self.nodeRequests(env.kube) >= before + 2 })
                #expect(ownedValues(cf) == Self.all, "\(label): DNS unchanged")
                #expect(cf.exchanges.filter { $0.method != "GET" }.count == writes, "\(label): no write")
                #expect(refused().count == 1, "\(label): said once, not once a retry: \(refused())")
                #expect(refused().first?.contains(field) == true, "\(label): says where: \(refused())")
                #expect(!logs.lines.withLockedValue { $0.contains { $0.contains("node-2 left DNS") } })

                // Good again: read back, and the next change reaches DNS.
                env.kube.putNode(NodeFixtures.node("node-2", external: ["203.0.113.2"]))
                env.kube.mutateNode("node-3") { NodeFixtures.setReady(&$0, "False") }
                let repaired = ContinuousClock.now
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                // Within the backoff's current step (0.8 s doubling) plus the reconcile.
                #expect(repaired.duration(to: .now) < .seconds(5), "converged \(repaired.duration(to: .now)) after the fix")
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("node list is readable again") } })
            }
        }
    }

    /// A list whose items are not an array is an error, never an empty list in which every node "left at once".
    @Test func aListWithoutItemsIsAnErrorNotAnEmptyCluster() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, ["--events=false"], logs: logs)
            try await whileRunning(controller) {
                #expect(await publishThreeNodes(env, cf))
                let writes = cf.exchanges.filter { $0.method != "GET" }.count
                // The watch and the relists that follow all get a list whose items are null.
                env.kube.faults.inject(.listWithoutItems, count: 3)
                env.kube.dropWatches()
                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue { $0.contains { $0.contains("the answer has no items array") } }
                    })
                #expect(ownedValues(cf) == Self.all)
                #expect(!logs.lines.withLockedValue { $0.contains { $0.contains("every node left") || $0.contains("left DNS") } })
                env.kube.mutateNode("node-1") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.2", "203.0.113.3"] })
                #expect(cf.exchanges.filter { $0.method != "GET" }.count == writes + 1, "one write: node-1's removal")
            }
        }
    }

    /// A server that answers every watch with 410 Gone gets a relist at once, then fewer and fewer: a few requests a
    /// second at most, never a hot loop; each relist still reads the nodes, so DNS keeps following them.
    @Test func aServerThatExpiresEveryWatchIsBackedOff() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, ["--events=false"], logs: logs)
            try await whileRunning(controller) {
                #expect(await publishThreeNodes(env, cf))
                env.kube.expireNextWatches(Int.max)
                env.kube.dropWatches()
                let before = Self.nodeRequests(env.kube)
                let started = ContinuousClock.now
                // Six requests (a relist is a list and a watch) span at least two backoff waits, 0.4 + 0.8 s, where a hot
                // loop would send them in milliseconds. A busy machine only makes them slower.
                #expect(await EmulatorHarness.eventually { Self.nodeRequests(env.kube) - before >= 6 })
                let elapsed = started.duration(to: .now)
                #expect(elapsed >= .seconds(1), "6 requests in \(elapsed)")
                let said = logs.lines.withLockedValue { $0.filter { $0.contains("\"warning\"") && $0.contains("keeps expiring") } }
                #expect(said.count == 1, "said once: \(said)")
                // /status says that the node watch waits, why, and for how long; and stops saying it once it reads again.
                let port = try #require(await controller.httpPort())
                let waiting = "Kubernetes API: the node watch is backing off after its watches keep expiring (410 Gone); "
                #expect(await EmulatorHarness.eventually { (try? await get("http://127.0.0.1:\(port)/status"))?.contains(waiting) == true })
                env.kube.mutateNode("node-1") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.2", "203.0.113.3"] })
                env.kube.expireNextWatches(0)
                #expect(
                    await EmulatorHarness.eventually(timeout: 40) {
                        (try? await get("http://127.0.0.1:\(port)/status"))?.contains("is backing off") == false
                    }, "the backoff row goes once the watch reads again")
            }
        }
    }

    /// One node with thousands of ExternalIPs cannot crowd the others out of the shared name: over the cap, the name
    /// picks nodes, one address each, and `/status` names the addresses it leaves out.
    @Test func oneNodeCannotCrowdTheOthersOut() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(), cloudflare: cf) { env in
            let controller = try controller(env, ["--events=false"])
            try await whileRunning(controller) {
                let many = (0..<3000).map { "198.51.\(100 + $0 / 250).\($0 % 250 + 1)" }
                env.kube.putNode(NodeFixtures.node("crowded", external: many))
                env.kube.putNode(NodeFixtures.node("node-2", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["198.51.100.1", "203.0.113.2"] })
                let status = try await get("http://127.0.0.1:\(try #require(await controller.httpPort()))/status")
                #expect(status.contains("not on the shared names: 198.51.100.2, "), "\(status.prefix(2000))")
            }
        }
    }

    /// A peer's text with line breaks and escapes cannot start a log line of its own, in either log format.
    @Test(arguments: [false, true])
    func aPeerCannotForgeALogLine(json: Bool) async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(), cloudflare: cf) { env in
            let lines = NIOLockedValueBox<[String]>([])
            let logger = Logger(label: "e2e") { label in
                ControllerLogHandler(label: label, level: .info, json: json, secrets: []) { line in
                    lines.withLockedValue { $0.append(line) }
                }
            }
            let config = try configuration(env, ["--events=false"])
            let controller = try Controller.make(config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logger)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("node-1", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                let forged = "2026-12-05T00:00:00Z INFO FORGED-LOG-LINE node-9 joined DNS: 203.0.113.9"
                env.kube.faults.inject(
                    status: 500, contentType: "application/json",
                    body: Array(#"{"kind":"Status","code":500,"message":"boom\n\#(forged)\r\u001b[31m"}"#.utf8))
                env.kube.dropWatches()
                #expect(await EmulatorHarness.eventually { lines.withLockedValue { $0.contains { $0.contains("boom") } } })
                let all = lines.withLockedValue { $0 }
                #expect(all.allSatisfy { !$0.contains("\n") && !$0.contains("\r") && !$0.contains("\u{1B}") }, "\(all)")
                #expect(!all.contains { $0.hasPrefix("2026-12-05T00:00:00Z") }, "no forged line")
                #expect(all.contains { $0.contains("FORGED-LOG-LINE") && $0.contains("boom") }, "the text stays, escaped, in its line")
            }
        }
    }

    /// Long peer text is cut with a marker that says how much was left out.
    @Test func longPeerTextIsCutWithAMarker() {
        let lines = NIOLockedValueBox<[String]>([])
        let logger = Logger(label: "t") { label in
            ControllerLogHandler(label: label, level: .info, json: false, secrets: []) { line in lines.withLockedValue { $0.append(line) } }
        }
        logger.warning("failed", metadata: ["error": "\(String(repeating: "x", count: 100_000))"])
        let line = lines.withLockedValue { $0[0] }
        #expect(line.utf8.count < 3000)
        #expect(line.hasSuffix("…[cut: 97952 more characters]"), "\(line.suffix(60))")
    }
}

/// Memory does not follow the size of a hostile answer: the real binary, fed 20 MB watch lines and 50 MB Cloudflare
/// bodies, refuses each as it arrives past its cap.
@Suite(.serialized) struct HostileAnswerMemoryTests {
    @Test(
        .disabled(
            if: Sanitizer.current != nil,
            "skipped under the sanitizers: their shadow memory (and ASan's quarantine) are in VmHWM, so the 5 MiB bound would measure the sanitizer; the plain run holds it"
        ))
    func hugeAnswersKeepVmHWMWithinFiveMiB() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            for index in 1...3 { env.kube.putNode(NodeFixtures.node("node-\(index)", external: ["203.0.113.\(index)"])) }
            let process = try startController(env, ["--debounce=10ms", "--events=false", "--resync-interval=1s"])
            defer { process.signal(SIGKILL) }
            #expect(await EmulatorHarness.eventually { ownedValues(cf).count == 3 })
            // Settle: the first resyncs have run, start-up pages are given back.
            let reads = { cf.exchanges.filter { $0.method == "GET" && $0.path.hasSuffix("/dns_records") }.count }
            let firstReads = reads()
            #expect(await EmulatorHarness.eventually { reads() >= firstReads + 2 })
            let before = try #require(process.memoryKiB()).peak
            let rounds = 4
            let hugeLine = Array(repeating: UInt8(ascii: "x"), count: 20 << 20)
            let hugeBody =
                Array(#"{"success":true,"errors":[],"messages":[],"result":[{"id":""#.utf8)
                + Array(repeating: UInt8(ascii: "a"), count: 50 << 20) + Array(#""}]}"#.utf8)
            let kubeBefore = env.kube.faults.requests.count
            let cfBefore = cf.faults.requests.count
            // One peer after the other; half of the answers announce their size (Content-Length), half stream it in
            // 1 MiB chunks.
            env.kube.faults.inject(status: 200, contentType: "application/json", body: hugeLine, count: rounds)
            env.kube.faults.drip(matching: "watch=true", count: rounds / 2, bytes: 1 << 20, interval: .milliseconds(1))
            env.kube.dropWatches()
            #expect(await EmulatorHarness.eventually(timeout: 60) { env.kube.faults.requests.count >= kubeBefore + rounds + 1 })
            cf.faults.inject(status: 200, contentType: "application/json", body: hugeBody, count: rounds)
            cf.faults.drip(matching: "/dns_records", count: rounds / 2, bytes: 1 << 20, interval: .milliseconds(1))
            #expect(await EmulatorHarness.eventually(timeout: 60) { cf.faults.requests.count >= cfBefore + rounds + 1 })
            #expect(process.isRunning)
            let after = try #require(process.memoryKiB()).peak
            #expect(after - before <= 5 * 1024, "VmHWM grew \(after - before) KiB over \(rounds) hostile answers on each side")
            print(
                "hostile answers: VmHWM \(before) KiB before, \(after) KiB after \(rounds) 20 MB watch lines and \(rounds) 50 MB Cloudflare bodies"
            )
            #expect(await EmulatorHarness.eventually(timeout: 60) { ownedValues(cf).count == 3 }, "still serving")
        }
    }
}
