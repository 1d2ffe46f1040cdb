import Emulators
import Foundation
import Logging
import NodeDNSCore
import RFC2136DNS

/// The fault-injection soak: node churn while both APIs misbehave and the leader is killed, with the
/// invariants checked by a model of the cluster kept here, independently of the controller's own logic.
struct Soak {
    var seconds: Int
    var seed: UInt64
    var trafficPath: String?
    var controller: [String]
    /// The records live on a real BIND 9 (RFC 2136) instead of the Cloudflare emulator.
    var rfc2136 = false

    static let zone = "example.com"
    static let shared = "k.example.com"
    /// One token per replica ever started (each SIGKILL starts a fresh one); an hour starts a few hundred.
    static let tokens = (0..<2000).map { "soak-token-\($0)" }
    /// The real monitor period, so that a revived node's late NoExecute lift comes seconds after its Ready; a grace
    /// period of 3 s instead of 50, so that a kubelet's death reaches DNS within the soak's rounds.
    static let lifecycle = NodeLifecycleSettings(
        monitorPeriod: .seconds(5), gracePeriod: .seconds(3), leaseRenewInterval: .milliseconds(500))
    /// A node Ready and serving again for longer than this must be published.
    static let returnBound = 1.0
    static let lease = ["--leader-elect", "--lease-duration=4s", "--lease-renew-deadline=3s", "--lease-retry-period=500ms"]
    /// Every node's nginx (the kit's nginx.conf, a real nginx) listens on the node's InternalIP, 127.R.X.Y, at this
    /// port: loopback addresses that need no root and no namespace, and that the replicas probe as the kit does, with
    /// `{internal_address}` in place of `{address}` (the published addresses stay the model's 203.0.113.N).
    static let healthPort = 18092
    /// Replica `token`'s ops port (/status), one each.
    static func opsPort(_ token: Int) -> Int { 19000 + token }
    /// The kit's HEALTH_CHECK settings, pointed at each node's nginx above.
    static func healthSettings() throws -> [String: String] {
        var settings = try HealthScenario.kitSettings()
        settings["HEALTH_CHECK"] = "http://{internal_address}:\(healthPort)/nginx-health"
        return settings
    }

    /// What the test believes about each node and its nginx pod (the serving set `www/app=nginx`).
    struct ModelNode {
        var address: String
        var ready = true
        var cordoned = false
        var batch = false
        /// The node's nginx: Ready, not Ready, or terminating (deleted, waiting for the kubelet).
        var pod = PodState.ready
        /// Its kubelet has died: it posts nothing, and the node lifecycle marks the node Unknown after its grace.
        var kubeletDead = false
        /// A departure taint on it (cluster-autoscaler's, Karpenter's, a termination notice): out, whatever else.
        var departing: String?
        /// Its nginx process, as a visitor finds it: answering, killed, or hung (SIGSTOP) while Kubernetes sees nothing.
        var nginx = NginxState.up
        /// Where its nginx listens (its InternalIP): 127.R.X.Y, R this run's own.
        var healthAddress: String
        var eligible: Bool {
            ready && !cordoned && !batch && pod == .ready && !kubeletDead && departing == nil && nginx == .up
        }
    }

    enum PodState { case ready, notReady, terminating }
    enum NginxState { case up, dead, hung }

    /// Takes the leader-election Lease for an identity no replica has, through the API as another client would;
    /// returns the window (wall-clock seconds) in which the thief's Lease is valid, a little inside its duration.
    func stealLease(_ emulator: KubeAPIEmulator) async -> (from: Double, to: Double)? {
        // Injected 500s may still be pending: try until the API server takes the write.
        for _ in 0..<10 {
            if let window = await stealLeaseOnce(emulator) { return window }
        }
        Bench.log("could not steal the Lease")
        return nil
    }

    private func stealLeaseOnce(_ emulator: KubeAPIEmulator) async -> (from: Double, to: Double)? {
        let now = Date().timeIntervalSince1970
        let micros = Int64(now * 1_000_000)
        var style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        style.timeZone = .gmt
        let stamp = Date(timeIntervalSince1970: Double(micros) / 1e6).formatted(style).replacingOccurrences(of: "Z", with: "000Z")
        let body: JSON = [
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": ["name": "kube-node-dns", "namespace": "default"],
            "spec": [
                "holderIdentity": "thief", "leaseDurationSeconds": 4, "acquireTime": .string(stamp), "renewTime": .string(stamp),
                "leaseTransitions": 1000,
            ],
        ]
        let request = EmulatorRequest(
            method: "PUT", path: "/apis/coordination.k8s.io/v1/namespaces/default/leases/kube-node-dns", query: [],
            headers: ["content-type": "application/json"], body: Array(body.serialized().utf8))
        guard await emulator.handle(request).status == 200 else { return nil }
        // Valid for 4 s from when each replica sees it; once the old leader's next Lease round (every 0.5 s) has
        // seen it, nobody may write until then.
        return (now, now + 3.5)
    }

