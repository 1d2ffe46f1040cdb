import Emulators
import Foundation
import KubeNodeDNS
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
    @Test func versionNamesTheReleaseAndTheCommit() async throws {
        let process = try kubeNodeDNS(["--version"])
        #expect(await process.waitForExit() == 0)
        #expect(await EmulatorHarness.eventually { process.lines == [BuildInfo.versionLine] }, "\(process.lines)")
        #expect(BuildInfo.versionLine.hasPrefix("kube-node-dns ") && BuildInfo.versionLine.contains("(commit "))
    }

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

/// The kit's rollout and disruption numbers, read from deploy/ so the test plays what ships.
struct KitSettings {
    var replicas: Int
    var maxSurge: Int
    var maxUnavailable: Int
    var pdbMaxUnavailable: Int
    /// The controller's --lease-* arguments from the Deployment.
    var leaseArguments: [String]

    static func load() throws -> KitSettings {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let deployment = try String(contentsOf: root.appendingPathComponent("deploy/kube-node-dns/deployment.yaml"), encoding: .utf8)
        let pdb = try String(contentsOf: root.appendingPathComponent("deploy/kube-node-dns/poddisruptionbudget.yaml"), encoding: .utf8)
        func number(_ key: String, in text: String) throws -> Int {
            let lines = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
            for line in lines {
                guard let range = line.range(of: key + ": ") else { continue }
                let digits = line[range.upperBound...].prefix { $0.isNumber }
                if let value = Int(digits) { return value }
            }
            throw ConfigurationError("\(key) not found in the kit")
        }
        let arguments = deployment.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("- --lease-") }.map { String($0.dropFirst(2)) }
        return KitSettings(
            replicas: try number("replicas", in: deployment), maxSurge: try number("maxSurge", in: deployment),
            maxUnavailable: try number("maxUnavailable", in: deployment), pdbMaxUnavailable: try number("maxUnavailable", in: pdb),
            leaseArguments: arguments)
    }

    /// Evictions the PodDisruptionBudget allows with this many Ready replicas.
    func disruptionsAllowed(ready: Int) -> Int { max(0, ready - (replicas - pdbMaxUnavailable)) }
}

/// One replica of the controller as a real process, with its own token so the emulator can tell who wrote.
struct Replica {
    let identity: String
    let tokenIndex: Int
    let process: ManagedProcess
    let port: Int

    static func start(
        _ env: EmulatorHarness.Running, identity: String, tokenIndex: Int, tokens: [String], kit: KitSettings
    ) async throws -> Replica {
        let process = try kubeNodeDNS(
            [
                "--dns-name=k.example.com", "--cloudflare-api-url=\(env.cloudflareURL)", "--http-address=127.0.0.1:0",
                "--kubeconfig=\(try EmulatorHarness.kubeconfig(server: env.kubeURL))", "--log-format=json",
                "--leader-elect", "--lease-identity=\(identity)", "--lease-namespace=default",
            ] + kit.leaseArguments,
            environment: ["CF_API_TOKEN": tokens[tokenIndex]])
        return Replica(identity: identity, tokenIndex: tokenIndex, process: process, port: try await opsPort(of: process))
    }

    /// The ops port a controller process said it serves on (with `--http-address=127.0.0.1:0`), once it has.
    static func opsPort(of process: ManagedProcess) async throws -> Int {
        var port: Int?
        _ = await EmulatorHarness.eventually {
            port = process.lines.lazy.compactMap(Replica.port(from:)).first
            return port != nil
        }
        return try #require(port)
    }

    static func port(from line: String) -> Int? {
        guard line.contains("serving /healthz"), let range = line.range(of: "\"port\":\"") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    func isReady() async -> Bool {
        (try? await getWithStatus("http://127.0.0.1:\(port)/readyz").status) == 200
    }

    func role() async -> String? {
        guard let text = try? await get("http://127.0.0.1:\(port)/status") else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("role:") }?.split(separator: " ", omittingEmptySubsequences: true)
            .dropFirst().first.map(String.init)
    }
}

