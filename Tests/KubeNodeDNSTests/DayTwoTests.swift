import AsyncHTTPClient
import Emulators
import Foundation
import KubernetesAPI
import Logging
import NodeDNSCore
import NIOConcurrencyHelpers
import Testing

@testable import KubeNodeDNS

/// A clock that moves only when the test says so; sleeps end when it has been advanced past their deadline.
final class ManualClock: TimeSource {
    private enum Sleeper {
        case pending
        case waiting(deadline: Double, CheckedContinuation<Void, any Error>)
        case cancelled
    }
    private struct State {
        var now = 0.0
        var next = 0
        var sleepers: [Int: Sleeper] = [:]
    }
    private let state = NIOLockedValueBox(State())

    func now() -> Double { state.withLockedValue { $0.now } }

    /// How many sleeps are waiting for the clock to move.
    var sleeping: Int {
        state.withLockedValue { $0.sleepers.values.filter { if case .waiting = $0 { true } else { false } }.count }
    }

    func sleep(seconds: Double) async throws {
        let id = state.withLockedValue { state -> Int in
            state.next += 1
            state.sleepers[state.next] = .pending
            return state.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLockedValue { state -> Bool? in
                    if case .cancelled = state.sleepers[id] {
                        state.sleepers[id] = nil
                        return false
                    }
                    let deadline = state.now + seconds
                    if deadline <= state.now {
                        state.sleepers[id] = nil
                        return true
                    }
                    state.sleepers[id] = .waiting(deadline: deadline, continuation)
                    return nil
                }
                switch outcome {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            let parked = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
                switch state.sleepers[id] {
                case .waiting(_, let continuation):
                    state.sleepers[id] = nil
                    return continuation
                case .pending:
                    state.sleepers[id] = .cancelled
                    return nil
                default: return nil
                }
            }
            parked?.resume(throwing: CancellationError())
        }
    }

    func advance(by seconds: Double) {
        let due = state.withLockedValue { state -> [CheckedContinuation<Void, any Error>] in
            state.now += seconds
            var due: [CheckedContinuation<Void, any Error>] = []
            for (id, sleeper) in state.sleepers {
                if case .waiting(let deadline, let continuation) = sleeper, deadline <= state.now {
                    due.append(continuation)
                    state.sleepers[id] = nil
                }
            }
            return due
        }
        for continuation in due { continuation.resume() }
    }
}

func configuration(_ env: EmulatorHarness.Running, _ extra: [String], token: String? = token) throws -> Configuration {
    try Configuration.parse(
        arguments: [
            "--dns-name=k.example.com", "--cloudflare-api-url=\(env.cloudflareURL)", "--debounce=10ms",
            "--http-address=127.0.0.1:0",
        ] + (token.map { ["--cloudflare-api-token=\($0)"] } ?? []) + extra,
        environment: [:])
}

/// The owned record of `value` on k.example.com, edited or deleted (nil) behind the controller's back.
@discardableResult
func tamper(_ cf: CloudflareEmulator, value: String, _ edit: @escaping (JSON) -> JSON?) -> Int {
    cf.editRecords(zone: "example.com") { record in
        record["content"]?.string == value ? .some(edit(record)) : .none
    }
}

