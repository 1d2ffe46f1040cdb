import Testing

@testable import NodeDNSCore

/// `--cname-names` in the plan: the CNAME is kept whatever the nodes do, and nothing that is not ours is changed.
@Suite struct CNAMEPlanTests {
    static let www = try! DNSName("www.example.com")
    static let apex = try! DNSName("kubernetes.example.com")
    static let settings = RecordSettings(ttl: 120, proxied: false)
    static let desired: [RecordKey: Set<String>] = [RecordKey(name: www, type: .cname): [apex.text]]

    static func record(_ type: RecordType, _ value: String, owned: Bool, ttl: Int = 120) -> ExistingRecord {
        ExistingRecord(
            id: "\(type)-\(value)", key: RecordKey(name: www, type: type), value: value, settings: RecordSettings(ttl: ttl, proxied: false),
            owned: owned)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var current: [ExistingRecord]
        var takeOwnership = false
        var creates = 0
        var updates = 0
        var deletes = 0
        var conflicts = 0
        var state: String
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(label: "nothing there: created", current: [], creates: 1, state: "pending"),
        Case(label: "ours, in place: nothing to write", current: [record(.cname, apex.text, owned: true)], state: "in_place"),
        Case(
            label: "ours with another TTL: updated", current: [record(.cname, apex.text, owned: true, ttl: 300)], updates: 1,
            state: "in_place"),
        Case(
            label: "ours pointing elsewhere: updated", current: [record(.cname, "old.example.com", owned: true)], updates: 1,
            state: "pending"),
        Case(
            label: "someone else's CNAME: a conflict", current: [record(.cname, "elsewhere.example.net", owned: false)], conflicts: 1,
            state: "conflict"),
        Case(
            label: "someone else's CNAME with --take-ownership: adopted",
            current: [record(.cname, "elsewhere.example.net", owned: false)], takeOwnership: true, updates: 1, state: "pending"),
        Case(
            label: "a foreign A: a conflict, nothing written", current: [record(.a, "192.0.2.1", owned: false)], conflicts: 1,
            state: "conflict"),
        Case(
            label: "a TXT, even with --take-ownership: a conflict", current: [record(.other, "TXT \"v=spf1 -all\"", owned: false)],
            takeOwnership: true, conflicts: 1, state: "conflict"),
        Case(
            label: "our A records of a former --dns-name give way to the CNAME",
            current: [record(.a, "203.0.113.1", owned: true), record(.aaaa, "2001:db8::1", owned: true)], creates: 1, deletes: 2,
            state: "pending"),
        Case(
            label: "our A beside a foreign TXT: all left alone",
            current: [record(.a, "203.0.113.1", owned: true), record(.other, "TXT \"x\"", owned: false)], conflicts: 1, state: "conflict"),
        Case(
            label: "two of ours: the extra one goes",
            current: [record(.cname, apex.text, owned: true), record(.cname, "old.example.com", owned: true)], deletes: 1,
            state: "pending"),
    ]

    @Test(arguments: cases) func theCNAMEIsKeptAndNothingForeignIsTouched(_ example: Case) {
        let policy = PlanPolicy(settings: Self.settings, takeOwnership: example.takeOwnership)
        let changes = plan(desired: Self.desired, current: example.current, policy: policy)
        #expect(changes.creates.count == example.creates)
        #expect(changes.updates.count == example.updates)
        #expect(changes.deletes.count == example.deletes)
        #expect(changes.conflicts.count == example.conflicts)
        #expect(changes.blockedNames.isEmpty, "a CNAME on a CNAME name blocks nothing")
        #expect(changes.creates.allSatisfy { $0.key.type == .cname && $0.value == Self.apex.text })
        #expect(changes.updates.allSatisfy { $0.value == Self.apex.text && $0.record.key.type == .cname })
        if example.conflicts > 0 { #expect(changes.isEmpty, "a name with a record not ours in the way is not written") }
        let state = CNAMEState.of([Self.www: Self.apex], records: example.current, takeOwnership: example.takeOwnership)
        #expect(state[Self.www]?.label == example.state)
        // After the write, the name is in place and the next plan writes nothing.
        if !changes.isEmpty {
            let created = changes.creates.map {
                ExistingRecord(id: "new", key: $0.key, value: $0.value, settings: $0.settings, owned: true)
            }
            let after = changes.applied(to: example.current, created: created)
            #expect(plan(desired: Self.desired, current: after, policy: policy).isEmpty)
            #expect(CNAMEState.of([Self.www: Self.apex], records: after)[Self.www] == .inPlace)
        }
    }

    @Test func theCNAMEDoesNotDependOnTheNodes() {
        var policy = RecordPolicy(sharedNames: [Self.apex])
        policy.cnames = [Self.www: Self.apex]
        let none = desiredRecords(nodes: [NodeSnapshot](), policy: policy)
        let some = desiredRecords(
            nodes: [NodeSnapshot(name: "a", addresses: [.init(type: "ExternalIP", address: "203.0.113.1")])], policy: policy)
        let key = RecordKey(name: Self.www, type: .cname)
        #expect(none.sets[key] == [Self.apex.text] && some.sets[key] == [Self.apex.text])
        #expect(none.managedNames.contains(Self.www))
        // While every node leaves the target, the target is held and the CNAME is not touched.
        let owned = [
            ExistingRecord(
                id: "a", key: RecordKey(name: Self.apex, type: .a), value: "203.0.113.1", settings: Self.settings, owned: true),
            Self.record(.cname, Self.apex.text, owned: true),
        ]
        let changes = plan(desired: none.sets, current: owned, policy: PlanPolicy(settings: Self.settings, protectedNames: [Self.apex]))
        #expect(changes.isEmpty && changes.heldNames == [Self.apex])
    }

    @Test func aCNAMEOnAnAddressNameStillBlocksIt() {
        let cname = ExistingRecord(
            id: "c", key: RecordKey(name: Self.apex, type: .cname), value: "elsewhere.example.net", settings: Self.settings,
            owned: false)
        let changes = plan(
            desired: Self.desired.merging([RecordKey(name: Self.apex, type: .a): ["203.0.113.1"]]) { $1 },
            current: [cname], policy: PlanPolicy(settings: Self.settings))
        #expect(changes.blockedNames == [Self.apex])
        #expect(changes.creates.map(\.key) == [RecordKey(name: Self.www, type: .cname)], "the CNAME name goes on")
    }
}
