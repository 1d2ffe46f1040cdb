import Testing

@testable import NodeDNSCore

/// `--node-hostnames-annotation`: which node gets which names, and why a name is refused.
@Suite struct NodeHostnamesTests {
    static let zone = try! DNSName("example.com")

    static func policy(zones: [DNSName]? = [zone]) -> RecordPolicy {
        var policy = RecordPolicy(
            sharedNames: [try! DNSName("k.example.com")], nodeNameTemplate: try! NodeNameTemplate("{node}.nodes.example.com"))
        policy.cnames = [try! DNSName("www.example.com"): try! DNSName("k.example.com")]
        policy.readsNodeHostnames = true
        policy.hostnameZones = zones
        return policy
    }

    static func node(_ name: String, _ address: String, hostnames: String?, ready: String = "True") -> NodeSnapshot {
        NodeSnapshot(name: name, ready: ready, addresses: [.init(type: "ExternalIP", address: address)], hostnames: hostnames)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var annotation: String
        var accepted: [String]
        var refusal: String?
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(
            label: "two names, spaces and case", annotation: " Edge-1.example.com, edge.example.com ,",
            accepted: ["edge-1.example.com", "edge.example.com"]),
        Case(label: "not a DNS name", annotation: "bad_name!.example.com", accepted: [], refusal: "invalid DNS name"),
        Case(
            label: "outside the zone", annotation: "edge.example.org", accepted: [],
            refusal: "outside the DNS zones the provider writes in (example.com)"),
        Case(label: "a --dns-name", annotation: "k.example.com", accepted: [], refusal: "already managed"),
        Case(label: "a --cname-names name", annotation: "www.example.com", accepted: [], refusal: "already managed"),
        Case(label: "a per-node template name", annotation: "b.nodes.example.com", accepted: [], refusal: "already managed"),
        Case(
            label: "one good, one bad", annotation: "edge.example.com,edge.example.org", accepted: ["edge.example.com"], refusal: "outside"),
        Case(label: "the same name twice", annotation: "edge.example.com,EDGE.example.com", accepted: ["edge.example.com"]),
    ]

    @Test(arguments: cases) func aNodeGetsTheNamesItMayHave(_ example: Case) {
        let nodes = [Self.node("a", "203.0.113.1", hostnames: example.annotation)]
        let claims = HostnameClaims(nodes: nodes, policy: Self.policy())
        #expect((claims.accepted["a"] ?? []).map(\.text) == example.accepted)
        if let refusal = example.refusal {
            #expect(claims.refused["a"]?.count == 1 && claims.refused["a"]![0].contains(refusal))
        } else {
            #expect(claims.refused["a"] == nil)
        }
        // The accepted names carry the node's address, beside its per-node name.
        let desired = desiredRecords(nodes: nodes, policy: Self.policy())
        for name in example.accepted {
            #expect(desired.sets[RecordKey(name: try! DNSName(name), type: .a)] == ["203.0.113.1"])
        }
        #expect(desired.sets[RecordKey(name: try! DNSName("a.nodes.example.com"), type: .a)] == ["203.0.113.1"])
    }

    @Test func twoNodesClaimingOneNameGetNeitherUntilOneLetsGo() throws {
        let edge = try DNSName("edge.example.com")
        var nodes = [
            Self.node("a", "203.0.113.1", hostnames: "edge.example.com,a.example.com"),
            Self.node("b", "203.0.113.2", hostnames: "edge.example.com"),
        ]
        let desired = desiredRecords(nodes: nodes, policy: Self.policy())
        #expect(desired.hostnames.contested == [edge: ["a", "b"]])
        #expect(desired.managedNames.contains(edge), "managed, so that what it had goes")
        #expect(desired.sets[RecordKey(name: edge, type: .a)] == nil)
        #expect(desired.sets[RecordKey(name: try DNSName("a.example.com"), type: .a)] == ["203.0.113.1"], "a's other name goes on")
        #expect(desired.hostnames.refused["a"]?.first?.contains("also claimed by b") == true)
        #expect(desired.hostnames.refused["b"]?.first?.contains("also claimed by a") == true)
        nodes[1].hostnames = nil
        let after = desiredRecords(nodes: nodes, policy: Self.policy())
        #expect(after.sets[RecordKey(name: edge, type: .a)] == ["203.0.113.1"])
        #expect(after.hostnames.refused.isEmpty)
    }

    @Test func aNodeOutOfDNSHasItsNamesEmptiedAndTheFlagOffReadsNothing() throws {
        let edge = try DNSName("edge.example.com")
        let nodes = [Self.node("a", "203.0.113.1", hostnames: "edge.example.com", ready: "False")]
        let desired = desiredRecords(nodes: nodes, policy: Self.policy())
        #expect(desired.managedNames.contains(edge) && desired.sets[RecordKey(name: edge, type: .a)] == nil)
        var off = Self.policy()
        off.readsNodeHostnames = false
        #expect(!desiredRecords(nodes: nodes, policy: off).managedNames.contains(edge))
        // Zones not known yet: no zone check, the other rules still hold.
        let unknown = HostnameClaims(nodes: [Self.node("a", "203.0.113.1", hostnames: "edge.example.org")], policy: Self.policy(zones: nil))
        #expect(unknown.accepted["a"]?.map(\.text) == ["edge.example.org"])
    }

    @Test func theScopeTellsAnnotatedNamesApartEvenWhenTheyLeave() throws {
        let scope = ManagedScope(
            names: [try DNSName("k.example.com")], template: try NodeNameTemplate("{node}.nodes.example.com"),
            cnames: [try DNSName("www.example.com")], hostnames: [try DNSName("edge.example.com")])
        #expect(scope.isNodeHostname(try DNSName("edge.example.com")))
        #expect(scope.isNodeHostname(try DNSName("gone.example.com")), "a name no longer asked for, still to be removed")
        #expect(!scope.isNodeHostname(try DNSName("k.example.com")))
        #expect(!scope.isNodeHostname(try DNSName("www.example.com")))
        #expect(!scope.isNodeHostname(try DNSName("a.nodes.example.com")))
    }
}
