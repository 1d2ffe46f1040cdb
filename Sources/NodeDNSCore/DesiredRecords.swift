/// The record types the controller manages: A and AAAA for the nodes, CNAME for `--cname-names` (a CNAME anywhere
/// else excludes every other record on its name, so one on an address name blocks that name), and `other` for any
/// other type found on a CNAME name, where nothing else may stand.
package enum RecordType: String, Hashable, Comparable, Sendable, CaseIterable {
    case a = "A"
    case aaaa = "AAAA"
    case cname = "CNAME"
    /// Another type (TXT, MX, ...) on a CNAME name; its value holds the type and the data, as "TXT \"hello\"".
    case other = "other"
    package static func < (lhs: RecordType, rhs: RecordType) -> Bool { lhs.rawValue < rhs.rawValue }
    /// The types that carry node addresses.
    package static let addressTypes: [RecordType] = [.a, .aaaa]
}

/// One DNS record set's identity.
package struct RecordKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    package var name: DNSName
    package var type: RecordType
    package init(name: DNSName, type: RecordType) {
        self.name = name
        self.type = type
    }
    package static func < (lhs: RecordKey, rhs: RecordKey) -> Bool {
        (lhs.name, lhs.type) < (rhs.name, rhs.type)
    }
    package var description: String { type == .other ? "\(name)" : "\(name) \(type.rawValue)" }
}

/// How the desired records are shaped from eligible nodes.
package struct RecordPolicy: Hashable, Sendable {
    /// Names that carry every eligible node's addresses (the original's `--dns-name`).
    package var sharedNames: [DNSName]
    /// An optional per-node name, such as `{node}.nodes.example.com`.
    package var nodeNameTemplate: NodeNameTemplate?
    /// At most this many values per shared name and type; the subset is chosen by rendezvous hashing.
    package var maxValuesPerName: Int
    package var addresses: AddressPolicy
    package var eligibility: EligibilityPolicy
    /// `--cname-names`: each name kept as a CNAME to its target (one of `sharedNames`), whatever the nodes do.
    package var cnames: [DNSName: DNSName] = [:]
    /// `--node-hostnames-annotation` is set: each node's annotated names carry its addresses.
    package var readsNodeHostnames = false
    /// The zones an annotated name must fall in (the provider's); nil while they are not known.
    package var hostnameZones: [DNSName]?

    /// 12 A records (about 220 bytes) or 12 AAAA records (about 410 bytes) fit a 512-byte UDP answer
    /// and stay far below Cloudflare's 8,192 characters of combined content per name.
    package static let defaultMaxValuesPerName = 12

    package init(
        sharedNames: [DNSName], nodeNameTemplate: NodeNameTemplate? = nil,
        maxValuesPerName: Int = RecordPolicy.defaultMaxValuesPerName, addresses: AddressPolicy = AddressPolicy(),
        eligibility: EligibilityPolicy = EligibilityPolicy()
    ) {
        self.sharedNames = sharedNames
        self.nodeNameTemplate = nodeNameTemplate
        self.maxValuesPerName = maxValuesPerName
        self.addresses = addresses
        self.eligibility = eligibility
    }
}

/// Something the desired-state computation skipped, to be logged once per change.
package struct SkippedAddress: Hashable, Sendable, CustomStringConvertible {
    package var node: String
    package var reason: String
    package var description: String { "node \(node): \(reason)" }
}

/// The record sets the cluster should have, and what was skipped on the way.
package struct DesiredState: Hashable, Sendable {
    package var sets: [RecordKey: Set<String>]
    package var eligibleNodes: [String]
    package var skipped: [SkippedAddress]
    /// Every name the controller manages, including those whose desired set is empty now.
    package var managedNames: Set<DNSName>
    /// Why each node that is not published is left out (every rule that applies).
    package var exclusions: [String: [String]] = [:]
    /// The addresses each published node contributes.
    package var published: [String: [String]] = [:]
    /// The addresses of a published node that the shared names leave out: over `--max-addresses-per-name`, each
    /// node offers one address per family, so that one node with many addresses cannot crowd the others out.
    package var extraAddresses: [String: [String]] = [:]
    /// The names Nodes ask for by annotation, and those refused.
    package var hostnames = HostnameClaims()
    /// The taints each node carries that `--exclude-taints` names but that leave it in (see
    /// `EligibilityPolicy.ignoredTaints`), as `key:effect`.
    package var ignoredTaints: [String: [String]] = [:]

    package init(
        sets: [RecordKey: Set<String>] = [:], eligibleNodes: [String] = [], skipped: [SkippedAddress] = [],
        managedNames: Set<DNSName> = []
    ) {
        self.sets = sets
        self.eligibleNodes = eligibleNodes
        self.skipped = skipped
        self.managedNames = managedNames
    }
}

