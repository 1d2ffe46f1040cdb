import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One event of a node watch, as the reflector consumes it.
package enum NodeWatchEvent: Sendable, Equatable {
    case added(Node)
    case modified(Node)
    case deleted(Node)
    case bookmark(resourceVersion: String)
    /// The server forgot our resourceVersion (410 Gone): relist.
    case expired(String)
}

extension KubeClient {
    /// One page of nodes.
    package func listNodes(
        limit: Int = 500, continue token: String? = nil
    ) async throws(KubeAPIError) -> (nodes: [Node], resourceVersion: String, continueToken: String?, skipped: Int) {
        var query = [("limit", String(limit))]
        if let token { query.append(("continue", token)) }
        let (_, body) = try await send(.GET, "/api/v1/nodes", query: query)
        let page = try KubeClient.decode(NodeListPage.self, body, what: "the node list")
        guard let rv = page.metadata.resourceVersion, !rv.isEmpty else {
            throw .malformed("the node list has no metadata.resourceVersion")
        }
        let items = page.items ?? []
        let nodes = items.compactMap(\.node)
        let next = page.metadata.continue.flatMap { $0.isEmpty ? nil : $0 }
        return (nodes, rv, next, items.count - nodes.count)
    }

    /// Every node, across pages, and the resourceVersion to watch from.
    package func listAllNodes(pageSize: Int = 500) async throws(KubeAPIError) -> (nodes: [Node], resourceVersion: String, skipped: Int) {
        var all: [Node] = []
        var token: String?
        var rv = ""
        var skipped = 0
        repeat {
            let page = try await listNodes(limit: pageSize, continue: token)
            all += page.nodes
            skipped += page.skipped
            if token == nil { rv = page.resourceVersion }
            token = page.continueToken
        } while token != nil
        return (all, rv, skipped)
    }

    /// Watches nodes from a resourceVersion with bookmarks, calling `onEvent` for each line as it arrives.
    /// Returns when the server closes the stream; throws on transport errors and malformed lines.
    package func watchNodes(
        from resourceVersion: String, timeoutSeconds: Int, maxLineBytes: Int = 16 << 20,
        onEvent: (NodeWatchEvent) async throws -> Void
    ) async throws {
        let query = [
            ("watch", "true"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", String(timeoutSeconds)),
        ]
        var refreshed = false
        while true {
            var request = makeRequest(.GET, "/api/v1/nodes", query: query)
            if let header = try await authorization(refresh: refreshed) {
                request.headers.add(name: "Authorization", value: header)
            }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .seconds(Int64(timeoutSeconds) + 30))
            } catch {
                throw KubeAPIError.transport(KubeClient.describe(error))
            }
            let status = Int(response.status.code)
            if status == 401 && !refreshed {
                refreshed = true
                _ = try? await response.body.collect(upTo: 1 << 16)
                continue
            }
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
            do {
                for try await buffer in response.body {
                    for line in try framer.append(buffer.readableBytesView) {
                        let event = try KubeClient.parseWatchLine(line)
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
                try await onEvent(try KubeClient.parseWatchLine(rest))
            }
            return
        }
    }

    private struct CallbackFailure: Error { var error: any Error }

    /// Reads one watch line; a line that is not a watch event is malformed.
    package static func parseWatchLine(_ line: [UInt8]) throws(KubeAPIError) -> NodeWatchEvent {
        struct Envelope: Decodable { var type: String }
        struct NodeEvent: Decodable { var object: Node }
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
        let envelope = try decode(Envelope.self, line, what: "a watch line")
        switch envelope.type {
        case "ADDED": return .added(try decode(NodeEvent.self, line, what: "an ADDED event").object)
        case "MODIFIED": return .modified(try decode(NodeEvent.self, line, what: "a MODIFIED event").object)
        case "DELETED": return .deleted(try decode(NodeEvent.self, line, what: "a DELETED event").object)
        case "BOOKMARK":
            return .bookmark(resourceVersion: try decode(Bookmark.self, line, what: "a BOOKMARK event").object.metadata.resourceVersion)
        case "ERROR":
            let status = try decode(ErrorEvent.self, line, what: "an ERROR event").object
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