@Suite(.serialized) struct ShutdownRaceTests {
    /// Probes arriving while SIGTERM stops the ops server: the process exits 0 every time (a connection accepted
    /// during shutdown must not trap in NIO).
    @Test func probesDuringSIGTERMNeverCrashTheController() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            for round in 0..<5 {
                let tokens = [token]
                let replica = try await Replica.start(
                    env, identity: "probe-\(round)", tokenIndex: 0, tokens: tokens,
                    kit: KitSettings(replicas: 1, maxSurge: 0, maxUnavailable: 0, pdbMaxUnavailable: 0, leaseArguments: []))
                #expect(await EmulatorHarness.eventually { await replica.isReady() })
                let status = await withTaskGroup(of: Int32?.self) { group -> Int32 in
                    for _ in 0..<8 {
                        group.addTask {
                            for _ in 0..<200 {
                                if Task.isCancelled { break }
                                _ = try? await getWithStatus("http://127.0.0.1:\(replica.port)/healthz")
                            }
                            return nil
                        }
                    }
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(30))
                        replica.process.signal(SIGTERM)
                        return await replica.process.waitForExit()
                    }
                    var exit: Int32 = -1
                    for await result in group {
                        if let result {
                            exit = result
                            group.cancelAll()
                        }
                    }
                    return exit
                }
                #expect(status == 0, "round \(round): exit \(status): \(replica.process.lines.suffix(5))")
            }
        }
    }
}

