import Emulators
import Foundation
import Testing

/// Each peer in turn answers 10,000 times with what the fuzzers found (the corpus inputs and seeded mutations of
/// them), over a real socket, to the controller in a process of its own (so its VmHWM is the controller's alone):
/// it refuses, says so without a line per answer, retries, keeps /healthz at 200, keeps its peak memory within
/// 5 MiB, and follows the cluster again once the peer is sane. The controller runs with its retry waits scaled down
/// (`kube-node-dns-bench --retry-scale`): with its real backoff, 10,000 answers would take days.
@Suite(
    .serialized,
    .disabled(
        if: Sanitizer.current != nil,
        "skipped under the sanitizers: their shadow memory is in VmHWM, so the 5 MiB bound would measure the sanitizer; the plain run holds it"
    ))
struct HostilePeerTests {
    static let answers = 10_000

    /// The controller as the binary runs it, with its retry waits a hundred-thousandth of the real ones.
    static func start(_ env: EmulatorHarness.Running, _ extra: [String]) throws -> ManagedProcess {
        try ManagedProcess(
            ManagedProcess.productsDirectory + "/kube-node-dns-bench",
            [
                "--retry-scale", "0.00001", "--", "--dns-name=k.example.com", "--cloudflare-api-url=\(env.cloudflareURL)",
                "--http-address=127.0.0.1:0", "--kubeconfig=\(try EmulatorHarness.kubeconfig(server: env.kubeURL))",
                "--log-format=json", "--events=false", "--cloudflare-rate-limit=100000",
            ] + extra,
            environment: ["CF_API_TOKEN": token])
    }

    static func healthz(_ port: Int) async -> Int? {
        try? await getWithStatus("http://127.0.0.1:\(port)/healthz").status
    }

    static func warningLines(_ process: ManagedProcess) -> [String] {
        process.lines.filter { $0.contains("\"warning\"") || $0.contains("\"error\"") }
    }

    /// Waits while the peer gives `answers` hostile answers (`provoke` starts the asking; `given` counts them), and
    /// checks what the controller does meanwhile: alive, /healthz 200, VmHWM within 5 MiB, the refusals said in few
    /// lines.
    static func underHostileAnswers(
        _ process: ManagedProcess, peer: String, provoke: () -> Void = {}, given: () -> Int
    ) async throws {
        let port = try await Replica.opsPort(of: process)
        let before = try #require(process.memoryKiB()).peak
        let warningsBefore = warningLines(process).count
        provoke()
        #expect(await EmulatorHarness.eventually(timeout: 600) { given() >= answers / 2 }, "half given")
        #expect(await healthz(port) == 200, "alive halfway through")
        #expect(await EmulatorHarness.eventually(timeout: 600) { given() >= answers }, "all given")
        #expect(await healthz(port) == 200, "alive after them")
        #expect(process.isRunning)
        let after = try #require(process.memoryKiB()).peak
        let said = warningLines(process).count - warningsBefore
        print("hostile \(peer): \(answers) answers, VmHWM \(before) KiB before, \(after) KiB after; \(said) warnings")
        for line in warningLines(process).suffix(said).prefix(6) { print("  \(line.prefix(400))") }
        #expect(after - before <= 5 * 1024, "VmHWM grew \(after - before) KiB over \(answers) hostile answers")
        #expect(said >= 1, "the refusals are said")
        #expect(said < answers / 10, "\(said) warnings for \(answers) answers: not a line per answer")
    }

    /// Serves `bodies` through `faults`, each once, to whatever the controller asks next, under `underHostileAnswers`.
    static func underHostileAnswers(
        _ process: ManagedProcess, peer: String, faults: FaultSwitches, bodies: [[UInt8]], provoke: () -> Void
    ) async throws {
        for body in bodies { faults.inject(status: 200, contentType: "application/json", body: body) }
        try await underHostileAnswers(process, peer: peer, provoke: provoke) { bodies.count - faults.pendingFailures }
    }

    @Test func theAPIServer() async throws {
        let bodies = HostileAnswers.make(
            count: Self.answers,
            from: try HostileAnswers.corpus("list-items", layout: .afterChunkSizes(skip: 1))
                + HostileAnswers.corpus("watch-stream", layout: .afterChunkSizes(skip: 1)), seed: 1)
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            let process = try Self.start(env, [])
            defer { process.signal(SIGKILL) }
            #expect(await publishThreeNodes(env, cf))
            try await Self.underHostileAnswers(process, peer: "API server", faults: env.kube.faults, bodies: bodies) {
                env.kube.dropWatches()
            }
            env.kube.mutateNode("node-1") { NodeFixtures.setReady(&$0, "False") }
            #expect(await EmulatorHarness.eventually(timeout: 60) { ownedValues(cf) == ["203.0.113.2", "203.0.113.3"] }, "follows again")
        }
    }

    @Test func cloudflare() async throws {
        let bodies = HostileAnswers.make(
            count: Self.answers, from: try HostileAnswers.corpus("cloudflare-answer", layout: .after(2)), seed: 2)
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            let process = try Self.start(env, ["--resync-interval=1s"])
            defer { process.signal(SIGKILL) }
            #expect(await publishThreeNodes(env, cf))
            // The change makes the controller read and write; each refused answer is retried.
            try await Self.underHostileAnswers(process, peer: "Cloudflare", faults: cf.faults, bodies: bodies) {
                env.kube.mutateNode("node-1") { NodeFixtures.setReady(&$0, "False") }
            }
            #expect(await EmulatorHarness.eventually(timeout: 60) { ownedValues(cf) == ["203.0.113.2", "203.0.113.3"] }, "follows again")
        }
    }

    @Test func theDNSServer() async throws {
        let bodies = HostileAnswers.make(
            count: Self.answers,
            from: try HostileAnswers.corpus("dns-message", layout: .whole) + HostileAnswers.corpus("tsig", layout: .after(5))
                + HostileAnswers.corpus("dns-tcp-frames", layout: .afterChunkSizes(skip: 0)), seed: 3)
        let server = try await HostileDNSServer(answers: bodies)
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            for index in 1...3 { env.kube.putNode(NodeFixtures.node("node-\(index)", external: ["203.0.113.\(index)"])) }
            let process = try Self.start(
                env,
                [
                    "--provider=rfc2136", "--rfc2136-server=127.0.0.1:\(server.port)", "--rfc2136-zone=example.com",
                    "--rfc2136-tsig-key-name=kube-node-dns", "--rfc2136-tsig-secret=c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
                ])
            defer { process.signal(SIGKILL) }
            // Warm: the controller has started and met its first hostile answers.
            #expect(await EmulatorHarness.eventually(timeout: 120) { server.answered >= 500 })
            let start = server.answered
            try await Self.underHostileAnswers(process, peer: "DNS server", given: { server.answered - start })
            #expect(process.lines.contains { $0.contains("\"warning\"") && $0.contains("DNS") }, "the refusals are said")
        }
        await server.stop()
    }
}
