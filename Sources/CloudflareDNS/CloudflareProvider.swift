import Logging
import NodeDNSCore
import NIOConcurrencyHelpers

/// The owner mark kube-node-dns writes in a record's `comment`: `kube-node-dns owner=<id>` (`OwnerID`).
/// 20 characters plus the id, within the free plan's 100-character comment limit.
package enum OwnerMark {
    package static let prefix = OwnerID.markPrefix

    package static func comment(owner: String) -> String { prefix + owner }

    /// The mark of a record on a name a Node asks for by annotation: `<mark> hostname`, so that such records of nodes
    /// that are gone are found again by one read (`comment.exact`).
    package static func hostnameComment(owner: String) -> String { prefix + owner + " hostname" }

    /// The owner id a comment names, or nil when the comment carries no mark.
    package static func owner(of comment: String?) -> String? {
        guard let comment, comment.hasPrefix(prefix) else { return nil }
        let rest = comment.dropFirst(prefix.count)
        let id = rest.prefix { !$0.isWhitespace && $0 != ";" }
        return id.isEmpty ? nil : String(id)
    }
}

/// Cloudflare as a `DNSProvider`: finds zones, reads only the managed names, groups one-record-per-address
/// into sets, and writes change sets through the batch endpoint in chunks.
package final class CloudflareProvider: DNSProvider {
    package let client: CloudflareClient
    package let ownerID: String
    package let batchSize: Int
    /// Batches sent at once when a change needs several (the first start at 5,000 nodes needs 26): well inside
    /// Cloudflare's 1,200 requests per 5 minutes, and each batch's round trip no longer waits for the last one.
    package let batchesInFlight = 4
    private let configuredZoneID: String?
    private let logger: Logger
    private let zoneList = NIOLockedValueBox<[CloudflareClient.Zone]?>(nil)  // read once, then matched locally
    /// The scope as it was last given: on its CNAME names a CNAME is ours to keep and every other record is read,
    /// and its names Nodes ask for carry the hostname mark.
    private let lastScope = NIOLockedValueBox(ManagedScope(names: []))

    package init(client: CloudflareClient, ownerID: String, zoneID: String? = nil, batchSize: Int = 200, logger: Logger) {
        self.client = client
        self.ownerID = ownerID
        self.configuredZoneID = zoneID
        self.batchSize = max(1, batchSize)
        self.logger = logger
    }

    package func normalized(_ settings: RecordSettings) -> RecordSettings {
        settings.proxied ? RecordSettings(ttl: 1, proxied: true) : settings
    }

    package func prepare(scope: ManagedScope) async throws {
        lastScope.withLockedValue { $0 = scope }
        try await client.verifyToken()
        for name in scope.namesReadExactly { _ = try await zoneID(for: name.text) }
        _ = try await templateZone(scope)
    }

    /// The zone holding a name: the configured id, or the longest suffix that is a zone (cached).
    package func zoneID(for name: String) async throws(CloudflareError) -> String {
        if let configuredZoneID { return configuredZoneID }
        // One listing of the zones the credentials can read (usually a single request), then the longest
        // suffix match locally: cheaper than asking for each candidate suffix in turn.
        let zones = try await readableZones()
        let lowered = name.lowercased()
        let match = zones.filter { lowered == $0.name.lowercased() || lowered.hasSuffix("." + $0.name.lowercased()) }
            .max { $0.name.count < $1.name.count }
        if let match { return match.id }
        throw .configuration(
            "\(name) is not inside any Cloudflare zone these credentials can read; check the name, or that the token has Zone:Read on its zone"
        )
    }

    /// The zone of the per-node names: the zone of any single label under the template's suffix.
    private func templateZone(_ scope: ManagedScope) async throws(CloudflareError) -> String? {
        guard let name = scope.makeTemplateName(for: "node") else { return nil }
        return try await zoneID(for: name)
    }

    package func records(in scope: ManagedScope) async throws -> [ExistingRecord] {
        lastScope.withLockedValue { $0 = scope }
        var result: [ExistingRecord] = []
        // One read per shared name, and one read for all the per-node names (however many nodes there are).
        for name in scope.namesReadExactly {
            let zone = try await zoneID(for: name.text)
            result += try await client.records(zoneID: zone, filter: [("name.exact", name.text)]).compactMap(existing)
        }
        if let (prefix, suffix) = scope.templateParts, let zone = try await templateZone(scope) {
            // One read for every per-node name, whatever the template: those that start and end as it does.
            var filter = [("name.endswith", suffix)]
            if !prefix.isEmpty { filter.append(("name.startswith", prefix)) }
            let found = try await client.records(zoneID: zone, filter: filter)
            result += found.compactMap(existing).filter { scope.isUnderTemplate($0.key.name) }
        }
        if scope.readsHostnames {
            // One read per zone for the names Nodes asked for, those of nodes that are gone included.
            var zones: [String] = []
            for name in scope.namesReadExactly {
                let zone = try await zoneID(for: name.text)
                if !zones.contains(zone) { zones.append(zone) }
            }
            let seen = Set(result.map(\.id))
            for zone in zones {
                let found = try await client.records(
                    zoneID: zone, filter: [("comment.exact", OwnerMark.hostnameComment(owner: ownerID))])
                result += found.compactMap(existing).filter { !seen.contains($0.id) }
            }
        }
        return result
    }

    /// The zones the credentials can read, listed once and then kept.
    private func readableZones() async throws(CloudflareError) -> [CloudflareClient.Zone] {
        if let known = zoneList.withLockedValue({ $0 }) { return known }
        let zones = try await client.allZones()
        zoneList.withLockedValue { $0 = zones }
        return zones
    }

    package func zoneNames() async throws -> [DNSName]? {
        let zones = try await readableZones()
        let chosen = configuredZoneID.map { id in zones.filter { $0.id == id } } ?? zones
        let names = chosen.compactMap { try? DNSName($0.name) }
        return names.isEmpty ? nil : names
    }

    /// Reads one Cloudflare record into the core's terms: A and AAAA; a CNAME, which is ours to keep on a
    /// `--cname-names` name and blocks any other name; and, on a CNAME name only, every other type (TXT, MX, ...),
    /// which elsewhere lives beside addresses and is not the controller's concern.
    func existing(_ record: CloudflareClient.Record) -> ExistingRecord? {
        guard let name = try? DNSName(record.name) else { return nil }
        let isCNAMEName = lastScope.withLockedValue { $0.cnames.contains(name) }
        let settings = RecordSettings(ttl: record.ttl, proxied: record.proxied ?? false)
        guard let type = RecordType(rawValue: record.type), type != .other else {
            guard isCNAMEName else { return nil }
            return ExistingRecord(
                id: record.id, key: RecordKey(name: name, type: .other), value: "\(record.type) \(record.content)",
                settings: settings, owned: false, ownerNote: ConflictNote.besideCNAME)
        }
        let owner = OwnerMark.owner(of: record.comment)
        let ownerNote = owner.map { "owned by kube-node-dns owner \($0)" } ?? "not marked as kube-node-dns's"
        if type == .cname {
            guard isCNAMEName else {
                return ExistingRecord(
                    id: record.id, key: RecordKey(name: name, type: type), value: record.content, settings: settings, owned: false,
                    ownerNote: ConflictNote.cnameBlocksAddresses)
            }
            return ExistingRecord(
                id: record.id, key: RecordKey(name: name, type: type),
                value: (try? DNSName(record.content))?.text ?? record.content.lowercased(), settings: settings,
                owned: owner == ownerID, ownerNote: ownerNote)
        }
        return ExistingRecord(
            id: record.id, key: RecordKey(name: name, type: type), value: IPAddress.canonicalText(record.content),
            settings: settings, owned: owner == ownerID, ownerNote: isCNAMEName && owner != ownerID ? ConflictNote.besideCNAME : ownerNote)
    }

    private func fields(key: RecordKey, value: String, settings: RecordSettings) -> [String: JSONValue] {
        [
            "type": .string(key.type.rawValue), "name": .string(key.name.text), "content": .string(value),
            "ttl": .int(settings.ttl), "proxied": .bool(settings.proxied),
            "comment": .string(
                lastScope.withLockedValue { $0.isNodeHostname(key.name) }
                    ? OwnerMark.hostnameComment(owner: ownerID) : OwnerMark.comment(owner: ownerID)),
        ]
    }

    /// One write of a batch.
    enum Operation {
        case post(RecordCreate)
        case patch(RecordUpdate)
        case delete(ExistingRecord)
    }

    package func apply(_ changes: ChangeSet, authorized: @escaping WriteAuthorization) async throws -> [ExistingRecord] {
        // Group by zone; within a zone, creates go in the first chunks and deletes in the last.
        var byZone: [String: [Operation]] = [:]
        var zoneOrder: [String] = []
        func add(_ name: DNSName, _ operation: Operation) async throws {
            let zone = try await zoneID(for: name.text)
            if byZone[zone] == nil { zoneOrder.append(zone) }
            byZone[zone, default: []].append(operation)
        }
        for create in changes.creates where create.key.type != .cname { try await add(create.key.name, .post(create)) }
        for update in changes.updates { try await add(update.record.key.name, .patch(update)) }
        for delete in changes.deletes { try await add(delete.key.name, .delete(delete)) }
        var createdByKey = try await run(byZone, zoneOrder: zoneOrder, authorized: authorized)
        // A new CNAME goes last, once the name's own A and AAAA records (a former --dns-name) are gone: Cloudflare
        // refuses a CNAME beside them.
        byZone = [:]
        zoneOrder = []
        for create in changes.creates where create.key.type == .cname { try await add(create.key.name, .post(create)) }
        createdByKey.merge(try await run(byZone, zoneOrder: zoneOrder, authorized: authorized)) { first, _ in first }
        return changes.creates.compactMap { createdByKey[$0] }
    }

    /// Sends each zone's operations as batches, and returns the records created.
    private func run(
        _ byZone: [String: [Operation]], zoneOrder: [String], authorized: @escaping WriteAuthorization
    ) async throws -> [RecordCreate: ExistingRecord] {
        var createdByKey: [RecordCreate: ExistingRecord] = [:]
        for zone in zoneOrder {
            let operations = byZone[zone] ?? []
            let chunks = stride(from: 0, to: operations.count, by: batchSize).map {
                operations[$0..<min(operations.count, $0 + batchSize)]
            }
            // Creates and updates come before deletes, so a name never empties in between: the chunks without a
            // delete go first, several at a time (they touch different records), then the rest, also overlapped.
            let hasDelete = { (chunk: ArraySlice<Operation>) in
                chunk.contains { if case .delete = $0 { true } else { false } }
            }
            for wave in [chunks.filter { !hasDelete($0) }, chunks.filter(hasDelete)] where !wave.isEmpty {
                try await withThrowingTaskGroup(of: [(RecordCreate, ExistingRecord)].self) { group in
                    var next = wave.startIndex
                    while next < wave.endIndex && next - wave.startIndex < batchesInFlight {
                        let chunk = wave[next]
                        group.addTask { try await self.write(chunk, zone: zone, authorized: authorized) }
                        next += 1
                    }
                    while let created = try await group.next() {
                        for (create, record) in created { createdByKey[create] = record }
                        if next < wave.endIndex {
                            let chunk = wave[next]
                            group.addTask { try await self.write(chunk, zone: zone, authorized: authorized) }
                            next += 1
                        }
                    }
                }
            }
        }
        return createdByKey
    }

    /// One chunk as one batch; a chunk that Cloudflare refuses for its content is halved until the bad operation
    /// stands alone, so the others still apply and the error names the culprit (a batch is all or nothing).
    private func write(
        _ chunk: ArraySlice<Operation>, zone: String, authorized: @escaping WriteAuthorization
    ) async throws -> [(RecordCreate, ExistingRecord)] {
        var pending = [chunk]
        var createdRecords: [(RecordCreate, ExistingRecord)] = []
        while !pending.isEmpty {
            let chunk = pending.removeFirst()
            var batch = CloudflareClient.Batch()
            var posted: [RecordCreate] = []
            for operation in chunk {
                switch operation {
                case .post(let create):
                    batch.posts.append(fields(key: create.key, value: create.value, settings: create.settings))
                    posted.append(create)
                case .patch(let update):
                    var patch = fields(key: update.record.key, value: update.value, settings: update.settings)
                    patch["id"] = .string(update.record.id)
                    batch.patches.append(patch)
                case .delete(let record):
                    batch.deletes.append(record.id)
                }
            }
            guard authorized() else { throw WriteNotAuthorized() }
            let answer: CloudflareClient.BatchResult
            do {
                answer = try await send(batch, zone: zone, authorized: authorized)
            } catch let error as CloudflareError where error.isRefusalOfContent {
                guard chunk.count > 1 else {
                    throw CloudflareError.refused(operation: describe(chunk[chunk.startIndex]), error.description)
                }
                let middle = chunk.startIndex + chunk.count / 2
                pending.insert(contentsOf: [chunk[..<middle], chunk[middle...]], at: 0)
                continue
            }
            // A write is confirmed by its answer, or read back: an answer without what was written (a null result,
            // a missing list, another count, name, type or content) leaves the records unknown.
            let created = answer.posts ?? []
            let confirmed =
                created.count == posted.count && (answer.patches?.count ?? 0) == batch.patches.count
                && (answer.deletes?.count ?? 0) == batch.deletes.count
                && zip(posted, created).allSatisfy { create, record in
                    let written = existing(record)
                    return written?.key == create.key && written?.value == create.value && !record.id.isEmpty
                }
            guard confirmed else { throw UnconfirmedWrite(operations: chunk.count) }
            for (create, record) in zip(posted, created) {
                createdRecords.append(
                    (
                        create,
                        existing(record)
                            ?? ExistingRecord(id: record.id, key: create.key, value: create.value, settings: create.settings, owned: true)
                    ))
            }
        }
        return createdRecords
    }

    private func describe(_ operation: Operation) -> String {
        switch operation {
        case .post(let create): "add \(create.key) \(create.value)"
        case .patch(let update): "update \(update)"
        case .delete(let record): "remove \(record.key) \(record.value)"
        }
    }

    /// One batch; a write dropped for lost leadership comes out as the core's `WriteNotAuthorized`.
    private func send(
        _ batch: CloudflareClient.Batch, zone: String, authorized: @escaping WriteAuthorization
    ) async throws -> CloudflareClient.BatchResult {
        let result: Result<CloudflareClient.BatchResult, CloudflareError>
        do {
            result = .success(try await client.batch(zoneID: zone, batch, authorized: authorized))
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let records): return records
        case .failure(let error):
            if case .notAuthorized = error { throw WriteNotAuthorized() }
            throw error
        }
    }
}

/// Cloudflare accepted a batch, but its answer does not carry what was written: the reconciler forgets the records it
/// knew and reads them back before it plans again, so a vague answer never leaves a record it does not know about.
package struct UnconfirmedWrite: DNSProviderError, CustomStringConvertible {
    package var operations: Int
    package var needsOperator: Bool { false }
    package var description: String {
        "Cloudflare accepted a batch of \(operations) operations, but its answer does not carry the records written; reading them back"
    }
}
