/// The names Nodes ask for through `--node-hostnames-annotation`, sorted out once per picture of the cluster: which
/// node gets which names, and why a name is refused (not a DNS name, outside the zones, a name managed otherwise,
/// or claimed by two nodes at once).
package struct HostnameClaims: Hashable, Sendable {
    /// The names each node gets (whether or not the node is published now: an unpublished node's names are emptied).
    package var accepted: [String: [DNSName]] = [:]
    /// Why each node's refused names are refused, one sentence per name.
    package var refused: [String: [String]] = [:]
    /// Names two or more nodes claim: managed (so that they empty) but given to neither.
    package var contested: [DNSName: [String]] = [:]

    package init() {}

    /// Every name the claims make the controller manage: those accepted, and those contested.
    package var managedNames: Set<DNSName> { Set(accepted.values.joined()).union(contested.keys) }

    /// Reads each node's annotation value (comma-separated names) against the policy.
    package init(nodes: some Collection<NodeSnapshot>, policy: RecordPolicy) {
        guard policy.readsNodeHostnames else { return }
        var claimants: [DNSName: [String]] = [:]
        var wanted: [String: [DNSName]] = [:]
        let perNode = ManagedScope(names: [], template: policy.nodeNameTemplate)
        for node in nodes.sorted(by: { $0.name < $1.name }) {
            guard let text = node.hostnames else { continue }
            for entry in text.split(separator: ",").map({ $0.trimmingWhitespace }).filter({ !$0.isEmpty }) {
                let name: DNSName
                do { name = try DNSName(entry) } catch {
                    refused[node.name, default: []].append("\(error)")
                    continue
                }
                if let zones = policy.hostnameZones, !zones.contains(where: { name.isWithin(zone: $0.text) }) {
                    let list = zones.map(\.text).joined(separator: ", ")
                    refused[node.name, default: []].append("\(name) is outside the DNS zones the provider writes in (\(list))")
                    continue
                }
                if policy.sharedNames.contains(name) || policy.cnames[name] != nil || perNode.isUnderTemplate(name) {
                    refused[node.name, default: []].append(
                        "\(name) is already managed (a --dns-name, a --cname-names name or a --node-name-template name)")
                    continue
                }
                guard !(wanted[node.name] ?? []).contains(name) else { continue }
                wanted[node.name, default: []].append(name)
                claimants[name, default: []].append(node.name)
            }
        }
        for (name, nodes) in claimants where nodes.count > 1 { contested[name] = nodes }
        for (node, names) in wanted {
            for name in names {
                if let others = contested[name]?.filter({ $0 != node }) {
                    refused[node, default: []].append(
                        "\(name) is also claimed by \(others.joined(separator: ", ")); no node gets it until only one claims it")
                } else {
                    accepted[node, default: []].append(name)
                }
            }
        }
    }
}
