import Emulators
import Foundation
import Logging
import NodeDNSCore
import Testing

@testable import RFC2136DNS

/// The provider against real servers: compare-and-swap, ownership, the per-node index and the transports.
@Suite(.serialized) struct ProviderTests {
    static let installed = RealDNSServer.Kind.forTests

    static func provider(
        _ server: RealDNSServer, owner: String = "default", transport: DNSTransportKind = .tcp, maxMessageSize: Int = 60_000
    ) throws
        -> RFC2136Provider
    {
        let key = try TSIGKey(name: server.keyName, algorithm: .hmacSHA256, base64Secret: server.secret)
        var logger = Logger(label: "rfc2136-test")
        logger.logLevel = .warning
        let client = RFC2136Client(
            transport: DNSTransport(host: "127.0.0.1", port: server.port, timeout: 3), kind: transport,
            zone: try WireName(server.zone), key: key, logger: logger,
            now: { UInt64(Date().timeIntervalSince1970) })
        return RFC2136Provider(client: client, ownerID: owner, logger: logger, maxMessageSize: maxMessageSize)
    }

    static let settings = RecordSettings(ttl: 120, proxied: false)

    /// Plans `desired` against a fresh read, as the reconciler does.
    static func plan(
        _ provider: RFC2136Provider, _ scope: ManagedScope, _ desired: [RecordKey: Set<String>]
    ) async throws
        -> (ChangeSet, [ExistingRecord])
    {
        _ = provider.normalized(settings)
        let current = try await provider.records(in: scope)
        return (NodeDNSCore.plan(desired: desired, current: current, policy: PlanPolicy(settings: settings)), current)
    }

    @Test(arguments: installed)
    func anEditBetweenReadAndWriteIsRefusedThenKept(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let www = try DNSName("www.\(server.zone)")
        let key = RecordKey(name: www, type: .a)
        let scope = ManagedScope(names: [www])
        let provider = try Self.provider(server)
        try await provider.prepare(scope: scope)
        let (first, _) = try await Self.plan(provider, scope, [key: ["203.0.113.1"]])
        _ = try await provider.apply(first)
        #expect(server.values(www.text, "A") == ["203.0.113.1"])

        // Read and plan, then someone adds a record before the write: the prerequisites refuse the stale write.
        let (changes, _) = try await Self.plan(provider, scope, [key: ["203.0.113.1", "203.0.113.2"]])
        try server.nsupdate(["update add \(www.text) 120 A 198.51.100.9"])
        await #expect {
            _ = try await provider.apply(changes)
        } throws: { error in
            guard case .changedSinceRead = error as? RFC2136Error else { return false }
            return !(error as! RFC2136Error).needsOperator
        }
        #expect(server.values(www.text, "A") == ["198.51.100.9", "203.0.113.1"], "nothing of the stale write applied")
        // Read again, plan again: both the other edit and ours are there.
        let (again, current) = try await Self.plan(provider, scope, [key: ["203.0.113.1", "203.0.113.2"]])
        #expect(current.contains { $0.value == "198.51.100.9" && !$0.owned })
        _ = try await provider.apply(again)
        #expect(server.values(www.text, "A") == ["198.51.100.9", "203.0.113.1", "203.0.113.2"])

