/// The provider-side settings of a record; compared after the provider's normalisation.
package struct RecordSettings: Hashable, Sendable, CustomStringConvertible {
    package var ttl: Int
    package var proxied: Bool
    package init(ttl: Int, proxied: Bool) {
        self.ttl = ttl
        self.proxied = proxied
    }
    package var description: String { proxied ? "ttl=\(ttl) proxied" : "ttl=\(ttl)" }
}

/// A record as the provider holds it, with the ownership the provider read from it.
package struct ExistingRecord: Hashable, Sendable, CustomStringConvertible {
    package var id: String
    package var key: RecordKey
    /// Canonical address text.
    package var value: String
    package var settings: RecordSettings
    /// True when the record carries this controller's owner mark.
    package var owned: Bool
    /// For a foreign record, what its mark says (another owner id, or no mark), for conflict reports.
    package var ownerNote: String

    package init(
        id: String, key: RecordKey, value: String, settings: RecordSettings, owned: Bool, ownerNote: String = ""
    ) {
        self.id = id
        self.key = key
        self.value = value
        self.settings = settings
        self.owned = owned
        self.ownerNote = ownerNote
    }

    package var description: String { "\(key) \(value) (\(settings))" }
}

/// What a provider says of a foreign record on a managed name, in the words every conflict report carries.
package enum ConflictNote {
    /// A CNAME on an address name.
    package static let cnameBlocksAddresses =
        "a CNAME excludes A and AAAA records on this name; remove it for the name to follow the nodes"
    /// Any other record on a `--cname-names` name.
    package static let besideCNAME =
        "a CNAME cannot share its name with other records; remove this one for the CNAME to be written"
}

/// A record to create.
package struct RecordCreate: Hashable, Sendable, CustomStringConvertible {
    package var key: RecordKey
    package var value: String
    package var settings: RecordSettings
    package var description: String { "\(key) \(value)" }
}

/// A change to one existing owned record: a new value, new settings, or the owner mark (adoption).
package struct RecordUpdate: Hashable, Sendable, CustomStringConvertible {
    package var record: ExistingRecord
    package var value: String
    package var settings: RecordSettings
    /// The record gains this controller's owner mark.
    package var adopt: Bool
    package var description: String {
        if record.value != value { return "\(record.key) \(record.value) -> \(value)" }
        return adopt ? "\(record.key) \(value) (adopted)" : "\(record.key) \(value) \(record.settings) -> \(settings)"
    }
}

/// What a reconcile must write, and what it noticed but must not touch.
package struct ChangeSet: Hashable, Sendable {
    package var creates: [RecordCreate] = []
    package var updates: [RecordUpdate] = []
    package var deletes: [ExistingRecord] = []
    /// Records on managed names that this controller does not own: reported, never changed.
    package var conflicts: [ExistingRecord] = []
    /// Names kept at their last good set because every node left at once.
    package var heldNames: [DNSName] = []
    /// Managed names left untouched because a record there excludes addresses (a CNAME); the record is in
    /// `conflicts` too. Nothing else waits for them.
    package var blockedNames: [DNSName] = []

    package init() {}

    package var isEmpty: Bool { creates.isEmpty && updates.isEmpty && deletes.isEmpty }
    package var writeCount: Int { creates.count + updates.count + deletes.count }

    /// The provider's records after this change set, given the records the provider created (ids included).
    package func applied(to current: [ExistingRecord], created: [ExistingRecord]) -> [ExistingRecord] {
        let deleted = Set(deletes.map(\.id))
        var updated: [String: RecordUpdate] = [:]
        for update in updates { updated[update.record.id] = update }
        var result: [ExistingRecord] = []
        for record in current where !deleted.contains(record.id) {
            guard let update = updated[record.id] else {
                result.append(record)
                continue
            }
            var changed = record
            changed.value = update.value
            changed.settings = update.settings
            changed.owned = true
            changed.ownerNote = ""
            result.append(changed)
        }
        return result + created
    }
}

