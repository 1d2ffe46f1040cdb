import Foundation
import NodeDNSCore

/// What `/status` shows: whether this replica can lead and why not, who leads, and how the last reconcile went;
/// plain text for `curl`, JSON with `?format=json`. It never carries a secret.
struct StatusReport: Codable, Sendable {
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
    var nodes: Int
    var eligibleNodes: Int
    var heldNames: [String]
    var blockedNames: [String]
    var conflicts: [String]
    var lastReconcile: Reconcile

    var text: String {
        var lines: [String] = []
        lines.append("ready:          \(ready ? "yes" : "no: \(notReadyReason ?? "unknown")")")
        var roleLine = "role:           \(role)"
        if let identity { roleLine += " (identity \(identity))" }
        lines.append(roleLine)
        if let lease { lines.append("lease:          \(lease), held by \(leaseHolder ?? "nobody")") }
        lines.append("nodes:          \(nodes) known, \(eligibleNodes) eligible\(nodeListSynced ? "" : " (node list not synced yet)")")
        let reconcile = lastReconcile
        if let at = reconcile.at {
            lines.append(
                "last reconcile: \(at), \(reconcile.result ?? "?")\(reconcile.error.map { ": \($0)" } ?? "")"
                    + (reconcile.failuresInARow > 1 ? " (\(reconcile.failuresInARow) failures in a row)" : ""))
        } else {
            lines.append("last reconcile: none yet\(reconcile.error.map { " (\($0))" } ?? "")")
        }
        lines.append("totals:         \(reconcile.reconciles) reconciles, \(reconcile.writes) record writes")
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

extension Controller {
    func statusReport() -> StatusReport {
        let status = reconciler.status
        let reason = reconciler.notReadyReason
        let desired = desiredRecords(nodes: store.snapshots, policy: config.recordPolicy)
        let role: String
        if let elector {
            role = elector.canWrite ? "leader" : "standby"
        } else {
            role = "single"
        }
        return StatusReport(
            ready: reason == nil, notReadyReason: reason, role: role, identity: elector?.identity,
            lease: elector?.leaseName, leaseHolder: elector?.holder, nodeListSynced: store.synced,
            nodes: store.snapshots.count, eligibleNodes: desired.eligibleNodes.count,
            heldNames: status.heldNames.map(\.text), blockedNames: status.blockedNames.map(\.text),
            conflicts: status.conflicts.map { "\($0.key) \($0.value) (\($0.ownerNote))" },
            lastReconcile: .init(
                at: status.lastReconcileAt.map { Date(timeIntervalSince1970: $0).formatted(.iso8601) },
                result: status.lastResult, error: status.lastError, failuresInARow: status.failuresInARow,
                reconciles: status.reconciles, writes: status.writes))
    }
}
