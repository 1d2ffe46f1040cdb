import Emulators
import Foundation
import KubeNodeDNS
import KubernetesAPI
import NodeDNSCore
import Testing

/// A graceful shutdown is not a failure: stopped in the middle of a slow write, the controller logs no error, counts
/// no failed reconcile and no failed request, and exits cleanly.
@Suite(.serialized) struct CancellationTests {
    /// What a shutdown in mid-exchange must not leave behind: a warning or an error said after it began (a "failed;
    /// retrying", a "cannot reach"), a failed reconcile, an error metric.
    static func expectNoFailure(_ controller: Controller, _ logs: LogLines, since: Int, _ label: String) {
        let lines = logs.lines.withLockedValue { Array($0.dropFirst(since)) }
        let errors = lines.filter {
            $0.contains(#""level":"error""#) || $0.contains(#""level":"warning""#) || $0.contains("failed")
                || $0.contains("Cancellation")
        }
        #expect(errors.isEmpty, "\(label): \(errors)")
        #expect(controller.reconciler.status.failuresInARow == 0, "\(label)")
        #expect(controller.reconciler.status.lastResult != "error", "\(label)")
        let metrics = controller.metrics.text()
        #expect(!metrics.contains(#"kube_node_dns_reconciles_total{result="error"}"#), "\(label): \(metrics)")
    }

    /// Shuts the controller down once `inFlight` says the slow exchange has begun, and waits for it to return; gives
    /// the number of log lines before the shutdown.
    static func shutDown(
        _ controller: Controller, _ running: Task<Void, any Error>, _ logs: LogLines, when inFlight: () -> Bool
    ) async throws -> Int {
        #expect(await EmulatorHarness.eventually { inFlight() }, "the slow exchange began")
        let before = logs.lines.withLockedValue { $0.count }
        await controller.shutdown()
        try await running.value
        return before
    }

    /// Where the slow exchange is: a Cloudflare write held 20 s by the emulator, or a watch that trickles a byte every
    /// 100 ms and never delivers an event.
    enum SlowPeer: String, CaseIterable, CustomStringConvertible {
        case cloudflareWrite, watch
        var description: String { rawValue }
    }

    @Test(arguments: SlowPeer.allCases)
    func aShutdownDuringASlowExchangeIsNotAFailure(slow: SlowPeer) async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("node-1", external: ["203.0.113.1"]))
            let logs = LogLines()
            let controller = try controller(env, ["--events=false"], logs: logs)
            let running = Task { try await controller.run(signals: false) }
            #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
            let before: Int
            switch slow {
            case .cloudflareWrite:
                cf.faults.setDelay(milliseconds: 20_000)
                env.kube.putNode(NodeFixtures.node("node-2", external: ["203.0.113.2"]))
                before = try await Self.shutDown(controller, running, logs) { cf.faults.delayed > 0 }
            case .watch:
                env.kube.faults.drip(matching: "watch=true", bytes: 1, interval: .milliseconds(100))
                env.kube.dropWatches()
                before = try await Self.shutDown(controller, running, logs) {
                    env.kube.faults.requests.filter { $0.query.contains("watch=true") }.count >= 2
                }
            }
            Self.expectNoFailure(controller, logs, since: before, "\(slow)")
        }
    }

    /// The DNS server accepts the connection and never answers (a server too busy to reply): the shutdown comes while
    /// the controller's first query waits.
    @Test func aShutdownDuringASlowDNSServerExchangeIsNotAFailure() async throws {
        let silent = try await StallingServer(answer: "")
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(kube: KubeAPIEmulator(options: .init(nodeLifecycle: nil)), cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("node-1", external: ["203.0.113.1"]))
            let logs = LogLines()
            let config = try Configuration.parse(
                arguments: [
                    "--provider=rfc2136", "--rfc2136-server=127.0.0.1:\(silent.port)", "--rfc2136-zone=example.com",
                    "--rfc2136-tsig-key-name=kube-node-dns", "--rfc2136-tsig-secret=\(Data(repeating: 7, count: 32).base64EncodedString())",
                    "--dns-name=k.example.com", "--http-address=127.0.0.1:0", "--events=false",
                ],
                environment: [:])
            let controller = try Controller.make(config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logs.logger())
            let running = Task { try await controller.run(signals: false) }
            let before = try await Self.shutDown(controller, running, logs) { silent.connections > 0 }
            Self.expectNoFailure(controller, logs, since: before, "RFC 2136")
        }
        await silent.stop()
    }
}
