import Emulators
import Logging
import NodeDNSCore
import NIOConcurrencyHelpers
import Testing

@testable import KubeNodeDNS
@testable import KubernetesAPI

/// A DNS provider in memory: what the loop writes, and nothing else. No HTTP.
final class MemoryProvider: DNSProvider {
    private struct State {
        var records: [ExistingRecord] = []
        var writes: [ChangeSet] = []
        var reads = 0
        var writesBegun = 0
        var nextID = 0
    }
    private let state = NIOLockedValueBox(State())
    /// When set, a write waits for `releaseWrite()` (or its cancellation) before it lands: a slow provider.
    let holdsWrites: Bool
    private let releases: AsyncStream<Void>
    private let release: AsyncStream<Void>.Continuation

    init(holdsWrites: Bool = false) {
        self.holdsWrites = holdsWrites
        (releases, release) = AsyncStream.makeStream(of: Void.self)
    }

    var writes: [ChangeSet] { state.withLockedValue { $0.writes } }
    var values: Set<String> { state.withLockedValue { Set($0.records.map(\.value)) } }
    /// Full reads of the records so far.
    var reads: Int { state.withLockedValue { $0.reads } }
    /// Writes that reached the provider, landed or not.
    var writesBegun: Int { state.withLockedValue { $0.writesBegun } }

    /// Someone else removes a record behind the controller's back (drift).
    func removeBehindTheControllersBack(_ value: String) { state.withLockedValue { $0.records.removeAll { $0.value == value } } }
    func releaseWrite() { release.yield() }

    func normalized(_ settings: RecordSettings) -> RecordSettings { settings }
    func prepare(scope: ManagedScope) async throws {}
    func records(in scope: ManagedScope) async throws -> [ExistingRecord] {
        state.withLockedValue {
            $0.reads += 1
            return $0.records
        }
    }
    func apply(_ changes: ChangeSet, authorized: @escaping WriteAuthorization) async throws -> [ExistingRecord] {
        guard authorized() else { throw WriteNotAuthorized() }
        state.withLockedValue { $0.writesBegun += 1 }
        if holdsWrites {
            var iterator = releases.makeAsyncIterator()
            _ = await iterator.next()
            try Task.checkCancellation()
            guard authorized() else { throw WriteNotAuthorized() }
        }
        return state.withLockedValue { state in
            let created = changes.creates.map { create -> ExistingRecord in
                state.nextID += 1
                return ExistingRecord(id: "r\(state.nextID)", key: create.key, value: create.value, settings: create.settings, owned: true)
            }
            state.records = changes.applied(to: state.records, created: created)
            state.writes.append(changes)
            return created
        }
    }
}

/// The reconcile loop alone, driven with an in-memory provider and a clock the test moves: the leading edge, the
/// collapse window and the fenced write, with no emulator and no socket.
@Suite struct ReconcileLoopTests {
    static let logger = Logger(label: "loop") { _ in SwiftLogNoOpLogHandler() }

    static func node(_ name: String, _ address: String) -> Node {
        Node(
            name: name, conditions: [.init(type: "Ready", status: "True")], addresses: [.init(type: "ExternalIP", address: address)])
    }

    /// The loop over an in-memory provider: `--debounce=10s` and `--resync-interval=1h` on a clock the test moves,
    /// writing while `leader` says so.
    struct Rig {
        let provider: MemoryProvider
        let wake = Wake()
        let store: NodeStore
        let clock = ManualClock()
        let reconciler: Reconciler
        let running: Task<Void, any Error>

        init(_ provider: MemoryProvider = MemoryProvider(), leader: @escaping @Sendable () -> Int? = { 1 }) throws {
            self.provider = provider
            store = NodeStore(wake: wake, labelKeys: [])
            let config = try Configuration.parse(
                arguments: ["--dns-name=k.example.com", "--cloudflare-api-token=t", "--debounce=10s", "--resync-interval=1h"],
                environment: [:])
            let reconciler = Reconciler(
                config: config, provider: provider, recordSettings: RecordSettings(ttl: 120, proxied: false), store: store,
                pods: nil, wake: wake, metrics: ControllerMetrics(), logger: ReconcileLoopTests.logger, clock: clock,
                leadership: leader, events: nil)
            self.reconciler = reconciler
            running = Task { try await reconciler.run() }
        }

        func stop() async {
            running.cancel()
            _ = try? await running.value
        }
    }