/// Computes the desired record sets from a picture of all nodes (and, with a serving-pod rule, the pods that may
/// serve on them; with health checks on, their verdicts, a node without one awaiting its first check); pure and
/// deterministic.
package func desiredRecords(
    nodes: some Collection<NodeSnapshot>, pods: some Collection<PodSnapshot> = [PodSnapshot](),
    health: [String: NodeHealth]? = nil, policy: RecordPolicy
) -> DesiredState {
    var state = DesiredState()
    var podsByNode: [String: [PodSnapshot]] = [:]
    for pod in pods { if let node = pod.nodeName { podsByNode[node, default: []].append(pod) } }
    func eligible(_ node: NodeSnapshot) -> Bool {
        policy.eligibility.exclusionReasons(
            of: node, pods: podsByNode[node.name] ?? [], health: health.map { $0[node.name] ?? .awaitingFirstCheck }
        ).isEmpty
    }
    state.managedNames = Set(policy.sharedNames).union(policy.cnames.keys)
    // The CNAMEs do not depend on the nodes: always there, pointing at their targets.
    for (name, target) in policy.cnames { state.sets[RecordKey(name: name, type: .cname)] = [target.text] }
    state.hostnames = HostnameClaims(nodes: nodes, policy: policy)
    state.managedNames.formUnion(state.hostnames.managedNames)
    /// Each published node's values per type, in the node's own order, for the shared names.
    var offered: [RecordType: [(node: String, values: [String])]] = [:]
    let sorted = nodes.sorted(by: { $0.name < $1.name })
    // The original's --use-internal-ip: internal addresses for everyone, but only when no eligible node has an
    // external one (warnings about bad addresses come from the pass below, once).
    var addressPolicy = policy.addresses
    if addressPolicy.internalWhenNoExternal {
        var ignored: [SkippedAddress] = []
        let anyExternal = sorted.contains { node in
            eligible(node)
                && !usableAddresses(of: node, policy: AddressPolicy(useExternal: addressPolicy.useExternal), skipped: &ignored)
                    .isEmpty
        }
        if !anyExternal { addressPolicy.useInternal = true }
    }
    for node in sorted {
        let perNodeName = policy.nodeNameTemplate.flatMap { $0.name(for: node.name) }
        if let perNodeName { state.managedNames.insert(perNodeName) }
        if policy.nodeNameTemplate != nil && perNodeName == nil {
            state.skipped.append(SkippedAddress(node: node.name, reason: "its name cannot be a DNS label"))
        }
        let ignored = policy.eligibility.ignoredTaints(of: node)
        if !ignored.isEmpty { state.ignoredTaints[node.name] = ignored.map { "\($0.key):\($0.effect)" } }
        let reasons = policy.eligibility.exclusionReasons(
            of: node, pods: podsByNode[node.name] ?? [], health: health.map { $0[node.name] ?? .awaitingFirstCheck })
        guard reasons.isEmpty else {
            state.exclusions[node.name] = reasons
            continue
        }
        let values = usableAddresses(of: node, policy: addressPolicy, skipped: &state.skipped)
        guard !values.isEmpty else {
            state.skipped.append(SkippedAddress(node: node.name, reason: "has no usable address"))
            state.exclusions[node.name] = ["no usable address"]
            continue
        }
        state.eligibleNodes.append(node.name)
        state.published[node.name] = values.map(\.description)
        for type in RecordType.addressTypes {
            let ofType = values.filter { ($0.isIPv4 ? RecordType.a : .aaaa) == type }.map(\.description)
            guard !ofType.isEmpty else { continue }
            offered[type, default: []].append((node.name, ofType))
            if let perNodeName { state.sets[RecordKey(name: perNodeName, type: type), default: []].formUnion(ofType) }
            for name in state.hostnames.accepted[node.name] ?? [] {
                state.sets[RecordKey(name: name, type: type), default: []].formUnion(ofType)
            }
        }
    }
    for (type, nodes) in offered {
        var values = Set(nodes.flatMap(\.values))
        if values.count > policy.maxValuesPerName {
            // Over the cap, the name picks nodes, not addresses: one address per family per node.
            values = Set(nodes.map { $0.values[0] })
            for (node, all) in nodes where all.count > 1 { state.extraAddresses[node, default: []] += all.dropFirst() }
        }
        for name in policy.sharedNames {
            state.sets[RecordKey(name: name, type: type)] = rendezvousSubset(of: values, key: name.text, count: policy.maxValuesPerName)
        }
    }
    return state
}

func usableAddresses(
    of node: NodeSnapshot, policy: AddressPolicy, skipped: inout [SkippedAddress]
)
    -> [IPAddress]
{
    func parse(_ type: String) -> [IPAddress] {
        var result: [IPAddress] = []
        for address in node.addresses where address.type == type {
            do {
                let ip = try IPAddress(routable: address.address)
                if !result.contains(ip) { result.append(ip) }
            } catch {
                skipped.append(SkippedAddress(node: node.name, reason: "\(type) \(error.description), skipped"))
            }
        }
        return result
    }
    var result: [IPAddress] = []
    let external = policy.useExternal ? parse("ExternalIP") : []
    result += external
    if policy.useInternal || (policy.internalFallback && external.isEmpty) {
        for ip in parse("InternalIP") where !result.contains(ip) { result.append(ip) }
    }
    return result
}

/// Picks `count` values by highest random weight (rendezvous hashing), so one value joining or
/// leaving changes at most one member of the subset.
package func rendezvousSubset(of values: Set<String>, key: String, count: Int) -> Set<String> {
    guard values.count > count else { return values }
    let ranked = values.map { (score: stableHash(key + "\u{0}" + $0), value: $0) }
        .sorted { ($0.score, $0.value) > ($1.score, $1.value) }
    return Set(ranked.prefix(max(count, 0)).map(\.value))
}

/// FNV-1a with a SplitMix64 finaliser: stable across processes and releases, unlike `Hasher`.
package func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01B3
    }
    hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
    hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
    return hash ^ (hash >> 31)
}