@Suite(.serialized) struct DayTwoTests {
    /// Drift is repaired within one --resync-interval: the timer counts from the last full read, and the read it
    /// causes is the full one (before, the check missed by a hair and waited for a second tick).
    @Test func driftIsRepairedWithinOneResyncInterval() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let clock = ManualClock()
            let config = try configuration(env, ["--resync-interval=60s", "--debounce=0"])
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: env.kubeURL), logger: LogLines().logger(level: .info),
                reconcilerClock: clock)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(await EmulatorHarness.eventually { clock.sleeping == 1 }, "the resync timer is waiting")

                // A managed record deleted behind the controller's back.
                #expect(tamper(cf, value: "203.0.113.1") { _ in nil } == 1)
                let readsBefore = cf.exchanges.filter { $0.method == "GET" && $0.path.hasSuffix("/dns_records") }.count
                clock.advance(by: 60)
                #expect(
                    await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] },
                    "re-created one interval after the last full read")
                let reads = cf.exchanges.filter { $0.method == "GET" && $0.path.hasSuffix("/dns_records") }.count - readsBefore
                #expect(reads == 1, "one read of the one managed name per resync")

                // A managed record changed behind its back.
                #expect(await EmulatorHarness.eventually { clock.sleeping == 1 })
                #expect(
                    tamper(cf, value: "203.0.113.2") { record in
                        var changed = record
                        changed["content"] = "198.51.100.99"
                        return changed
                    } == 1)
                clock.advance(by: 60)
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
            }
        }
    }

    /// The kubelet updates a mounted Secret by swapping the `..data` symlink; the controller follows, and the
    /// next request uses the new token even though Cloudflare has revoked the old one.
    @Test func aRotatedTokenFileIsUsedWithoutARestart() async throws {
        let oldToken = "rotation-old-token-value"
        let newToken = "rotation-new-token-value"
        let cf = CloudflareEmulator(options: .init(zones: ["example.com"], tokens: [.init(oldToken)]))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(UUID().uuidString)").path
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/..2026_12_01_a", withIntermediateDirectories: true)
        try oldToken.write(toFile: directory + "/..2026_12_01_a/token", atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(atPath: directory + "/..data", withDestinationPath: "..2026_12_01_a")
        try fm.createSymbolicLink(atPath: directory + "/token", withDestinationPath: "..data/token")
        defer { try? fm.removeItem(atPath: directory) }

        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let config = try configuration(env, ["--cloudflare-api-token-file=\(directory)/token"], token: nil)
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logs.logger(level: .info))
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })

                // Rotate as the kubelet does: a new timestamped directory, then an atomic rename of ..data.
                try fm.createDirectory(atPath: directory + "/..2026_12_01_b", withIntermediateDirectories: true)
                try newToken.write(toFile: directory + "/..2026_12_01_b/token", atomically: true, encoding: .utf8)
                try fm.createSymbolicLink(atPath: directory + "/..data_tmp", withDestinationPath: "..2026_12_01_b")
                #expect(rename(directory + "/..data_tmp", directory + "/..data") == 0)
                cf.addToken(.init(newToken))
                cf.revokeToken(oldToken)

                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("Cloudflare token reloaded") } })
                let port = try #require(await controller.httpPort())
                #expect(try await get("http://127.0.0.1:\(port)/readyz") == "ok\n")
                #expect(cf.exchanges.allSatisfy { $0.userAgent == BuildInfo.userAgent }, "every request names the release")
            }
            for line in logs.lines.withLockedValue({ $0 }) {
                #expect(!line.contains(oldToken) && !line.contains(newToken), "a token leaked: \(line)")
            }
        }
    }

    /// Readiness gates rollouts on what a new pod can fix: a passing 429 storm leaves it alone (and shows in
    /// /status); a revoked token flips it, with the reason, until the credentials work again.
    @Test func readinessFailsOnlyForWhatAnOperatorMustFix() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let controller = try Controller.make(
                config: try configuration(env, []), cluster: ClusterConfig(server: env.kubeURL), logger: LogLines().logger())
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                let port = try #require(await controller.httpPort())
                let base = "http://127.0.0.1:\(port)"
                #expect(try await get(base + "/readyz") == "ok\n")

                // Six 429s in a row exhaust one reconcile's retries: a failed reconcile, still ready.
                cf.faults.inject(status: 429, count: 6, retryAfter: 0)
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { controller.reconciler.status.failuresInARow >= 1 })
                #expect(try await get(base + "/readyz") == "ok\n", "a transient error never flips readiness")
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] })
                let status = try await get(base + "/status")
                #expect(status.contains("ready:          yes") && status.contains("role:           single"))

                // A revoked token is for an operator to fix: not ready, and the body says why.
                cf.revokeToken(token)
                env.kube.putNode(NodeFixtures.node("c", external: ["203.0.113.3"]))
                #expect(await EmulatorHarness.eventually { controller.reconciler.notReadyReason != nil })
                let body = try await getWithStatus(base + "/readyz")
                #expect(body.status == 503 && body.text.contains("9109"), "\(body)")
                let json = try await get(base + "/status?format=json")
                #expect(json.contains("\"ready\":false") && json.contains("9109") && !json.contains(token))

                cf.addToken(.init(token))
                #expect(await EmulatorHarness.eventually { ownedValues(cf).count == 3 })
                // Cloudflare holds the record a moment before the controller has read the answer that clears the
                // problem: readiness follows the reconcile's end.
                #expect(await EmulatorHarness.eventually { controller.reconciler.notReadyReason == nil })
                #expect(try await get(base + "/readyz") == "ok\n")
            }
        }
    }

    /// A Lease taken over while the leader sleeps on a 429's Retry-After: the batch it planned is never sent.
    @Test func aLeaseLostDuringRetryAfterStopsTheWrite() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let config = try configuration(
                env,
                [
                    "--leader-elect", "--lease-identity=old-leader", "--lease-namespace=default", "--lease-duration=15s",
                    "--lease-renew-deadline=10s", "--lease-retry-period=200ms",
                ])
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: env.kubeURL), logger: logs.logger(level: .info))
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { leaseHolder(env) == "old-leader" && ownedValues(cf) == ["203.0.113.1"] })

                cf.faults.inject(status: 429, count: 1, retryAfter: 5)
                let injectedAt = Date().timeIntervalSince1970
                env.kube.putNode(NodeFixtures.node("g", external: ["203.0.113.14"]))
                #expect(
                    await EmulatorHarness.eventually {
                        cf.exchanges.contains { $0.at >= injectedAt && $0.path.hasSuffix("/batch") && $0.status == 429 }
                    })
                // Another replica takes the Lease, through the API as it would: a 409 Conflict means the leader
                // renewed between the read and the write, and the Lease is read again (as client-go's elector does).
                let kube = try KubeClient(config: ClusterConfig(server: env.kubeURL), logger: LogLines().logger())
                let taken = await EmulatorHarness.eventually {
                    guard var lease = try? await kube.getLease(namespace: "default", name: "kube-node-dns") else { return false }
                    lease.holderIdentity = "new-leader"
                    lease.renewTime = MicroTime.format(micros: MicroTime.now())
                    return (try? await kube.updateLease(lease)) != nil
                }
                await kube.shutdown()
                #expect(taken, "the other replica took the Lease")

                #expect(
                    await EmulatorHarness.eventually {
                        logs.lines.withLockedValue { $0.contains { $0.contains("leadership ended before the write was sent") } }
                    })
                #expect(controller.elector?.canWrite == false)
                #expect(
                    !cf.exchanges.contains { $0.at >= injectedAt && $0.path.hasSuffix("/batch") && $0.status == 200 },
                    "the old leader sent its batch after losing the Lease")
                #expect(ownedValues(cf) == ["203.0.113.1"])
            }
        }
    }
}