@Suite(.serialized) struct RolloutTests {
    /// A RollingUpdate and a drain, played as the Deployment controller and `kubectl drain` run them, with the
    /// kit's own numbers: every replica becomes Ready (standbys too), exactly one writes, and a node change made
    /// right after the leader's SIGTERM reaches DNS within 3 s.
    @Test func rollingUpdateAndDrainKeepOneWriterAndFollowTheNodes() async throws {
        let kit = try KitSettings.load()
        #expect(kit.replicas == 2 && kit.maxSurge == 1 && kit.maxUnavailable == 0 && kit.pdbMaxUnavailable == 1)
        let tokens = (0..<6).map { "rollout-token-\($0)-secret" }
        let cf = CloudflareEmulator(options: .init(zones: ["example.com"], tokens: tokens.map { .init($0) }))
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
            var running: [Replica] = []
            var all: [Replica] = []
            var takeovers: [Double] = []
            func start(_ identity: String) async throws {
                let replica = try await Replica.start(env, identity: identity, tokenIndex: all.count, tokens: tokens, kit: kit)
                running.append(replica)
                all.append(replica)
            }
            func allReady() async -> Bool {
                for replica in running where await !replica.isReady() { return false }
                return true
            }
            func readyCount() async -> Int {
                var count = 0
                for replica in running where await replica.isReady() { count += 1 }
                return count
            }
            func leaders() async -> [String] {
                var found: [String] = []
                for replica in running where await replica.role() == "leader" { found.append(replica.identity) }
                return found
            }
            /// Who wrote since `time`, by token.
            func writers(since time: Double) -> Set<Int> {
                Set(cf.exchanges.filter { $0.at >= time && $0.path.hasSuffix("/batch") && $0.status == 200 }.compactMap(\.tokenIndex))
            }
            func checkStep(_ label: String, since: Double, expected: Set<String>) async {
                #expect(await EmulatorHarness.eventually { await allReady() }, "\(label): every replica Ready")
                #expect(
                    await readyCount() >= kit.replicas - kit.maxUnavailable, "\(label): no fewer Ready than the rollout allows")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == expected }, "\(label): records")
                #expect(await EmulatorHarness.eventually { await leaders().count == 1 }, "\(label): one leader in /status")
                #expect(writers(since: since).count <= 1, "\(label): exactly one replica wrote, got \(writers(since: since))")
                #expect(leaseHolder(env) == (await leaders()).first, "\(label): the Lease names the leader")
            }
            /// SIGTERM `replica`, change a node at once, and measure until the change is in DNS.
            func stop(_ replica: Replica, then change: () -> Void, expected: Set<String>, _ label: String) async {
                let wasLeader = leaseHolder(env) == replica.identity
                let started = Date().timeIntervalSince1970
                replica.process.signal(SIGTERM)
                change()
                let reached = await EmulatorHarness.eventually { ownedValues(cf) == expected }
                let took = Date().timeIntervalSince1970 - started
                #expect(reached, "\(label): the change reached DNS")
                if wasLeader {
                    takeovers.append(took)
                    #expect(took < 3, "\(label): the change after the leader's SIGTERM took \(took) s")
                }
                #expect(await replica.process.waitForExit() == 0, "\(label): a SIGTERM is a clean exit")
                running.removeAll { $0.identity == replica.identity }
                let writersAfter = writers(since: started)
                #expect(writersAfter.count == 1 && !writersAfter.contains(replica.tokenIndex) || !wasLeader, "\(label): \(writersAfter)")
            }

            // Two old replicas, one leading.
            var since = Date().timeIntervalSince1970
            try await start("old-1")
            #expect(await EmulatorHarness.eventually { leaseHolder(env) == "old-1" })
            try await start("old-2")
            await checkStep("two old replicas", since: since, expected: ["203.0.113.1", "203.0.113.2"])
            let standby = try #require(running.first { $0.identity == "old-2" })
            let standbyRole = await standby.role()
            let standbyReady = await standby.isReady()
            #expect(standbyRole == "standby" && standbyReady, "a standby answers /readyz with 200")

            // RollingUpdate, maxSurge 1 / maxUnavailable 0: a new pod first, then an old one goes, and so on.
            since = Date().timeIntervalSince1970
            try await start("new-1")
            #expect(running.count <= kit.replicas + kit.maxSurge)
            env.kube.putNode(NodeFixtures.node("c", external: ["203.0.113.3"]))
            await checkStep("surge: new-1 beside the old", since: since, expected: ["203.0.113.1", "203.0.113.2", "203.0.113.3"])

            since = Date().timeIntervalSince1970
            let leader1 = try #require(running.first { $0.identity == leaseHolder(env) })
            await stop(
                leader1, then: { env.kube.putNode(NodeFixtures.node("d", external: ["203.0.113.4"])) },
                expected: ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"], "the old leader stopped")
            try await start("new-2")
            await checkStep(
                "new-2 started", since: since, expected: ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"])

            since = Date().timeIntervalSince1970
            let lastOld = try #require(running.first { $0.identity.hasPrefix("old-") })
            await stop(
                lastOld, then: { env.kube.mutateNode("a") { NodeFixtures.setReady(&$0, "False") } },
                expected: ["203.0.113.2", "203.0.113.3", "203.0.113.4"], "the last old replica stopped")
            await checkStep("rollout done", since: since, expected: ["203.0.113.2", "203.0.113.3", "203.0.113.4"])
            #expect(running.map(\.identity).sorted() == ["new-1", "new-2"])

            // A drain of the leader's node: the budget allows it only because the standby is Ready too.
            since = Date().timeIntervalSince1970
            #expect(kit.disruptionsAllowed(ready: await readyCount()) == 1, "the PDB allows evicting one replica")
            let leader2 = try #require(running.first { $0.identity == leaseHolder(env) })
            await stop(
                leader2, then: { env.kube.mutateNode("a") { NodeFixtures.setReady(&$0, "True") } },
                expected: ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"], "the leader evicted")
            #expect(kit.disruptionsAllowed(ready: await readyCount()) == 0, "a second eviction waits")
            try await start("new-3")
            await checkStep(
                "replacement after the drain", since: since, expected: ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"])
            #expect(kit.disruptionsAllowed(ready: await readyCount()) == 1)

            print(
                "rollout test: node change after the leader's SIGTERM reached DNS in "
                    + takeovers.map { String(format: "%.2f s", $0) }.joined(separator: ", "))
            for replica in running {
                replica.process.signal(SIGTERM)
                #expect(await replica.process.waitForExit() == 0)
            }
            for line in all.flatMap({ $0.process.lines }) {
                #expect(!tokens.contains { line.contains($0) }, "a token leaked: \(line)")
            }
        }
    }
}
