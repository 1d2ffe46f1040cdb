import CloudflareDNS
import Emulators
import Foundation
import Logging
import NodeDNSCore
import NIOConcurrencyHelpers
import Testing

let testLogger = EmulatorHarness.quietLogger

func withCloudflare<T: Sendable>(_ emulator: CloudflareEmulator, _ body: @Sendable (String) async throws -> T) async throws -> T {
    try await EmulatorHarness.serving({ try await emulator.run(logger: testLogger, onReady: $0) }) { port in
        try await body("http://127.0.0.1:\(port)/client/v4")
    }
}

/// A clock whose sleeps advance virtual time at once, so limits are tested without waiting.
final class VirtualClock: CloudflareClock {
    private let time = NIOLockedValueBox(1_000_000.0)
    let slept = NIOLockedValueBox<[Double]>([])
    func now() -> Double { time.withLockedValue { $0 } }
    func sleep(seconds: Double) async throws {
        slept.withLockedValue { $0.append(seconds) }
        time.withLockedValue { $0 += seconds }
    }
}

let managedName = try! DNSName("k.example.com")
let managedKey = RecordKey(name: managedName, type: .a)
let plainSettings = RecordSettings(ttl: 120, proxied: false)

func emulator(rateLimit: Int? = nil) -> CloudflareEmulator {
    var options = CloudflareEmulator.Options(zones: ["example.com"], tokens: [.init("good"), .init("readonly", dnsEdit: false)])
    options.rateLimit = rateLimit
    return CloudflareEmulator(options: options)
}

@Suite(.serialized) struct CloudflareProviderTests {
    func provider(
        _ url: String, token: String = "good", clock: any CloudflareClock = VirtualClock(), batchSize: Int = 200
    ) -> CloudflareProvider {
        let client = CloudflareClient(baseURL: url, credentials: CloudflareCredentials.token(token), logger: testLogger, clock: clock)
        return CloudflareProvider(client: client, ownerID: "test", batchSize: batchSize, logger: testLogger)
    }

    @Test func ownerRoundTripAndReadAfterWriteIsEmpty() async throws {
        let cf = emulator()
        let foreign = cf.seed(zone: "example.com", type: "A", name: "k.example.com", content: "198.51.100.1", comment: "hand-made")
        try await withCloudflare(cf) { url in
            let provider = provider(url)
            let scope = ManagedScope(names: [managedName])
            try await provider.prepare(scope: scope)
            let desired: [RecordKey: Set<String>] = [managedKey: ["203.0.113.1", "203.0.113.2", "198.51.100.1"]]
            let policy = PlanPolicy(settings: plainSettings)
            let first = plan(desired: desired, current: try await provider.records(in: scope), policy: policy)
            #expect(first.creates.count == 2 && first.conflicts.count == 1)
            _ = try await provider.apply(first)
            let again = plan(desired: desired, current: try await provider.records(in: scope), policy: policy)
            #expect(again.isEmpty)
            let records = cf.records(zone: "example.com")
            #expect(records.filter { $0["comment"]?.string == "kube-node-dns owner=test" }.count == 2)
            #expect(records.first { $0["id"] == foreign?["id"] } == foreign, "the foreign record is untouched")
            // Proxied records read back TTL 1: the normalised plan still converges.
            let proxied = PlanPolicy(settings: provider.normalized(RecordSettings(ttl: 120, proxied: true)))
            _ = try await provider.apply(plan(desired: desired, current: try await provider.records(in: scope), policy: proxied))
            #expect(plan(desired: desired, current: try await provider.records(in: scope), policy: proxied).isEmpty)
        }
    }

    @Test func paginationAndBatchesOf200() async throws {
        let cf = emulator()
        try await withCloudflare(cf) { url in
            let provider = provider(url)
            let scope = ManagedScope(names: [managedName])
            let values = Set((0..<450).map { "10.\($0 / 256).\($0 % 256).1" })
            _ = try await provider.apply(plan(desired: [managedKey: values], current: [], policy: PlanPolicy(settings: plainSettings)))
            #expect(cf.exchanges.filter { $0.path.hasSuffix("/batch") }.count == 3)
            let client = CloudflareClient(baseURL: url, credentials: CloudflareCredentials.token("good"), logger: testLogger)
            let zone = try await provider.zoneID(for: managedName.text)
            #expect(try await client.records(zoneID: zone, filter: [("name.exact", managedName.text)], perPage: 100).count == 450)
            #expect(cf.exchanges.filter { $0.path.hasSuffix("/dns_records") && $0.method == "GET" }.count == 5)
            #expect(try await provider.records(in: scope).count == 450)
        }
    }

    /// Batches overlap, but the batches with a delete wait for those without: a record leaves only after the
    /// records that join have been written, in the order Cloudflare applied the batches.
    @Test func overlappedBatchesApplyDeletesLast() async throws {
        let cf = emulator()
        try await withCloudflare(cf) { url in
            let provider = provider(url)
            let shrinking = RecordKey(name: try DNSName("s.example.com"), type: .a)
            let scope = ManagedScope(names: [managedName, shrinking.name])
            let policy = PlanPolicy(settings: plainSettings)
            let old = Set((0..<300).map { "10.1.\($0 / 256).\($0 % 256)" })
            _ = try await provider.apply(plan(desired: [shrinking: old], current: [], policy: policy))
            let before = cf.exchangeCount
            let grown = Set((0..<450).map { "10.2.\($0 / 256).\($0 % 256)" })
            let change = plan(
                desired: [managedKey: grown, shrinking: ["10.1.0.0"]], current: try await provider.records(in: scope), policy: policy)
            #expect(change.creates.count == 450 && change.deletes.count == 299)
            _ = try await provider.apply(change)
            let batches = cf.exchanges(from: before).filter { $0.path.hasSuffix("/batch") && $0.status == 200 }
            let deletes = batches.map { !($0.body?["deletes"]?.array ?? []).isEmpty }
            #expect(batches.count == 4 && deletes == [false, false, true, true], "\(deletes)")
            let records = try await provider.records(in: scope)
            #expect(Set(records.filter { $0.key == managedKey }.map(\.value)) == grown)
            #expect(records.filter { $0.key == shrinking }.map(\.value) == ["10.1.0.0"])
        }
    }

