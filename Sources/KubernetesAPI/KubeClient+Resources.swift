import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1
import NodeDNSCore

/// A kind the reflector lists and watches; it decodes only what the controller uses.
package protocol WatchedObject: Decodable, Sendable, Equatable {
    var name: String { get }
    var resourceVersion: String { get }
}

/// Where one kind is listed and watched: the collection path, an optional label selector, and the word that
/// messages use for it ("node", "pod").
package struct WatchTarget: Sendable, Equatable {
    package var path: String
    package var labelSelector: String?
    package var kind: String
    /// The one annotation to read from each object, if any (`--node-hostnames-annotation`).
    package var annotation: String?

    package init(path: String, labelSelector: String? = nil, kind: String, annotation: String? = nil) {
        self.path = path
        self.labelSelector = labelSelector
        self.kind = kind
        self.annotation = annotation
    }

    package static let nodes = WatchTarget(path: "/api/v1/nodes", kind: "node")

    /// The nodes, reading one annotation of each (none when `annotation` is nil).
    package static func nodes(annotation: String?) -> WatchTarget {
        WatchTarget(path: "/api/v1/nodes", kind: "node", annotation: annotation)
    }

    /// What the decoder of this target's objects is told.
    var decoderInfo: [CodingUserInfoKey: any Sendable] { annotation.map { [.nodeAnnotation: $0] } ?? [:] }

    /// The pods of one namespace that match a label selector.
    package static func pods(namespace: String, labelSelector: String) -> WatchTarget {
        WatchTarget(path: "/api/v1/namespaces/\(namespace)/pods", labelSelector: labelSelector, kind: "pod")
    }
}

/// One event of a watch, as the reflector consumes it.
package enum WatchEvent<Object: WatchedObject>: Sendable, Equatable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    case bookmark(resourceVersion: String)
    /// The server forgot our resourceVersion (410 Gone): relist.
    case expired(String)
}

/// One event of a node watch.
package typealias NodeWatchEvent = WatchEvent<Node>

/// A list page: its items (those that could not be read are counted, not kept), resourceVersion and continue token.
struct ListPage<Object: WatchedObject>: Decodable {
    struct ListMeta: Decodable {
        var resourceVersion: String?
        var `continue`: String?
    }
    var metadata: ListMeta
}

extension KubeClient {
    /// One page of a kind.
    package func list<Object: WatchedObject>(
        _ target: WatchTarget, as type: Object.Type = Object.self, limit: Int = 500, continue token: String? = nil
    ) async throws(KubeAPIError) -> (objects: [Object], resourceVersion: String, continueToken: String?) {
        var query = [("limit", String(limit))]
        if let selector = target.labelSelector { query.append(("labelSelector", selector)) }
        if let token { query.append(("continue", token)) }
        // Each item is cut from the answer as it streams in and decoded alone: the page is never held whole.
        var splitter = ListItemSplitter()
        var objects: [Object] = []
        var count = 0
        let decoder = JSONDecoder()
        decoder.userInfo = target.decoderInfo
        let what = "the \(target.kind) list"
        try await stream(target.path, query: query) { chunk throws(KubeAPIError) in
            let items: [[UInt8]]
            do {
                items = try chunk.withUnsafeReadableBytes { bytes throws(ListItemSplitter.Malformed) in try splitter.feed(bytes) }
            } catch {
                throw .malformed("\(what): \(error)")
            }
            // A malformed item fails the whole page: an object whose fields have the wrong type is refused, never
            // read as an object without them (a node that "has no address" would leave DNS).
            for item in items {
                do {
                    objects.append(try decoder.decode(Object.self, from: Data(item)))
                } catch {
                    throw .malformed("\(what): items[\(count)]: \(decodingSummary(error))")
                }
                count += 1
            }
        }
        do {
            try splitter.finish()
        } catch {
            throw .malformed("\(what): \(error)")
        }
        let metadata = try splitter.metadata.map { bytes throws(KubeAPIError) in
            try KubeClient.decode(ListPage<Object>.ListMeta.self, bytes, what: "\(what)'s metadata")
        }
        guard let rv = metadata?.resourceVersion, !rv.isEmpty else {
            throw .malformed("\(what) has no metadata.resourceVersion")
        }
        let next = metadata?.continue.flatMap { $0.isEmpty ? nil : $0 }
        return (objects, rv, next)
    }

