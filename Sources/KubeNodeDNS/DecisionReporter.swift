import Logging
import NodeDNSCore
import NIOConcurrencyHelpers

/// Turns what a reconcile decided into what a user reads: log lines and the Nodes' Events, each problem said once
/// while it lasts, each move of a node said once.
final class DecisionReporter: Sendable {
    let logger: Logger
    let events: (@Sendable (NodeEvent) async -> Void)?
    /// Per-node names, so that a blocked one is reported on its node.
    let nodeNameTemplate: NodeNameTemplate?
    private let reportedConflicts = ReportedOnce<String>()
    private let reportedBlocks = ReportedOnce<DNSName>()
    private let reportedRefusals = ReportedOnce<String>()

    init(logger: Logger, events: (@Sendable (NodeEvent) async -> Void)?, nodeNameTemplate: NodeNameTemplate?) {
        self.logger = logger
        self.events = events
        self.nodeNameTemplate = nodeNameTemplate
    }

    /// Says what the decision found: skipped addresses, held and blocked names, conflicts, refused names, and nodes
    /// that moved. `nodesReporting` finds the nodes behind an address; `nodeNames` lists them all (read only when a
    /// per-node name is newly blocked).
    func report(
        _ decision: ReconcileDecision, nodesReporting: (String) -> Set<String>, nodeNames: () -> [String]
    ) async {
        // Bad addresses on a node are warned about once (while they stay), not on every reconcile.
        for skipped in decision.newlySkipped {
            logger.warning("skipped an address that cannot go into DNS", metadata: ["detail": "\(skipped)"])
        }
        let changes = decision.changes
        for name in changes.heldNames {
            logger.warning(
                "every node left \(name) at once; keeping its last records (set --allow-empty to let it empty)"
            )
        }
        let freshBlocks = reportedBlocks.fresh(changes.blockedNames, key: { $0 })
        for name in freshBlocks {
            logger.warning("\(name) has a CNAME, which excludes A and AAAA records; leaving the name alone (other names go on)")
        }
        let fresh = reportedConflicts.fresh(changes.conflicts, key: \.id)
        for conflict in fresh {
            logger.warning(
                "conflict: a record on a managed name is not ours; leaving it alone",
                metadata: ["record": "\(conflict)", "owner": "\(conflict.ownerNote)"])
        }
        for transition in decision.transitions { logger.info("\(transition.message)") }
        // A name a Node asks for by annotation and cannot have: said once while it lasts, in the log and on the Node.
        let refusals = decision.refusedHostnames.sorted { $0.key < $1.key }.flatMap { node, reasons in
            reasons.map { NodeEvent(node, .hostnameRefused, "a name \(node) asks for is refused: \($0)") }
        }
        let freshRefusals = reportedRefusals.fresh(refusals, key: { "\($0.node)|\($0.message)" })
        for refusal in freshRefusals { logger.warning("\(refusal.message)") }
        guard let events else { return }
        for refusal in freshRefusals.prefix(100) { await events(refusal) }
        // A blocked per-node name is reported on its node.
        if let template = nodeNameTemplate, !freshBlocks.isEmpty {
            for node in nodeNames().sorted() {
                guard let name = template.name(for: node), freshBlocks.contains(name) else { continue }
                await events(
                    NodeEvent(
                        node, .nameBlocked,
                        "\(name) has a CNAME, which excludes A and AAAA records; remove it for this node's name to follow it"))
            }
        }
        // A foreign record that carries a node's address is reported on that node too (once per conflict).
        for conflict in fresh.prefix(100) {
            for node in nodesReporting(conflict.value).sorted().prefix(1) {
                await events(
                    NodeEvent(
                        node, .conflict,
                        "\(conflict.key) \(conflict.value) exists but is not ours (\(conflict.ownerNote)); left alone, see --take-ownership"
                    ))
            }
        }
        for transition in decision.transitions.prefix(100) { await events(transition) }
    }

    /// Says what was written: a log line per change, and an Event on the node whose address it carries.
    func reportWritten(_ changes: ChangeSet, nodesReporting: (String) -> Set<String>) async {
        for line in Self.describe(changes) { logger.info("dns: \(line)") }
        guard let events else { return }
        var budget = 100
        for create in changes.creates where budget > 0 {
            guard let node = nodesReporting(create.value).sorted().first else { continue }
            budget -= 1
            await events(NodeEvent(node, .recordAdded, "added \(create.key) \(create.value)"))
        }
        for delete in changes.deletes where budget > 0 {
            guard let node = nodesReporting(delete.value).sorted().first else { continue }
            budget -= 1
            await events(NodeEvent(node, .recordRemoved, "removed \(delete.key) \(delete.value)"))
        }
    }

    static func describe(_ changes: ChangeSet) -> [String] {
        changes.creates.map { "add \($0.key) \($0.value)" } + changes.updates.map { "update \($0)" }
            + changes.deletes.map { "remove \($0.key) \($0.value)" }
    }
}

/// Problems reported once while they last: each call gives the items not seen the call before, so a
/// problem that goes away and comes back is reported again.
final class ReportedOnce<Key: Hashable & Sendable>: Sendable {
    private let seen = NIOLockedValueBox<Set<Key>>([])

    func fresh<Item>(_ current: [Item], key: (Item) -> Key) -> [Item] {
        let keys = current.map(key)
        let isNew = seen.withLockedValue { seen in
            defer { seen = Set(keys) }
            return keys.map { !seen.contains($0) }
        }
        return zip(current, isNew).filter(\.1).map(\.0)
    }
}