    @Test func perNodeNamesCostOneReadHoweverManyNodes() async throws {
        let cf = emulator()
        try await withCloudflare(cf) { url in
            let provider = provider(url)
            let template = try NodeNameTemplate("{node}.nodes.example.com")
            let perNode = try (0..<50).map { try DNSName("n\($0).nodes.example.com") }
            let scope = ManagedScope(names: Set(perNode + [managedName]), template: template)
            var desired: [RecordKey: Set<String>] = [managedKey: ["203.0.113.1"]]
            for (index, name) in perNode.enumerated() { desired[RecordKey(name: name, type: .a)] = ["198.51.100.\(index + 1)"] }
            try await provider.prepare(scope: scope)
            _ = try await provider.apply(
                plan(desired: desired, current: try await provider.records(in: scope), policy: PlanPolicy(settings: plainSettings)))
            let before = cf.exchangeCount
            let current = try await provider.records(in: scope)
            #expect(current.count == 51)
            let reads = cf.exchanges(from: before)
            #expect(reads.count == 2, "one exact read for the shared name, one suffix read for all 50 per-node names")
            #expect(plan(desired: desired, current: current, policy: PlanPolicy(settings: plainSettings)).isEmpty)
        }
    }

    @Test func retryAfterAndServerErrors() async throws {
        let cf = emulator()
        try await withCloudflare(cf) { url in
            let clock = VirtualClock()
            let provider = provider(url, clock: clock)
            cf.faults.inject(status: 429, count: 1, retryAfter: 7)
            cf.faults.inject(status: 500, count: 2)
            _ = try await provider.records(in: ManagedScope(names: [managedName]))
            #expect(clock.slept.withLockedValue { $0.first } == 7)
            #expect(clock.slept.withLockedValue { $0.count } == 3)
        }
    }

    /// A 503 that says when to come back is waited for as long as it says (it was ignored: a 0.5 s backoff).
    @Test func retryAfterOnA503IsHonoured() async throws {
        let cf = emulator()
        try await withCloudflare(cf) { url in
            let clock = VirtualClock()
            let provider = provider(url, clock: clock)
            cf.faults.inject(status: 503, count: 1, retryAfter: 9)
            _ = try await provider.records(in: ManagedScope(names: [managedName]))
            #expect(clock.slept.withLockedValue { $0 } == [9])
        }
    }

    /// Retry-After as delay-seconds or as an HTTP date (RFC 9110 section 10.2.3); a date fell back to 1 s before.
    @Test(
        arguments: [
            ("7", 7.0), (" 120 ", 120.0), ("Sun, 06 Nov 1994 08:49:37 GMT", 10.0), ("Sun, 06 Nov 1994 08:49:17 GMT", 0.0),
            ("Tue, 01 Dec 2026 12:00:00 GMT", Double(1_796_126_400 - 784_111_767)), ("soon", -1.0),
        ] as [(String, Double)])
    func retryAfterHeaders(header: String, seconds: Double) {
        let now = 784_111_767.0  // 1994-11-06 08:49:27 UTC
        let parsed = RetryAfter.seconds(header, now: now)
        #expect(parsed == (seconds < 0 ? nil : seconds))
    }

    @Test(arguments: [("bad-token", "9109"), ("readonly", "10000")])
    func permissionErrorsSayWhatToFix(token: String, code: String) async throws {
        let cf = emulator()
        try await withCloudflare(cf) { url in
            let provider = provider(url, token: token)
            do {
                try await provider.prepare(scope: ManagedScope(names: [managedName]))
                _ = try await provider.apply(
                    plan(desired: [managedKey: ["203.0.113.1"]], current: [], policy: PlanPolicy(settings: plainSettings)))
                Issue.record("expected a failure")
            } catch {
                #expect("\(error)".contains(code) && "\(error)".contains("token"), "\(error)")
            }
        }
    }

    @Test func rateLimiterHoldsABurstUnderTheBudget() async throws {
        let cf = emulator()
        try await withCloudflare(cf) { url in
            let clock = VirtualClock()
            let client = CloudflareClient(
                baseURL: url, credentials: CloudflareCredentials.token("good"), logger: testLogger, rateLimit: 1200, rateWindow: 300,
                clock: clock)
            let zone = try await client.allZones()[0].id
            var times: [Double] = []
            for _ in 0..<2000 {
                _ = try await client.records(zoneID: zone, filter: [("name.exact", "k.example.com")])
                times.append(clock.now())
            }
            #expect(cf.exchanges.count == 2001 && cf.exchanges.allSatisfy { $0.status == 200 })
            let all = [1_000_000.0] + times
            for (index, start) in all.enumerated() {
                let inWindow = all[index...].prefix { $0 < start + 300 }.count
                #expect(inWindow <= 1200)
                if inWindow > 1200 { break }
            }
        }
    }
}
