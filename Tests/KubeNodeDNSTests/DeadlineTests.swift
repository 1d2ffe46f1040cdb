import Emulators
import Foundation
import KubernetesAPI
import Testing

@testable import KubeNodeDNS

/// Every exchange with a peer has a deadline, over real sockets with peers that drip their answers a byte at a time,
/// and a write whose answer does not confirm it is read back.
@Suite(.serialized) struct DeadlineTests {
    static let all: Set<String> = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]

    /// A node list dripped a byte every 50 ms fails at its deadline (2 s here) and is read again; nodes that join
    /// meanwhile reach DNS within the deadline plus about a second.
    @Test func aDrippingListFailsAtItsDeadline() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("node-1", external: ["203.0.113.1"]))
            env.kube.faults.drip(matching: "limit=", bytes: 1, interval: .milliseconds(50))
            let logs = LogLines()
            let controller = try controller(env, ["--kube-request-timeout=2s", "--events=false"], logs: logs)
            try await whileRunning(controller) {
                #expect(await EmulatorHarness.eventually { env.kube.faults.requests.contains { $0.query.contains("limit=") } })
                let changed = ContinuousClock.now
                for index in 2...3 { env.kube.putNode(NodeFixtures.node("node-\(index)", external: ["203.0.113.\(index)"])) }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == Self.all })
                let took = changed.duration(to: .now)
                #expect(took < .seconds(5), "reached DNS \(took) after the change (deadline 2 s)")
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("did not complete within 2 s") } })
                let metrics = try await get("http://127.0.0.1:\(try #require(await controller.httpPort()))/metrics")
                #expect(metrics.contains(#"kube_node_dns_deadlines_total{peer="kubernetes"} 1"#), "\(metrics)")
            }
        }
    }

    /// A watch that trickles bytes but never a whole event is replaced after the read timeout (2 s here), though the
    /// connection is never silent; a change made meanwhile reaches DNS.
    @Test func aWatchThatDripsWithoutAnEventIsReplaced() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, ["--kube-read-timeout=2s", "--events=false"], logs: logs)
            try await whileRunning(controller) {
                #expect(await publishThreeNodes(env, cf))
                env.kube.faults.drip(matching: "watch=true", bytes: 1, interval: .milliseconds(100))
                env.kube.dropWatches()
                #expect(await EmulatorHarness.eventually { env.kube.faults.requests.contains { $0.query.contains("watch=true") } })
                let changed = ContinuousClock.now
                env.kube.mutateNode("node-3") { NodeFixtures.setReady(&$0, "False") }
                // The log line below proves the watch was cut for carrying no event; how soon the change arrives
                // is printed, not bounded: a wall-clock bound is what a busy machine or a sanitizer's slowdown breaks.
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                print("a dripping watch: the change reached DNS \(changed.duration(to: .now)) after it was made")
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("no complete event in 2 s") } })
            }
        }
    }

    /// A Cloudflare write whose answer drips is cut off at its deadline and not sent again blindly: the records are
    /// read back, nothing is duplicated, and the node changes that arrived meanwhile go into the next write.
    @Test func aDrippingCloudflareWriteIsCutOffAndReadBack() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(
                env, ["--cloudflare-request-timeout=2s", "--events=false", "--resync-interval=1h"], logs: logs)
            try await whileRunning(controller) {
                #expect(await publishThreeNodes(env, cf))
                cf.faults.drip(matching: "/dns_records/batch", bytes: 1, interval: .milliseconds(50))
                env.kube.mutateNode("node-3") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { cf.faults.requests.contains { $0.path.hasSuffix("/batch") } })
                // The watch keeps going while the write drips: the change is seen, and waits for the next write.
                env.kube.putNode(NodeFixtures.node("node-4", external: ["203.0.113.4"]))
                #expect(await EmulatorHarness.eventually { controller.store.snapshots.contains { $0.name == "node-4" } })
                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue { $0.contains { $0.contains("did not complete within 2 s") } }
                    })
                #expect(
                    await EmulatorHarness.eventually {
                        ownedValues(cf) == ["203.0.113.1", "203.0.113.2", "203.0.113.4"]
                    })
                #expect(cf.records(zone: "example.com").count == 3, "no duplicate: \(cf.records(zone: "example.com"))")
                // Sent once: the cut-off write was read back, not posted again.
                let batches = cf.exchanges.filter { $0.path.hasSuffix("/batch") }.compactMap { $0.body?.serialized() }
                #expect(Set(batches).count == batches.count, "no batch sent twice: \(batches)")
                let metrics = try await get("http://127.0.0.1:\(try #require(await controller.httpPort()))/metrics")
                #expect(metrics.contains(#"kube_node_dns_deadlines_total{peer="cloudflare"} 1"#), "\(metrics)")
            }
        }
    }

    /// A Cloudflare read that drips is cut off at its deadline and retried; the resync it belongs to completes.
    @Test func aDrippingCloudflareReadIsCutOffAndRetried() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, ["--cloudflare-request-timeout=2s", "--events=false", "--resync-interval=1s"], logs: logs)
            try await whileRunning(controller) {
                #expect(await publishThreeNodes(env, cf))
                cf.faults.drip(matching: "/dns_records?", bytes: 1, interval: .milliseconds(50))
                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue { $0.contains { $0.contains("did not complete within 2 s") } }
                    })
                // The next change still reaches DNS: the read was retried, and the resync completed.
                env.kube.mutateNode("node-3") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(cf.records(zone: "example.com").count == 2)
            }
        }
    }

    /// A Lease call that drips is cut off at its deadline; the leader renews on its next try and keeps leading.
    @Test func aDrippingLeaseCallIsCutOff() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(
                env,
                [
                    "--kube-request-timeout=1s", "--events=false", "--leader-elect", "--lease-identity=me", "--lease-namespace=default",
                    "--lease-duration=6s", "--lease-renew-deadline=4s", "--lease-retry-period=200ms",
                ], logs: logs)
            try await whileRunning(controller) {
                #expect(await publishThreeNodes(env, cf))
                let elector = try #require(controller.elector)
                env.kube.faults.drip(matching: "/leases/kube-node-dns", bytes: 1, interval: .milliseconds(50))
                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue { $0.contains { $0.contains("did not complete within 1 s") } }
                    })
                #expect(await EmulatorHarness.eventually { elector.canWrite }, "still leading")
                env.kube.mutateNode("node-3") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
            }
        }
    }

    /// A write answered `{"success":true,"result":null}` is not trusted: the records are read back at once, so a node
    /// that goes NotReady right after is removed (not left published until the next resync, an hour here).
    @Test func aWriteAnsweredWithoutItsResultIsReadBack() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, ["--events=false", "--resync-interval=1h"], logs: logs)
            try await whileRunning(controller) {
                for index in 1...2 { env.kube.putNode(NodeFixtures.node("node-\(index)", external: ["203.0.113.\(index)"])) }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                cf.answerNextBatchesVaguely(1)
                env.kube.putNode(NodeFixtures.node("node-3", external: ["203.0.113.3"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == Self.all })
                #expect(
                    await EmulatorHarness.eventually {
                        controller.reconciler.lastKnownRecords?.contains { $0.value == "203.0.113.3" } == true
                    }, "read back")
                env.kube.mutateNode("node-3") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("does not carry the records written") } })
                #expect(cf.records(zone: "example.com").count == 2)
            }
        }
    }
}

