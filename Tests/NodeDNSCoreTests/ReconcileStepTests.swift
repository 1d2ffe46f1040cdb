import Testing

@testable import NodeDNSCore

/// The reconcile step alone: from one picture of the cluster and the provider's records to the changes and the
/// report, with no loop, no clock and no I/O.
@Suite struct ReconcileStepTests {
    static let name = try! DNSName("k.example.com")
    static let settings = RecordSettings(ttl: 120, proxied: false)
    static let policy = RecordPolicy(sharedNames: [name])
    static let planPolicy = PlanPolicy(settings: settings, protectedNames: [name])

    static func node(_ name: String, _ address: String, ready: String = "True") -> NodeSnapshot {
        NodeSnapshot(name: name, ready: ready, addresses: [.init(type: "ExternalIP", address: address)])
    }

    static func owned(_ value: String) -> ExistingRecord {
        ExistingRecord(id: value, key: RecordKey(name: name, type: .a), value: value, settings: settings, owned: true)
    }

    static func decide(
        _ nodes: [NodeSnapshot], current: [ExistingRecord], baseline: [RecordKey: Set<String>] = [:],
        membership: [String: Membership] = [:], policy: RecordPolicy = policy
    ) -> (ReconcileDecision, ReconcileEngine) {
        var engine = ReconcileEngine(policy: policy)
        engine.observe(changed: Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, Optional($0)) }))
        engine.load(current)
        engine.membership = membership
        let decision = engine.decide(planPolicy: planPolicy, windowBaseline: baseline)
        return (decision, engine)
    }

    /// What a user reads about each node, in order: the kinds of moves the step reports.
    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var nodes: [NodeSnapshot]
        var current: [String]
        var baseline: Set<String> = []
        var known: [String: Membership]
        var creates: [String]
        var deletes: [String]
        var held: Bool
        var moves: [NodeEvent.Reason]
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(
            label: "a node joins", nodes: [node("a", "203.0.113.1"), node("b", "203.0.113.2")], current: ["203.0.113.1"],
            known: ["a": .published(["203.0.113.1"])], creates: ["203.0.113.2"], deletes: [], held: false, moves: [.joined]),
        Case(
            label: "a node goes NotReady and leaves", nodes: [node("a", "203.0.113.1"), node("b", "203.0.113.2", ready: "False")],
            current: ["203.0.113.1", "203.0.113.2"],
            known: ["a": .published(["203.0.113.1"]), "b": .published(["203.0.113.2"])], creates: [],
            deletes: ["203.0.113.2"], held: false, moves: [.left]),
        Case(
            label: "every node leaves at once: held, not left",
            nodes: [node("a", "203.0.113.1", ready: "False"), node("b", "203.0.113.2", ready: "False")],
            current: ["203.0.113.1", "203.0.113.2"],
            known: ["a": .published(["203.0.113.1"]), "b": .published(["203.0.113.2"])], creates: [], deletes: [],
            held: true, moves: [.held, .held]),
        Case(
            label: "the window's earlier removal is held back with the rest",
            nodes: [node("a", "203.0.113.1", ready: "False"), node("b", "203.0.113.2", ready: "False")],
            current: ["203.0.113.1"], baseline: ["203.0.113.1", "203.0.113.2"],
            known: ["a": .published(["203.0.113.1"]), "b": .published(["203.0.113.2"])], creates: ["203.0.113.2"],
            deletes: [], held: true, moves: [.held, .held]),
        Case(
            label: "a node that left first is held once the rest follow and its record is put back",
            nodes: [node("a", "203.0.113.1", ready: "False"), node("b", "203.0.113.2", ready: "False")],
            current: ["203.0.113.1"], baseline: ["203.0.113.1", "203.0.113.2"],
            known: ["a": .published(["203.0.113.1"]), "b": .excluded(["not Ready (False)"])], creates: ["203.0.113.2"],
            deletes: [], held: true, moves: [.held, .held]),
        Case(
            label: "a deleted node is not held back by the window",
            nodes: [node("a", "203.0.113.1", ready: "False")], current: ["203.0.113.1"],
            baseline: ["203.0.113.1", "203.0.113.2"], known: ["a": .published(["203.0.113.1"])], creates: [],
            deletes: [], held: true, moves: [.held]),
        Case(
            label: "nothing changed: nothing to write and nothing to say", nodes: [node("a", "203.0.113.1")],
            current: ["203.0.113.1"], known: ["a": .published(["203.0.113.1"])], creates: [], deletes: [], held: false,
            moves: []),
        Case(
            label: "a node never published is not said to leave",
            nodes: [node("a", "203.0.113.1"), node("b", "203.0.113.2", ready: "False")],
            current: ["203.0.113.1"], known: ["a": .published(["203.0.113.1"])], creates: [], deletes: [], held: false,
            moves: [.excluded]),
    ]

    @Test(arguments: cases) func theStepDecidesAndSaysWhy(_ example: Case) {
        let key = RecordKey(name: Self.name, type: .a)
        let (decision, engine) = Self.decide(
            example.nodes, current: example.current.map(Self.owned),
            baseline: example.baseline.isEmpty ? [:] : [key: example.baseline], membership: example.known)
        #expect(decision.changes.creates.map(\.value).sorted() == example.creates)
        #expect(decision.changes.deletes.map(\.value).sorted() == example.deletes)
        #expect(decision.changes.heldNames == (example.held ? [Self.name] : []))
        #expect(decision.transitions.map(\.reason) == example.moves)
        // The baseline keeps only nodes that still exist.
        let existing = Set(example.nodes.flatMap { $0.addresses.map(\.address) })
        #expect(decision.holdBaseline.values.allSatisfy { $0.isSubset(of: existing) })
        // Said once: the same input again, with the membership it produced, says nothing more; the next decision
        // (nothing changed, nothing written) plans the same.
        let (again, _) = Self.decide(
            example.nodes, current: example.current.map(Self.owned),
            baseline: example.baseline.isEmpty ? [:] : [key: example.baseline], membership: engine.membership)
        #expect(again.transitions.isEmpty)
        #expect(again.changes == decision.changes)
        var next = engine
        next.observe(changed: [:])
        let quiet = next.decide(planPolicy: Self.planPolicy, windowBaseline: example.baseline.isEmpty ? [:] : [key: example.baseline])
        #expect(quiet.transitions.isEmpty && quiet.changes == decision.changes)
    }

    @Test func aLeavingNodeIsToldWithEveryReason() {
        var tainted = Self.node("b", "203.0.113.2", ready: "False")
        tainted.unschedulable = true
        var policy = Self.policy
        policy.eligibility.excludeCordoned = true
        let (decision, engine) = Self.decide(
            [Self.node("a", "203.0.113.1"), tainted], current: ["203.0.113.1", "203.0.113.2"].map(Self.owned),
            membership: ["b": .published(["203.0.113.2"])], policy: policy)
        #expect(decision.transitions.map(\.message).contains { $0.hasPrefix("b left DNS: ") && $0.contains(";") })
        #expect(engine.membership["b"] == .excluded(engine.desired.state.exclusions["b"]!))
    }

    @Test func theWindowBaselineKeepsOnlyOwnedValuesOfProtectedNames() throws {
        let other = try DNSName("a.nodes.example.com")
        var foreign = Self.owned("203.0.113.9")
        foreign.owned = false
        let records = [
            Self.owned("203.0.113.1"), foreign,
            ExistingRecord(id: "x", key: RecordKey(name: other, type: .a), value: "203.0.113.1", settings: Self.settings, owned: true),
        ]
        #expect(windowBaseline(of: records, protected: [Self.name]) == [RecordKey(name: Self.name, type: .a): ["203.0.113.1"]])
    }
}
