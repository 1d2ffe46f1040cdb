import FoundationEssentials
import HealthChecks
import NodeDNSCore

/// What `/status` shows: whether this replica can lead and why not, who leads, and how the last reconcile went;
/// plain text for `curl`, JSON with `?format=json`. It never carries a secret.
struct StatusReport: Codable, Sendable {
    /// One node: in DNS with these addresses, or out for these reasons (every rule that applies).
    struct NodeRow: Codable, Sendable {
        var name: String
        var published: Bool
        var addresses: [String]
        var reasons: [String]
        /// Taints that `--exclude-taints` names but that do not leave this node out, each with why.
        var ignoredTaints: [String]?
        /// This node's addresses that the shared names leave out (over `--max-addresses-per-name`, one a family).
        var extraAddresses: [String]?
        /// The last health check: its verdict, result, latency and streak (with `--health-check`).
        var health: HealthChecker.NodeReport?
        /// The names this node asks for by annotation and gets, and why any other is refused.
        var hostnames: [String]?
        var refusedHostnames: [String]?
    }
    /// One record on a managed name, and whose it is: owned, foreign (not ours, left alone) or held (kept by the
    /// safety rail although no node wants it).
    struct RecordRow: Codable, Sendable {
        var type: String
        var value: String
        var state: String
    }
    /// One managed name: what the nodes want, and what the provider holds.
    struct NameRow: Codable, Sendable {
        var name: String
        var desired: [String]
        var records: [RecordRow]?
    }
    /// One `--cname-names` name: its target, and where it stands (in_place, pending, conflict, or unknown before
    /// the first read), with the records in its way.
    struct CNAMERow: Codable, Sendable {
        var name: String
        var target: String
        var state: String
        var conflicts: [String]?
    }
    struct Reconcile: Codable, Sendable {
        var at: String?
        var result: String?
        var error: String?
        var failuresInARow: Int
        var reconciles: Int
        var writes: Int
    }
    var ready: Bool
    var notReadyReason: String?
    /// "leader", "standby", or "single" when leader election is off.
    var role: String
    var identity: String?
    var lease: String?
    var leaseHolder: String?
    var nodeListSynced: Bool
    var nodeCount: Int
    var eligibleNodes: Int
    var nodes: [NodeRow]
    var names: [NameRow]
    var cnames: [CNAMERow]
    /// Provider requests in the rate limiter's window (Cloudflare: 5 minutes) against the budget.
    var provider: String
    /// Cloudflare's client-side request budget (nil for RFC 2136, which has none).
    var providerRequests: Int?
    var providerBudget: Int?
    /// Each peer's state: when the API server last answered as it should, and how the DNS provider fares.
    var peers: [String]
    /// Why `/healthz` fails, or nil.
    var unhealthy: String?
    /// What `--health-check` probes, and whether every probed node fails at once (nil when checks are off).
    var healthCheck: String?
    var healthChecksAllFailing: Bool?
    var heldNames: [String]
    var blockedNames: [String]
    var conflicts: [String]
    var lastReconcile: Reconcile

    /// Why a NoExecute condition taint on a Ready node is ignored.
    static let lateEchoExplanation =
        "Ready is True; the node lifecycle controller lifts this taint only on its next monitor pass"

