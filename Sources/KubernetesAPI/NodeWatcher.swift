import Logging
import NodeDNSCore

/// What the node watcher publishes: the whole picture after every (re)list, then single changes.
package enum NodeStoreEvent: Sendable, Equatable {
    /// The complete set of nodes; replaces whatever the consumer held.
    case synced([Node])
    case upsert(Node)
    case delete(String)
}

/// A reflector for Nodes: list, then watch from the list's resourceVersion with bookmarks, resume from the
/// last seen version after a dropped stream, relist on 410 or a malformed line, back off with jitter on errors.
/// It never publishes before the first complete list.
package struct NodeWatcher: Sendable {
    package let client: KubeClient
    package let logger: Logger
    package var pageSize = 500
    /// The server closes each watch after this long (client-go picks 5-10 minutes).
    package var watchTimeoutSeconds: ClosedRange<Int> = 300...600
    package var backoff = Backoff(initial: 0.2, maximum: 30)
    /// A watch that stayed up this long resets the backoff.
    package var healthyPeriod: Double = 10
    /// A watch that closes sooner than this with no event at all is treated as a failure and backed off (as
    /// client-go does), so a server or proxy that closes every watch at once is not hammered in a tight loop.
    package var shortestHealthyWatch: Double = 1

    package init(client: KubeClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    /// `onProgress` is called whenever the loop moves on (a list, an event, a closed or failed watch), so a caller
    /// can tell a quiet watch from one stuck in a read.
    package func run(
        onProgress: @Sendable () -> Void = {}, onEvent: @Sendable (NodeStoreEvent) async -> Void
    ) async {
        var backoff = self.backoff
        var warnedShortWatches = false
        var resourceVersion: String?
        var random = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    let listed = try await client.listAllNodes(pageSize: pageSize)
                    if listed.skipped > 0 {
                        logger.warning("skipped nodes that could not be read", metadata: ["count": "\(listed.skipped)"])
                    }
                    logger.debug(
                        "listed nodes", metadata: ["count": "\(listed.nodes.count)", "resourceVersion": "\(listed.resourceVersion)"])
                    await onEvent(.synced(listed.nodes))
                    onProgress()
                    resourceVersion = listed.resourceVersion
                }
                let started = ContinuousClock.now
                var expired = false
                var sawEvent = false
                try await client.watchNodes(
                    from: resourceVersion!, timeoutSeconds: Int.random(in: watchTimeoutSeconds, using: &random)
                ) { event in
                    sawEvent = true
                    onProgress()
                    switch event {
                    case .added(let node), .modified(let node):
                        resourceVersion = node.resourceVersion.isEmpty ? resourceVersion : node.resourceVersion
                        await onEvent(.upsert(node))
                    case .deleted(let node):
                        resourceVersion = node.resourceVersion.isEmpty ? resourceVersion : node.resourceVersion
                        await onEvent(.delete(node.name))
                    case .bookmark(let version):
                        resourceVersion = version
                    case .expired(let message):
                        logger.info("watch history expired; relisting", metadata: ["reason": "\(message)"])
                        expired = true
                    }
                }
                if expired {
                    resourceVersion = nil
                    continue
                }
                onProgress()
                let lasted = started.duration(to: .now)
                if sawEvent || lasted > .seconds(healthyPeriod) {
                    backoff.reset()
                    warnedShortWatches = false
                }
                if !sawEvent && lasted < .seconds(shortestHealthyWatch) {
                    let wait = backoff.next(random: Double.random(in: 0..<1, using: &random))
                    if !warnedShortWatches {
                        warnedShortWatches = true
                        logger.warning(
                            "the node watch closed at once with no event; backing off (said once until a watch lasts)",
                            metadata: ["retryIn": "\(String(format: "%.2f", wait))s"])
                    }
                    try? await Task.sleep(for: .seconds(wait))
                    continue
                }
                logger.debug("watch closed; resuming", metadata: ["resourceVersion": "\(resourceVersion ?? "")"])
            } catch {
                if Task.isCancelled { return }
                onProgress()
                var relist = false
                if case .malformed = error as? KubeAPIError { relist = true }
                if (error as? KubeAPIError)?.code == 410 { relist = true }
                let delay = backoff.next(random: Double.random(in: 0..<1, using: &random))
                var retryAfter: Double?
                if case .status(_, _, _, let after?) = error as? KubeAPIError { retryAfter = Double(after) }
                let wait = max(delay, retryAfter ?? 0)
                logger.warning(
                    relist ? "node watch got a malformed answer; relisting" : "node watch failed; retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(String(format: "%.2f", wait))s"])
                if relist { resourceVersion = nil }
                try? await Task.sleep(for: .seconds(wait))
            }
        }
    }
}
