import Logging
import NodeDNSCore

/// What a reflector publishes: the whole picture after every (re)list, then single changes.
package enum StoreEvent<Object: WatchedObject>: Sendable, Equatable {
    /// The complete set of objects; replaces whatever the consumer held.
    case synced([Object])
    case upsert(Object)
    /// The object of this name is gone.
    case delete(String)
}

/// What the node reflector publishes.
package typealias NodeStoreEvent = StoreEvent<Node>

/// The node reflector.
package typealias NodeWatcher = Reflector<Node>

extension Reflector where Object == Node {
    /// The reflector of every Node.
    package init(client: KubeClient, logger: Logger) {
        self.init(client: client, target: .nodes, logger: logger)
    }
}

/// A reflector for one kind (client-go's): list, then watch from the list's resourceVersion with bookmarks, resume
/// from the last seen version after a dropped stream, relist on 410 or a malformed line, back off with jitter on
/// errors. It never publishes before the first complete list. Nodes and pods are two instances of it.
package struct Reflector<Object: WatchedObject>: Sendable {
    package let client: KubeClient
    package let target: WatchTarget
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

    package init(client: KubeClient, target: WatchTarget, logger: Logger) {
        self.client = client
        self.target = target
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    /// `onProgress` is called whenever the loop moves on (a list, an event, a closed or failed watch), so a caller
    /// can tell a quiet watch from one stuck in a read.
    package func run(
        onProgress: @Sendable () -> Void = {}, onEvent: @Sendable (StoreEvent<Object>) async -> Void
    ) async {
        var backoff = self.backoff
        var warnedShortWatches = false
        var resourceVersion: String?
        var random = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    let listed = try await client.listAll(target, as: Object.self, pageSize: pageSize)
                    if listed.skipped > 0 {
                        logger.warning("skipped \(target.kind)s that could not be read", metadata: ["count": "\(listed.skipped)"])
                    }
                    logger.debug(
                        "listed \(target.kind)s",
                        metadata: ["count": "\(listed.objects.count)", "resourceVersion": "\(listed.resourceVersion)"])
                    await onEvent(.synced(listed.objects))
                    onProgress()
                    resourceVersion = listed.resourceVersion
                }
                let started = ContinuousClock.now
                var expired = false
                var sawEvent = false
                try await client.watch(
                    target, from: resourceVersion!, timeoutSeconds: Int.random(in: watchTimeoutSeconds, using: &random)
                ) { (event: WatchEvent<Object>) in
                    sawEvent = true
                    onProgress()
                    switch event {
                    case .added(let object), .modified(let object):
                        resourceVersion = object.resourceVersion.isEmpty ? resourceVersion : object.resourceVersion
                        await onEvent(.upsert(object))
                    case .deleted(let object):
                        resourceVersion = object.resourceVersion.isEmpty ? resourceVersion : object.resourceVersion
                        await onEvent(.delete(object.name))
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
                            "the \(target.kind) watch closed at once with no event; backing off (said once until a watch lasts)",
                            metadata: ["retryIn": "\(wait.twoDecimals)s"])
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
                    relist ? "\(target.kind) watch got a malformed answer; relisting" : "\(target.kind) watch failed; retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(wait.twoDecimals)s"])
                if relist { resourceVersion = nil }
                try? await Task.sleep(for: .seconds(wait))
            }
        }
    }
}