func getWithStatus(_ url: String) async throws -> (status: Int, text: String) {
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
    return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
}

@Suite(.serialized) struct LeaseTimingTests {
    /// Against an API server so slow that a Lease round (a GET and a write) outlasts the renew deadline, the
    /// replica must never believe it leads: a renewal counts from before its request, and a round is cut off at the
    /// deadline. (It counted from the answer, so a renewal that started 3 s earlier opened a fresh 1 s of writes.)
    @Test func aLeaseRoundSlowerThanTheRenewDeadlineNeverGrantsWrites() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.faults.setDelay(milliseconds: 1500)
            let config = try configuration(
                env,
                [
                    "--leader-elect", "--lease-identity=slow", "--lease-namespace=default", "--lease-duration=3s",
                    "--lease-renew-deadline=1s", "--lease-retry-period=200ms",
                ])
            let controller = try Controller.make(
                config: config, cluster: ClusterConfig(server: env.kubeURL), logger: LogLines().logger())
            let elector = try #require(controller.elector)
            try await whileRunning(controller) {
                // Watch for 5 s (more than a full slow round): a rate of "could write" samples, no event to await.
                var sawWrite = false
                let until = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < until {
                    if elector.canWrite { sawWrite = true }
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(!sawWrite, "a replica whose Lease rounds outlast the renew deadline believed it could write")
            }
            env.kube.faults.setDelay(milliseconds: 0)
        }
    }
}