    var text: String {
        var lines: [String] = []
        lines.append("ready:          \(ready ? "yes" : "no: \(notReadyReason ?? "unknown")")")
        var roleLine = "role:           \(role)"
        if let identity { roleLine += " (identity \(identity))" }
        lines.append(roleLine)
        if let lease { lines.append("lease:          \(lease), held by \(leaseHolder ?? "nobody")") }
        lines.append("nodes:          \(nodeCount) known, \(eligibleNodes) eligible\(nodeListSynced ? "" : " (node list not synced yet)")")
        let reconcile = lastReconcile
        if let at = reconcile.at {
            lines.append(
                "last reconcile: \(at), \(reconcile.result ?? "?")\(reconcile.error.map { ": \($0)" } ?? "")"
                    + (reconcile.failuresInARow > 1 ? " (\(reconcile.failuresInARow) failures in a row)" : ""))
        } else {
            lines.append("last reconcile: none yet\(reconcile.error.map { " (\($0))" } ?? "")")
        }
        lines.append("totals:         \(reconcile.reconciles) reconciles, \(reconcile.writes) record writes")
        for peer in peers { lines.append("peer:           \(peer)") }
        if let unhealthy { lines.append("healthz:        failing: \(unhealthy)") }
        if let providerRequests, let providerBudget {
            lines.append("Cloudflare requests in the last 5 minutes: \(providerRequests) of \(providerBudget)")
        } else {
            lines.append("DNS provider: \(provider)")
        }
        lines.append("")
        lines.append("NODE                           DNS        ADDRESSES / WHY NOT")
        for node in nodes {
            let detail = node.published ? node.addresses.joined(separator: ", ") : node.reasons.joined(separator: "; ")
            lines.append(
                node.name.padding(30) + " " + (node.published ? "published" : "left out").padding(10) + " " + detail)
            for taint in node.ignoredTaints ?? [] { lines.append("".padding(41) + " ignores taint \(taint)") }
            if let health = node.health {
                lines.append(
                    "".padding(41) + " health: \(health.verdict); last \(health.lastResult) in \(health.latencySeconds.twoDecimals) s; "
                        + "\(health.passesInARow) passed, \(health.failuresInARow) failed in a row")
            }
            if let names = node.hostnames { lines.append("".padding(41) + " names: " + names.joined(separator: ", ")) }
            for refusal in node.refusedHostnames ?? [] { lines.append("".padding(41) + " name refused: \(refusal)") }
            if let extra = node.extraAddresses {
                lines.append(
                    "".padding(41) + " not on the shared names: " + extra.joined(separator: ", ")
                        + " (over --max-addresses-per-name, one address per family per node)")
            }
        }
        lines.append("")
        lines.append("NAME                           WANTED / RECORDS")
        for name in names {
            lines.append(name.name.padding(30) + " wanted: " + (name.desired.isEmpty ? "none" : name.desired.joined(separator: ", ")))
            if let records = name.records {
                for record in records { lines.append("".padding(30) + " \(record.type) \(record.value) (\(record.state))") }
            } else {
                lines.append("".padding(30) + " records not read yet")
            }
        }
        if !cnames.isEmpty {
            lines.append("")
            lines.append("CNAME                          TARGET / STATE")
            for row in cnames {
                lines.append(row.name.padding(30) + " -> \(row.target) (\(String(row.state.map { $0 == "_" ? " " : $0 })))")
                for conflict in row.conflicts ?? [] { lines.append("".padding(30) + " in the way: \(conflict)") }
            }
        }
        if let healthCheck {
            lines.append(
                "health checks:  \(healthCheck)"
                    + (healthChecksAllFailing == true
                        ? "; EVERY PROBED NODE FAILS: this controller's own network is the likelier fault; the names keep their records"
                        : ""))
        }
        for name in heldNames { lines.append("held:           \(name) keeps its last records: every node left it at once") }
        for name in blockedNames { lines.append("blocked:        \(name) has a CNAME; left alone") }
        for conflict in conflicts { lines.append("conflict:       \(conflict)") }
        return lines.joined(separator: "\n") + "\n"
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? "{}\n"
    }
}

extension String {
    /// Left-aligned in a column of `width` characters (at least one space after).
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

extension Controller {
    /// One line per peer for `/status`.
    func peerRows(_ status: ReconcileStatus) -> [String] {
        let now = Reconciler.wallClock()
        var rows = ["Kubernetes API: last answered \(store.sinceAnswer.components.seconds)s ago"]
        for (kind, backoff) in [("node", store.backoffLeft), ("pod", pods?.backoffLeft)] {
            guard let backoff else { continue }
            rows.append(
                "Kubernetes API: the \(kind) watch is backing off after \(peerText(backoff.reason)); "
                    + "changes to \(kind)s are read again in \(backoff.seconds.twoDecimals) s")
        }
        if let since = status.failingSince {
            rows.append("DNS provider: failing for \(Int(now - since))s (\(status.failuresInARow) reconciles in a row)")
        } else {
            rows.append("DNS provider: " + (status.lastReconcileAt == nil ? "not used yet" : "answering"))
        }
        if let since = status.exchangeSince { rows.append("DNS provider: a reconcile in progress for \(Int(now - since))s") }
        return rows
    }