        // Two writers that read the same state: one applies, the other is refused.
        let other = try Self.provider(server)
        let (mine, _) = try await Self.plan(provider, scope, [key: ["203.0.113.1", "203.0.113.3"]])
        let (theirs, _) = try await Self.plan(other, scope, [key: ["203.0.113.1", "203.0.113.4"]])
        _ = try await provider.apply(mine)
        await #expect(throws: RFC2136Error.self) { _ = try await other.apply(theirs) }
        #expect(server.values(www.text, "A") == ["198.51.100.9", "203.0.113.1", "203.0.113.3"])
    }

    @Test(arguments: installed)
    func perNodeNamesOfDeletedNodesAreFoundThroughTheIndex(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let template = try NodeNameTemplate("{node}.nodes.\(server.zone)")
        let names = try ["a", "b", "c"].map { try DNSName("\($0).nodes.\(server.zone)") }
        let provider = try Self.provider(server)
        let scope = ManagedScope(names: Set(names), template: template)
        try await provider.prepare(scope: scope)
        var desired: [RecordKey: Set<String>] = [:]
        for (index, name) in names.enumerated() { desired[RecordKey(name: name, type: .a)] = ["203.0.113.\(index + 1)"] }
        let (changes, _) = try await Self.plan(provider, scope, desired)
        _ = try await provider.apply(changes)
        #expect(server.values("b.nodes.\(server.zone)", "A") == ["203.0.113.2"])

        // A new replica, after node b was deleted while none ran: it knows only a and c, and still finds b.
        let fresh = try Self.provider(server)
        let smaller = ManagedScope(names: [names[0], names[2]], template: template)
        desired[RecordKey(name: names[1], type: .a)] = nil
        let (cleanup, current) = try await Self.plan(fresh, smaller, desired)
        #expect(current.contains { $0.key.name == names[1] && $0.owned })
        #expect(cleanup.deletes.map(\.key.name) == [names[1]])
        _ = try await fresh.apply(cleanup)
        #expect(server.values("b.nodes.\(server.zone)", "A").isEmpty)
        #expect(server.dig("_kube-node-dns.b.nodes.\(server.zone)", "TXT").isEmpty, "its marker went with it")
        func indexed(_ label: String) -> Bool {
            let bucket = OwnershipMarker.bucket(of: label)
            return server.dig("b\(bucket)._kube-node-dns-index.\(server.zone)", "TXT").joined().contains("\"\(label)")
                || server.dig("b\(bucket)._kube-node-dns-index.\(server.zone)", "TXT").joined().contains(" \(label)")
        }
        #expect(indexed("a") && indexed("c") && !indexed("b"), "the index lists a and c, no longer b")
    }

    /// `--cname-names` on a real server: a former `--dns-name` gives its A records up for the CNAME in one UPDATE,
    /// the marker lists the CNAME, a steady state writes nothing, and a name with someone else's data is left alone.
    @Test(arguments: installed)
    func aCNAMEReplacesOurAddressesAndNeverForeignData(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let target = try DNSName("kubernetes.\(server.zone)")
        let www = try DNSName("www.\(server.zone)")
        let api = try DNSName("api.\(server.zone)")
        let provider = try Self.provider(server)
        // The kit's earlier layout: the addresses on www itself.
        let before = ManagedScope(names: [www])
        try await provider.prepare(scope: before)
        let (old, _) = try await Self.plan(provider, before, [RecordKey(name: www, type: .a): ["203.0.113.1"]])
        _ = try await provider.apply(old)
        #expect(server.values(www.text, "A") == ["203.0.113.1"])

        // Now www is a CNAME to kubernetes, and api another one, on which someone keeps a TXT record.
        try server.nsupdate(["update add \(api.text) 300 TXT \"site-verification=abc\""])
        let scope = ManagedScope(names: [target], cnames: [www, api])
        try await provider.prepare(scope: scope)
        let desired: [RecordKey: Set<String>] = [
            RecordKey(name: target, type: .a): ["203.0.113.1"], RecordKey(name: www, type: .cname): [target.text],
            RecordKey(name: api, type: .cname): [target.text],
        ]
        let (changes, current) = try await Self.plan(provider, scope, desired)
        #expect(changes.deletes.map(\.key) == [RecordKey(name: www, type: .a)])
        #expect(Set(changes.creates.map(\.key)) == [RecordKey(name: target, type: .a), RecordKey(name: www, type: .cname)])
        #expect(changes.conflicts.map(\.key) == [RecordKey(name: api, type: .other)], "the TXT on api is in the way")
        #expect(current.contains { $0.key.name == api && $0.value == "TXT \"site-verification=abc\"" && !$0.owned })
        _ = try await provider.apply(changes)
        #expect(server.values(www.text, "CNAME") == ["\(target.text)."])
        #expect(server.dig(www.text, "A").allSatisfy { !$0.hasPrefix("\(www.text).") || $0.contains("CNAME") }, "no A left on www")
        #expect(server.dig("_kube-node-dns.\(www.text)", "TXT").joined().contains("\"CNAME \(target.text)\""))
        #expect(server.values(api.text, "CNAME").isEmpty, "api keeps its TXT and gets no CNAME")
        #expect(server.dig(api.text, "TXT").joined().contains("site-verification=abc"))

        // A fresh replica reads the CNAME as ours, in place: nothing to write.
        let fresh = try Self.provider(server)
        try await fresh.prepare(scope: scope)
        let (steady, read) = try await Self.plan(fresh, scope, desired)
        #expect(steady.isEmpty)
        #expect(read.contains { $0.key == RecordKey(name: www, type: .cname) && $0.owned && $0.value == target.text })
        #expect(CNAMEState.of([www: target, api: target], records: read)[www] == .inPlace)

        // Once the TXT goes, api gets its CNAME; a record added in between refuses the write (compare-and-swap).
        try server.nsupdate(["update delete \(api.text) TXT"])
        let (next, _) = try await Self.plan(fresh, scope, desired)
        #expect(next.creates.map(\.key) == [RecordKey(name: api, type: .cname)])
        let added = try server.nsupdate(["update add \(api.text) 300 CAA 0 issue \"letsencrypt.org\""])
        #expect(added.status == 0, "\(added.output)")
        await #expect(throws: RFC2136Error.self) { _ = try await fresh.apply(next) }
        #expect(server.values(api.text, "CNAME").isEmpty, "not written beside the CAA record")
        try server.nsupdate(["update delete \(api.text) CAA"])
        let (last, _) = try await Self.plan(fresh, scope, desired)
        _ = try await fresh.apply(last)
        #expect(server.values(api.text, "CNAME") == ["\(target.text)."])
    }

    /// Names Nodes ask for by annotation are listed in the index, so those of a node deleted while no controller
    /// ran are found and removed.
    @Test(arguments: installed)
    func annotatedNamesOfDeletedNodesAreFoundThroughTheIndex(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let shared = try DNSName("k.\(server.zone)")
        let edge = try DNSName("edge-1.\(server.zone)")
        let other = try DNSName("edge.sub.\(server.zone)")
        let provider = try Self.provider(server)
        let scope = ManagedScope(names: [shared], hostnames: [edge, other])
        try await provider.prepare(scope: scope)
        #expect(try await provider.zoneNames() == [try DNSName(server.zone)])
        let desired: [RecordKey: Set<String>] = [
            RecordKey(name: shared, type: .a): ["203.0.113.1", "203.0.113.2"], RecordKey(name: edge, type: .a): ["203.0.113.1"],
            RecordKey(name: other, type: .a): ["203.0.113.2"],
        ]
        let (changes, _) = try await Self.plan(provider, scope, desired)
        _ = try await provider.apply(changes)
        #expect(server.values(edge.text, "A") == ["203.0.113.1"] && server.values(other.text, "A") == ["203.0.113.2"])
        let bucket = OwnershipMarker.bucket(of: edge.text)
        #expect(server.dig("b\(bucket)._kube-node-dns-index.\(server.zone)", "TXT").joined().contains(edge.text))

        // A new replica, after the node that asked for edge-1 was deleted while none ran.
        let fresh = try Self.provider(server)
        let smaller = ManagedScope(names: [shared], hostnames: [other])
        var after = desired
        after[RecordKey(name: edge, type: .a)] = nil
        let (cleanup, current) = try await Self.plan(fresh, smaller, after)
        #expect(current.contains { $0.key.name == edge && $0.owned })
        #expect(cleanup.deletes.map(\.key.name) == [edge])
        _ = try await fresh.apply(cleanup)
        #expect(server.values(edge.text, "A").isEmpty)
        #expect(!server.dig("b\(bucket)._kube-node-dns-index.\(server.zone)", "TXT").joined().contains(edge.text))
        let otherBucket = OwnershipMarker.bucket(of: other.text)
        #expect(server.dig("b\(otherBucket)._kube-node-dns-index.\(server.zone)", "TXT").joined().contains(other.text))
        // Steady: nothing more to write.
        let (steady, _) = try await Self.plan(fresh, smaller, after)
        #expect(steady.isEmpty)
    }

    @Test func aCNAMEAtTheApexIsRefusedAtStart() async throws {
        guard let kind = Self.installed.first else { return }
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let provider = try Self.provider(server)
        await #expect {
            try await provider.prepare(scope: ManagedScope(names: [], cnames: [try DNSName(server.zone)]))
        } throws: { error in
            (error as? RFC2136Error)?.needsOperator == true && "\(error)".contains("apex")
        }
    }

    /// A change set over the message size limit goes in several UPDATEs, and the index still lists every name.
    @Test(arguments: installed)
    func aBigChangeIsSplitAndTheIndexStaysComplete(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let template = try NodeNameTemplate("{node}.nodes.\(server.zone)")
        let labels = (0..<40).map { "node-\($0)" }
        let names = try labels.map { try DNSName("\($0).nodes.\(server.zone)") }
        let scope = ManagedScope(names: Set(names), template: template)
        let provider = try Self.provider(server, maxMessageSize: 1_000)
        try await provider.prepare(scope: scope)
        var desired: [RecordKey: Set<String>] = [:]
        for (index, name) in names.enumerated() { desired[RecordKey(name: name, type: .a)] = ["203.0.113.\(index + 1)"] }
        let (changes, _) = try await Self.plan(provider, scope, desired)
        _ = try await provider.apply(changes)
        let serial = server.soaSerial ?? 0
        #expect(serial > 3, "several UPDATEs (the SOA serial counts them): \(serial)")
        #expect(server.values("node-39.nodes.\(server.zone)", "A") == ["203.0.113.40"])
        // A new replica that knows none of the nodes still finds every name through the index, and removes them.
        let fresh = try Self.provider(server, maxMessageSize: 1_000)
        let (cleanup, current) = try await Self.plan(fresh, ManagedScope(names: [], template: template), [:])
        #expect(current.filter(\.owned).count == 40)
        _ = try await fresh.apply(cleanup)
        #expect(server.values("node-7.nodes.\(server.zone)", "A").isEmpty)
        let (after, _) = try await Self.plan(fresh, ManagedScope(names: [], template: template), [:])
        #expect(after.isEmpty, "nothing left to remove, and the index is empty")
    }

    /// A UDP answer too big for a datagram comes back truncated; the client asks again over TCP.
    @Test(arguments: installed)
    func aTruncatedUDPAnswerIsAskedAgainOverTCP(kind: RealDNSServer.Kind) async throws {
        let server = try await RealDNSServer(kind: kind)
        defer { server.kill() }
        let big = "big.\(server.zone)"
        try server.nsupdate((1...60).map { "update add \(big) 120 A 203.0.113.\($0)" })
        let provider = try Self.provider(server, transport: .udp)
        let records = try await provider.records(in: ManagedScope(names: [try DNSName(big)]))
        #expect(records.count == 60)
    }
}

