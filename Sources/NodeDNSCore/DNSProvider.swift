/// The names a provider must read: exact names, plus every single-label name under a template's suffix.
package struct ManagedScope: Hashable, Sendable {
    /// Every exact name, the CNAME names included.
    package var names: Set<DNSName>
    package var template: NodeNameTemplate?
    /// The names among `names` that hold a CNAME (`--cname-names`): read in full, since nothing else may stand there.
    package var cnames: Set<DNSName>
    /// The names among `names` that Nodes ask for by annotation; with `readsHostnames`, the provider also finds
    /// those it wrote for nodes that are gone (as it finds per-node names), so that they are removed.
    package var hostnames: Set<DNSName>
    package var readsHostnames: Bool

    package init(
        names: Set<DNSName>, template: NodeNameTemplate? = nil, cnames: Set<DNSName> = [], hostnames: Set<DNSName> = [],
        readsHostnames: Bool = false
    ) {
        self.names = names.union(cnames).union(hostnames)
        self.template = template
        self.cnames = cnames
        self.hostnames = hostnames
        self.readsHostnames = readsHostnames || !hostnames.isEmpty
    }

    /// The fixed text before and after `{node}` in the template: every per-node name starts with the prefix and
    /// ends with the suffix, so one read of the names that do covers all of them (leftovers of deleted nodes too).
    package var templateParts: (prefix: String, suffix: String)? {
        guard let pattern = template?.pattern.lowercased(), let marker = pattern.rangeOfLiteral("{node}") else { return nil }
        return (String(pattern[..<marker.lowerBound]), String(pattern[marker.upperBound...]))
    }

    /// A name the template could give some node (the template with any single label in place of `{node}`).
    package func makeTemplateName(for label: String) -> String? {
        templateParts.map { $0.prefix + label + $0.suffix }
    }

    /// Whether a name falls under this scope.
    package func contains(_ name: DNSName) -> Bool {
        names.contains(name) || isUnderTemplate(name)
    }

    /// Whether a name is what the template gives some node: the prefix, one label, the suffix.
    package func isUnderTemplate(_ name: DNSName) -> Bool {
        guard let (prefix, suffix) = templateParts else { return false }
        return ManagedScope.nodeLabel(of: name.text, prefix: prefix, suffix: suffix) != nil
    }

    /// The one label that stands for `{node}` in `name`, between a template's prefix and suffix, or nil when the name
    /// is not one the template gives (no such label, or more than one): the one template-matching rule, for the scope
    /// and for the providers' indexes of per-node names.
    package static func nodeLabel(of name: String, prefix: String, suffix: String) -> Substring? {
        guard name.count > prefix.count + suffix.count, name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let label = name.dropFirst(prefix.count).dropLast(suffix.count)
        return label.isEmpty || label.contains(".") ? nil : label
    }

    /// Whether a name is one Nodes ask for by annotation (or did, and its records are still to be removed): with
    /// `readsHostnames`, any name that is neither a configured name (`--dns-name`, `--cname-names`) nor a per-node
    /// name. A provider that writes before it reads again (from its cache) still tells such names apart.
    package func isNodeHostname(_ name: DNSName) -> Bool {
        guard readsHostnames, !isUnderTemplate(name) else { return false }
        return hostnames.contains(name) || !names.contains(name)
    }

    /// The names that need a read of their own: those the template's suffix read does not cover.
    package var namesReadExactly: [DNSName] { names.filter { !isUnderTemplate($0) }.sorted() }
}

/// Where DNS records live. The core plans against this; Cloudflare is the first implementation.
package protocol DNSProvider: Sendable {
    /// The settings as the provider will report them back (Cloudflare: a proxied record reads TTL 1).
    func normalized(_ settings: RecordSettings) -> RecordSettings
    /// Checks credentials and finds zones; throws a configuration error worth stopping for.
    func prepare(scope: ManagedScope) async throws
    /// Every A and AAAA record under the scope, owned or not; on a CNAME name, every record there.
    func records(in scope: ManagedScope) async throws -> [ExistingRecord]
    /// Writes a change set; returns the created records (with their new ids) in the order of `changes.creates`.
    /// `authorized` is asked before every request that writes, including each retry after a wait, and the write
    /// stops with `WriteNotAuthorized` once it says no: a replica that lost its Lease never sends a stale batch.
    func apply(_ changes: ChangeSet, authorized: @escaping WriteAuthorization) async throws -> [ExistingRecord]
    /// The zones the provider writes in, after `prepare`: where a name a Node asks for may go. Nil when unknown.
    func zoneNames() async throws -> [DNSName]?
}

extension DNSProvider {
    package func zoneNames() async throws -> [DNSName]? { nil }

    /// Writes with no leadership to lose (a single replica, a test).
    package func apply(_ changes: ChangeSet) async throws -> [ExistingRecord] {
        try await apply(changes, authorized: { true })
    }
}

/// Asked before each write request; false once this replica may no longer write (its leadership ended).
package typealias WriteAuthorization = @Sendable () -> Bool

/// A write was dropped before it was sent, because the writer lost the right to write while it waited.
package struct WriteNotAuthorized: Error, CustomStringConvertible, Equatable {
    package init() {}
    package var description: String { "the write was dropped: this replica no longer holds the leadership it planned under" }
}

/// A provider's failure, sorted by who can fix it; readiness fails only for what an operator must fix.
package protocol DNSProviderError: Error {
    /// True for bad credentials, a missing permission or a name outside every zone; false for what retrying fixes
    /// (rate limits, server errors, timeouts, a malformed answer).
    var needsOperator: Bool { get }
}
