import Foundation
import Logging
import NIOSSL
import NIOConcurrencyHelpers

/// A Kubernetes API server in one process, faithful to what kube-node-dns relies on (../shared/kube-api/SPEC.md),
/// with the fault switches that make watch resume, relist on 410 and leader hand-over testable.
package final class KubeAPIEmulator: Sendable {
    /// Start-up choices; the defaults match a real apiserver closely enough for the probe.
    package struct Options: Sendable {
        package var token: String?
        package var historyLimit = 10_000
        package var bookmarkInterval: Double = 60
        package var defaultWatchTimeout: Double = 1800
        /// The node lifecycle of a real cluster (admission's taint, the node lifecycle controller, emulated
        /// kubelets; see `NodeLifecycleSettings`); nil leaves every node exactly as it is written.
        package var nodeLifecycle: NodeLifecycleSettings?
        package init(token: String? = nil, nodeLifecycle: NodeLifecycleSettings? = NodeLifecycleSettings()) {
            self.token = token
            self.nodeLifecycle = nodeLifecycle
        }
    }

    struct Resource: Sendable {
        var plural: String
        var kind: String
        var apiVersion: String
        var namespaced: Bool
        var hasStatus: Bool
        var fields: Set<String>
    }

    static let nodes = Resource(
        plural: "nodes", kind: "Node", apiVersion: "v1", namespaced: false, hasStatus: true,
        fields: ["metadata.name", "spec.unschedulable"])
    static let leases = Resource(
        plural: "leases", kind: "Lease", apiVersion: "coordination.k8s.io/v1", namespaced: true, hasStatus: false,
        fields: ["metadata.name", "metadata.namespace"])
    static let events = Resource(
        plural: "events", kind: "Event", apiVersion: "v1", namespaced: true, hasStatus: false,
        fields: [
            "metadata.name", "metadata.namespace", "involvedObject.kind", "involvedObject.name",
            "involvedObject.namespace", "involvedObject.uid", "reason", "type",
        ])
    static let pods = Resource(
        plural: "pods", kind: "Pod", apiVersion: "v1", namespaced: true, hasStatus: true,
        fields: ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"])
    static let namespaces = Resource(
        plural: "namespaces", kind: "Namespace", apiVersion: "v1", namespaced: false, hasStatus: false,
        fields: ["metadata.name"])

    struct HistoryEvent: Sendable {
        var rv: Int64
        var resource: String
        var type: String
        var object: JSON
    }

    struct Watcher: Sendable {
        var resource: Resource
        var namespace: String?
        var labels: KubeSelector
        var fields: KubeSelector
        var bookmarks: Bool
        var continuation: AsyncStream<[UInt8]>.Continuation
    }

    struct Store: Sendable {
        var rv: Int64 = 1
        var objects: [String: [String: JSON]] = [:]
        var history: [HistoryEvent] = []
        var compactedRV: Int64 = 0
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        var uidCounter: UInt64 = 0
        var lifecycle = NodeLifecycleState()
    }

    package let options: Options
    package let faults = FaultSwitches()
    let store = NIOLockedValueBox(Store())
    /// Watch faults: the next `stall` watches get their headers and then nothing (a half-open connection after a
    /// failover); the next `closeAtOnce` watches end at once with no event (a proxy that closes them).
    private let watchFaults = NIOLockedValueBox<(stall: Int, closeAtOnce: Int, expire: Int, stalled: [AsyncStream<[UInt8]>.Continuation])>(
        (0, 0, 0, []))

    /// The next `count` watches answer with headers, then stay silent until `dropWatches()` or their timeout.
    package func stallNextWatches(_ count: Int) { watchFaults.withLockedValue { $0.stall = count } }
    /// The next `count` watches end at once, with no event.
    package func closeNextWatchesAtOnce(_ count: Int) { watchFaults.withLockedValue { $0.closeAtOnce = count } }
    /// The next `count` watches answer at once with an ERROR event carrying a 410 Gone Status, whatever version they
    /// ask for (a server that keeps expiring watches); `Int.max` for every one.
    package func expireNextWatches(_ count: Int) { watchFaults.withLockedValue { $0.expire = count } }
    /// Forgets the watch faults armed and not met yet (the watches already stalled stay so until dropped).
    package func disarmWatchFaults() {
        watchFaults.withLockedValue {
            $0.stall = 0
            $0.closeAtOnce = 0
            $0.expire = 0
        }
    }
    private let tokenBox: NIOLockedValueBox<String?>

    package init(options: Options = Options()) {
        self.options = options
        self.tokenBox = NIOLockedValueBox(options.token)
        store.withLockedValue { store in
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                KubeAPIEmulator.addNamespace(&store, name)
            }
        }
    }

    // MARK: test hooks

    /// Changes the bearer token the server accepts (a rotated service-account token).
    package func setToken(_ token: String?) { tokenBox.withLockedValue { $0 = token } }

    /// Forgets all history up to now: watches and exact lists from older versions get 410 Gone.
    package func compactNow() {
        store.withLockedValue { store in
            store.compactedRV = store.rv
            store.history.removeAll()
        }
    }

    /// Ends every open watch, as an apiserver restart or a load balancer would.
    package func dropWatches() {
        let continuations = store.withLockedValue { store in
            defer { store.watchers.removeAll() }
            return store.watchers.values.map(\.continuation)
        }
        let stalled = watchFaults.withLockedValue { faults in
            defer { faults.stalled.removeAll() }
            return faults.stalled
        }
        for continuation in continuations + stalled { continuation.finish() }
    }

    /// Sends a BOOKMARK now on every watch that asked for bookmarks.
    package func bookmarkNow() {
        store.withLockedValue { store in
            for id in store.watchers.keys { KubeAPIEmulator.sendBookmark(&store, id) }
        }
    }

    package var resourceVersion: Int64 { store.withLockedValue { $0.rv } }
    package var openWatches: Int { store.withLockedValue { $0.watchers.count } }
    /// Watches begun so far, of every kind.
    package var watchesStarted: Int { store.withLockedValue { $0.nextWatcher } }

    /// Stored objects of one resource (`nodes`, `leases`, `events`), as the server holds them.
    package func objects(_ plural: String) -> [JSON] {
        store.withLockedValue { Array(($0.objects[plural] ?? [:]).values) }
    }

    /// Writes a node directly (create or replace, status included), as a kubelet would.
    @discardableResult
    package func putNode(_ node: JSON) -> JSON? { put(KubeAPIEmulator.nodes, namespace: nil, node) }

    /// Changes a stored node in place (status included); nil when it does not exist.
    @discardableResult
    package func mutateNode(_ name: String, _ change: (inout JSON) -> Void) -> JSON? {
        mutate(KubeAPIEmulator.nodes, key: name, change)
    }

    /// Creates a namespace (as `kubectl create namespace` does), if it does not exist yet.
    package func createNamespace(_ name: String) {
        store.withLockedValue { store in
            if store.objects["namespaces"]?[name] == nil { KubeAPIEmulator.addNamespace(&store, name) }
        }
    }

    private static func addNamespace(_ store: inout Store, _ name: String) {
        store.objects["namespaces", default: [:]][name] = [
            "metadata": [
                "name": .string(name), "uid": .string(KubeAPIEmulator.uid(&store)),
                "resourceVersion": "1", "creationTimestamp": .string(WireTime.seconds()),
            ],
            "spec": ["finalizers": ["kubernetes"]], "status": ["phase": "Active"],
        ]
    }

    /// Writes a pod directly (create or replace, status included), as the scheduler and the kubelet would.
    @discardableResult
    package func putPod(_ pod: JSON, namespace: String) -> JSON? { put(KubeAPIEmulator.pods, namespace: namespace, pod) }

    /// Changes a stored pod in place (status included); nil when it does not exist.
    @discardableResult
    package func mutatePod(namespace: String, _ name: String, _ change: (inout JSON) -> Void) -> JSON? {
        mutate(KubeAPIEmulator.pods, key: KubeAPIEmulator.key(namespace, name), change)
    }

    /// The kubelet's part of a graceful deletion: the pod has stopped, and the object goes away.
    @discardableResult
    package func finishTermination(namespace: String, _ name: String) -> Bool {
        store.withLockedValue { store -> Bool in
            let key = KubeAPIEmulator.key(namespace, name)
            guard let old = store.objects["pods"]?[key] else { return false }
            KubeAPIEmulator.remove(&store, KubeAPIEmulator.pods, key: key, old: old)
            return true
        }
    }

    private func put(_ resource: Resource, namespace: String?, _ given: JSON) -> JSON? {
        guard let name = given[path: ["metadata", "name"]]?.string else { return nil }
        let key = KubeAPIEmulator.key(namespace, name)
        let lifecycle = resource.plural == "nodes" && options.nodeLifecycle != nil
        return store.withLockedValue { store -> JSON? in
            var object = given
            object["kind"] = nil
            object["apiVersion"] = nil
            if let namespace {
                var metadata = object["metadata"]?.object ?? [:]
                metadata["namespace"] = .string(namespace)
                object["metadata"] = .object(metadata)
            }
            if let old = store.objects[resource.plural]?[key] {
                // A replace: the new metadata wins (a label left out is gone), except what the server owns.
                var metadata = object["metadata"]?.object ?? [:]
                for field in ["uid", "creationTimestamp", "deletionTimestamp"] where metadata[field] == nil {
                    metadata[field] = old[path: ["metadata", field]]
                }
                object["metadata"] = .object(metadata)
                return KubeAPIEmulator.commit(&store, resource, key: key, old: old, new: object, lifecycle: lifecycle)
            }
            return KubeAPIEmulator.insert(&store, resource, key: key, object: object, lifecycle: lifecycle)
        }
    }

    private func mutate(_ resource: Resource, key: String, _ change: (inout JSON) -> Void) -> JSON? {
        let lifecycle = resource.plural == "nodes" && options.nodeLifecycle != nil
        return store.withLockedValue { store -> JSON? in
            guard let old = store.objects[resource.plural]?[key] else { return nil }
            var new = old
            change(&new)
            return KubeAPIEmulator.commit(&store, resource, key: key, old: old, new: new, lifecycle: lifecycle)
        }
    }

    /// Deletes a Node as the API server does: one that a finalizer holds only gets its `deletionTimestamp`.
    @discardableResult
    package func deleteNode(_ name: String) -> Bool {
        store.withLockedValue { store in
            guard let old = store.objects["nodes"]?[name] else { return false }
            if let finalizers = old[path: ["metadata", "finalizers"]]?.array, !finalizers.isEmpty {
                var marked = old
                var metadata = marked["metadata"]?.object ?? [:]
                guard metadata["deletionTimestamp"] == nil else { return true }
                metadata["deletionTimestamp"] = .string(WireTime.seconds())
                marked["metadata"] = .object(metadata)
                _ = KubeAPIEmulator.commit(&store, KubeAPIEmulator.nodes, key: name, old: old, new: marked, lifecycle: false)
                return true
            }
            KubeAPIEmulator.remove(&store, KubeAPIEmulator.nodes, key: name, old: old)
            return true
        }
    }

    // MARK: serving

    /// Serves on 127.0.0.1 until the task is cancelled, with the node lifecycle's passes beside it.
    package func run(
        port: Int = 0, tls: TLSConfiguration? = nil, logger: Logger = Logger(label: "kube-api-emulator"),
        stopper: ServerStopper? = nil, onReady: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let settings = options.nodeLifecycle {
                group.addTask { await self.runNodeLifecycle(settings) }
            }
            try await EmulatorServer.serve(
                port: port, tls: tls, logger: logger, stopper: stopper, handler: { [self] in await self.handle($0) },
                onReady: onReady)
            group.cancelAll()
        }
    }

    package func handle(_ request: EmulatorRequest) async -> EmulatorResponse {
        if request.path.hasPrefix("/_emulator/") { return control(request) }
        await faults.delay()
        let response: EmulatorResponse
        let failure = faults.nextFailure()
        if let failure, let raw = failure.raw {
            response = .full(status: failure.status, headers: [("Content-Type", raw.contentType)], body: raw.body)
        } else if let failure {
            let reason = failure.status == 429 ? "TooManyRequests" : "InternalError"
            var headers: [(String, String)] = []
            if let retryAfter = failure.retryAfter { headers.append(("Retry-After", String(retryAfter))) }
            response = .json(
                failure.status,
                KubeAPIEmulator.status(failure.status, reason, "injected fault \(failure.status)"), headers: headers)
        } else if let expected = tokenBox.withLockedValue({ $0 }), request.header("authorization") != "Bearer \(expected)" {
            response = .json(401, KubeAPIEmulator.status(401, "Unauthorized", "Unauthorized"))
        } else {
            response = route(request)
        }
        faults.record(request, status: response.status)
        if let drip = faults.takeDrip(for: request) { return response.dripped(bytes: drip.bytes, interval: drip.interval) }
        return response
    }

    // MARK: routing

    /// Matches path segments against a pattern where "*" captures one segment.
    static func match(_ parts: [String], _ pattern: [String]) -> [String]? {
        guard parts.count == pattern.count else { return nil }
        var captured: [String] = []
        for (part, expected) in zip(parts, pattern) {
            if expected == "*" { captured.append(part) } else if part != expected { return nil }
        }
        return captured
    }

    private func route(_ request: EmulatorRequest) -> EmulatorResponse {
        let parts = request.path.split(separator: "/").map(String.init)
        let get = request.method == "GET"
        let nodes = KubeAPIEmulator.nodes
        let leases = KubeAPIEmulator.leases
        let events = KubeAPIEmulator.events
        if get, parts == ["version"] {
            return .json(
                200,
                [
                    "major": "1", "minor": "31", "gitVersion": "v1.31.0-kube-api-emulator", "gitCommit": "emulator",
                    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "none",
                    "compiler": "swift", "platform": "linux/amd64",
                ])
        }
        if get, parts.count == 1, ["healthz", "readyz", "livez"].contains(parts[0]) {
            return .full(status: 200, headers: [("Content-Type", "text/plain")], body: Array("ok".utf8))
        }
        if get, parts == ["api"] {
            return .json(
                200,
                [
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"]],
                ])
        }
        if get, parts == ["api", "v1"] { return .json(200, KubeAPIEmulator.coreDiscovery) }
        if get, parts == ["apis"] { return .json(200, KubeAPIEmulator.groupList) }
        if get, parts == ["apis", "coordination.k8s.io"] { return .json(200, KubeAPIEmulator.coordinationGroup) }
        if get, parts == ["apis", "coordination.k8s.io", "v1"] { return .json(200, KubeAPIEmulator.coordinationDiscovery) }
        if parts == ["api", "v1", "watch", "nodes"] {
            return collection(request, nodes, namespace: nil, forceWatch: true)
        }
        if parts == ["api", "v1", "nodes"] { return collection(request, nodes, namespace: nil) }
        if let c = KubeAPIEmulator.match(parts, ["api", "v1", "nodes", "*"]) {
            return item(request, nodes, namespace: nil, name: c[0], subresource: nil)
        }
        if let c = KubeAPIEmulator.match(parts, ["api", "v1", "nodes", "*", "status"]) {
            return item(request, nodes, namespace: nil, name: c[0], subresource: "status")
        }
        if get, parts == ["api", "v1", "namespaces"] {
            return collection(request, KubeAPIEmulator.namespaces, namespace: nil)
        }
        if get, let c = KubeAPIEmulator.match(parts, ["api", "v1", "namespaces", "*"]) {
            return item(request, KubeAPIEmulator.namespaces, namespace: nil, name: c[0], subresource: nil)
        }
        if parts == ["api", "v1", "pods"] { return collection(request, KubeAPIEmulator.pods, namespace: nil) }
        if let c = KubeAPIEmulator.match(parts, ["api", "v1", "namespaces", "*", "pods"]) {
            return collection(request, KubeAPIEmulator.pods, namespace: c[0])
        }
        if let c = KubeAPIEmulator.match(parts, ["api", "v1", "namespaces", "*", "pods", "*"]) {
            return item(request, KubeAPIEmulator.pods, namespace: c[0], name: c[1], subresource: nil)
        }
        if let c = KubeAPIEmulator.match(parts, ["api", "v1", "namespaces", "*", "pods", "*", "status"]) {
            return item(request, KubeAPIEmulator.pods, namespace: c[0], name: c[1], subresource: "status")
        }
        if parts == ["api", "v1", "events"] { return collection(request, events, namespace: nil) }
        if let c = KubeAPIEmulator.match(parts, ["api", "v1", "namespaces", "*", "events"]) {
            return collection(request, events, namespace: c[0])
        }
        if let c = KubeAPIEmulator.match(parts, ["api", "v1", "namespaces", "*", "events", "*"]) {
            return item(request, events, namespace: c[0], name: c[1], subresource: nil)
        }
        if parts == ["apis", "coordination.k8s.io", "v1", "leases"] { return collection(request, leases, namespace: nil) }
        if let c = KubeAPIEmulator.match(parts, ["apis", "coordination.k8s.io", "v1", "namespaces", "*", "leases"]) {
            return collection(request, leases, namespace: c[0])
        }
        if let c = KubeAPIEmulator.match(parts, ["apis", "coordination.k8s.io", "v1", "namespaces", "*", "leases", "*"]) {
            return item(request, leases, namespace: c[0], name: c[1], subresource: nil)
        }
        return .json(404, KubeAPIEmulator.status(404, "NotFound", "the server could not find the requested resource"))
    }

    private func control(_ request: EmulatorRequest) -> EmulatorResponse {
        let body = try? JSON(parsing: request.body)
        switch request.path {
        case "/_emulator/compact": compactNow()
        case "/_emulator/drop-watches": dropWatches()
        case "/_emulator/bookmark": bookmarkNow()
        case "/_emulator/fail":
            let status = Int(request.queryValue("status") ?? "") ?? Int(body?["status"]?.int ?? 500)
            let count = Int(request.queryValue("count") ?? "") ?? Int(body?["count"]?.int ?? 1)
            let retry = Int(request.queryValue("retryAfter") ?? "") ?? body?["retryAfter"]?.int.map { Int($0) }
            faults.inject(status: status, count: count, retryAfter: retry)
        case "/_emulator/delay":
            faults.setDelay(milliseconds: Int(request.queryValue("ms") ?? "") ?? Int(body?["ms"]?.int ?? 0))
        case "/_emulator/kubelet":
            guard let node = request.queryValue("node") else { return .json(400, ["error": "kubelet wants ?node=NAME"]) }
            switch request.queryValue("action") {
            case "start": startKubelet(node)
            case "kill": killKubelet(node)
            case "revive": reviveKubelet(node)
            default: return .json(400, ["error": "kubelet wants action=start, kill or revive"])
            }
        case "/_emulator/expire-watches":
            expireNextWatches(Int(request.queryValue("count") ?? "") ?? Int.max)
        case "/_emulator/monitor-pass":
            runMonitorPass(after: .seconds(Double(request.queryValue("after") ?? "") ?? 0))
        case "/_emulator/requests":
            let list = faults.requests.map { entry -> JSON in
                [
                    "method": .string(entry.method), "path": .string(entry.path), "query": .string(entry.query),
                    "status": .int(Int64(entry.status)),
                ]
            }
            return .json(200, ["requests": .array(list)])
        case "/_emulator/state":
            return .json(200, ["resourceVersion": .string(String(resourceVersion)), "watches": .int(Int64(openWatches))])
        default:
            return .json(404, ["error": "unknown emulator switch"])
        }
        return .json(200, ["ok": true, "resourceVersion": .string(String(resourceVersion))])
    }

    // MARK: collections

    private func collection(
        _ request: EmulatorRequest, _ resource: Resource, namespace: String?, forceWatch: Bool = false
    )
        -> EmulatorResponse
    {
        if let missing = missingNamespace(namespace) { return missing }
        switch request.method {
        case "GET":
            let watch = forceWatch || ["true", "1"].contains(request.queryValue("watch") ?? "")
            return watch ? self.watch(request, resource, namespace: namespace) : list(request, resource, namespace: namespace)
        case "POST":
            return create(request, resource, namespace: namespace)
        default:
            return .json(
                405, KubeAPIEmulator.status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))
        }
    }

    /// The 404 a request into a namespace that does not exist gets, or nil when it exists (or none is named).
    private func missingNamespace(_ name: String?) -> EmulatorResponse? {
        guard let name, store.withLockedValue({ $0.objects["namespaces"]?[name] == nil }) else { return nil }
        return .json(404, KubeAPIEmulator.status(404, "NotFound", "namespaces \"\(name)\" not found", name: name, kind: "namespaces"))
    }

    static func key(_ namespace: String?, _ name: String) -> String {
        namespace.map { "\($0)/\(name)" } ?? name
    }

    private func selectors(_ request: EmulatorRequest, _ resource: Resource) -> Result<(KubeSelector, KubeSelector), KubeSelector.Invalid> {
        do {
            let labels = try KubeSelector.parseLabels(request.queryValue("labelSelector"))
            let fields = try KubeSelector.parseFields(request.queryValue("fieldSelector"), allowed: resource.fields)
            return .success((labels, fields))
        } catch {
            return .failure(error)
        }
    }

    private static func matches(_ object: JSON, labels: KubeSelector, fields: KubeSelector, namespace: String?) -> Bool {
        if let namespace, object[path: ["metadata", "namespace"]]?.string != namespace { return false }
        let labelValues = object[path: ["metadata", "labels"]]?.object ?? [:]
        guard labels.matches({ labelValues[$0]?.string }) else { return false }
        return fields.matches { field in
            if field == "spec.unschedulable" { return (object[path: ["spec", "unschedulable"]]?.bool ?? false) ? "true" : "false" }
            let value = object[path: field.split(separator: ".").map(String.init)]
            if let text = value?.string { return text }
            if let flag = value?.bool { return flag ? "true" : "false" }
            return field.hasPrefix("metadata.namespace") ? "" : nil
        }
    }

    private func list(_ request: EmulatorRequest, _ resource: Resource, namespace: String?) -> EmulatorResponse {
        let labels: KubeSelector
        let fields: KubeSelector
        switch selectors(request, resource) {
        case .success(let pair): (labels, fields) = pair
        case .failure(let error): return .json(400, KubeAPIEmulator.status(400, "BadRequest", error.message))
        }
        let limit = Int(request.queryValue("limit") ?? "") ?? 0
        var startAfter: String?
        var continueRV: Int64?
        if let token = request.queryValue("continue"), !token.isEmpty {
            guard let data = Data(base64Encoded: token), let decoded = try? JSON(parsing: Array(data)),
                let start = decoded["start"]?.string, let rv = decoded["rv"]?.int
            else {
                return .json(400, KubeAPIEmulator.status(400, "BadRequest", "continue key is not valid: illegal base64 data"))
            }
            startAfter = start
            continueRV = rv
        }
        let requestedRV = request.queryValue("resourceVersion")
        let match = request.queryValue("resourceVersionMatch")
        return store.withLockedValue { store -> EmulatorResponse in
            if let continueRV, continueRV < store.compactedRV {
                return .json(
                    410,
                    KubeAPIEmulator.status(
                        410, "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
                    ))
            }
            if let requestedRV, requestedRV != "0", !requestedRV.isEmpty {
                guard let rv = Int64(requestedRV) else {
                    return .json(400, KubeAPIEmulator.status(400, "BadRequest", "invalid resource version: \(requestedRV)"))
                }
                if match == "Exact" && rv < store.compactedRV {
                    return .json(410, KubeAPIEmulator.status(410, "Expired", "The resourceVersion for the provided list is too old."))
                }
                if rv > store.rv && match != "Exact" {
                    return .json(504, KubeAPIEmulator.status(504, "Timeout", "Too large resource version: \(rv), current: \(store.rv)"))
                }
            }
            let all = (store.objects[resource.plural] ?? [:]).sorted { $0.key < $1.key }
            let selected = all.filter { entry in
                if let startAfter, entry.key <= startAfter { return false }
                return KubeAPIEmulator.matches(entry.value, labels: labels, fields: fields, namespace: namespace)
            }
            let page = limit > 0 ? Array(selected.prefix(limit)) : selected
            var metadata: [String: JSON] = ["resourceVersion": .string(String(continueRV ?? store.rv))]
            if limit > 0 && selected.count > limit, let last = page.last {
                let token: JSON = ["rv": .int(continueRV ?? store.rv), "start": .string(last.key)]
                metadata["continue"] = .string(Data(token.bytes).base64EncodedString())
                metadata["remainingItemCount"] = .int(Int64(selected.count - limit))
            }
            return .json(
                200,
                [
                    "kind": .string(resource.kind + "List"), "apiVersion": .string(resource.apiVersion),
                    "metadata": .object(metadata), "items": .array(page.map(\.value)),
                ])
        }
    }

    private func watch(_ request: EmulatorRequest, _ resource: Resource, namespace: String?) -> EmulatorResponse {
        let labels: KubeSelector
        let fields: KubeSelector
        switch selectors(request, resource) {
        case .success(let pair): (labels, fields) = pair
        case .failure(let error): return .json(400, KubeAPIEmulator.status(400, "BadRequest", error.message))
        }
        let requested = request.queryValue("resourceVersion") ?? ""
        if !requested.isEmpty && requested != "0" && Int64(requested) == nil {
            return .json(400, KubeAPIEmulator.status(400, "BadRequest", "invalid resource version: \(requested)"))
        }
        let bookmarks = ["true", "1"].contains(request.queryValue("allowWatchBookmarks") ?? "")
        let timeout = Double(request.queryValue("timeoutSeconds") ?? "") ?? options.defaultWatchTimeout
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
        let fault = watchFaults.withLockedValue { faults -> String? in
            if faults.expire > 0 {
                faults.expire -= 1
                return "expire"
            }
            if faults.closeAtOnce > 0 {
                faults.closeAtOnce -= 1
                return "close"
            }
            if faults.stall > 0 {
                faults.stall -= 1
                faults.stalled.append(continuation)
                return "stall"
            }
            return nil
        }
        if let fault {
            if fault == "close" { continuation.finish() }
            if fault == "expire" {
                let status = KubeAPIEmulator.status(410, "Expired", "too old resource version: \(requested) (injected)")
                continuation.yield(KubeAPIEmulator.errorLine(status))
                continuation.finish()
            }
            return .stream(
                status: 200, headers: [("Content-Type", "application/json")], lines: stream,
                timers: {
                    try? await Task.sleep(for: .seconds(timeout))
                    continuation.finish()
                }, onEnd: { continuation.finish() })
        }
        let watcher = Watcher(
            resource: resource, namespace: namespace, labels: labels, fields: fields, bookmarks: bookmarks,
            continuation: continuation)
        let id = store.withLockedValue { store -> Int? in
            if requested.isEmpty || requested == "0" {
                for (_, object) in (store.objects[resource.plural] ?? [:]).sorted(by: { $0.key < $1.key })
                where KubeAPIEmulator.matches(object, labels: labels, fields: fields, namespace: namespace) {
                    continuation.yield(KubeAPIEmulator.eventLine("ADDED", resource, object))
                }
            } else if let from = Int64(requested) {
                if from < store.compactedRV {
                    let status = KubeAPIEmulator.status(
                        410, "Expired", "too old resource version: \(from) (\(store.compactedRV))")
                    continuation.yield(KubeAPIEmulator.errorLine(status))
                    continuation.finish()
                    return nil
                }
                for event in store.history
                where event.rv > from && event.resource == resource.plural
                    && KubeAPIEmulator.matches(event.object, labels: labels, fields: fields, namespace: namespace)
                {
                    continuation.yield(KubeAPIEmulator.eventLine(event.type, resource, event.object))
                }
            }
            let id = store.nextWatcher
            store.nextWatcher += 1
            store.watchers[id] = watcher
            return id
        }
        let bookmarkInterval = options.bookmarkInterval
        let timers: @Sendable () async -> Void = { [self] in
            guard let id else { return }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    if bookmarks && timeout >= 3 {
                        try? await Task.sleep(for: .seconds(timeout - 2))
                        if Task.isCancelled { return }
                        self.store.withLockedValue { KubeAPIEmulator.sendBookmark(&$0, id) }
                        try? await Task.sleep(for: .seconds(2))
                    } else {
                        try? await Task.sleep(for: .seconds(timeout))
                    }
                    if Task.isCancelled { return }
                    continuation.finish()
                }
                if bookmarks {
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(bookmarkInterval))
                            if Task.isCancelled { return }
                            self.store.withLockedValue { KubeAPIEmulator.sendBookmark(&$0, id) }
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
        return .stream(
            status: 200, headers: [("Content-Type", "application/json")], lines: stream, timers: timers,
            onEnd: { [self] in
                if let id { _ = store.withLockedValue { $0.watchers.removeValue(forKey: id) } }
                continuation.finish()
            })
    }

    private static func sendBookmark(_ store: inout Store, _ id: Int) {
        guard let watcher = store.watchers[id], watcher.bookmarks, store.rv > 1 else { return }
        let object: JSON = [
            "kind": .string(watcher.resource.kind), "apiVersion": .string(watcher.resource.apiVersion),
            "metadata": ["resourceVersion": .string(String(store.rv)), "creationTimestamp": .null],
        ]
        let line: JSON = ["type": "BOOKMARK", "object": object]
        watcher.continuation.yield(line.bytes + [0x0A])
    }

    /// A watch's ERROR event carrying `status` (a Status object), as the real server sends a 410.
    private static func errorLine(_ status: JSON) -> [UInt8] {
        Array(#"{"type":"ERROR","object":"#.utf8) + status.bytes + Array("}\n".utf8)
    }

    private static func eventLine(_ type: String, _ resource: Resource, _ object: JSON) -> [UInt8] {
        var full = object
        full["kind"] = .string(resource.kind)
        full["apiVersion"] = .string(resource.apiVersion)
        let event: JSON = ["type": .string(type), "object": full]
        return event.bytes + [0x0A]
    }

    // MARK: items

    private func item(
        _ request: EmulatorRequest, _ resource: Resource, namespace: String?, name: String, subresource: String?
    )
        -> EmulatorResponse
    {
        if let missing = missingNamespace(namespace) { return missing }
        let key = KubeAPIEmulator.key(namespace, name)
        let dryRun = request.query.contains { $0.0 == "dryRun" && $0.1 == "All" }
        let notFound = EmulatorResponse.json(
            404, KubeAPIEmulator.status(404, "NotFound", "\(resource.plural) \"\(name)\" not found", name: name, kind: resource.plural))
        switch request.method {
        case "GET":
            guard let object = store.withLockedValue({ $0.objects[resource.plural]?[key] }) else { return notFound }
            return .json(200, KubeAPIEmulator.withKind(object, resource))
        case "PUT":
            guard let body = try? JSON(parsing: request.body), body.object != nil else {
                return .json(400, KubeAPIEmulator.status(400, "BadRequest", "the body of the request was in an unknown format"))
            }
            return write(
                resource, key: key, name: name, namespace: namespace, subresource: subresource, dryRun: dryRun, createIfMissing: false
            ) { _ in body }
        case "PATCH":
            let type = (request.header("content-type") ?? "").split(separator: ";").first.map(String.init) ?? ""
            guard let patch = try? JSON(parsing: request.body) else {
                return .json(400, KubeAPIEmulator.status(400, "BadRequest", "the body of the request was in an unknown format"))
            }
            let apply: (JSON) throws(KubePatch.Failure) -> JSON
            switch type {
            case "application/merge-patch+json", "application/apply-patch+yaml":
                apply = { KubePatch.merge($0, patch) }
            case "application/strategic-merge-patch+json":
                apply = { (current: JSON) throws(KubePatch.Failure) -> JSON in try KubePatch.strategic(current, patch) ?? [:] }
            case "application/json-patch+json":
                apply = { (current: JSON) throws(KubePatch.Failure) -> JSON in try KubePatch.jsonPatch(current, patch) }
            default:
                return .json(
                    415,
                    KubeAPIEmulator.status(
                        415, "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                    ))
            }
            return write(
                resource, key: key, name: name, namespace: namespace, subresource: subresource, dryRun: dryRun,
                createIfMissing: type == "application/apply-patch+yaml", transform: apply)
        case "DELETE":
            let body = try? JSON(parsing: request.body)
            return store.withLockedValue { store -> EmulatorResponse in
                guard let old = store.objects[resource.plural]?[key] else { return notFound }
                if let precondition = body?[path: ["preconditions", "resourceVersion"]]?.string,
                    precondition != old[path: ["metadata", "resourceVersion"]]?.string
                {
                    return .json(
                        409,
                        KubeAPIEmulator.status(
                            409, "Conflict",
                            "Operation cannot be fulfilled on \(resource.plural) \"\(name)\": the ResourceVersion in the precondition (\(precondition)) does not match the ResourceVersion in record (\(old[path: ["metadata", "resourceVersion"]]?.string ?? "")). The object might have been modified",
                            name: name, kind: resource.plural))
                }
                let uid = old[path: ["metadata", "uid"]] ?? .null
                if !dryRun {
                    // A pod bound to a node is deleted gracefully, as the API server does it: deletionTimestamp and
                    // deletionGracePeriodSeconds now, the object goes when the kubelet reports it stopped
                    // (`finishTermination`). Grace 0, or a pod never scheduled, goes at once.
                    let grace = body?["gracePeriodSeconds"]?.int ?? request.queryValue("gracePeriodSeconds").flatMap { Int64($0) }
                    if resource.plural == "pods", old[path: ["spec", "nodeName"]]?.string?.isEmpty == false, grace != 0 {
                        var marked = old
                        var metadata = marked["metadata"]?.object ?? [:]
                        if metadata["deletionTimestamp"] == nil {
                            let seconds = grace ?? old[path: ["spec", "terminationGracePeriodSeconds"]]?.int ?? 30
                            metadata["deletionTimestamp"] = .string(WireTime.seconds())
                            metadata["deletionGracePeriodSeconds"] = .int(seconds)
                            marked["metadata"] = .object(metadata)
                            _ = KubeAPIEmulator.commit(&store, resource, key: key, old: old, new: marked, lifecycle: false)
                        }
                        return .json(200, KubeAPIEmulator.withKind(store.objects[resource.plural]?[key] ?? marked, resource))
                    }
                    if let finalizers = old[path: ["metadata", "finalizers"]]?.array, !finalizers.isEmpty {
                        var marked = old
                        var metadata = marked["metadata"]?.object ?? [:]
                        if metadata["deletionTimestamp"] == nil {
                            metadata["deletionTimestamp"] = .string(WireTime.seconds())
                            marked["metadata"] = .object(metadata)
                            _ = KubeAPIEmulator.commit(&store, resource, key: key, old: old, new: marked, lifecycle: false)
                        }
                        return .json(200, KubeAPIEmulator.withKind(store.objects[resource.plural]?[key] ?? marked, resource))
                    }
                    KubeAPIEmulator.remove(&store, resource, key: key, old: old)
                }
                return .json(
                    200,
                    [
                        "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Success",
                        "details": [
                            "name": .string(name),
                            "group": .string(resource.apiVersion.contains("/") ? String(resource.apiVersion.split(separator: "/")[0]) : ""),
                            "kind": .string(resource.plural), "uid": uid,
                        ],
                    ])
            }
        default:
            return .json(
                405, KubeAPIEmulator.status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))
        }
    }

    private func create(_ request: EmulatorRequest, _ resource: Resource, namespace: String?) -> EmulatorResponse {
        guard var body = try? JSON(parsing: request.body), body.object != nil else {
            return .json(400, KubeAPIEmulator.status(400, "BadRequest", "the body of the request was in an unknown format"))
        }
        var metadata = body["metadata"]?.object ?? [:]
        if metadata["name"]?.string == nil, let prefix = metadata["generateName"]?.string {
            metadata["name"] = .string(prefix + String(UInt32.random(in: 0..<UInt32.max), radix: 36))
        }
        guard let name = metadata["name"]?.string, !name.isEmpty else {
            return .json(
                422,
                KubeAPIEmulator.status(
                    422, "Invalid", "\(resource.kind) \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    kind: resource.plural))
        }
        if let namespace { metadata["namespace"] = .string(namespace) }
        body["metadata"] = .object(metadata)
        if let problem = KubeAPIEmulator.validate(body, resource, name: name) {
            return .json(
                422,
                KubeAPIEmulator.status(
                    422, "Invalid", "\(resource.kind) \"\(name)\" is invalid: \(problem)", name: name, kind: resource.plural))
        }
        body["kind"] = nil
        body["apiVersion"] = nil
        let key = KubeAPIEmulator.key(namespace, name)
        let dryRun = request.query.contains { $0.0 == "dryRun" && $0.1 == "All" }
        let lifecycle = options.nodeLifecycle != nil
        return store.withLockedValue { store -> EmulatorResponse in
            if store.objects[resource.plural]?[key] != nil {
                return .json(
                    409,
                    KubeAPIEmulator.status(
                        409, "AlreadyExists", "\(resource.plural) \"\(name)\" already exists", name: name, kind: resource.plural))
            }
            if dryRun {
                var copy = KubeAPIEmulator.scratch(store)
                let object = KubeAPIEmulator.insert(&copy, resource, key: key, object: body, lifecycle: lifecycle)
                return .json(201, KubeAPIEmulator.withKind(object, resource))
            }
            let object = KubeAPIEmulator.insert(
                &store, resource, key: key, object: body, lifecycle: lifecycle, manager: KubeAPIEmulator.fieldManager(request))
            return .json(201, KubeAPIEmulator.withKind(object, resource))
        }
    }

    private func write(
        _ resource: Resource, key: String, name: String, namespace: String?, subresource: String?, dryRun: Bool,
        createIfMissing: Bool, transform: (JSON) throws(KubePatch.Failure) -> JSON
    ) -> EmulatorResponse {
        let lifecycle = options.nodeLifecycle != nil
        return store.withLockedValue { store -> EmulatorResponse in
            guard let old = store.objects[resource.plural]?[key] else {
                if createIfMissing, var object = try? transform([:]) {
                    object["kind"] = nil
                    object["apiVersion"] = nil
                    var metadata = object["metadata"]?.object ?? [:]
                    metadata["name"] = .string(name)
                    if let namespace { metadata["namespace"] = .string(namespace) }
                    object["metadata"] = .object(metadata)
                    var target = dryRun ? KubeAPIEmulator.scratch(store) : store
                    let created = KubeAPIEmulator.insert(&target, resource, key: key, object: object, lifecycle: lifecycle)
                    if !dryRun { store = target }
                    return .json(201, KubeAPIEmulator.withKind(created, resource))
                }
                return .json(
                    404,
                    KubeAPIEmulator.status(404, "NotFound", "\(resource.plural) \"\(name)\" not found", name: name, kind: resource.plural))
            }
            var proposed: JSON
            do {
                proposed = try transform(KubeAPIEmulator.withKind(old, resource))
            } catch {
                return .json(
                    422,
                    KubeAPIEmulator.status(
                        422, "Invalid", (error as? KubePatch.Failure)?.message ?? "\(error)", name: name, kind: resource.plural))
            }
            guard proposed.object != nil else {
                return .json(400, KubeAPIEmulator.status(400, "BadRequest", "the body of the request was in an unknown format"))
            }
            if let sent = proposed[path: ["metadata", "resourceVersion"]]?.string, !sent.isEmpty,
                sent != old[path: ["metadata", "resourceVersion"]]?.string
            {
                return .json(
                    409,
                    KubeAPIEmulator.status(
                        409, "Conflict",
                        "Operation cannot be fulfilled on \(resource.plural)\(resource.apiVersion.contains("/") ? "." + resource.apiVersion.split(separator: "/")[0] : "") \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                        name: name, kind: resource.plural))
            }
            if let problem = KubeAPIEmulator.validate(proposed, resource, name: name) {
                return .json(
                    422,
                    KubeAPIEmulator.status(
                        422, "Invalid", "\(resource.kind) \"\(name)\" is invalid: \(problem)", name: name, kind: resource.plural))
            }
            proposed["kind"] = nil
            proposed["apiVersion"] = nil
            // Server-owned metadata stays; the status subresource split keeps the other half.
            var metadata = proposed["metadata"]?.object ?? [:]
            for field in ["uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"] {
                metadata[field] = old[path: ["metadata", field]]
            }
            proposed["metadata"] = .object(metadata)
            if resource.hasStatus {
                if subresource == "status" {
                    proposed["spec"] = old["spec"]
                    proposed["metadata"] = old["metadata"]
                } else {
                    proposed["status"] = old["status"]
                }
            }
            if dryRun {
                var copy = KubeAPIEmulator.scratch(store)
                return .json(
                    200,
                    KubeAPIEmulator.withKind(
                        KubeAPIEmulator.commit(&copy, resource, key: key, old: old, new: proposed, lifecycle: lifecycle), resource))
            }
            let result = KubeAPIEmulator.commit(&store, resource, key: key, old: old, new: proposed, lifecycle: lifecycle)
            return .json(200, KubeAPIEmulator.withKind(result, resource))
        }
    }

    // MARK: store mutations (called with the lock held)

    /// A copy to compute a dry run on: no watchers, so nothing it does reaches a client.
    private static func scratch(_ store: Store) -> Store {
        var copy = store
        copy.watchers = [:]
        return copy
    }

    private static func uid(_ store: inout Store) -> String {
        store.uidCounter += 1
        let random = UInt64.random(in: 0..<UInt64.max)
        let hex = String(random ^ store.uidCounter, radix: 16)
        let padded = String(repeating: "0", count: 16 - hex.count) + hex
        let counter = String(store.uidCounter, radix: 16)
        let tail = String(repeating: "0", count: 12 - min(12, counter.count)) + counter.suffix(12)
        let chars = Array(padded)
        return "\(String(chars[0..<8]))-\(String(chars[8..<12]))-4\(String(chars[13..<16]))-8\(String(chars[1..<4]))-\(tail)"
    }

    static func insert(
        _ store: inout Store, _ resource: Resource, key: String, object: JSON, lifecycle: Bool, manager: String = "kubelet"
    ) -> JSON {
        var object = object
        store.rv += 1
        var metadata = object["metadata"]?.object ?? [:]
        metadata["managedFields"] = nil
        metadata["deletionTimestamp"] = nil
        // As the real server does on create: the fields this manager set, so lists are as heavy as a cluster's.
        object["metadata"] = .object(metadata)
        let fields = fieldsV1(object)
        metadata["uid"] = .string(uid(&store))
        metadata["resourceVersion"] = .string(String(store.rv))
        metadata["creationTimestamp"] = .string(WireTime.seconds())
        metadata["managedFields"] = [
            [
                "manager": .string(manager), "operation": "Update", "apiVersion": .string(resource.apiVersion),
                "time": .string(WireTime.seconds()), "fieldsType": "FieldsV1", "fieldsV1": fields,
            ]
        ]
        object["metadata"] = .object(metadata)
        if resource.plural == "nodes" {
            if object["spec"] == nil { object["spec"] = [:] }
            if lifecycle { object = admitNewNode(object) }
        }
        store.objects[resource.plural, default: [:]][key] = object
        record(&store, resource, "ADDED", object)
        observeHeartbeat(&store, resource, key: key, object)
        if lifecycle && resource.plural == "nodes" { noScheduleTaintPass(&store, key: key) }
        return object
    }

    /// Writes `new` over `old`; with `lifecycle`, the node lifecycle controller's event-driven NoSchedule pass
    /// follows a node write as a write of its own, as it does in a real cluster a few tens of milliseconds later.
    static func commit(_ store: inout Store, _ resource: Resource, key: String, old: JSON, new: JSON, lifecycle: Bool) -> JSON {
        let written = write(&store, resource, key: key, old: old, new: new)
        if lifecycle && resource.plural == "nodes" && store.objects["nodes"]?[key] != nil {
            noScheduleTaintPass(&store, key: key)
        }
        return written
    }

    private static func write(_ store: inout Store, _ resource: Resource, key: String, old: JSON, new: JSON) -> JSON {
        var new = new
        var comparable = new
        comparable["metadata"] = KubePatch.merge(new["metadata"], ["resourceVersion": .null])
        var oldComparable = old
        oldComparable["metadata"] = KubePatch.merge(old["metadata"], ["resourceVersion": .null])
        if comparable == oldComparable { return old }  // a no-op write keeps its resourceVersion
        store.rv += 1
        new["metadata"] = KubePatch.merge(new["metadata"], ["resourceVersion": .string(String(store.rv))])
        // An object marked for deletion goes once no finalizer holds it; a pod also waits for the kubelet
        // (`finishTermination`), as its graceful termination does on a real node.
        if new[path: ["metadata", "deletionTimestamp"]] != nil, (new[path: ["metadata", "finalizers"]]?.array ?? []).isEmpty,
            resource.plural != "pods"
        {
            store.objects[resource.plural]?[key] = nil
            record(&store, resource, "DELETED", new)
            return new
        }
        store.objects[resource.plural, default: [:]][key] = new
        record(&store, resource, "MODIFIED", new)
        observeHeartbeat(&store, resource, key: key, new)
        return new
    }

    static func remove(_ store: inout Store, _ resource: Resource, key: String, old: JSON) {
        store.rv += 1
        var final = old
        final["metadata"] = KubePatch.merge(old["metadata"], ["resourceVersion": .string(String(store.rv))])
        store.objects[resource.plural]?[key] = nil
        record(&store, resource, "DELETED", final)
    }

    private static func record(_ store: inout Store, _ resource: Resource, _ type: String, _ object: JSON) {
        store.history.append(HistoryEvent(rv: store.rv, resource: resource.plural, type: type, object: object))
        if store.history.count > 12_000 {
            let drop = store.history.count - 10_000
            store.compactedRV = store.history[drop - 1].rv
            store.history.removeFirst(drop)
        }
        var line: [UInt8]?
        for watcher in store.watchers.values
        where watcher.resource.plural == resource.plural
            && matches(object, labels: watcher.labels, fields: watcher.fields, namespace: watcher.namespace)
        {
            if line == nil { line = eventLine(type, resource, object) }
            watcher.continuation.yield(line!)
        }
    }

    static func readyStatus(_ node: JSON) -> String? {
        node[path: ["status", "conditions"]]?.array?.first { $0["type"]?.string == "Ready" }?["status"]?.string
    }

    private static func validate(_ object: JSON, _ resource: Resource, name: String) -> String? {
        if !isDNSSubdomain(name) {
            return
                "metadata.name: Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        }
        if resource.plural == "leases", let spec = object["spec"] {
            if let duration = spec["leaseDurationSeconds"], duration.int == nil, !duration.isNull {
                return "spec.leaseDurationSeconds: Invalid value: must be an integer"
            }
            for field in ["acquireTime", "renewTime"] {
                if let value = spec[field], !value.isNull {
                    guard let text = value.string, isMicroTime(text) else {
                        return "spec.\(field): Invalid value: must be a MicroTime such as 2006-01-02T15:04:05.000000Z"
                    }
                }
            }
        }
        if resource.plural == "events" {
            // As the apiserver's event validation: an Event about a cluster-scoped object (a Node) must live in
            // "default", and one about a namespaced object in that object's namespace.
            let involved = object["involvedObject"]?["namespace"]?.string ?? ""
            let namespace = object[path: ["metadata", "namespace"]]?.string ?? ""
            if involved.isEmpty ? !["", "default"].contains(namespace) : involved != namespace {
                return "involvedObject.namespace: Invalid value: \"\(involved)\": does not match event.namespace"
            }
        }
        return nil
    }

    private static func isDNSSubdomain(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 253 else { return false }
        let allowed = name.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "."
        }
        guard allowed, let first = name.unicodeScalars.first, let last = name.unicodeScalars.last else { return false }
        return first != "-" && first != "." && last != "-" && last != "."
    }

    private static func isMicroTime(_ text: String) -> Bool {
        // 2006-01-02T15:04:05.000000Z, also accepting RFC 3339 with fewer fraction digits or an offset.
        let chars = Array(text)
        guard chars.count >= 20, chars[4] == "-", chars[7] == "-", chars[10] == "T", chars[13] == ":", chars[16] == ":"
        else { return false }
        return text.hasSuffix("Z") || text.contains("+") || text.dropFirst(19).contains("-")
    }

    static func withKind(_ object: JSON, _ resource: Resource) -> JSON {
        var object = object
        object["kind"] = .string(resource.kind)
        object["apiVersion"] = .string(resource.apiVersion)
        return object
    }

    static func status(_ code: Int, _ reason: String, _ message: String, name: String? = nil, kind: String? = nil) -> JSON {
        var details: [String: JSON] = [:]
        if let name { details["name"] = .string(name) }
        if let kind {
            details["kind"] = .string(kind)
            if kind == "leases" { details["group"] = "coordination.k8s.io" }
        }
        var status: JSON = [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure", "message": .string(message),
            "reason": .string(reason), "code": .int(Int64(code)),
        ]
        if !details.isEmpty { status["details"] = .object(details) }
        return status
    }

    // MARK: discovery documents

    private static func resourceEntry(_ name: String, _ kind: String, namespaced: Bool, verbs: [String], short: [String] = []) -> JSON {
        var entry: JSON = [
            "name": .string(name), "singularName": .string(name.hasSuffix("/status") ? "" : kind.lowercased()),
            "namespaced": .bool(namespaced), "kind": .string(kind), "verbs": .array(verbs.map { .string($0) }),
        ]
        if !short.isEmpty { entry["shortNames"] = .array(short.map { .string($0) }) }
        return entry
    }

    private static let allVerbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    static let coreDiscovery: JSON = [
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [
            resourceEntry("nodes", "Node", namespaced: false, verbs: allVerbs, short: ["no"]),
            resourceEntry("nodes/status", "Node", namespaced: false, verbs: ["get", "patch", "update"]),
            resourceEntry("namespaces", "Namespace", namespaced: false, verbs: ["get", "list", "watch"], short: ["ns"]),
            resourceEntry("events", "Event", namespaced: true, verbs: allVerbs, short: ["ev"]),
            resourceEntry("pods", "Pod", namespaced: true, verbs: allVerbs, short: ["po"]),
            resourceEntry("pods/status", "Pod", namespaced: true, verbs: ["get", "patch", "update"]),
        ],
    ]

    static let coordinationDiscovery: JSON = [
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "coordination.k8s.io/v1",
        "resources": [resourceEntry("leases", "Lease", namespaced: true, verbs: allVerbs)],
    ]

    static let coordinationGroup: JSON = [
        "kind": "APIGroup", "apiVersion": "v1", "name": "coordination.k8s.io",
        "versions": [["groupVersion": "coordination.k8s.io/v1", "version": "v1"]],
        "preferredVersion": ["groupVersion": "coordination.k8s.io/v1", "version": "v1"],
    ]

    static let groupList: JSON = [
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [
            coordinationGroup.object.map { members -> JSON in
                var copy = members
                copy["kind"] = nil
                copy["apiVersion"] = nil
                return .object(copy)
            } ?? .null
        ],
    ]
}

extension KubeAPIEmulator {
    /// The manager a write is recorded under: `?fieldManager=`, else the User-Agent's program name, as the real
    /// server derives it.
    static func fieldManager(_ request: EmulatorRequest) -> String {
        if let named = request.query.first(where: { $0.0 == "fieldManager" })?.1, !named.isEmpty { return named }
        let agent = request.headers.first { $0.key.lowercased() == "user-agent" }?.value ?? ""
        let program = agent.split(separator: "/").first.map(String.init) ?? ""
        return program.isEmpty ? "unknown" : program
    }

    /// The FieldsV1 set of an object (`{"f:metadata":{"f:labels":{"f:a":{}}}, ...}`): lists of objects keyed by
    /// `type` or `name` become `k:{...}` entries, other lists are atomic.
    static func fieldsV1(_ value: JSON, top: Bool = true) -> JSON {
        guard case .object(var fields) = value else { return [:] }
        if top, case .object(var metadata)? = fields["metadata"] {
            for owned in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"] {
                metadata[owned] = nil
            }
            fields["metadata"] = metadata.isEmpty ? nil : .object(metadata)
        }
        var set: [String: JSON] = top ? [:] : [".": [:]]
        for (key, field) in fields {
            switch field {
            case .object(let inner) where !inner.isEmpty:
                let nested = fieldsV1(field, top: false)
                set["f:" + key] = top ? .object(nested.object?.filter { $0.key != "." } ?? [:]) : nested
            case .array(let items) where !items.isEmpty && items.allSatisfy({ $0["type"]?.string != nil || $0["name"]?.string != nil }):
                var keyed: [String: JSON] = [".": [:]]
                for item in items {
                    let mergeKey = item["type"]?.string != nil ? "type" : "name"
                    keyed["k:{\"\(mergeKey)\":\"\(item[mergeKey]?.string ?? "")\"}"] = fieldsV1(item, top: false)
                }
                set["f:" + key] = .object(keyed)
            default:
                set["f:" + key] = [:]
            }
        }
        return .object(set)
    }
}