/// The rules a plan follows beyond the desired state itself.
package struct PlanPolicy: Hashable, Sendable {
    /// The settings every owned record should have, already normalised by the provider.
    package var settings: RecordSettings
    /// Let a protected name become empty when every node leaves it.
    package var allowEmpty = false
    /// Adopt records of managed names that carry no (or another) owner mark.
    package var takeOwnership = false
    /// Names that must never be emptied unless `allowEmpty` (the shared names).
    package var protectedNames: Set<DNSName> = []
    /// When every node leaves a protected name within one collapse window, the name is held at its owned records
    /// plus these values: what the window's earlier reconciles removed (a mass NotReady arrives node by node, and
    /// the first reconcile of a window acts on the first node alone).
    package var holdBaseline: [RecordKey: Set<String>] = [:]

    package init(
        settings: RecordSettings, allowEmpty: Bool = false, takeOwnership: Bool = false,
        protectedNames: Set<DNSName> = []
    ) {
        self.settings = settings
        self.allowEmpty = allowEmpty
        self.takeOwnership = takeOwnership
        self.protectedNames = protectedNames
    }
}

/// The writes that turn `current` into `desired` while touching only owned records. Pure.
package func plan(desired: [RecordKey: Set<String>], current: [ExistingRecord], policy: PlanPolicy) -> ChangeSet {
    var changes = ChangeSet()
    var byKey: [RecordKey: [ExistingRecord]] = [:]
    let cnameNames = Set(desired.keys.filter { $0.type == .cname }.map(\.name))
    // A CNAME on an address name excludes A and AAAA there: that name is reported and left alone (even with
    // --take-ownership: the controller writes CNAMEs only on --cname-names), and every other name goes on.
    let blockers = current.filter { $0.key.type == .cname && !cnameNames.contains($0.key.name) }
    let blocked = Set(blockers.map(\.key.name))
    changes.blockedNames = blocked.sorted()
    changes.conflicts += blockers.sorted { ($0.key, $0.value) < ($1.key, $1.value) }
    for record in current
    where record.key.type != .cname && record.key.type != .other && !blocked.contains(record.key.name)
        && !cnameNames.contains(record.key.name)
    {
        byKey[record.key, default: []].append(record)
    }
    func isOurs(_ record: ExistingRecord) -> Bool { record.owned || policy.takeOwnership }
    planCNAMEs(desired: desired, names: cnameNames, current: current, policy: policy, into: &changes)

    var effective = desired
    for name in policy.protectedNames.sorted() where !policy.allowEmpty {
        let keys = RecordType.addressTypes.map { RecordKey(name: name, type: $0) }
        let wanted = keys.reduce(0) { $0 + (desired[$1]?.count ?? 0) }
        let held = keys.flatMap { byKey[$0] ?? [] }.filter(isOurs)
        let baseline = keys.flatMap { policy.holdBaseline[$0] ?? [] }
        if wanted == 0 && (!held.isEmpty || !baseline.isEmpty) {
            changes.heldNames.append(name)
            for key in keys {
                effective[key] = Set((byKey[key] ?? []).filter(isOurs).map(\.value)).union(policy.holdBaseline[key] ?? [])
            }
        }
    }

    let keys = Set(effective.keys).union(byKey.keys).filter { !blocked.contains($0.name) && $0.type != .cname }.sorted()
    for key in keys {
        let wanted = effective[key] ?? []
        let records = (byKey[key] ?? []).sorted { ($0.value, $0.id) < ($1.value, $1.id) }
        let ours = records.filter(isOurs)
        let foreign = records.filter { !isOurs($0) }
        if effective[key] != nil || policy.protectedNames.contains(key.name) { changes.conflicts += foreign }
        let foreignValues = Set(foreign.map(\.value))

        var kept: Set<String> = []
        var spare: [ExistingRecord] = []
        for record in ours {
            if wanted.contains(record.value) && !kept.contains(record.value) {
                kept.insert(record.value)
                if record.settings != policy.settings || !record.owned {
                    changes.updates.append(
                        RecordUpdate(record: record, value: record.value, settings: policy.settings, adopt: !record.owned))
                }
            } else {
                spare.append(record)
            }
        }
        let missing = wanted.subtracting(kept).subtracting(foreignValues).sorted()
        for (index, value) in missing.enumerated() {
            if index < spare.count {
                let record = spare[index]
                changes.updates.append(
                    RecordUpdate(record: record, value: value, settings: policy.settings, adopt: !record.owned))
            } else {
                changes.creates.append(RecordCreate(key: key, value: value, settings: policy.settings))
            }
        }
        if spare.count > missing.count { changes.deletes += spare[missing.count...] }
    }
    return changes
}

