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
    /// The server closes each watch after this long (`timeoutSeconds`). client-go picks 5-10 minutes and relies on
    /// HTTP/2 pings to notice a frozen connection; over HTTP/1.1 there is no ping, so a watch is asked to end 10 to
    /// 20 s before the client's read idle timeout. A quiet, healthy watch then never goes silent that long, and a
    /// frozen one (no FIN, no RST, the kernel still ACKing) is given up after the read idle timeout: 35 s by default,
    /// where the 2-minute idle timeout took 2 minutes. It costs one watch request per 16 to 25 s.
    package var watchTimeoutSeconds: ClosedRange<Int>
    /// Waits after trouble (an error, a watch expired with 410, a watch that closed at once): 0.8 s doubling to
    /// 30 s, so a server that keeps failing gets a request every few seconds at most, never a tight loop.
    package var backoff = Backoff(initial: 0.8, maximum: 30)
    /// Trouble after this long without any starts the backoff again from its first step; a first 410 after such a
    /// calm relists at once.
    package var calmPeriod: Double = 120
    /// The longest wait a peer's `Retry-After` can ask for (client-go's backoff ceiling); a day asked is 30 s.
    package var retryAfterCap: Double = 30
    /// A watch that closes sooner than this with no event at all is treated as a failure and backed off (as
    /// client-go does), so a server or proxy that closes every watch at once is not hammered in a tight loop.
    package var shortestHealthyWatch: Double = 1
    /// The clock of its backoff waits (tests inject one they move).
    package var clock: any TimeSource = SystemTimeSource()

    package init(client: KubeClient, target: WatchTarget, logger: Logger) {
        self.client = client
        self.target = target
        self.logger = logger
        watchTimeoutSeconds = Self.watchTimeouts(readIdle: client.frameIdle)
    }

    /// The `timeoutSeconds` range for a client whose reads give up after `readIdle` of silence.
    package static func watchTimeouts(readIdle: Duration) -> ClosedRange<Int> {
        let longest = max(1, min(300, Int(readIdle.inSeconds) - 10))
        return max(1, longest * 2 / 3)...longest
    }

    /// Runs until the task is cancelled.
    /// `onProgress` is called whenever the loop moves on (a list, an event, a closed or failed watch), so a caller
    /// can tell a quiet watch from one stuck in a read.
    /// `onAnswer` is called whenever the API server answers as it should (a list read, a watch event or bookmark, a
    /// watch that ended on schedule), so a caller can tell an unreachable server from a quiet one.
    /// `onBackoff` is called before each wait after trouble, with its length in seconds and why, so a caller can say
    /// that changes in the cluster are not being read meanwhile.
    package func run(
        onProgress: @Sendable () -> Void = {}, onAnswer: @Sendable () -> Void = {},
        onBackoff: @Sendable (_ seconds: Double, _ reason: String) -> Void = { _, _ in },
        onEvent: @Sendable (StoreEvent<Object>) async -> Void
    ) async {
        var backoff = self.backoff
        var warnedShortWatches = false
        var resourceVersion: String?
        var random = SystemRandomNumberGenerator()
        var lastTrouble: ContinuousClock.Instant?
        /// The last failure said at warning level: the same one again is said at debug until a list is read.
        var lastSaid: String?
        /// Repeated 410s are said once until a calm period has passed.
        var warnedExpiring = false
        /// Notes trouble now; whether it is the first after a calm period (the backoff starts again).
        func trouble() -> Bool {
            let now = ContinuousClock.now
            defer { lastTrouble = now }
            guard let last = lastTrouble, last.duration(to: now) < .seconds(calmPeriod) else {
                backoff.reset()
                return true
            }
            return false
        }
        /// Waits the backoff's next step, saying `warning` once while `warned` stays set.
        func backOff(_ warning: String, reason: String, warned: inout Bool) async {
            let wait = backoff.next(random: Double.random(in: 0..<1, using: &random))
            if !warned {
                warned = true
                logger.warning("\(warning)", metadata: ["retryIn": "\(wait.twoDecimals)s"])
            }
            onBackoff(wait, reason)
            try? await clock.sleep(seconds: wait)
        }
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    let listed = try await client.listAll(target, as: Object.self, pageSize: pageSize)
                    logger.debug(
                        "listed \(target.kind)s",
                        metadata: ["count": "\(listed.objects.count)", "resourceVersion": "\(listed.resourceVersion)"])
                    await onEvent(.synced(listed.objects))
                    onProgress()
                    onAnswer()
                    resourceVersion = listed.resourceVersion
                    if lastSaid != nil {
                        logger.notice(
                            "the \(target.kind) list is readable again", metadata: ["resourceVersion": "\(listed.resourceVersion)"])
                        lastSaid = nil
                    }
                }
                let started = ContinuousClock.now
                var expired = false
                var sawEvent = false
                try await client.watch(
                    target, from: resourceVersion!, timeoutSeconds: Int.random(in: watchTimeoutSeconds, using: &random)
                ) { (event: WatchEvent<Object>) in
                    sawEvent = true
                    onProgress()
                    onAnswer()
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
                        logger.debug("watch history expired; relisting", metadata: ["reason": "\(message)"])
                        expired = true
                    }
                }
                if expired {
                    resourceVersion = nil
                    // A first 410 after a calm relists at once; a server that keeps expiring watches is backed off.
                    if trouble() {
                        warnedExpiring = false
                    } else {
                        await backOff(
                            "the \(target.kind) watch keeps expiring (410 Gone); relisting with backoff (said once until it calms down)",
                            reason: "its watches keep expiring (410 Gone)", warned: &warnedExpiring)
                    }
                    continue
                }
                onProgress()
                if sawEvent { warnedShortWatches = false }
                if !sawEvent && started.duration(to: .now) < .seconds(shortestHealthyWatch) {
                    _ = trouble()
                    await backOff(
                        "the \(target.kind) watch closed at once with no event; backing off (said once until a watch lasts)",
                        reason: "its watches close at once with no event", warned: &warnedShortWatches)
                    continue
                }
                onAnswer()  // a watch that ended on schedule
                logger.debug("watch closed; resuming", metadata: ["resourceVersion": "\(resourceVersion ?? "")"])
            } catch {
                if Task.isCancelled { return }
                onProgress()
                var relist = false
                if case .malformed = error as? KubeAPIError { relist = true }
                if (error as? KubeAPIError)?.code == 410 { relist = true }
                _ = trouble()
                let delay = backoff.next(random: Double.random(in: 0..<1, using: &random))
                var wait = delay
                if case .status(_, _, _, let after?) = error as? KubeAPIError, after > 0 {
                    // The peer's wish, capped, with a tenth of jitter either way so that replicas do not return as one.
                    let asked = min(Double(after), retryAfterCap) * (0.9 + 0.2 * Double.random(in: 0..<1, using: &random))
                    wait = min(max(delay, asked), retryAfterCap * 1.1)
                }
                // Said once: the same failure again (a server that keeps answering wrongly, a malformed object that the
                // watch and then every relist refuse) goes to debug until a list is read.
                let said = relist ? "malformed" : "\(error)"
                logger.log(
                    level: said == lastSaid ? .debug : .warning,
                    relist
                        ? "\(target.kind) watch got a malformed answer; relisting (nothing changes in DNS until it reads)"
                        : "\(target.kind) watch failed; retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(wait.twoDecimals)s"])
                lastSaid = said
                if relist { resourceVersion = nil }
                onBackoff(wait, relist ? "a malformed answer" : "\(error)")
                try? await clock.sleep(seconds: wait)
            }
        }
    }
}