/// `/healthz` tells the truth for each peer: it fails, with the reason in `/status`, once the DNS provider or the API
/// server has failed beyond `--healthz-peer-limit` (1 s here), and passes again once they answer.
@Suite(.serialized) struct PeerHealthTests {
    static func kube() -> KubeAPIEmulator {
        var options = KubeAPIEmulator.Options(nodeLifecycle: nil)
        options.bookmarkInterval = 0.2  // a quiet, healthy watch answers often, as a real one does every minute
        return KubeAPIEmulator(options: options)
    }

    @Test func healthzFailsForAPeerBeyondItsLimit() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: Self.kube(), cloudflare: cf) { env in
            let controller = try controller(env, ["--healthz-peer-limit=1s", "--events=false"])
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("node-1", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                let base = "http://127.0.0.1:\(try #require(await controller.httpPort()))"
                // Eventually: on a machine slow enough (a sanitizer's), a watch can take over the 1 s limit to answer.
                #expect(await EmulatorHarness.eventually { (try? await getWithStatus("\(base)/healthz"))?.status == 200 })

                // The DNS provider goes away (until the test ends the outage, so that a busy machine cannot see it
                // over before /status is read); a change makes the controller try it, and fail, for over a second.
                cf.outage(seconds: 600)
                env.kube.putNode(NodeFixtures.node("node-2", external: ["203.0.113.2"]))
                #expect(
                    await EmulatorHarness.eventually {
                        let answer = try? await getWithStatus("\(base)/healthz")
                        // Failing reconciles, or one reconcile still retrying inside the Cloudflare client.
                        return answer?.status == 503 && answer?.text.contains("DNS provider") == true
                    })
                let status = try await get("\(base)/status")
                #expect(status.contains("healthz:        failing: ") && status.contains("DNS provider"), "\(status)")
                cf.outage(seconds: 0)
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(await EmulatorHarness.eventually { (try? await getWithStatus("\(base)/healthz"))?.status == 200 })

                // The API server fails every request: once it has not answered for over a second, /healthz says so.
                env.kube.faults.inject(status: 500, count: 100_000)
                env.kube.dropWatches()
                #expect(
                    await EmulatorHarness.eventually {
                        let answer = try? await getWithStatus("\(base)/healthz")
                        return answer?.status == 503 && answer?.text.contains("the Kubernetes API has not answered") == true
                    })
                env.kube.faults.clearFailures()
                #expect(await EmulatorHarness.eventually(timeout: 40) { (try? await getWithStatus("\(base)/healthz"))?.status == 200 })
            }
        }
    }
}