/// The CNAME names: each holds our one CNAME to its target, and nothing else. Any record there that is not ours
/// (an A, a TXT, another's CNAME) is a conflict, and the name is then left as it is; `--take-ownership` adopts a
/// foreign CNAME and nothing else. Our own A and AAAA records there (the name was a `--dns-name` before) give way to
/// the CNAME in the same write.
private func planCNAMEs(
    desired: [RecordKey: Set<String>], names: Set<DNSName>, current: [ExistingRecord], policy: PlanPolicy,
    into changes: inout ChangeSet
) {
    var byName: [DNSName: [ExistingRecord]] = [:]
    for record in current where names.contains(record.key.name) { byName[record.key.name, default: []].append(record) }
    for name in names.sorted() {
        let key = RecordKey(name: name, type: .cname)
        guard let target = desired[key]?.first else { continue }
        let here = (byName[name] ?? []).sorted { ($0.key, $0.value, $0.id) < ($1.key, $1.value, $1.id) }
        let foreign = foreignOnCNAMEName(here, takeOwnership: policy.takeOwnership)
        if !foreign.isEmpty {
            changes.conflicts += foreign
            continue
        }
        let aliases = here.filter { $0.key.type == .cname }
        changes.deletes += here.filter { $0.key.type != .cname }
        if let keep = aliases.first(where: { $0.value == target }) ?? aliases.first {
            if keep.value != target || keep.settings != policy.settings || !keep.owned {
                changes.updates.append(RecordUpdate(record: keep, value: target, settings: policy.settings, adopt: !keep.owned))
            }
            changes.deletes += aliases.filter { $0.id != keep.id }
        } else {
            changes.creates.append(RecordCreate(key: key, value: target, settings: policy.settings))
        }
    }
}

/// The records on a CNAME name that are not ours to change: anything we do not own, except a CNAME that
/// `--take-ownership` adopts.
private func foreignOnCNAMEName(_ records: [ExistingRecord], takeOwnership: Bool) -> [ExistingRecord] {
    records.filter { $0.key.type == .cname ? !($0.owned || takeOwnership) : !$0.owned }
}

/// Where a `--cname-names` name stands against the provider's records.
package enum CNAMEState: Hashable, Sendable {
    /// Our CNAME is there, pointing at its target.
    case inPlace
    /// Not written yet (or pointing elsewhere): the next write puts it right.
    case pending
    /// Records that are not ours stand on the name; it is left alone.
    case conflict([ExistingRecord])

    /// The label of the `kube_node_dns_cnames` metric and of `/status`.
    package var label: String {
        switch self {
        case .inPlace: "in_place"
        case .pending: "pending"
        case .conflict: "conflict"
        }
    }

    /// Each CNAME name's state, read from `records` as `plan` reads them (with `takeOwnership`, a foreign CNAME is to
    /// be adopted, so pending).
    package static func of(
        _ cnames: [DNSName: DNSName], records: [ExistingRecord], takeOwnership: Bool = false
    ) -> [DNSName: CNAMEState] {
        var byName: [DNSName: [ExistingRecord]] = [:]
        for record in records where cnames[record.key.name] != nil { byName[record.key.name, default: []].append(record) }
        var states: [DNSName: CNAMEState] = [:]
        for (name, target) in cnames {
            let here = byName[name] ?? []
            let foreign = foreignOnCNAMEName(here, takeOwnership: takeOwnership)
            if !foreign.isEmpty {
                states[name] = .conflict(foreign.sorted { ($0.key, $0.value) < ($1.key, $1.value) })
            } else if here.count == 1, let only = here.first, only.owned, only.key.type == .cname, only.value == target.text {
                states[name] = .inPlace
            } else {
                states[name] = .pending
            }
        }
        return states
    }
}