    @Test func aChangeIsWrittenAtOnceAndABurstInTheWindowBecomesOneWrite() async throws {
        let rig = try Rig()
        let (provider, _, store, clock, reconciler) = (rig.provider, rig.wake, rig.store, rig.clock, rig.reconciler)
        store.apply(.synced([Self.node("a", "203.0.113.1")]))
        #expect(await EmulatorHarness.eventually { provider.values == ["203.0.113.1"] })
        // The write opened a 10 s window; once it has closed, the next change is written at once (the leading edge).
        #expect(await EmulatorHarness.eventually { reconciler.idle == (true, 10) }, "the window the write opened")
        clock.advance(by: 10)
        store.apply(.upsert(Self.node("b", "203.0.113.2")))
        #expect(await EmulatorHarness.eventually { provider.values == ["203.0.113.1", "203.0.113.2"] }, "written without the clock moving")
        #expect(provider.writes.count == 2)
        // Two more changes inside the window that write opened: nothing until it closes, then one write for both.
        store.apply(.upsert(Self.node("c", "203.0.113.3")))
        store.apply(.upsert(Self.node("d", "203.0.113.4")))
        #expect(await EmulatorHarness.eventually { clock.sleeping >= 2 }, "the resync timer, and the loop waiting for the window to close")
        #expect(provider.writes.count == 2)
        clock.advance(by: 10)
        #expect(await EmulatorHarness.eventually { provider.values.count == 4 })
        #expect(provider.writes.count == 3 && provider.writes[2].creates.count == 2, "c and d in one write")
        await rig.stop()
    }

    @Test func aReplicaThatDoesNotLeadNeverWritesAndWritesOnceItLeads() async throws {
        let term = NIOLockedValueBox<Int?>(nil)
        let rig = try Rig(leader: { term.withLockedValue { $0 } })
        let (provider, wake, store, _, reconciler) = (rig.provider, rig.wake, rig.store, rig.clock, rig.reconciler)
        store.apply(.synced([Self.node("a", "203.0.113.1")]))
        store.apply(.upsert(Self.node("b", "203.0.113.2")))
        // Standby: the changes are seen, nothing is written.
        #expect(await EmulatorHarness.eventually { reconciler.idle.waiting })
        #expect(provider.writes.isEmpty)
        // Leadership comes: the elector says so (as Controller wires it), and the standing changes are written.
        term.withLockedValue { $0 = 1 }
        reconciler.leadershipChanged()
        wake.fire()
        #expect(await EmulatorHarness.eventually { provider.values == ["203.0.113.1", "203.0.113.2"] })
        #expect(provider.writes.count == 1)
        await rig.stop()
    }

    @Test func theResyncRereadsTheProviderAndRepairsDrift() async throws {
        let rig = try Rig()
        let (provider, _, store, clock, reconciler) = (rig.provider, rig.wake, rig.store, rig.clock, rig.reconciler)
        store.apply(.synced([Self.node("a", "203.0.113.1"), Self.node("b", "203.0.113.2")]))
        #expect(await EmulatorHarness.eventually { provider.values == ["203.0.113.1", "203.0.113.2"] })
        #expect(await EmulatorHarness.eventually { reconciler.idle == (true, 10) }, "the window the write opened")
        #expect(provider.reads == 1)
        // Someone deletes a record. Nothing in the cluster changed, so nothing is noticed until the resync is due.
        provider.removeBehindTheControllersBack("203.0.113.2")
        clock.advance(by: 10)
        #expect(await EmulatorHarness.eventually { clock.sleeping >= 1 }, "the resync timer")
        #expect(provider.reads == 1 && provider.values == ["203.0.113.1"])
        // An hour after the last full read (--resync-interval=1h), the records are read again and the drift repaired.
        clock.advance(by: 3600)
        #expect(await EmulatorHarness.eventually { provider.values == ["203.0.113.1", "203.0.113.2"] })
        #expect(provider.reads == 2)
        #expect(provider.writes.count == 2 && provider.writes[1].creates.map(\.value) == ["203.0.113.2"])
        await rig.stop()
    }

    @Test func aWriteInFlightWhenTheLeaseIsLostIsDroppedAndRetriedOnlyUnderANewTerm() async throws {
        let term = NIOLockedValueBox<Int?>(1)
        let rig = try Rig(MemoryProvider(holdsWrites: true), leader: { term.withLockedValue { $0 } })
        let (provider, wake, store, _, reconciler) = (rig.provider, rig.wake, rig.store, rig.clock, rig.reconciler)
        store.apply(.synced([Self.node("a", "203.0.113.1")]))
        #expect(await EmulatorHarness.eventually { provider.writesBegun == 1 }, "the write reached the slow provider")
        // The Lease is lost while the write is on its way: the elector says so, and the write is cancelled.
        term.withLockedValue { $0 = nil }
        reconciler.leadershipChanged()
        #expect(await EmulatorHarness.eventually { reconciler.idle.waiting && reconciler.lastKnownRecords == nil })
        provider.releaseWrite()
        #expect(provider.writes.isEmpty, "nothing landed under the lost term")
        #expect(reconciler.status.lastResult == nil, "a dropped write is not a failed reconcile")
        // A change while standing by is not written.
        store.apply(.upsert(Self.node("b", "203.0.113.2")))
        #expect(await EmulatorHarness.eventually { reconciler.idle.waiting })
        #expect(provider.writesBegun == 1)
        // A new term: the records are read again and both nodes are written in one write.
        term.withLockedValue { $0 = 2 }
        reconciler.leadershipChanged()
        wake.fire()
        #expect(await EmulatorHarness.eventually { provider.writesBegun == 2 })
        provider.releaseWrite()
        #expect(await EmulatorHarness.eventually { provider.values == ["203.0.113.1", "203.0.113.2"] })
        #expect(provider.writes.count == 1 && provider.reads == 2)
        await rig.stop()
    }
}
