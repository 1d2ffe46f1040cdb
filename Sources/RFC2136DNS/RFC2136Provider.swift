import Logging
import NodeDNSCore
import NIOConcurrencyHelpers

/// How ownership is written: one TXT record per owner at `_kube-node-dns.<name>`, listing the values it owns.
///
/// The marker's character-strings are `kube-node-dns owner=<id>` and then one `A <address>` or `AAAA <address>`
/// per owned record, sorted. Several clusters (owner ids) can share a name, each with its own TXT record in the
/// marker's RRset. Per-node names are listed, by node label, in an index of TXT records per owner at
/// `b<N>._kube-node-dns-index.<zone>` (64 buckets by a hash of the label, so one change rewrites one small
/// record), so the names of nodes deleted while no controller ran are found without a zone transfer.
package enum OwnershipMarker {
    package static let label = "_kube-node-dns"
    package static let indexLabel = "_kube-node-dns-index"
    /// Index buckets: a node's label goes in bucket FNV-1a(label) mod 64.
    package static let indexBuckets = 64

    package static func bucket(of label: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in label.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(indexBuckets))
    }

    package static func indexName(zone: WireName, bucket: Int) -> WireName {
        zone.prepending(indexLabel).prepending("b\(bucket)")
    }
    package static let prefix = OwnerID.markPrefix

    package static func markerName(for name: WireName) -> WireName { name.prepending(label) }

    /// The index entry kind of the names Nodes ask for by annotation, where a template would stand: its "labels" are
    /// whole names, so those of nodes deleted while no controller ran are found and removed like per-node names.
    package static let hostnamesKind = "{hostnames}"

    /// The TXT strings of a marker for `owner` that owns `values` ("A 203.0.113.10", ...).
    package static func strings(owner: String, values: Set<String>) -> [String] {
        [prefix + owner] + values.sorted()
    }

    /// The owner a marker record names, and the values it lists.
    package static func read(_ record: ResourceRecord) -> (owner: String, values: Set<String>)? {
        guard let strings = record.txtStrings, let first = strings.first, first.hasPrefix(prefix) else { return nil }
        let owner = String(first.dropFirst(prefix.count)).split(separator: " ").first.map(String.init) ?? ""
        return owner.isEmpty ? nil : (owner, Set(strings.dropFirst()))
    }

    /// The index strings: the owner and template, then node labels packed into strings of at most 255 octets.
    package static func indexStrings(owner: String, template: String, labels: Set<String>) -> [String] {
        var strings = [prefix + owner + " template=" + template]
        var current = ""
        for label in labels.sorted() {
            if !current.isEmpty && current.utf8.count + 1 + label.utf8.count > 255 {
                strings.append(current)
                current = ""
            }
            current += current.isEmpty ? label : " " + label
        }
        if !current.isEmpty { strings.append(current) }
        return strings
    }

    package static func readIndex(_ record: ResourceRecord) -> (owner: String, template: String, labels: Set<String>)? {
        guard let strings = record.txtStrings, let first = strings.first, first.hasPrefix(prefix) else { return nil }
        let words = first.dropFirst(prefix.count).split(separator: " ")
        guard let owner = words.first, let template = words.dropFirst().first, template.hasPrefix("template=") else {
            return nil
        }
        let labels = strings.dropFirst().flatMap { $0.split(separator: " ").map(String.init) }
        return (String(owner), String(template.dropFirst("template=".count)), Set(labels))
    }
}