    /// Every object of a kind, across pages, and the resourceVersion to watch from.
    package func listAll<Object: WatchedObject>(
        _ target: WatchTarget, as type: Object.Type = Object.self, pageSize: Int = 500
    ) async throws(KubeAPIError) -> (objects: [Object], resourceVersion: String) {
        var all: [Object] = []
        var token: String?
        var rv = ""
        repeat {
            let page = try await list(target, as: Object.self, limit: pageSize, continue: token)
            all += page.objects
            if token == nil { rv = page.resourceVersion }
            token = page.continueToken
        } while token != nil
        return (all, rv)
    }

    /// Every node, across pages, and the resourceVersion to watch from.
    package func listAllNodes(pageSize: Int = 500) async throws(KubeAPIError) -> (nodes: [Node], resourceVersion: String) {
        let all = try await listAll(.nodes, as: Node.self, pageSize: pageSize)
        return (all.objects, all.resourceVersion)
    }

    /// Watches nodes from a resourceVersion (see `watch`).
    package func watchNodes(
        from resourceVersion: String, timeoutSeconds: Int, maxLineBytes: Int = KubeClient.maxAnswerBytes,
        onEvent: (NodeWatchEvent) async throws -> Void
    ) async throws {
        try await watch(.nodes, from: resourceVersion, timeoutSeconds: timeoutSeconds, maxLineBytes: maxLineBytes, onEvent: onEvent)
    }