/// The README's BIND update-policy: the key may change only the managed names, their markers and the index.
@Suite struct LeastPrivilegeTests {
    @Test func theDocumentedUpdatePolicyIsEnoughAndNoMore() async throws {
        guard RealDNSServer.Kind.bind.isInstalled else { return }
        let zone = "example.test"
        let policy = """
            grant kube-node-dns name kubernetes.\(zone). A AAAA;
            grant kube-node-dns name _kube-node-dns.kubernetes.\(zone). TXT;
            grant kube-node-dns name www.\(zone). CNAME;
            grant kube-node-dns name _kube-node-dns.www.\(zone). TXT;
            grant kube-node-dns subdomain nodes.\(zone). A AAAA TXT;
            grant kube-node-dns subdomain _kube-node-dns-index.\(zone). TXT;
            """
        let server = try await RealDNSServer(kind: .bind, zone: zone, bindUpdatePolicy: policy)
        defer { server.kill() }
        let shared = try DNSName("kubernetes.\(zone)")
        let www = try DNSName("www.\(zone)")
        let node = try DNSName("a.nodes.\(zone)")
        let scope = ManagedScope(names: [shared, node], template: try NodeNameTemplate("{node}.nodes.\(zone)"), cnames: [www])
        let provider = try ProviderTests.provider(server)
        try await provider.prepare(scope: scope)
        let (changes, _) = try await ProviderTests.plan(
            provider, scope,
            [
                RecordKey(name: shared, type: .a): ["203.0.113.1"], RecordKey(name: node, type: .a): ["203.0.113.1"],
                RecordKey(name: www, type: .cname): [shared.text],
            ])
        _ = try await provider.apply(changes)
        #expect(server.values(shared.text, "A") == ["203.0.113.1"] && server.values(node.text, "A") == ["203.0.113.1"])
        #expect(server.values(www.text, "CNAME") == ["\(shared.text)."])
        // A name the policy does not grant is refused, and the error says where to look.
        let other = try DNSName("mail.\(zone)")
        let (refused, _) = try await ProviderTests.plan(
            provider, ManagedScope(names: [other]), [RecordKey(name: other, type: .a): ["203.0.113.9"]])
        await #expect {
            _ = try await provider.apply(refused)
        } throws: { error in
            (error as? RFC2136Error)?.needsOperator == true && "\(error)".contains("update-policy")
        }
        #expect(server.values(other.text, "A").isEmpty)
    }
}