/// RFC 2136 dynamic updates as a `DNSProvider`: reads each managed name with direct queries, marks ownership
/// in TXT records beside the names, and writes each reconcile as one UPDATE whose prerequisites make it a
/// compare-and-swap against what was read.
package final class RFC2136Provider: DNSProvider {
    package let client: RFC2136Client
    package let ownerID: String
    let logger: Logger
    /// What was last read or written per name, the base of the next UPDATE's prerequisites.
    private let known = NIOLockedValueBox<[WireName: NameState]>([:])
    /// The index buckets' RRsets as last read or written (every owner's records), by bucket.
    private let index = NIOLockedValueBox<[Int: [ResourceRecord]]>([:])
    /// The TTL owned records should have (settings as last normalised), so a record that shares an RRset with
    /// foreign records (and so must take their TTL) is not reported as drift.
    private let wantedTTL = NIOLockedValueBox<Int?>(nil)
    /// The per-node name template, as the scope last gave it (the index is kept per template).
    private let template = NIOLockedValueBox<String?>(nil)
    /// The scope as it was last given, to tell the names Nodes ask for by annotation from the others when the index
    /// is written.
    private let lastScope = NIOLockedValueBox(ManagedScope(names: []))
    /// An UPDATE message stays under this size; a bigger change set is split by name.
    package let maxMessageSize: Int

    package init(client: RFC2136Client, ownerID: String, logger: Logger, maxMessageSize: Int = 60_000) {
        self.client = client
        self.ownerID = ownerID
        self.logger = logger
        self.maxMessageSize = maxMessageSize
    }

    /// One managed name as read: its address RRsets (and on a CNAME name its CNAME RRset), a CNAME if any on an
    /// address name, the TXT records on a CNAME name, and the marker RRset beside it.
    struct NameState: Sendable {
        var rrsets: [RecordType: [ResourceRecord]] = [:]
        var cname: ResourceRecord?
        var markers: [ResourceRecord] = []
        /// A `--cname-names` name: read in full (CNAME, A, AAAA, TXT), since nothing else may stand beside the CNAME.
        var isCNAMEName = false
        var txt: [ResourceRecord] = []

        /// The values this owner's marker lists ("A 203.0.113.10").
        func ownedClaims(owner: String) -> Set<String> {
            markers.compactMap(OwnershipMarker.read).first { $0.owner == owner }?.values ?? []
        }
        func ourMarker(owner: String) -> ResourceRecord? {
            markers.first { OwnershipMarker.read($0)?.owner == owner }
        }
    }

    package func normalized(_ settings: RecordSettings) -> RecordSettings {
        wantedTTL.withLockedValue { $0 = settings.ttl }
        return RecordSettings(ttl: settings.ttl, proxied: false)
    }

    func wire(_ name: DNSName) throws(RFC2136Error) -> WireName {
        guard let wire = try? WireName(name.text), wire.isWithin(client.zone) else {
            throw .configuration("\(name) is not inside the zone \(client.zone) (--rfc2136-zone); use a name under it")
        }
        return wire
    }

    package func prepare(scope: ManagedScope) async throws {
        template.withLockedValue { $0 = scope.template?.pattern }
        lastScope.withLockedValue { $0 = scope }
        for name in scope.names { _ = try wire(name) }
        for name in scope.cnames where try wire(name) == client.zone {
            throw RFC2136Error.configuration(
                "\(name) is the zone's apex; a CNAME cannot stand beside its SOA and NS records (RFC 1034)")
        }
        if let example = scope.makeTemplateName(for: "node") {
            guard let name = try? DNSName(example) else {
                throw RFC2136Error.configuration("the node name template does not give DNS names")
            }
            _ = try wire(name)
        }
        try await client.checkZone()
        try await client.checkKey()
    }

    package func zoneNames() async throws -> [DNSName]? {
        (try? DNSName(client.zone.description)).map { [$0] }
    }

    package func records(in scope: ManagedScope) async throws -> [ExistingRecord] {
        template.withLockedValue { $0 = scope.template?.pattern }
        var names = Set(try scope.names.map { try wire($0) })
        lastScope.withLockedValue { $0 = scope }
        var buckets: [Int: [ResourceRecord]] = [:]
        if scope.template != nil || scope.readsHostnames {
            // The index finds the per-node names (and annotated names) of nodes that are gone: they must be read to
            // be removed.
            let questions = (0..<OwnershipMarker.indexBuckets).map {
                (name: OwnershipMarker.indexName(zone: client.zone, bucket: $0), type: DNSType.txt)
            }
            for (bucket, answer) in try await client.lookup(questions).enumerated() where !answer.records.isEmpty {
                buckets[bucket] = answer.records
            }
            for record in buckets.values.joined() {
                guard let entry = OwnershipMarker.readIndex(record), entry.owner == ownerID else { continue }
                if entry.template == scope.template?.pattern {
                    for label in entry.labels {
                        if let text = scope.makeTemplateName(for: label), let name = try? DNSName(text),
                            let wireName = try? wire(name)
                        {
                            names.insert(wireName)
                        }
                    }
                } else if entry.template == OwnershipMarker.hostnamesKind, scope.readsHostnames {
                    for text in entry.labels {
                        guard let name = try? DNSName(text), let wireName = try? wire(name) else { continue }
                        names.insert(wireName)
                    }
                }
            }
        }
        let ordered = names.sorted { $0.description < $1.description }
        let cnameNames = Set(try scope.cnames.map { try wire($0) })
        var questions: [(name: WireName, type: DNSType)] = []
        for name in ordered {
            questions += [(name, .a), (name, .aaaa), (OwnershipMarker.markerName(for: name), .txt)]
            if cnameNames.contains(name) { questions += [(name, .cname), (name, .txt)] }
        }
        let answers = try await client.lookup(questions)
        var states: [WireName: NameState] = [:]
        var next = 0
        for name in ordered {
            let a = answers[next]
            let aaaa = answers[next + 1]
            let marker = answers[next + 2]
            next += 3
            var state = NameState(
                rrsets: [.a: a.records, .aaaa: aaaa.records], cname: a.cname ?? aaaa.cname, markers: marker.records)
            if cnameNames.contains(name) {
                state.isCNAMEName = true
                state.rrsets[.cname] = answers[next].records
                state.txt = answers[next + 1].records
                state.cname = nil
                next += 2
            }
            states[name] = state
        }
        known.withLockedValue { $0 = states }
        index.withLockedValue { $0 = buckets }
        let ttl = wantedTTL.withLockedValue { $0 }
        return ordered.flatMap { existing(name: $0, state: states[$0]!, wantedTTL: ttl) }
    }

    static func recordID(_ name: WireName, _ type: RecordType, _ value: String) -> String { "\(name)|\(type.rawValue)|\(value)" }

    func existing(name: WireName, state: NameState, wantedTTL: Int?) -> [ExistingRecord] {
        guard let dnsName = try? DNSName(name.description) else { return [] }
        if let cname = state.cname {
            return [
                ExistingRecord(
                    id: "\(name)|CNAME", key: RecordKey(name: dnsName, type: .cname), value: RecordData.decode(.cname, cname.rdata) ?? "?",
                    settings: RecordSettings(ttl: Int(cname.ttl), proxied: false), owned: false,
                    ownerNote: ConflictNote.cnameBlocksAddresses)
            ]
        }
        let claims = state.ownedClaims(owner: ownerID)
        let others = state.markers.compactMap(OwnershipMarker.read).filter { $0.owner != ownerID }
        var result: [ExistingRecord] = []
        for record in state.txt {
            let text = (record.txtStrings ?? []).map { "\"\($0)\"" }.joined(separator: " ")
            result.append(
                ExistingRecord(
                    id: "\(name)|TXT|\(text)", key: RecordKey(name: dnsName, type: .other), value: "TXT \(text)",
                    settings: RecordSettings(ttl: Int(record.ttl), proxied: false), owned: false, ownerNote: ConflictNote.besideCNAME))
        }
        for type in RecordData.types {
            let rrset = state.rrsets[type] ?? []
            let values = rrset.compactMap { RecordData.decode(type, $0.rdata) }
            let ownedCount = values.filter { claims.contains("\(type.rawValue) \($0)") }.count
            for (record, value) in zip(rrset, values) {
                let owned = claims.contains("\(type.rawValue) \(value)")
                // Records of one RRset share a TTL; beside foreign records ours carry theirs, and that is not drift.
                let mixed = ownedCount < values.count
                let ttl = owned && mixed ? (wantedTTL ?? Int(record.ttl)) : Int(record.ttl)
                let otherOwner = others.first { $0.values.contains("\(type.rawValue) \(value)") }?.owner
                result.append(
                    ExistingRecord(
                        id: Self.recordID(name, type, value), key: RecordKey(name: dnsName, type: type), value: value,
                        settings: RecordSettings(ttl: ttl, proxied: false), owned: owned,
                        ownerNote: otherOwner.map { "owned by kube-node-dns owner \($0)" }
                            ?? (state.isCNAMEName && type != .cname
                                ? ConflictNote.besideCNAME : "not listed in a kube-node-dns ownership marker")))
            }
        }
        return result
    }

    /// The new content of one name: which address values this owner holds, and the RRs to add and delete.
    private struct NamePlan {
        var name: WireName
        var after: NameState
        var prerequisites: [ResourceRecord] = []
        var updates: [ResourceRecord] = []
    }

    package func apply(_ changes: ChangeSet, authorized: @escaping WriteAuthorization) async throws -> [ExistingRecord] {
        let states = known.withLockedValue { $0 }
        var byName: [WireName: (deletes: [(RecordType, String)], adds: [(RecordType, String, Int)], adopts: [(RecordType, String)])] = [:]
        for delete in changes.deletes {
            byName[try wire(delete.key.name), default: ([], [], [])].deletes.append((delete.key.type, delete.value))
        }
        for create in changes.creates {
            byName[try wire(create.key.name), default: ([], [], [])].adds.append((create.key.type, create.value, create.settings.ttl))
        }
        for update in changes.updates {
            let name = try wire(update.record.key.name)
            let type = update.record.key.type
            let ttlChanges = update.settings.ttl != update.record.settings.ttl
            if update.value != update.record.value || ttlChanges {
                byName[name, default: ([], [], [])].deletes.append((type, update.record.value))
                byName[name, default: ([], [], [])].adds.append((type, update.value, update.settings.ttl))
            } else {
                byName[name, default: ([], [], [])].adopts.append((type, update.value))
            }
        }
        var plans: [NamePlan] = []
        for (name, operations) in byName.sorted(by: { $0.key.description < $1.key.description }) {
            let before = states[name] ?? NameState()
            var after = before
            var claims = before.ownedClaims(owner: ownerID)
            var plan = NamePlan(name: name, after: before)
            for (type, value) in operations.deletes {
                guard let rdata = RecordData.encode(type, value) else { continue }
                plan.updates.append(ResourceRecord(name: name, type: wireType(type), rrClass: .none, ttl: 0, rdata: rdata))
                after.rrsets[type, default: []].removeAll { $0.rdata == rdata }
                claims.remove("\(type.rawValue) \(value)")
            }
            for (type, value) in operations.adopts { claims.insert("\(type.rawValue) \(value)") }
            for (type, value, ttl) in operations.adds {
                guard let rdata = RecordData.encode(type, value) else { continue }
                // Beside foreign records the RRset keeps their TTL: adding ours at another TTL would change theirs.
                let rrset = after.rrsets[type] ?? []
                let foreign = rrset.filter {
                    !claims.contains("\(type.rawValue) \(RecordData.decode(type, $0.rdata) ?? "")")
                }
                let effectiveTTL = foreign.first.map { $0.ttl } ?? UInt32(ttl)
                plan.updates.append(ResourceRecord(name: name, type: wireType(type), rrClass: .in, ttl: effectiveTTL, rdata: rdata))
                after.rrsets[type, default: []].removeAll { $0.rdata == rdata }
                after.rrsets[type, default: []].append(
                    ResourceRecord(name: name, type: wireType(type), rrClass: .in, ttl: effectiveTTL, rdata: rdata))
                claims.insert("\(type.rawValue) \(value)")
            }
            // Claims for values no longer present are dropped too (a record someone else deleted).
            let present = Set(
                RecordData.types.flatMap { type in
                    (after.rrsets[type] ?? []).compactMap { RecordData.decode(type, $0.rdata).map { "\(type.rawValue) \($0)" } }
                })
            claims.formIntersection(present)
            if claims != before.ownedClaims(owner: ownerID) || (claims.isEmpty && before.ourMarker(owner: ownerID) != nil) {
                let markerName = OwnershipMarker.markerName(for: name)
                if let old = before.ourMarker(owner: ownerID) {
                    plan.updates.append(ResourceRecord(name: markerName, type: .txt, rrClass: .none, ttl: 0, rdata: old.rdata))
                    after.markers.removeAll { $0.rdata == old.rdata }
                }
                if !claims.isEmpty {
                    let others = after.markers
                    let ttl = others.first?.ttl ?? UInt32(wantedTTL.withLockedValue { $0 } ?? 120)
                    let marker = ResourceRecord(
                        name: markerName, type: .txt, rrClass: .in, ttl: ttl,
                        rdata: ResourceRecord.txtData(OwnershipMarker.strings(owner: ownerID, values: claims)))
                    plan.updates.append(marker)
                    after.markers.append(marker)
                }
            }
            plan.prerequisites = prerequisites(name: name, state: before)
            plan.after = after
            plans.append(plan)
        }
        try await send(plans, authorized: authorized)
        let created = changes.creates.map { create in
            ExistingRecord(
                id: Self.recordID((try? wire(create.key.name)) ?? client.zone, create.key.type, create.value), key: create.key,
                value: create.value, settings: create.settings, owned: true)
        }
        return created
    }

    private func wireType(_ type: RecordType) -> DNSType {
        switch type {
        case .a: .a
        case .aaaa: .aaaa
        case .cname: .cname
        case .other: .txt  // never written: a plan only reports records of other types
        }
    }

    /// RFC 2136 section 2.4: each RRset exactly as read (value-dependent), or "does not exist" when it was empty. A
    /// CNAME name that held nothing at all (and no marker) must still be "not in use" (section 2.4.5), so data of a
    /// type it was not read for (an MX) refuses the write instead of being silently kept beside a new CNAME.
    private func prerequisites(name: WireName, state: NameState) -> [ResourceRecord] {
        var result: [ResourceRecord] = []
        var sets: [(WireName, DNSType, [ResourceRecord])] = [
            (name, .a, state.rrsets[.a] ?? []), (name, .aaaa, state.rrsets[.aaaa] ?? []),
            (OwnershipMarker.markerName(for: name), .txt, state.markers),
        ]
        if state.isCNAMEName {
            sets += [(name, .cname, state.rrsets[.cname] ?? []), (name, .txt, state.txt)]
            if sets.allSatisfy({ $0.2.isEmpty }) {
                result.append(ResourceRecord(name: name, type: .any, rrClass: .none, ttl: 0, rdata: []))
                sets.removeAll { $0.0 == name }
            }
        }
        for (owner, type, records) in sets {
            if records.isEmpty {
                result.append(ResourceRecord(name: owner, type: type, rrClass: .none, ttl: 0, rdata: []))
            } else {
                result += records.map { ResourceRecord(name: owner, type: type, rrClass: .in, ttl: 0, rdata: $0.rdata) }
            }
        }
        return result
    }

    /// One bucket's prerequisite and updates when this owner's entries in it (one per kind: the template, the
    /// annotated names) change to `targets`.
    private func bucketChange(bucket: Int, current: [ResourceRecord], to targets: [String: Set<String>]) -> Part? {
        let name = OwnershipMarker.indexName(zone: client.zone, bucket: bucket)
        var part = Part(bucket: bucket)
        var after = current
        for (kind, labels) in targets.sorted(by: { $0.key < $1.key }) {
            let ours = current.first {
                OwnershipMarker.readIndex($0).map { $0.owner == ownerID && $0.template == kind } ?? false
            }
            let oldLabels = ours.flatMap(OwnershipMarker.readIndex)?.labels ?? []
            guard oldLabels != labels else { continue }
            if let ours {
                part.updates.append(ResourceRecord(name: name, type: .txt, rrClass: .none, ttl: 0, rdata: ours.rdata))
                after.removeAll { $0.rdata == ours.rdata }
            }
            if !labels.isEmpty {
                let record = ResourceRecord(
                    name: name, type: .txt, rrClass: .in, ttl: current.first?.ttl ?? 3600,
                    rdata: ResourceRecord.txtData(OwnershipMarker.indexStrings(owner: ownerID, template: kind, labels: labels)))
                part.updates.append(record)
                after.append(record)
            }
        }
        guard !part.updates.isEmpty else { return nil }
        part.prerequisites =
            current.isEmpty
            ? [ResourceRecord(name: name, type: .txt, rrClass: .none, ttl: 0, rdata: [])]
            : current.map { ResourceRecord(name: name, type: .txt, rrClass: .in, ttl: 0, rdata: $0.rdata) }
        part.bucketAfter = after
        return part
    }

    /// A piece of an UPDATE: one name's records and marker, or one index bucket; a message holds whole pieces.
    private struct Part {
        var plan: NamePlan?
        var bucket: Int?
        var prerequisites: [ResourceRecord] = []
        var updates: [ResourceRecord] = []
        var bucketAfter: [ResourceRecord] = []
        init(plan: NamePlan) {
            self.plan = plan
            prerequisites = plan.prerequisites
            updates = plan.updates
        }
        init(bucket: Int) { self.bucket = bucket }
        var size: Int { (prerequisites + updates).reduce(0) { $0 + $1.name.wireLength + 10 + $1.rdata.count } }
    }

    /// The index entries this owner's records call for, by bucket and kind: the labels of per-node names, and the
    /// annotated names, that hold records this owner lists.
    private func indexEntries(
        _ states: [WireName: NameState], template: String?, scope: ManagedScope
    ) -> [Int: [String: Set<String>]] {
        var result: [Int: [String: Set<String>]] = [:]
        let parts = template.flatMap { template in
            template.rangeOfLiteral("{node}").map {
                (template, String(template[..<$0.lowerBound]), String(template[$0.upperBound...]))
            }
        }
        for (name, state) in states where !state.ownedClaims(owner: ownerID).isEmpty {
            if let (template, prefix, suffix) = parts,
                let label = ManagedScope.nodeLabel(of: name.description, prefix: prefix, suffix: suffix)
            {
                result[OwnershipMarker.bucket(of: String(label)), default: [:]][template, default: []].insert(String(label))
            } else if let dnsName = try? DNSName(name.description), scope.isNodeHostname(dnsName) {
                let text = name.description
                result[OwnershipMarker.bucket(of: text), default: [:]][OwnershipMarker.hostnamesKind, default: []].insert(text)
            }
        }
        return result
    }

    /// One UPDATE for everything when it fits (all or nothing); past the size limit, several, each all or nothing
    /// for its names: index additions first, then the names, then index removals, so a per-node name that holds
    /// owned records is always listed in the index.
    private func send(_ plans: [NamePlan], authorized: @escaping WriteAuthorization) async throws {
        let knownNow = known.withLockedValue { $0 }
        var finalStates = knownNow
        for plan in plans { finalStates[plan.name] = plan.after }
        let template = self.template.withLockedValue { $0 }
        let scope = lastScope.withLockedValue { $0 }
        let kinds = [template, scope.readsHostnames ? OwnershipMarker.hostnamesKind : nil].compactMap { $0 }
        let before = indexEntries(knownNow, template: template, scope: scope)
        let after = indexEntries(finalStates, template: template, scope: scope)
        let changedBuckets = Set(before.keys).union(after.keys).filter { before[$0] ?? [:] != after[$0] ?? [:] }.sorted()
        var buckets = index.withLockedValue { $0 }
        var states = knownNow

        func indexParts(final: Bool) -> [Part] {
            changedBuckets.compactMap { bucket in
                var targets: [String: Set<String>] = [:]
                for kind in kinds {
                    let old = before[bucket]?[kind] ?? []
                    let new = after[bucket]?[kind] ?? []
                    targets[kind] = final ? new : old.union(new)
                }
                return bucketChange(bucket: bucket, current: buckets[bucket] ?? [], to: targets)
            }
        }
        func commit(_ group: [Part]) async throws {
            let updates = group.flatMap(\.updates)
            guard !updates.isEmpty else { return }
            guard authorized() else { throw WriteNotAuthorized() }
            try await client.update(prerequisites: group.flatMap(\.prerequisites), updates: updates)
            for part in group {
                if let plan = part.plan { states[plan.name] = plan.after }
                if let bucket = part.bucket { buckets[bucket] = part.bucketAfter }
            }
            let committed = states
            let committedBuckets = buckets
            known.withLockedValue { $0 = committed }
            index.withLockedValue { $0 = committedBuckets }
        }
        let nameParts = plans.map(Part.init(plan:))
        let single = nameParts + indexParts(final: true)
        if single.reduce(0, { $0 + $1.size }) <= maxMessageSize {
            try await commit(single)
            return
        }
        for group in pack(indexParts(final: false)) { try await commit(group) }
        for group in pack(nameParts) { try await commit(group) }
        for group in pack(indexParts(final: true)) { try await commit(group) }
    }

    /// Whole pieces into messages under the size limit (a piece bigger than the limit goes alone).
    private func pack(_ parts: [Part]) -> [[Part]] {
        var messages: [[Part]] = []
        var size = 0
        for part in parts {
            if messages.isEmpty || (size + part.size > maxMessageSize && !messages[messages.count - 1].isEmpty) {
                messages.append([])
                size = 0
            }
            messages[messages.count - 1].append(part)
            size += part.size
        }
        return messages
    }
}