    /// Watches a kind from a resourceVersion with bookmarks, calling `onEvent` for each line as it arrives.
    /// Returns when the server closes the stream; throws on transport errors and malformed lines.
    package func watch<Object: WatchedObject>(
        _ target: WatchTarget, from resourceVersion: String, timeoutSeconds: Int, maxLineBytes: Int = KubeClient.maxAnswerBytes,
        onEvent: (WatchEvent<Object>) async throws -> Void
    ) async throws {
        var query = [
            ("watch", "true"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", String(timeoutSeconds)),
        ]
        if let selector = target.labelSelector { query.append(("labelSelector", selector)) }
        let response: HTTPClientResponse
        do {
            response = try await executeAuthorized(.GET, target.path, query: query, timeout: .seconds(Int64(timeoutSeconds) + 30))
        } catch let error as KubeAPIError {
            throw error
        } catch {
            throw KubeAPIError.transport(KubeClient.describe(error))
        }
        let status = Int(response.status.code)
        if status == 410 {
            try await onEvent(.expired("HTTP 410"))
            return
        }
        guard status == 200 else {
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { Array($0.readableBytesView) } ?? []
            throw KubeClient.statusError(status, body, retryAfter: response.headers.first(name: "Retry-After"))
        }
        if let type = response.headers.first(name: "Content-Type"), !type.lowercased().contains("json") {
            throw KubeAPIError.malformed("the watch answered with Content-Type \(type), not JSON")
        }
        var framer = LineFramer(maxLineBytes: maxLineBytes)
        var lastEvent = ContinuousClock.now
        do {
            for try await buffer in response.body {
                let lines = try framer.append(buffer.readableBytesView)
                if !lines.isEmpty {
                    lastEvent = .now
                } else if lastEvent.duration(to: .now) > frameIdle {
                    // Bytes trickle in, but no event completes: a dripping peer, replaced like a silent one.
                    onDeadline()
                    throw KubeAPIError.transport(
                        "the watch delivered no complete event in \(frameIdle.components.seconds) s while bytes trickled in; replacing it"
                    )
                }
                for line in lines {
                    let event: WatchEvent<Object> = try KubeClient.parseWatchLine(line, userInfo: target.decoderInfo)
                    do { try await onEvent(event) } catch { throw CallbackFailure(error: error) }
                }
            }
        } catch let failure as CallbackFailure {
            throw failure.error  // the caller's own error, not a transport problem
        } catch let error as LineFramer.LineTooLong {
            throw KubeAPIError.malformed(error.description)
        } catch let error as KubeAPIError {
            throw error
        } catch  where !(error is CancellationError) && !Task.isCancelled {
            throw KubeAPIError.transport(KubeClient.describe(error))
        }
        if let rest = framer.remainder {
            let event: WatchEvent<Object> = try KubeClient.parseWatchLine(rest, userInfo: target.decoderInfo)
            try await onEvent(event)
        }
    }

    private struct CallbackFailure: Error { var error: any Error }

    /// The shapes a watch line is read in.
    private enum WatchLine {
        struct Envelope: Decodable { var type: String }
        struct ObjectEvent<Object: Decodable>: Decodable { var object: Object }
        struct Bookmark: Decodable {
            struct Object: Decodable {
                struct Meta: Decodable { var resourceVersion: String }
                var metadata: Meta
            }
            var object: Object
        }
        struct ErrorEvent: Decodable {
            struct Status: Decodable {
                var code: Int?
                var message: String?
            }
            var object: Status
        }
    }

    /// Reads one watch line; a line that is not a watch event is malformed.
    package static func parseWatchLine<Object: WatchedObject>(
        _ line: [UInt8], as type: Object.Type = Object.self, userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws(KubeAPIError) -> WatchEvent<Object> {
        let envelope = try decode(WatchLine.Envelope.self, line, what: "a watch line")
        func object(_ what: String) throws(KubeAPIError) -> Object {
            try decode(WatchLine.ObjectEvent<Object>.self, line, what: what, userInfo: userInfo).object
        }
        switch envelope.type {
        case "ADDED": return .added(try object("an ADDED event"))
        case "MODIFIED": return .modified(try object("a MODIFIED event"))
        case "DELETED": return .deleted(try object("a DELETED event"))
        case "BOOKMARK":
            return .bookmark(
                resourceVersion: try decode(WatchLine.Bookmark.self, line, what: "a BOOKMARK event").object.metadata.resourceVersion)
        case "ERROR":
            let status = try decode(WatchLine.ErrorEvent.self, line, what: "an ERROR event").object
            if status.code == 410 { return .expired(status.message ?? "Gone") }
            throw .status(code: status.code ?? 500, reason: "WatchError", message: status.message ?? "", retryAfter: nil)
        default:
            throw .malformed("unknown watch event type \(envelope.type)")
        }
    }

    // MARK: leases

    /// The Lease, or nil when it does not exist.
    package func getLease(namespace: String, name: String) async throws(KubeAPIError) -> Lease? {
        do {
            let (_, body) = try await send(.GET, "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases/\(name)")
            return try KubeClient.decode(Lease.self, body, what: "the Lease")
        } catch  where error.code == 404 {
            return nil
        }
    }

    /// Creates a Lease; 409 AlreadyExists comes back as `.status(409, ...)`.
    package func createLease(_ lease: Lease) async throws(KubeAPIError) -> Lease {
        var fresh = lease
        fresh.resourceVersion = nil
        let body = try KubeClient.encode(fresh)
        let (_, answer) = try await send(.POST, "/apis/coordination.k8s.io/v1/namespaces/\(lease.namespace)/leases", body: body)
        return try KubeClient.decode(Lease.self, answer, what: "the created Lease")
    }

    /// Replaces a Lease guarded by its resourceVersion; a stale one gives `.status(409, ...)`.
    package func updateLease(_ lease: Lease) async throws(KubeAPIError) -> Lease {
        let body = try KubeClient.encode(lease)
        let (_, answer) = try await send(
            .PUT, "/apis/coordination.k8s.io/v1/namespaces/\(lease.namespace)/leases/\(lease.name)", body: body)
        return try KubeClient.decode(Lease.self, answer, what: "the updated Lease")
    }

    static func encode<T: Encodable>(_ value: T) throws(KubeAPIError) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(value))
        } catch {
            throw .malformed("cannot encode \(T.self): \(error)")
        }
    }

    // MARK: events

    /// Records a core/v1 Event about a Node (cluster-scoped objects' events live in `namespace`).
    package func createNodeEvent(
        namespace: String, node: String, nodeUID: String, type: String, reason: String, message: String,
        component: String, instance: String
    ) async throws(KubeAPIError) {
        struct Event: Encodable {
            struct Meta: Encodable {
                var generateName: String
                var namespace: String
            }
            struct Involved: Encodable {
                var apiVersion = "v1"
                var kind = "Node"
                var name: String
                var uid: String
            }
            struct Source: Encodable { var component: String }
            var apiVersion = "v1"
            var kind = "Event"
            var metadata: Meta
            var involvedObject: Involved
            var reason: String
            var message: String
            var type: String
            var source: Source
            var firstTimestamp: String
            var lastTimestamp: String
            var count = 1
            var reportingComponent: String
            var reportingInstance: String
        }
        var style = Date.ISO8601FormatStyle()
        style.timeZone = .gmt
        let now = Date().formatted(style)
        let event = Event(
            metadata: .init(generateName: node + ".", namespace: namespace),
            involvedObject: .init(name: node, uid: nodeUID), reason: reason, message: String(message.prefix(1024)), type: type,
            source: .init(component: component), firstTimestamp: now, lastTimestamp: now,
            reportingComponent: component, reportingInstance: instance)
        _ = try await send(.POST, "/api/v1/namespaces/\(namespace)/events", body: try KubeClient.encode(event))
    }
}
