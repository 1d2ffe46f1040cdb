import Emulators
import Foundation
import KubernetesAPI
import Logging
import NIOConcurrencyHelpers
import Testing

let quietLogger = EmulatorHarness.quietLogger

/// Runs a Kubernetes emulator for the body's length.
func withKubeEmulator<T: Sendable>(
    _ emulator: KubeAPIEmulator = KubeAPIEmulator(), _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    try await EmulatorHarness.servingGracefully(
        { try await emulator.run(logger: quietLogger, stopper: $0, onReady: $1) }, drain: { emulator.dropWatches() }, body)
}

@Suite struct LineFramerTests {
    @Test func everySplitOffsetGivesTheSameLines() throws {
        let stream =
            Array(#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#.utf8) + [0x0A]
            + Array(#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#.utf8) + [0x0A]
        for offset in 0...stream.count {
            var framer = LineFramer()
            var lines = try framer.append(stream[..<offset])
            lines += try framer.append(stream[offset...])
            #expect(lines.count == 2, "split at \(offset)")
            #expect(framer.remainder == nil)
        }
    }

    @Test func oversizedLineIsRefused() {
        var framer = LineFramer(maxLineBytes: 16)
        #expect(throws: LineFramer.LineTooLong.self) { try framer.append(Array(repeating: UInt8(ascii: "x"), count: 17)) }
    }

    /// A line whose object has a field of the wrong type is refused, never read as an object without that field.
    @Test(arguments: [
        (#"{"type":"ADDED","object":{"metadata":{"name":"n","resourceVersion":"5"},"status":{"addresses":[]}}}"#, true),
        (#"{"type":"ADDED","object":{"metadata":{"name":"n","resourceVersion":"5"},"status":{"addresses":"garbage"}}}"#, false),
        (#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}}"#, true),
        (#"<html>502 Bad Gateway</html>"#, false),
        (#"{"type":"ADDED","object":{"metadata":{}}}"#, false),
        (#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}"#, true),
    ])
    func watchLines(line: String, readable: Bool) {
        let result = Result { () throws(KubeAPIError) in try KubeClient.parseWatchLine(Array(line.utf8), as: Node.self) }
        #expect(((try? result.get()) != nil) == readable)
    }
}

@Suite(.serialized) struct KubeClientTests {
    /// The client's own tests count the API server's events: no controller writes beside them.
    static func apiServerAlone() -> KubeAPIEmulator { KubeAPIEmulator(options: .init(nodeLifecycle: nil)) }

    @Test func paginationAndWatchResumeAndRelist() async throws {
        let emulator = Self.apiServerAlone()
        for index in 0..<7 { emulator.putNode(NodeFixtures.node("n\(index)", external: ["203.0.113.\(index + 1)"])) }
        try await withKubeEmulator(emulator) { port in
            let client = try KubeClient(config: ClusterConfig(server: "http://127.0.0.1:\(port)"), logger: quietLogger)
            let listed = try await client.listAllNodes(pageSize: 3)
            #expect(listed.nodes.map(\.name) == (0..<7).map { "n\($0)" })
            let received = EventLog()
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    var watcher = Reflector<Node>(client: client, logger: quietLogger)
                    watcher.backoff = .init(initial: 0.01, maximum: 0.05)
                    await watcher.run { event in received.events.withLockedValue { $0.append(event) } }
                }
                #expect(await EmulatorHarness.eventually { received.events.withLockedValue { $0.count } == 1 })
                emulator.mutateNode("n1") { NodeFixtures.setReady(&$0, "False") }
                #expect(await EmulatorHarness.eventually { received.events.withLockedValue { $0.count } == 2 })
                // A dropped watch resumes from the last version without losing or repeating an event.
                emulator.dropWatches()
                emulator.deleteNode("n2")
                #expect(await EmulatorHarness.eventually { received.events.withLockedValue { $0.count } == 3 })
                // Compacted history: 410, then a relist publishes the whole picture again.
                emulator.dropWatches()
                emulator.compactNow()
                emulator.putNode(NodeFixtures.node("n9", external: ["203.0.113.99"]))
                emulator.compactNow()
                #expect(
                    await EmulatorHarness.eventually {
                        received.events.withLockedValue {
                            $0.contains {
                                if case .synced(let nodes) = $0 { return nodes.contains { $0.name == "n9" } }
                                return false
                            }
                        }
                    })
                group.cancelAll()
            }
            let events = received.events.withLockedValue { $0 }
            guard case .synced(let first) = events[0] else {
                Issue.record("first event must be the full list")
                return
            }
            #expect(first.count == 7)
            #expect(events[2] == .delete("n2"))
            #expect(events.filter { $0 == .delete("n2") }.count == 1)
            await client.shutdown()
        }
    }

    @Test func dryRunWritesReachNoWatcher() async throws {
        let emulator = Self.apiServerAlone()
        try await withKubeEmulator(emulator) { port in
            let client = try KubeClient(config: ClusterConfig(server: "http://127.0.0.1:\(port)"), logger: quietLogger)
            let received = EventLog()
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await Reflector<Node>(client: client, logger: quietLogger).run { event in
                        received.events.withLockedValue { $0.append(event) }
                    }
                }
                #expect(await EmulatorHarness.eventually { received.events.withLockedValue { $0.count } == 1 && emulator.openWatches == 1 })
                let dryRun = await emulator.handle(
                    EmulatorRequest(
                        method: "POST", path: "/api/v1/nodes", query: [("dryRun", "All")], headers: [:],
                        body: NodeFixtures.node("ghost", external: ["203.0.113.66"]).bytes))
                #expect(dryRun.status == 201)
                emulator.putNode(NodeFixtures.node("real", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { received.events.withLockedValue { $0.count } == 2 })
                group.cancelAll()
            }
            let events = received.events.withLockedValue { $0 }
            guard case .upsert(let second) = events.last else {
                Issue.record("expected the real node's event")
                return
            }
            #expect(second.name == "real" && events.count == 2)
            #expect(emulator.objects("nodes").count == 1)
            await client.shutdown()
        }
    }

    @Test func leaseConflictAndTokenRotation() async throws {
        let emulator = KubeAPIEmulator(options: .init(token: "first"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tokenFile = directory.appendingPathComponent("token").path
        try "first\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try await withKubeEmulator(emulator) { port in
            let client = try KubeClient(
                config: ClusterConfig(server: "http://127.0.0.1:\(port)", credentials: .tokenFile(tokenFile)), logger: quietLogger)
            let created = try await client.createLease(
                Lease(
                    name: "l", namespace: "default", holderIdentity: "a", leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil,
                    leaseTransitions: 0))
            var fresh = created
            fresh.holderIdentity = "b"
            _ = try await client.updateLease(fresh)
            var stale = created
            stale.holderIdentity = "c"
            let conflict = await #expect(throws: KubeAPIError.self) { try await client.updateLease(stale) }
            #expect(conflict?.code == 409)
            // The token rotates: the server now wants the new one and the file says so.
            emulator.setToken("second")
            try "second\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            #expect(try await client.getLease(namespace: "default", name: "l")?.holderIdentity == "b")
            await client.shutdown()
        }
    }

    @Test(arguments: [
        ("missing", nil as String?, "no such file"),
        ("garbage", "clusters: [: :", "not valid YAML"),
        ("nocontext", "apiVersion: v1\nclusters: []\ncontexts: []\ncurrent-context: prod\n", "context \"prod\" not found"),
        (
            "badserver",
            "clusters:\n- name: c\n  cluster: {server: 'ftp://x'}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: t}\ncurrent-context: x\n",
            "is not an http(s) URL"
        ),
        (
            "tokenfile",
            "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:6443'}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {tokenFile: /nonexistent/token}\ncurrent-context: x\n",
            "users[u].tokenFile: cannot read /nonexistent/token"
        ),
    ])
    func badKubeconfigsNameFileAndField(label: String, contents: String?, message: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kubeconfig-\(label)-\(UUID().uuidString)").path
        if let contents { try contents.write(toFile: path, atomically: true, encoding: .utf8) }
        do {
            _ = try ClusterConfig.kubeconfig(path: path)
            Issue.record("\(label) should fail")
        } catch {
            #expect(error.description.contains(path) && error.description.contains(message), "\(error.description)")
        }
    }

    @Test func kubeconfigCredentialKinds() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kubeconfig-ok-\(UUID().uuidString)").path
        try """
        apiVersion: v1
        clusters:
        - name: c
          cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}
        contexts:
        - name: token
          context: {cluster: c, user: token, namespace: dns}
        - name: exec
          context: {cluster: c, user: exec}
        users:
        - name: token
          user: {token: abc}
        - name: exec
          user:
            exec: {apiVersion: client.authentication.k8s.io/v1, command: gke-gcloud-auth-plugin}
        current-context: token
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let token = try ClusterConfig.kubeconfig(path: path)
        #expect(token.namespace == "dns" && token.insecureSkipTLSVerify)
        guard case .token("abc") = token.credentials else {
            Issue.record("token")
            return
        }
        guard case .exec(let plugin) = try ClusterConfig.kubeconfig(path: path, context: "exec").credentials else {
            Issue.record("exec")
            return
        }
        #expect(plugin.command == "gke-gcloud-auth-plugin")
    }
}

final class EventLog: Sendable {
    let events = NIOLockedValueBox<[NodeStoreEvent]>([])
}

@Suite(.serialized) struct WatchHardeningTests {
    /// A server (or proxy) that ends every watch at once with no event: the watcher backs off as client-go does,
    /// and says so once, instead of sending thousands of requests a second.
    @Test func aWatchThatClosesAtOnceIsBackedOffAndWarnedOnce() async throws {
        let list = #"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}"#
        let server = try await StallingServer { line in
            line.contains("watch=true") ? StallingServer.emptyAnswer : StallingServer.json(list)
        }
        let lines = CollectedLines()
        let client = try KubeClient(config: ClusterConfig(server: "http://127.0.0.1:\(server.port)"), logger: lines.logger())
        let reflector = Task { await Reflector<Node>(client: client, logger: lines.logger()).run { _ in } }
        // Three watches, each closed at once: between them the watcher waited at least its first backoff step
        // (0.8 s, half of it jitter), where a tight loop would send thousands. A busy machine only widens the gaps.
        let watches = { server.requestArrivals.filter { $0.line.contains("watch=true") } }
        #expect(await EmulatorHarness.eventually { watches().count >= 3 }, "\(server.requestLines)")
        reflector.cancel()
        await reflector.value
        await client.shutdown()
        await server.stop()
        let arrivals = watches().map(\.at)
        for (earlier, later) in zip(arrivals, arrivals.dropFirst()) {
            #expect(earlier.duration(to: later) >= .milliseconds(400), "watches at \(arrivals)")
        }
        #expect(lines.all.filter { $0.contains("closed at once") }.count == 1, "\(lines.all)")
    }

    /// A peer that asks for a day (`Retry-After: 86400` on a 429) gets the cap: the watcher comes back after it, with
    /// a tenth of jitter, instead of going blind for a day. (The cap is 30 s by default; a short one here.)
    @Test func aRetryAfterOfADayIsCapped() async throws {
        let emulator = KubeAPIEmulator(options: .init(nodeLifecycle: nil))
        emulator.putNode(NodeFixtures.node("n1", external: ["203.0.113.1"]))
        emulator.faults.inject(status: 429, count: 1, retryAfter: 86_400)
        try await withKubeEmulator(emulator) { port in
            let client = try KubeClient(config: ClusterConfig(server: "http://127.0.0.1:\(port)"), logger: quietLogger)
            let lines = CollectedLines()
            let received = EventLog()
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    var watcher = Reflector<Node>(client: client, logger: lines.logger())
                    watcher.retryAfterCap = 1
                    await watcher.run { event in received.events.withLockedValue { $0.append(event) } }
                }
                #expect(await EmulatorHarness.eventually { !received.events.withLockedValue { $0.isEmpty } })
                group.cancelAll()
            }
            #expect(started.duration(to: .now) < .seconds(5), "listed after the capped wait")
            #expect(lines.all.contains { $0.contains("watch failed; retrying") }, "\(lines.all)")
            await client.shutdown()
        }
    }

    /// Headers, then silence: the read gives up after the idle timeout instead of hanging forever.
    @Test func aStalledWatchBodyTimesOut() async throws {
        let server = try await StallingServer(answer: StallingServer.headersThenNothing)
        let client = try KubeClient(
            config: ClusterConfig(server: "http://127.0.0.1:\(server.port)"), logger: quietLogger, readIdleTimeout: .seconds(1))
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) {
            try await client.watchNodes(from: "1", timeoutSeconds: 300) { _ in }
        }
        #expect(started.duration(to: .now) < .seconds(10))
        await client.shutdown()
        await server.stop()
    }
}

/// Log lines kept in memory, so a test can count what was said.
final class CollectedLines: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])
    var all: [String] { lines.withLockedValue { $0 } }
    func logger() -> Logger {
        Logger(label: "test") { _ in CollectingHandler(lines: self) }
    }
    func append(_ line: String) { lines.withLockedValue { $0.append(line) } }
}

struct CollectingHandler: LogHandler {
    let lines: CollectedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { lines.append("\(event.level) \(event.message)") }
}

@Suite struct TLSServerNameTests {
    /// A kubeconfig's tls-server-name cannot be honoured by the HTTP client: the user is told, once, at start.
    @Test func tlsServerNameIsNotIgnoredSilently() async throws {
        var config = ClusterConfig(server: "https://203.0.113.7:6443")
        config.tlsServerName = "kubernetes.default.svc"
        let lines = CollectedLines()
        let named = try KubeClient(config: config, logger: lines.logger())
        await named.shutdown()
        #expect(lines.all.filter { $0.contains("tls-server-name") }.count == 1, "\(lines.all)")
        let plain = CollectedLines()
        let unnamed = try KubeClient(config: ClusterConfig(server: "https://203.0.113.7:6443"), logger: plain.logger())
        await unnamed.shutdown()
        #expect(plain.all.isEmpty)
    }

    /// A client dropped without `shutdown()`, as when something thrown unwinds past it, does not take the process
    /// down (AsyncHTTPClient traps on a running client's deinit): the test process would crash here otherwise.
    @Test func aClientDroppedWithoutShutdownDoesNotTrap() async throws {
        weak var dropped: KubeClient?
        do {
            let client = try KubeClient(config: ClusterConfig(server: "http://127.0.0.1:9"), logger: quietLogger)
            dropped = client
        }
        #expect(dropped == nil, "released, and its HTTP client shut down on the way")
    }
}

/// The list splitter hands each item over alone, however the answer was chunked, and refuses what is not a list.
@Suite struct ListItemSplitterTests {
    static func split(_ text: String, at offsets: [Int], maxItemBytes: Int = 1 << 20) throws -> (items: [String], metadata: String?) {
        var splitter = ListItemSplitter(maxItemBytes: maxItemBytes)
        let bytes = Array(text.utf8)
        var items: [String] = []
        var start = 0
        for end in offsets.map({ min($0, bytes.count) }) + [bytes.count] where end >= start {
            let chunk = Array(bytes[start..<end])
            items += try chunk.withUnsafeBytes { try splitter.feed($0) }.map { String(decoding: $0, as: UTF8.self) }
            start = end
        }
        try splitter.finish()
        return (items, splitter.metadata.map { String(decoding: $0, as: UTF8.self) })
    }

    @Test(
        arguments: [
            (
                #"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"x"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b}\"]"}}]}"#,
                [#"{"metadata":{"name":"a"}}"#, #"{"metadata":{"name":"b}\"]"}}"#], #"{"resourceVersion":"7","continue":"x"}"#
            ),
            (
                "{ \"items\" : [ {\"a\":[1,{\"b\":[]}]} , null , 3 , \"s,]\" ] ,\n \"metadata\" : {\"resourceVersion\":\"9\"} }\n",
                [#"{"a":[1,{"b":[]}]}"#, "null", "3", #""s,]""#], #"{"resourceVersion":"9"}"#
            ),
            (#"{"metadata":{"resourceVersion":"1"},"items":[]}"#, [], #"{"resourceVersion":"1"}"#),
            (
                #"{"metadata":{"resourceVersion":"1","items":[{"not":"an item"}]},"items":[]}"#, [],
                #"{"resourceVersion":"1","items":[{"not":"an item"}]}"#
            ),
        ] as [(String, [String], String)])
    func everyChunkingGivesTheSameItems(text: String, items: [String], metadata: String) throws {
        for offset in 0...text.utf8.count {
            let result = try Self.split(text, at: [offset])
            #expect(result.items == items, "split at \(offset)")
            #expect(result.metadata == metadata, "split at \(offset)")
        }
        let byteByByte = try Self.split(text, at: Array(0...text.utf8.count))
        #expect(byteByByte.items == items && byteByByte.metadata == metadata)
    }

    @Test(arguments: [
        ("[1,2]", "the answer is not a JSON object"),
        (#"{"items":[{"a":1}"#, "the answer ended inside the list"),
        ("", "the answer is empty"),
        (#"{"items":[]} {"#, "bytes after the end of the list"),
        (#"{"items":[{"big":"0123456789012345678901234567890123456789"}]}"#, "one list item exceeded 32 bytes"),
        // A list without an items array is an error, never an empty list (the API server always sends `[]`).
        (#"{"metadata":{"resourceVersion":"1"},"items":null}"#, "the answer has no items array"),
        (#"{"metadata":{"resourceVersion":"1"},"items":{"a":1}}"#, "the answer has no items array"),
        (#"{"metadata":{"resourceVersion":"1"}}"#, "the answer has no items array"),
        // Found by the list-items fuzzer: broken JSON between the top-level fields, which only the items were checked
        // for; and an answer whose items array the cutter and a JSON parser would count differently.
        (#"{"kind":"Nod"taints":piVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}"#, "not valid JSON outside its items"),
        (#"{"metadata":{"resourceVersion":"1"},"items":[1 2]}"#, "not valid JSON outside its items"),
        (#"{"metadata":{"resourceVersion":"1"},"items":[1],"items":[]}"#, "two items arrays"),
        (#"{"metadata":{"resourceVersion":"1"},"items":[],"metadata":{"resourceVersion":"2"}}"#, "two metadata objects"),
        (#"{"metadata":{"resourceVersion":"1","big":"0123456789012345678901234567890123456789"},"items":[]}"#, "exceeded 32 bytes"),
        (#"{"metadata":{"re\\\ashable":"7"},"items":[]}"#, "an invalid escape in a string"),
        (#"{"metadata":{"resourceVersion":"\u00zz"},"items":[]}"#, "a \\u escape without four hex digits"),
        ("{\"kind\":\"NodeLi\u{1}st\",\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[]}", "a control character inside a string"),
    ])
    func whatIsNotAListIsRefusedWithWhy(text: String, message: String) {
        for offsets in [[], [text.utf8.count / 2]] {
            #expect {
                _ = try Self.split(text, at: offsets, maxItemBytes: 32)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
    }
}

/// Objects are read strictly where it matters: a field of the wrong type (null included) makes the answer malformed,
/// never an object without that field; unknown fields, absent optional fields and unknown enum values stay fine.
@Suite struct StrictDecodingTests {
    static func node(_ json: String) -> Result<Node, KubeAPIError> {
        Result { () throws(KubeAPIError) in try KubeClient.decode(Node.self, Array(json.utf8), what: "a node") }
    }

    @Test(arguments: [
        (#"{"metadata":{"name":"n"},"status":null}"#, "status"),
        (#"{"metadata":{"name":"n"},"status":{"addresses":"203.0.113.1"}}"#, "status.addresses"),
        (#"{"metadata":{"name":"n"},"status":{"addresses":[{"type":"ExternalIP","address":7}]}}"#, "address"),
        (#"{"metadata":{"name":"n"},"status":{"addresses":[{"type":"ExternalIP"}]}}"#, "address"),
        (#"{"metadata":{"name":"n"},"status":{"conditions":[{"type":"Ready","status":true}]}}"#, "status"),
        (#"{"metadata":{"name":"n"},"status":{"conditions":null}}"#, "conditions"),
        (#"{"metadata":{"name":"n"},"spec":{"unschedulable":"yes"}}"#, "unschedulable"),
        (#"{"metadata":{"name":"n"},"spec":{"taints":{"key":"x"}}}"#, "taints"),
        (#"{"metadata":{"name":"n","labels":["a"]}}"#, "labels"),
        (#"{"metadata":{"name":7}}"#, "name"),
    ])
    func aFieldOfTheWrongTypeIsRefusedWithWhere(json: String, field: String) {
        guard case .failure(let error) = Self.node(json) else {
            Issue.record("\(json) was read")
            return
        }
        #expect("\(error)".contains(field), "\(error)")
    }

    @Test func whatTheAPIMayLeaveOutOrAddIsStillRead() throws {
        let node = try Self.node(
            #"{"metadata":{"name":"n","future":{"x":1}},"spec":{"taints":[{"key":"k","effect":"SomeNewEffect"}]},"newField":[1]}"#
        ).get()
        #expect(node.taints.map { "\($0.key):\($0.effect)" } == ["k:SomeNewEffect"])
        #expect(node.addresses.isEmpty && node.conditions.isEmpty)
        let pod = try KubeClient.decode(
            Pod.self, Array(#"{"metadata":{"name":"p"},"status":{"phase":"Running"}}"#.utf8), what: "a pod")
        #expect(pod.ready == nil && pod.nodeName == nil)
        #expect(throws: KubeAPIError.self) {
            try KubeClient.decode(Pod.self, Array(#"{"metadata":{"name":"p"},"spec":{"nodeName":5}}"#.utf8), what: "a pod")
        }
        #expect(throws: KubeAPIError.self) {
            try KubeClient.decode(
                Lease.self, Array(#"{"metadata":{"name":"l"},"spec":{"leaseDurationSeconds":"15"}}"#.utf8), what: "a Lease")
        }
    }

    @Test func onlyTheAnnotationAskedForIsReadAndItMustBeText() throws {
        let json = #"{"metadata":{"name":"n","annotations":{"kube-node-dns.io/hostnames":"edge.example.com","big":"{\"x\":[1,2]}"}}}"#
        let asked: [CodingUserInfoKey: any Sendable] = [.nodeAnnotation: "kube-node-dns.io/hostnames"]
        let node = try KubeClient.decode(Node.self, Array(json.utf8), what: "a node", userInfo: asked)
        #expect(node.annotations == ["kube-node-dns.io/hostnames": "edge.example.com"])
        #expect(try Self.node(json).get().annotations.isEmpty, "not asked for: none read")
        let line = #"{"type":"MODIFIED","object":"# + json + "}"
        guard case .modified(let watched) = try KubeClient.parseWatchLine(Array(line.utf8), as: Node.self, userInfo: asked) else {
            Issue.record("not a MODIFIED event")
            return
        }
        #expect(watched.annotations == node.annotations)
        // The annotation of the wrong type is a malformed answer, never a node without names.
        #expect(throws: KubeAPIError.self) {
            try KubeClient.decode(
                Node.self, Array(#"{"metadata":{"name":"n","annotations":{"kube-node-dns.io/hostnames":7}}}"#.utf8), what: "a node",
                userInfo: asked)
        }
        #expect(throws: KubeAPIError.self) {
            try KubeClient.decode(
                Node.self, Array(#"{"metadata":{"name":"n","annotations":["x"]}}"#.utf8), what: "a node", userInfo: asked)
        }
    }
}

extension ListItemSplitterTests {
    /// Found by the list-items fuzzer: bytes that are not UTF-8 inside a field nobody reads were skipped, where a JSON
    /// parser refuses the answer. Every byte of the answer is checked, in whatever chunks it arrives.
    @Test(arguments: [[0xEC, 0xC5] as [UInt8], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF]])
    func bytesThatAreNotUTF8AreRefused(bad: [UInt8]) {
        let bytes = Array(#"{"kind":"NodeLi"#.utf8) + bad + Array(#"st","metadata":{"resourceVersion":"7"},"items":[]}"#.utf8)
        for offset in 0...bytes.count {
            var splitter = ListItemSplitter()
            #expect(throws: ListItemSplitter.Malformed.self, "split at \(offset)") {
                _ = try Array(bytes[..<offset]).withUnsafeBytes { try splitter.feed($0) }
                _ = try Array(bytes[offset...]).withUnsafeBytes { try splitter.feed($0) }
                try splitter.finish()
            }
        }
    }

    @Test func utf8InStringsIsRead() throws {
        let text = #"{"kind":"NodeList é ✓ 😀","metadata":{"resourceVersion":"7"},"items":[{"name":"nœud"}]}"#
        #expect(try Self.split(text, at: Array(0...text.utf8.count)).items == [#"{"name":"nœud"}"#])
    }
}