    func run() async throws -> Bool {
        // Bookmarks every 2 s, so the replicas' 6 s read timeout never fires on a healthy, quiet watch.
        var kubeOptions = KubeAPIEmulator.Options()
        kubeOptions.bookmarkInterval = 2
        kubeOptions.nodeLifecycle = Self.lifecycle
        let kube = RestartableKube(emulator: KubeAPIEmulator(options: kubeOptions))
        await kube.start()
        var cloudflareOptions = CloudflareEmulator.Options(zones: [Self.zone], tokens: Self.tokens.map { .init($0) })
        cloudflareOptions.trafficLogPath = trafficPath
        let cloudflare = CloudflareEmulator(options: cloudflareOptions)
        // Records nobody gave us: on the shared name, on a per-node-looking name, and elsewhere.
        let foreign = [
            cloudflare.seed(zone: Self.zone, type: "A", name: Self.shared, content: "192.0.2.200", ttl: 300, comment: "by hand"),
            cloudflare.seed(zone: Self.zone, type: "A", name: "n-anchor-1.nodes.example.com", content: "192.0.2.201", ttl: 300),
            cloudflare.seed(zone: Self.zone, type: "TXT", name: Self.shared, content: "\"hello\"", ttl: 300),
            cloudflare.seed(
                zone: Self.zone, type: "A", name: "mail.example.com", content: "192.0.2.202", ttl: 300,
                comment: "kube-node-dns owner=other-cluster"),
        ].compactMap { $0 }

        let bind = rfc2136 ? try await RealDNSServer(kind: .bind, zone: Self.zone) : nil
        defer { bind?.kill() }
        var seededForeign: [String: [String]] = [:]
        if let bind {
            try bind.nsupdate([
                "update add \(Self.shared) 300 A 192.0.2.200", "update add n-anchor-1.nodes.example.com 300 A 192.0.2.201",
                "update add \(Self.shared) 300 TXT hello", "update add mail.example.com 300 A 192.0.2.202",
            ])
            seededForeign["mail.example.com"] = bind.dig("mail.example.com", "A")
            seededForeign["\(Self.shared) TXT"] = bind.dig(Self.shared, "TXT")
        }
        let seeded = seededForeign
        let lookups = try bind.map { bind in
            var logger = Logger(label: "soak")
            logger.logLevel = .critical
            return RFC2136Client(
                transport: DNSTransport(host: "127.0.0.1", port: bind.port, timeout: 2), kind: .tcp,
                zone: try WireName(Self.zone),
                key: try TSIGKey(name: bind.keyName, algorithm: .hmacSHA256, base64Secret: bind.secret), logger: logger,
                now: { UInt64(Date().timeIntervalSince1970) })
        }
        return try await EmulatorHarness.serving({ try await cloudflare.run(logger: EmulatorHarness.quietLogger, onReady: $0) }) { cfPort in
            let cloudflareURL = "http://127.0.0.1:\(cfPort)/client/v4"
            var bindForeign = seeded
            var random = SplitMix64(seed: seed)
            var model: [String: ModelNode] = [:]
            var nextNode = 0
            kube.emulator.createNamespace("www")
            // Each node's nginx, by node name; a node's nginx starts before the node joins, and goes with it.
            let kitConfig = try String(contentsOfFile: "deploy/nginx/nginx.conf", encoding: .utf8)
            let healthSettings = try Self.healthSettings()
            var nginxes: [String: HealthScenario.NodeServer] = [:]
            var healthAddresses = 0
            defer {
                for server in nginxes.values {
                    server.process?.signal(SIGCONT)
                    server.process?.signal(SIGKILL)
                }
            }
            /// A new node, with its nginx up.
            func makeNode(_ name: String, address: String) throws -> ModelNode {
                healthAddresses += 1
                // The second byte is this run's own (from its pid), so a soak never shares an address with another
                // run's nginx (one left behind by a soak that was killed, say).
                let healthAddress = "127.\(50 + getpid() % 200).\(healthAddresses / 250).\(healthAddresses % 250 + 1)"
                let server = try HealthScenario.NodeServer(
                    tag: "soak-\(name)", kitConfig: kitConfig, addresses: [healthAddress], port: Self.healthPort)
                try server.start()
                nginxes[name] = server
                return ModelNode(address: address, healthAddress: healthAddress)
            }
            func removeNginx(_ name: String) async {
                await nginxes.removeValue(forKey: name)?.stop()
            }
            /// Moves a node's nginx to `state`: SIGKILL and a fresh start, SIGSTOP and SIGCONT.
            func setNginx(_ name: String, _ state: NginxState) async throws {
                guard let server = nginxes[name], let from = model[name]?.nginx, from != state else { return }
                switch (from, state) {
                case (_, .dead): server.kill(SIGKILL)
                case (_, .hung): server.kill(SIGSTOP)
                case (.hung, .up): server.kill(SIGCONT)
                default:
                    await server.stop()
                    try server.start()
                }
                model[name]!.nginx = state
            }
            func put(_ name: String, _ node: ModelNode) {
                let labels = node.batch ? ["role": "batch"] : [:]
                var object = NodeFixtures.node(
                    name, external: [node.address], internal: [node.healthAddress], ready: node.ready ? "True" : "False",
                    unschedulable: node.cordoned, labels: labels)
                if let key = node.departing { NodeFixtures.addTaint(&object, key: key, effect: "NoSchedule") }
                kube.emulator.putNode(object)
                let pod = "nginx-\(name)"
                switch node.pod {
                case .ready, .notReady:
                    // A terminated pod is gone first (the kubelet finished), then its replacement appears.
                    if kube.emulator.objects("pods").contains(where: {
                        $0[path: ["metadata", "name"]]?.string == pod && $0[path: ["metadata", "deletionTimestamp"]] != nil
                    }) {
                        kube.emulator.finishTermination(namespace: "www", pod)
                    }
                    kube.emulator.putPod(NodeFixtures.pod(pod, node: name, ready: node.pod == .ready), namespace: "www")
                case .terminating:
                    kube.emulator.mutatePod(namespace: "www", pod) { object in
                        var metadata = object["metadata"]?.object ?? [:]
                        if metadata["deletionTimestamp"] == nil { metadata["deletionTimestamp"] = .string(WireTime.seconds()) }
                        object["metadata"] = .object(metadata)
                    }
                }
            }
            for anchor in ["n-anchor-0", "n-anchor-1"] {
                model[anchor] = try makeNode(anchor, address: "198.51.100.\(model.count + 1)")
                put(anchor, model[anchor]!)
            }

            // Two replicas, each with a token of its own, so the request log tells their writes apart.
            var tokenCursor = 0
            var replicas: [(process: ManagedProcess, token: Int, identity: String)] = []
            var killed: Set<Int32> = []
            func startReplica() throws {
                guard tokenCursor < Self.tokens.count else {
                    throw CommandLineOptions.Invalid(description: "the soak started more replicas than it has tokens")
                }
                let kubeconfig = try EmulatorHarness.kubeconfig(server: "http://127.0.0.1:\(kube.port)")
                let identity = "replica-\(tokenCursor)"
                var command = controller + Self.lease + ["--lease-identity=\(identity)", "--lease-namespace=default"]
                command += [
                    "--http-address=127.0.0.1:\(Self.opsPort(tokenCursor))", "--debounce=100ms", "--resync-interval=20s",
                    "--kube-read-timeout=6s", "--kube-request-timeout=3s",
                    "--cloudflare-request-timeout=3s",
                ]
                var environment = healthSettings.merging([
                    "KUBECONFIG": kubeconfig, "CF_API_TOKEN": Self.tokens[tokenCursor], "CF_API_URL": cloudflareURL,
                    "DNS_NAME": Self.shared, "NODE_NAME_TEMPLATE": "{node}.nodes.example.com", "NODE_SELECTOR": "role!=batch",
                    "SERVING_PODS": "www/app=nginx",
                ]) { $1 }
                if let bind {
                    environment["CF_API_TOKEN"] = nil
                    environment["CF_API_URL"] = nil
                    environment.merge(
                        [
                            "PROVIDER": "rfc2136", "RFC2136_SERVER": "127.0.0.1:\(bind.port)", "RFC2136_ZONE": Self.zone,
                            "RFC2136_TSIG_KEY_NAME": bind.keyName, "RFC2136_TSIG_SECRET": bind.secret,
                        ], uniquingKeysWith: { $1 })
                }
                let process = try ManagedProcess(command[0], Array(command.dropFirst()), environment: environment)
                replicas.append((process, tokenCursor, identity))
                tokenCursor += 1
            }
            try startReplica()
            try startReplica()

            // Per-node names a CNAME blocks: the shared name carries the node, its own name does not.
            var blocked: Set<String> = []
            func desired() -> Set<String> {
                var records: Set<String> = []
                for (name, node) in model where node.eligible {
                    records.insert("\(Self.shared) \(node.address)")
                    if !blocked.contains(name) { records.insert("\(name).nodes.example.com \(node.address)") }
                }
                return records
            }
            var foreignRecords = foreign
            var foreignIDs = Set(foreign.compactMap { $0["id"]?.string })
            // Windows in which a thief held the Lease: nobody may write then.
            var stolenWindows: [(from: Double, to: Double)] = []
            var cnameDone = false
            // Every name a replica may have written: the shared name and each per-node name ever used.
            var everNames: Set<String> = [Self.shared, "n-anchor-0.nodes.example.com", "n-anchor-1.nodes.example.com"]
            /// With BIND: the owned A records (listed in this owner's marker), read as a resolver would.
            func bindOwned(_ client: RFC2136Client) async -> Set<String>? {
                let names = everNames.sorted()
                var questions: [(name: WireName, type: DNSType)] = []
                for name in names {
                    guard let wire = try? WireName(name) else { continue }
                    questions += [(wire, .a), (OwnershipMarker.markerName(for: wire), .txt)]
                }
                guard let answers = try? await client.lookup(questions) else { return nil }
                var owned: Set<String> = []
                for (offset, name) in names.enumerated() {
                    let claims =
                        answers[offset * 2 + 1].records.compactMap(OwnershipMarker.read).first { $0.owner == "default" }?.values ?? []
                    for record in answers[offset * 2].records {
                        if let value = AddressData.decode(record.rdata), claims.contains("A \(value)") { owned.insert("\(name) \(value)") }
                    }
                }
                return owned
            }
            func currentOwned() async -> Set<String> {
                if let lookups { return await bindOwned(lookups) ?? [] }
                return actual().owned
            }
            func actual() -> (owned: Set<String>, all: [JSON]) {
                let all = cloudflare.records(zone: Self.zone)
                let owned = all.filter { !foreignIDs.contains($0["id"]?.string ?? "") && $0["type"]?.string == "A" }
                return (Set(owned.compactMap { r in r["name"]?.string.flatMap { n in r["content"]?.string.map { "\(n) \($0)" } } }), all)
            }

            /// Who holds the replicas' Lease, as the API server has it.
            func leaseHolder() -> String? {
                kube.emulator.objects("leases").first { $0[path: ["metadata", "name"]]?.string == "kube-node-dns" }?[
                    path: ["spec", "holderIdentity"]]?.string
            }
            /// Waits (up to 60 s) until a running replica leads, its last reconcile succeeded and none is in progress,
            /// neither of its watches is backing off, and the provider is up: a timed fault then measures the
            /// controller, not an earlier round's fault still in its retries (a 5xx burst worked through with backoff
            /// once took 6.6 s; a pod watch backing off after watches that closed at once, 3.0 s, seed 544673). The
            /// timed faults disarm what earlier rounds armed and nothing met yet (a 5xx for the next requests) first.
            func leaderSettled() async -> Bool {
                await Bench.waitUntil(timeout: 60, every: .milliseconds(50)) {
                    guard !cloudflare.inOutage else { return false }
                    guard let leader = replicas.first(where: { $0.identity == leaseHolder() && $0.process.isRunning }),
                        let status = try? JSON(parsing: HealthScenario.fetch("/status?format=json", port: Self.opsPort(leader.token)))
                    else { return false }
                    let peers = status["peers"]?.array?.compactMap(\.string)
                    let inProgress = peers?.contains { $0.contains("in progress") } ?? true
                    // A watch waiting out its backoff (after watches that closed at once, say) reads no change meanwhile.
                    let backingOff = peers?.contains { $0.contains("is backing off") } ?? true
                    return status["role"]?.string == "leader" && status[path: ["lastReconcile", "failuresInARow"]]?.int == 0
                        && status[path: ["lastReconcile", "result"]]?.string != "error" && !inProgress && !backingOff
                }
            }

            /// Waits until the owned records satisfy `condition`, checking every 10 ms.
            func ownedUntil(timeout: Double, _ condition: (Set<String>) -> Bool) async -> Bool {
                let until = Date().addingTimeInterval(timeout)
                while Date() < until {
                    if condition(await currentOwned()) { return true }
                    try? await Task.sleep(for: .milliseconds(10))
                }
                return false
            }
            /// Keeps each running replica's whole log in /tmp for a violation's reader, printing its last lines.
            func saveReplicaLogs(lastLines: Int) {
                for replica in replicas where replica.process.isRunning {
                    let path = "/tmp/soak-\(replica.identity).log"
                    let lines = replica.process.lines
                    try? lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
                    let tail = lines.suffix(lastLines).joined(separator: "\n")
                    Bench.log("--- \(replica.identity): full log in \(path)" + (lastLines > 0 ? "; last lines:\n" + tail : ""))
                }
            }
            var returns: [Double] = []
            var nginxOuts: [String: [Double]] = [:]
            var events = 0
            var faults: [String: Int] = [:]
            var convergence: [Double] = []
            var violations: [String] = []
            var records = 0
            var peakMemory = 0
            let deadline = Date().addingTimeInterval(Double(seconds))
            var outageDone = false
            while Date() < deadline {
                // One fault...
                var fault = ""
                let roll = Int.random(in: 0..<20, using: &random)
                if let bind, [3, 4, 5, 6, 7, 13, 14].contains(roll) {
                    switch roll {
                    case 3, 4:
                        await bind.stop()
                        try await bind.start()
                        fault = "BIND restarted"
                    case 5:
                        await bind.stop()
                        try await Task.sleep(for: .seconds(5))
                        try await bind.start()
                        fault = "BIND down for 5 s"
                    case 6:
                        // Someone else's record joins the shared name's RRset: kept, and never touched.
                        let address = "192.0.2.\(100 + (faults["foreign record added"] ?? 0) % 50)"
                        try bind.nsupdate(["update add \(Self.shared) 300 A \(address)"])
                        fault = "foreign record added"
                    case 13 where !cnameDone:
                        cnameDone = true
                        try bind.nsupdate(["update add n-cname.nodes.example.com 300 CNAME elsewhere.example.net."])
                        bindForeign["n-cname.nodes.example.com CNAME"] = bind.dig("n-cname.nodes.example.com", "CNAME")
                        blocked.insert("n-cname")
                        model["n-cname"] = try makeNode("n-cname", address: "198.51.100.250")
                        everNames.insert("n-cname.nodes.example.com")
                        put("n-cname", model["n-cname"]!)
                        fault = "CNAME on a managed name"
                    default:
                        // Drift: an owned record deleted behind the controller's back (repaired at the next resync).
                        if let victim = (await currentOwned()).sorted().first {
                            let parts = victim.split(separator: " ")
                            try bind.nsupdate(["update delete \(parts[0]) A \(parts[1])"])
                        }
                        fault = "owned record deleted behind its back"
                    }
                }
                switch fault.isEmpty ? roll : -1 {
                case -1:
                    break
                case 0:
                    kube.emulator.dropWatches()
                    fault = "watches dropped"
                case 1:
                    kube.emulator.compactNow()
                    kube.emulator.dropWatches()
                    fault = "history compacted (410)"
                case 2:
                    await kube.stop()
                    await kube.start()
                    fault = "Kubernetes API restarted"
                case 3:
                    cloudflare.faults.inject(status: 429, count: 6, retryAfter: 1)
                    fault = "429 storm"
                case 4:
                    cloudflare.faults.inject(status: 503, count: 4)
                    fault = "5xx burst"
                case 5:
                    cloudflare.faults.setDelay(milliseconds: 400)
                    kube.emulator.faults.setDelay(milliseconds: 200)
                    fault = "slow responses"
                case 6:
                    cloudflare.failNextBatches(1)
                    fault = "failing batch"
                case 7 where !outageDone:
                    outageDone = true
                    cloudflare.outage(seconds: min(60, Double(seconds) / 5))
                    fault = "Cloudflare outage"
                case 8, 7:
                    // Kill the leader outright (no Lease release), then bring a fresh replica up.
                    let holder = leaseHolder()
                    if let index = replicas.firstIndex(where: { $0.identity == holder && $0.process.isRunning }) {
                        replicas[index].process.signal(SIGKILL)
                        killed.insert(replicas[index].process.pid)
                        try startReplica()
                        fault = "leader SIGKILLed"
                    } else {
                        kube.emulator.dropWatches()
                        fault = "watches dropped"
                    }
                case 11:
                    // A half-open connection: the next watches get their headers, then nothing.
                    kube.emulator.stallNextWatches(2)
                    kube.emulator.dropWatches()
                    fault = "stalled watches"
                case 12:
                    kube.emulator.closeNextWatchesAtOnce(4)
                    kube.emulator.dropWatches()
                    fault = "watches closing at once"
                case 13 where !cnameDone:
                    // A CNAME on the per-node name of a node about to join: that name is blocked, nothing else.
                    cnameDone = true
                    if let record = cloudflare.seed(
                        zone: Self.zone, type: "CNAME", name: "n-cname.nodes.example.com", content: "elsewhere.example.net",
                        ttl: 300)
                    {
                        foreignRecords.append(record)
                        foreignIDs.insert(record["id"]?.string ?? "")
                        blocked.insert("n-cname")
                        model["n-cname"] = try makeNode("n-cname", address: "198.51.100.250")
                        put("n-cname", model["n-cname"]!)
                    }
                    fault = "CNAME on a managed name"
                case 15:
                    // A DaemonSet rollout step (maxUnavailable 1): the last step's node gets its new nginx, then the
                    // next node's nginx terminates. The anchors keep theirs, so the shared name never empties.
                    let churned = model.keys.filter { !$0.hasPrefix("n-anchor") }.sorted()
                    for name in churned where model[name]?.pod == .terminating {
                        model[name]!.pod = .ready
                        put(name, model[name]!)
                    }
                    if let name = churned.first(where: { model[$0]?.pod == .ready }) {
                        model[name]!.pod = .terminating
                        put(name, model[name]!)
                    }
                    fault = "nginx rollout step"
                case 16:
                    fault = "kubelet died and came back"
                    // A node's kubelet dies: Kubernetes marks it Unknown after its grace period, and DNS follows.
                    // It comes back: DNS must have it within 1 s of its nginx's Ready, though the lifecycle
                    // controller lifts its unreachable:NoExecute taint only on its next monitor pass.
                    guard
                        let name = model.keys.filter({ !$0.hasPrefix("n-anchor") && model[$0]!.eligible && !blocked.contains($0) })
                            .sorted().randomElement(using: &random)
                    else { break }
                    let address = model[name]!.address
                    // Both bounds are the node lifecycle's and the controller's, not an outage's, nor an earlier
                    // round's fault still armed: seed 266528 once armed a Cloudflare drip that the departure's write
                    // met, and the return waited out two 3 s deadlines behind it (6.8 s). Those are disarmed first.
                    cloudflare.disarmFaults()
                    kube.emulator.faults.disarm()
                    kube.emulator.disarmWatchFaults()
                    guard await leaderSettled() else {
                        fault += " (skipped: no settled leader)"
                        break
                    }
                    kube.emulator.startKubelet(name)
                    kube.emulator.killKubelet(name)
                    model[name]!.kubeletDead = true
                    let bound = (Self.lifecycle.gracePeriod + Self.lifecycle.monitorPeriod).inSeconds + 30
                    guard await ownedUntil(timeout: bound, { !$0.contains("\(Self.shared) \(address)") }) else {
                        violations.append("\(name) still published \(bound) s after its kubelet died")
                        break
                    }
                    kube.emulator.reviveKubelet(name)
                    kube.emulator.mutatePod(namespace: "www", "nginx-\(name)") { NodeFixtures.setPodReady(&$0, true) }
                    let serving = Date()
                    model[name]!.kubeletDead = false
                    if await ownedUntil(timeout: 30, { $0.contains("\(Self.shared) \(address)") }) {
                        let back = Date().timeIntervalSince(serving)
                        returns.append(back)
                        if back > Self.returnBound {
                            violations.append(String(format: "%@ was back in DNS %.2f s after it was Ready and serving again", name, back))
                            saveReplicaLogs(lastLines: 0)
                        }
                    } else {
                        violations.append("\(name) not back in DNS 30 s after it was Ready and serving again")
                    }
                case 9, 10:
                    // A node's nginx dies (SIGKILL) or hangs (SIGSTOP) while Kubernetes still calls the node Ready:
                    // the health checks must take it out of DNS within fall x interval + timeout + 1 s. It comes back
                    // later, in the churn.
                    let state = roll == 9 ? NginxState.dead : .hung
                    fault = roll == 9 ? "nginx killed" : "nginx hung"
                    guard
                        let name = model.keys.filter({ !$0.hasPrefix("n-anchor") && model[$0]!.eligible && !blocked.contains($0) })
                            .sorted().randomElement(using: &random)
                    else { break }
                    let record = "\(Self.shared) \(model[name]!.address)"
                    guard await ownedUntil(timeout: 30, { $0.contains(record) }) else {
                        violations.append("\(name) was not published before its nginx was \(state)")
                        break
                    }
                    // The bound is for a health verdict, not for a provider's outage or a leader's takeover, nor for an
                    // earlier round's fault still armed: those are disarmed, and the write it makes meets none.
                    cloudflare.disarmFaults()
                    let settled = await leaderSettled()
                    if !settled {
                        try await setNginx(name, state)
                        fault += " (untimed: no settled leader)"
                        break
                    }
                    let started = Date()
                    try await setNginx(name, state)
                    let interval = goDurationSeconds(healthSettings["HEALTH_CHECK_INTERVAL"] ?? "1s") ?? 1
                    let bound = 2 * interval + (goDurationSeconds(healthSettings["HEALTH_CHECK_TIMEOUT"] ?? "1s") ?? 1) + 1
                    if await ownedUntil(timeout: 30, { !$0.contains(record) }) {
                        let out = Date().timeIntervalSince(started)
                        nginxOuts[fault, default: []].append(out)
                        if out > bound {
                            violations.append(String(format: "%@: %@ left DNS after %.2f s (bound %.1f s)", fault, name, out, bound))
                            saveReplicaLogs(lastLines: 0)
                        }
                    } else {
                        violations.append("\(fault): \(name) still published 30 s later")
                    }
                case 17 where bind == nil:
                    fault = "write answered without its result"
                    // Cloudflare applies a node's record but answers {"success":true,"result":null}; the node then
                    // goes NotReady. The record must go within 10 s (the resync is 20 s away): the write was read back.
                    guard
                        let name = model.keys.filter({
                            !$0.hasPrefix("n-anchor") && !model[$0]!.eligible && !model[$0]!.kubeletDead && model[$0]!.nginx == .up
                        })
                        .sorted().randomElement(using: &random)
                    else { break }
                    var node = model[name]!
                    (node.ready, node.cordoned, node.batch, node.pod, node.departing) = (true, false, false, .ready, nil)
                    if model.contains(where: { $0.key != name && $0.value.address == node.address }) { break }
                    cloudflare.answerNextBatchesVaguely(1)
                    model[name] = node
                    put(name, node)
                    let record = "\(Self.shared) \(node.address)"
                    guard await ownedUntil(timeout: 60, { $0.contains(record) }) else {
                        violations.append("\(name) never reached DNS after a vague write answer")
                        break
                    }
                    model[name]!.ready = false
                    put(name, model[name]!)
                    if !(await ownedUntil(timeout: 10, { !$0.contains(record) })) {
                        violations.append("\(name) stayed published 10 s after it went NotReady: a vague write answer was trusted")
                    }
                case 18 where bind == nil:
                    // Cloudflare sends its next answers a byte every 50 ms: each is cut off at the 3 s deadline.
                    cloudflare.faults.drip(matching: "/dns_records", count: 2, bytes: 1, interval: .milliseconds(50))
                    fault = "Cloudflare answers dripping"
                case 19:
                    // The next node list drips: cut off at the 3 s deadline, and read again.
                    kube.emulator.faults.drip(matching: "limit=", count: 1, bytes: 1, interval: .milliseconds(50))
                    kube.emulator.compactNow()
                    kube.emulator.dropWatches()
                    fault = "node list dripping"
                case 13, 14:
                    // A write held up by Retry-After while a thief takes the Lease: the old leader must drop it.
                    cloudflare.faults.inject(status: 429, count: 1, retryAfter: 2)
                    if let thiefHolds = await stealLease(kube.emulator) { stolenWindows.append(thiefHolds) }
                    fault = "Lease stolen mid-write"
                default:
                    kube.emulator.faults.inject(status: 500, count: 2, retryAfter: 1)
                    fault = "Kubernetes 500s"
                }
                faults[fault, default: 0] += 1
                let verbose = ProcessInfo.processInfo.environment["SOAK_VERBOSE"] != nil
                if verbose { Bench.log("\(WireTime.micros()) fault: \(fault)") }
                // ...and some churn.
                for _ in 0..<Int.random(in: 2...6, using: &random) {
                    let names = model.keys.filter { !$0.hasPrefix("n-anchor") }.sorted()
                    let op = names.isEmpty || model.count < 5 ? 0 : Int.random(in: 0..<13, using: &random)
                    if op == 0 || (op == 1 && model.count < 12) {
                        guard model.count < 12 else { continue }
                        nextNode += 1
                        let name = "n-\(nextNode)"
                        model[name] = try makeNode(name, address: "198.51.100.\(10 + nextNode % 200)")
                        everNames.insert("\(name).nodes.example.com")
                        put(name, model[name]!)
                    } else if let name = names.randomElement(using: &random) {
                        var node = model[name]!
                        // A node whose kubelet is dead posts nothing: only its deletion can happen to it.
                        if node.kubeletDead && op != 1 { continue }
                        switch op {
                        case 1:
                            model[name] = nil
                            kube.emulator.deleteNode(name)
                            await removeNginx(name)
                            events += 1
                            continue
                        case 12:
                            // The node's nginx: a dead or hung one comes back; a live one dies or hangs, untimed.
                            let next: NginxState =
                                node.nginx != .up ? .up : Bool.random(using: &random) ? .dead : .hung
                            try await setNginx(name, next)
                            events += 1
                            continue
                        case 2: node.ready = false
                        case 3: node.ready = true
                        case 4: node.cordoned.toggle()
                        case 5: node.batch.toggle()
                        case 6: node.address = "203.0.113.\(Int.random(in: 1...250, using: &random))"
                        // The node's nginx: readiness flips, a delete (terminating), and its replacement.
                        case 7: node.pod = node.pod == .ready ? .notReady : .ready
                        case 8: node.pod = node.pod == .terminating ? .ready : .terminating
                        case 9: node.pod = .ready
                        // A departure announced (any of the six taints), or withdrawn.
                        case 10:
                            node.departing =
                                node.departing == nil
                                ? EligibilityPolicy.departureTaints.map(\.key).randomElement(using: &random) : nil
                        default: node.ready.toggle()
                        }
                        // Two nodes never share an address in this model.
                        if model.contains(where: { $0.key != name && $0.value.address == node.address }) { continue }
                        model[name] = node
                        put(name, node)
                    }
                    events += 1
                }
                if verbose {
                    Bench.log(
                        "\(WireTime.micros()) model: "
                            + model.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.address)\($0.value.eligible ? "" : "(out)")" }
                            .joined(separator: " "))
                }
                let changed = Date()
                if fault == "slow responses" {
                    try await Task.sleep(for: .seconds(2))
                    cloudflare.faults.setDelay(milliseconds: 0)
                    kube.emulator.faults.setDelay(milliseconds: 0)
                }
                // Converged within the bound? (An outage or a killed leader takes longer: both are in the bound.)
                let want = desired()
                var converged = false
                if lookups != nil {
                    let until = Date().addingTimeInterval(90)
                    while Date() < until {
                        if await currentOwned() == want {
                            converged = true
                            break
                        }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                } else {
                    converged = await Bench.waitUntil(timeout: 90) { actual().owned == want }
                }
                if converged {
                    convergence.append(Date().timeIntervalSince(changed))
                } else {
                    let have = await currentOwned()
                    violations.append("not converged 90 s after \(fault): want \(want.sorted()), have \(have.sorted())")
                    saveReplicaLogs(lastLines: 8)
                }
                records += want.count
                for replica in replicas where replica.process.isRunning {
                    peakMemory = max(peakMemory, replica.process.memoryKiB()?.peak ?? 0)
                }
            }

            // Final invariants.
            if let bind {
                if await currentOwned() != desired() { violations.append("final state differs from the model") }
                for (key, lines) in bindForeign {
                    let parts = key.split(separator: " ")
                    let now = bind.dig(String(parts[0]), parts.count > 1 ? String(parts[1]) : "A")
                    if now != lines { violations.append("foreign records at \(key) changed: \(lines) -> \(now)") }
                }
                // The foreign A records on the shared name (the seeded one and those added by the faults) are all
                // still there, at their TTL of 300.
                let sharedLines = bind.dig(Self.shared, "A")
                let foreignAdded = (faults["foreign record added"] ?? 0)
                let expectedForeign = Set(["192.0.2.200"] + (0..<foreignAdded).map { "192.0.2.\(100 + $0 % 50)" })
                for address in expectedForeign where !sharedLines.contains("\(Self.shared). 300 IN A \(address)") {
                    violations.append("the foreign record \(Self.shared) A \(address) changed or went: \(sharedLines)")
                }
                if !bind.dig("n-anchor-1.nodes.example.com", "A").contains("n-anchor-1.nodes.example.com. 300 IN A 192.0.2.201") {
                    violations.append("the foreign record on n-anchor-1's name changed or went")
                }
            }
            let (owned, all) = bind == nil ? actual() : (desired(), [])
            if bind == nil && owned != desired() { violations.append("final state differs from the model") }
            for record in foreignRecords where bind == nil && !all.contains(record) {
                violations.append("foreign record changed or deleted: \(record.serialized())")
            }
            let touched = cloudflare.exchanges.filter { exchange in
                exchange.method != "GET"
                    && foreignIDs.contains { exchange.path.contains($0) || (exchange.body?.serialized().contains($0) ?? false) }
            }
            if !touched.isEmpty { violations.append("\(touched.count) requests named a foreign record") }
            var seen: Set<String> = []
            for record in all {
                let key = [record["name"]?.string, record["type"]?.string, record["content"]?.string].compactMap { $0 }.joined(
                    separator: " ")
                if !seen.insert(key).inserted { violations.append("duplicate record \(key)") }
            }
            for replica in replicas where !replica.process.isRunning && !killed.contains(replica.process.pid) {
                violations.append("\(replica.identity) exited by itself: \(replica.process.lines.suffix(3))")
            }
            // One writer at a time: when the writer changes from A to B and back to A, A's return must come at
            // least a lease duration (4 s) after B began, i.e. in a later lease period, never alongside B.
            let writes = cloudflare.exchanges.filter { $0.method != "GET" }.compactMap { w in w.tokenIndex.map { ($0, w.at) } }
            var runs: [(writer: Int, first: Double)] = []
            for (writer, at) in writes where runs.last?.writer != writer { runs.append((writer, at)) }
            for index in runs.indices.dropFirst(2)
            where runs[index].writer == runs[index - 2].writer && runs[index].first - runs[index - 1].first < 4 {
                violations.append("replicas \(runs[index - 1].writer) and \(runs[index].writer) wrote in the same lease period")
            }
            for window in stolenWindows {
                let during = cloudflare.exchanges.filter {
                    $0.method != "GET" && $0.status == 200 && $0.at > window.from + 1.5 && $0.at < window.to
                }
                if !during.isEmpty { violations.append("\(during.count) writes while a thief held the Lease") }
            }
            if peakMemory > 96 * 1024 { violations.append("a replica's VmHWM reached \(peakMemory / 1024) MiB") }
            for replica in replicas { replica.process.signal(SIGTERM) }
            for replica in replicas { _ = await replica.process.waitForExit() }
            await kube.stop()

            let sorted = convergence.sorted()
            print("soak: \(seconds) s, seed \(seed)")
            print("node events: \(events)")
            print(
                "faults: \(faults.values.reduce(0, +)) ("
                    + faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
            print(
                String(
                    format: "convergence after the last change or fault: p50 %.2f s, max %.2f s (%d checks)",
                    percentile(sorted, 0.5), sorted.last ?? 0, sorted.count))
            for (fault, times) in nginxOuts.sorted(by: { $0.key < $1.key }) {
                print(
                    String(
                        format: "%@ -> out of DNS: p50 %.2f s, max %.2f s (%d times; Kubernetes still called the node Ready)",
                        fault, percentile(times.sorted(), 0.5), times.max() ?? 0, times.count))
            }
            if !returns.isEmpty {
                print(
                    String(
                        format: "kubelet returns: back in DNS after Ready and serving: max %.3f s (%d returns; bound %.1f s)",
                        returns.max() ?? 0, returns.count, Self.returnBound))
            }
            print(
                "records checked: \(records); "
                    + (bind == nil ? "writers in turn: \(runs.count); " : "records read from BIND with queries; ")
                    + "peak VmHWM of a replica: \(peakMemory / 1024) MiB")
            for violation in violations { print("VIOLATION: \(violation)") }
            print("violations: \(violations.count)")
            return violations.isEmpty
        }
    }
}
