import Emulators
import HealthChecks
import NodeDNSCore
import NIOConcurrencyHelpers
import Testing

/// The probe against real sockets on loopback: what passes, what fails, and the words a user reads.
@Suite struct ProbeTests {
    /// A probe that gives a server the harness's patience: only the tests of a hung server shorten it, so a busy
    /// machine (or a sanitizer's slowdown) cannot turn a passing check into a timeout.
    static func probe(
        _ spec: String, host: String = "www.example.com", timeout: Duration = .seconds(EmulatorHarness.patience)
    ) throws
        -> HealthProbe
    {
        try HealthProbe(spec: try HealthCheckSpec(spec), host: host, timeout: timeout)
    }

    @Test(
        arguments: [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, "ok"),
            ("HTTP/1.1 308 Permanent Redirect\r\nLocation: https://x/\r\n\r\n", true, "ok"),
            ("HTTP/1.1 503 Service Unavailable\r\n\r\n", false, "HTTP 503"),
            ("HTTP/1.0 404 Not Found\r\n\r\n", false, "HTTP 404"),
            ("SSH-2.0-OpenSSH_9.6\r\n", false, "not an HTTP answer"),
        ])
    func httpAnswers(answer: String, passed: Bool, detail: String) async throws {
        let server = try await StallingServer(answer: answer)
        let result = try await Self.probe("http://{address}:\(server.port)/nginx-health").check("127.0.0.1")
        #expect(result.passed == passed, "\(result.detail)")
        #expect(result.detail == "\(detail) (127.0.0.1:\(server.port))")
        #expect(server.requestLines == ["GET /nginx-health HTTP/1.1"], "one GET with the path")
        await server.stop()
    }

    /// A server that accepts, then says nothing (a hung nginx), fails the check when the timeout ends, not later.
    @Test func aHungServerFailsAtTheTimeout() async throws {
        let server = try await StallingServer(answer: " ")
        let timeout = Duration.milliseconds(500)
        let result = try await Self.probe("http://{address}:\(server.port)/nginx-health", timeout: timeout)
            .check("127.0.0.1")
        #expect(!result.passed)
        #expect(result.detail == "no answer within 0.50 s (127.0.0.1:\(server.port))")
        #expect(result.latency >= timeout, "the probe waited the whole timeout")
        #expect(server.requestLines == ["GET /nginx-health HTTP/1.1"], "one GET with the path")
        await server.stop()
    }

    /// An answer framed by Content-Length leaves its connection open for the next probe (no handshake, no close
    /// per check): with the listener gone, the kept connection still serves; a fresh one would be refused.
    @Test func aKeptConnectionServesTheNextProbes() async throws {
        let server = try await StallingServer(answer: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        let port = server.port
        let probe = try Self.probe("http://{address}:\(port)/nginx-health")
        for _ in 0..<3 {
            let result = await probe.check("127.0.0.1")
            #expect(result.passed, "\(result.detail)")
        }
        #expect(server.requestLines.count == 3)
        await server.stop()
        let kept = await probe.check("127.0.0.1")
        #expect(kept.passed, "\(kept.detail)")
        // Another probe (no kept connection) is refused: the listener is gone.
        let fresh = await (try Self.probe("http://{address}:\(port)/nginx-health")).check("127.0.0.1")
        #expect(!fresh.passed && fresh.detail.hasPrefix("connection refused"), "\(fresh.detail)")
    }

    @Test func aRefusedConnectionAndATCPCheck() async throws {
        let server = try await StallingServer(answer: " ")
        let port = server.port
        let open = try await Self.probe("tcp://{address}:\(port)").check("127.0.0.1")
        #expect(open.passed && open.detail == "ok (127.0.0.1:\(port))")
        await server.stop()
        // A port nobody listens on, held so that no other test's server takes it between the two probes.
        let refusing = try RefusingPort()
        let closed = try await Self.probe("tcp://{address}:\(refusing.port)").check("127.0.0.1")
        #expect(!closed.passed && closed.detail == "connection refused (127.0.0.1:\(refusing.port))")
        let http = try await Self.probe("http://{address}:\(refusing.port)/").check("127.0.0.1")
        #expect(!http.passed && http.detail == "connection refused (127.0.0.1:\(refusing.port))")
    }

    /// https: the certificate is verified against --health-check-host, which is also the SNI name.
    @Test func httpsVerifiesTheSiteName() async throws {
        let certificates = try TestCertificates.make(subjectAltNames: "DNS:www.example.test")
        let kube = KubeAPIEmulator()
        try await EmulatorHarness.serving({
            try await kube.run(tls: try certificates.serverConfiguration(), logger: EmulatorHarness.quietLogger, onReady: $0)
        }) { port in
            let spec = try HealthCheckSpec("https://{address}:\(port)/healthz")
            let good = try HealthProbe(spec: spec, host: "www.example.test", timeout: .seconds(2), caFile: certificates.caPath)
            let passed = await good.check("127.0.0.1")
            #expect(passed.passed, "\(passed.detail)")
            let wrongName = try HealthProbe(spec: spec, host: "other.example.test", timeout: .seconds(2), caFile: certificates.caPath)
            let mismatch = await wrongName.check("127.0.0.1")
            #expect(
                !mismatch.passed && mismatch.detail.hasPrefix("TLS: the certificate does not carry the name other.example.test"),
                "\(mismatch.detail)")
            let untrusted = await (try HealthProbe(spec: spec, host: "www.example.test", timeout: .seconds(2))).check("127.0.0.1")
            #expect(!untrusted.passed && untrusted.detail.hasPrefix("TLS handshake failed"), "\(untrusted.detail)")
            let insecure = try HealthProbe(spec: spec, host: "www.example.com", timeout: .seconds(2), insecure: true)
            #expect(await insecure.check("127.0.0.1").passed)
        }
    }

    /// A round never outlives the timeout, however many nodes hang, up to the concurrency limit.
    @Test func aRoundOfHungNodesTakesOneTimeout() async throws {
        let server = try await StallingServer(answer: " ")
        var settings = HealthChecker.Settings()
        settings.fall = 1
        let changes = ChangeCounter()
        let timeout = Duration.milliseconds(300)
        let checker = HealthChecker(
            probe: try Self.probe("http://{address}:\(server.port)/", timeout: timeout), settings: settings,
            onChange: { _ in changes.add() })
        let started = ContinuousClock.now
        await checker.round(targets: Dictionary(uniqueKeysWithValues: (0..<50).map { ("n\($0)", ["127.0.0.1"]) }))
        let took = started.duration(to: .now)
        // One after another, the 50 would take 50 timeouts; together, about one. Half of the first is the bound, so
        // a slow machine does not fail it and a round that probes in turn does.
        #expect(took < timeout * 25, "a round of 50 hung nodes took \(took)")
        #expect(checker.verdicts.count == 50)
        #expect(checker.allFailing)
        #expect(changes.count == 1)
        // Every probe failed: the likelier fault is the checker's own network, so no verdict moved.
        #expect(checker.verdicts.values.allSatisfy { $0 == .awaitingFirstCheck })
        await server.stop()
    }

    /// One node refuses while another answers (the server listens on 127.0.0.1 only; 127.0.0.2, also loopback,
    /// refuses): the refusing one is out after `fall` rounds with its reason, said with one wake-up; the other stays.
    @Test func aRefusingNodeLeavesAfterFallRounds() async throws {
        let server = try await StallingServer(answer: "HTTP/1.1 200 OK\r\n\r\n")
        let changes = ChangeCounter()
        let checker = HealthChecker(
            probe: try Self.probe("http://{address}:\(server.port)/nginx-health"), settings: HealthChecker.Settings(),
            onChange: { _ in changes.add() })
        let targets = ["a": ["127.0.0.1"], "b": ["127.0.0.2"]]
        await checker.round(targets: targets)
        #expect(checker.verdicts == ["a": .healthy, "b": .awaitingFirstCheck])
        await checker.round(targets: targets)
        #expect(
            checker.verdicts == [
                "a": .healthy, "b": .unhealthy("health check failed twice: connection refused (127.0.0.2:\(server.port))"),
            ])
        #expect(!checker.allFailing)
        #expect(changes.count == 2, "the first round, then b's verdict")
        await checker.round(targets: targets)
        #expect(changes.count == 2, "nothing changed, nothing woken")
        // A node no longer probed (another rule left it out) is forgotten: it awaits its first pass when it returns.
        await checker.round(targets: ["a": ["127.0.0.1"]])
        #expect(checker.verdicts == ["a": .healthy])
        await server.stop()
    }

    /// A node that becomes a target between rounds (revived, joined, uncordoned) is probed when the cluster says it
    /// changed, not at the next round: the interval here is an hour, so only that probe can give it a verdict.
    @Test func aNewTargetIsProbedAtOnceNotAtTheNextRound() async throws {
        let server = try await StallingServer(answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        var settings = HealthChecker.Settings()
        settings.interval = .seconds(3600)
        let checker = HealthChecker(
            probe: try Self.probe("http://{address}:\(server.port)/nginx-health"), settings: settings, onChange: { _ in })
        let targets = TargetList(["a": ["127.0.0.1"]])
        let running = Task { await checker.run { targets.value.withLockedValue { $0 } } }
        #expect(await EmulatorHarness.eventually { checker.verdicts == ["a": .healthy] })
        targets.value.withLockedValue { $0["b"] = ["127.0.0.1"] }
        checker.nodesChanged()
        #expect(await EmulatorHarness.eventually { checker.verdicts == ["a": .healthy, "b": .healthy] })
        #expect(checker.rounds == 1, "b was probed between rounds, and the probe of b alone is not a round")
        running.cancel()
        await running.value
        await server.stop()
    }
}

final class TargetList: Sendable {
    let value: NIOLockedValueBox<[String: [String]]>
    init(_ targets: [String: [String]]) { value = NIOLockedValueBox(targets) }
}

final class ChangeCounter: Sendable {
    private let value = NIOLockedValueBox(0)
    func add() { value.withLockedValue { $0 += 1 } }
    var count: Int { value.withLockedValue { $0 } }
}