    /// The `/status` table as text: what `--dry-run --once` prints before it exits.
    package var statusText: String { statusReport().text }

    func statusReport() -> StatusReport {
        let status = reconciler.status
        let reason = reconciler.notReadyReason
        let desired = desiredRecords(
            nodes: store.snapshots, pods: pods?.snapshots ?? [], health: health?.verdicts, policy: reconciler.recordPolicy)
        let healthReports = health?.reports ?? [:]
        let role: String
        if let elector {
            role = elector.canWrite ? "leader" : "standby"
        } else {
            role = "single"
        }
        let nodeRows = store.snapshots.map(\.name).sorted().map { name in
            StatusReport.NodeRow(
                name: name, published: desired.published[name] != nil, addresses: desired.published[name] ?? [],
                reasons: (desired.exclusions[name] ?? []).map { peerText($0) },
                ignoredTaints: desired.ignoredTaints[name]?.map { "\($0): \(StatusReport.lateEchoExplanation)" },
                extraAddresses: desired.extraAddresses[name], health: healthReports[name],
                hostnames: desired.hostnames.accepted[name]?.map(\.text),
                refusedHostnames: desired.hostnames.refused[name]?.map { peerText($0) })
        }
        let known = reconciler.lastKnownRecords
        let held = Set(status.heldNames)
        let nameRows = desired.managedNames.union(config.dnsNames).sorted().map { name in
            let wanted = [RecordType.a, .aaaa, .cname].flatMap { desired.sets[RecordKey(name: name, type: $0)] ?? [] }.sorted()
            let records = known.map { records in
                records.filter { $0.key.name == name }.sorted { ($0.key, $0.value) < ($1.key, $1.value) }.map { record in
                    StatusReport.RecordRow(
                        type: record.key.type.rawValue, value: record.value,
                        state: !record.owned ? "foreign" : held.contains(name) && !wanted.contains(record.value) ? "held" : "owned")
                }
            }
            return StatusReport.NameRow(name: name.text, desired: wanted, records: records)
        }
        let cnames = config.cnames
        let cnameStates = known.map { CNAMEState.of(cnames, records: $0, takeOwnership: config.takeOwnership) } ?? [:]
        let cnameRows = cnames.keys.sorted().map { name in
            let state = cnameStates[name]
            var conflicts: [String]?
            if case .conflict(let records) = state { conflicts = records.map { peerText("\($0.key) \($0.value) (\($0.ownerNote))") } }
            return StatusReport.CNAMERow(
                name: name.text, target: cnames[name]!.text, state: state?.label ?? "unknown", conflicts: conflicts)
        }
        return StatusReport(
            ready: reason == nil, notReadyReason: reason.map { peerText($0) }, role: role, identity: elector?.identity,
            lease: elector?.leaseName, leaseHolder: elector?.holder, nodeListSynced: store.synced,
            nodeCount: store.snapshots.count, eligibleNodes: desired.eligibleNodes.count, nodes: nodeRows, names: nameRows,
            cnames: cnameRows,
            provider: config.provider.rawValue, providerRequests: cloudflare?.limiter.used(clock: cloudflareClock),
            providerBudget: cloudflare?.limiter.limit,
            peers: peerRows(status), unhealthy: peerProblem(),
            healthCheck: config.healthCheck.map {
                "\($0) every \(config.healthCheckInterval.twoDecimals) s, Host \(config.healthCheckHostName)"
            },
            healthChecksAllFailing: health?.allFailing,
            heldNames: status.heldNames.map(\.text), blockedNames: status.blockedNames.map(\.text),
            conflicts: status.conflicts.map { peerText("\($0.key) \($0.value) (\($0.ownerNote))") },
            lastReconcile: .init(
                at: status.lastReconcileAt.map { Date(timeIntervalSince1970: $0).formatted(.iso8601) },
                result: status.lastResult, error: status.lastError.map { peerText($0) }, failuresInARow: status.failuresInARow,
                reconciles: status.reconciles, writes: status.writes))
    }
}
