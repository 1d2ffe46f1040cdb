import Emulators
import Foundation
import Testing

/// The real binary with exactly these arguments and environment (nothing inherited but PATH and HOME).
func kubeNodeDNS(_ arguments: [String], environment: [String: String] = [:]) throws -> ManagedProcess {
    try ManagedProcess(ManagedProcess.productsDirectory + "/kube-node-dns", arguments, environment: environment)
}

/// Starts the real `kube-node-dns` binary between the emulators; the token comes from the environment.
func startController(_ env: EmulatorHarness.Running, _ extra: [String]) throws -> ManagedProcess {
    try kubeNodeDNS(
        [
            "--dns-name=k.example.com", "--cloudflare-api-url=\(env.cloudflareURL)", "--http-address=127.0.0.1:0",
            "--kubeconfig=\(try EmulatorHarness.kubeconfig(server: env.kubeURL))", "--log-format=json",
        ] + extra,
        environment: ["CF_API_TOKEN": token])
}

func leaseHolder(_ env: EmulatorHarness.Running) -> String? {
    env.kube.objects("leases").first { $0[path: ["metadata", "name"]]?.string == "kube-node-dns" }?[
        path: ["spec", "holderIdentity"]]?.string
}

/// Seconds from `start` to the first Cloudflare batch write after it.
func secondsToWrite(_ cf: CloudflareEmulator, after start: Double) -> Double? {
    cf.exchanges.first { $0.at >= start && $0.path.hasSuffix("/batch") }.map { $0.at - start }
}

@Suite(.serialized) struct ProcessTests {
    @Test func sigtermReleasesTheLeaseAndTheOtherReplicaTakesOver() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            env.kube.putNode(NodeFixtures.node("z", external: ["203.0.113.26"]))
            // A long lease: a takeover well inside 15 s proves the Lease was released, not left to expire.
            let lease = [
                "--leader-elect", "--lease-duration=15s", "--lease-renew-deadline=10s",
                "--lease-retry-period=200ms",
            ]
            let one = try startController(env, lease + ["--lease-identity=one"])
            #expect(
                await EmulatorHarness.eventually {
                    leaseHolder(env) == "one" && ownedValues(cf) == ["203.0.113.1", "203.0.113.26"]
                })
            let two = try startController(env, lease + ["--lease-identity=two"])

            // The default debounce, a node going NotReady, and the write it causes: the reaction time.
            var reactions: [Double] = []
            for round in 0..<6 {
                let started = Date().timeIntervalSince1970
                let ready = round % 2 == 1
                env.kube.mutateNode("a") { NodeFixtures.setReady(&$0, ready ? "True" : "False") }
                #expect(
                    await EmulatorHarness.eventually { ownedValues(cf).contains("203.0.113.1") == ready })
                reactions.append(secondsToWrite(cf, after: started) ?? .infinity)
            }
            print(
                "reaction time, node change to Cloudflare write (real binary, default debounce): "
                    + reactions.sorted().map { String(format: "%.0f ms", $0 * 1000) }.joined(separator: ", "))
            #expect(reactions.allSatisfy { $0 < 5 })

            let stopped = ContinuousClock.now
            one.signal(SIGTERM)
            #expect(await one.waitForExit() == 0, "a SIGTERM is a clean exit")
            #expect(one.lines.contains { $0.contains("released the Lease") })
            #expect(await EmulatorHarness.eventually { leaseHolder(env) == "two" })
            #expect(
                stopped.duration(to: .now) < .seconds(10), "taken over after a release, not an expiry")
            env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
            #expect(
                await EmulatorHarness.eventually { ownedValues(cf).contains("203.0.113.2") },
                "the new leader writes")

            // SIGKILL: no chance to release; the Lease stays with the dead holder until it expires.
            two.signal(SIGKILL)
            #expect(await two.waitForExit() == SIGKILL)
            #expect(leaseHolder(env) == "two")
            for line in one.lines + two.lines {
                #expect(!line.contains(token), "the token leaked: \(line)")
            }
        }
    }
}
