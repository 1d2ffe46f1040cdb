import Emulators
import Foundation
import NodeDNSCore

/// Active health checks against real nginx, one per node address, inside a private network namespace: the node
/// addresses (203.0.113.N, 2001:db8::N) live on that namespace's `lo`, so no probe can leave the machine. Kills
/// (SIGKILL), hangs (SIGSTOP), a 503, a flapping check and every nginx gone at once, each timed or counted;
/// exits 1 on a violated bound. Run it as `unshare --net sh -c 'ip link set lo up && exec kube-node-dns-bench
/// --health-scenario'` (lo goes up before the first Foundation `Process`, whose run loop needs loopback).
struct HealthScenario {
    var nodes = 3
    var kills = 4
    var controller: String
    /// The kit's settings, read from deploy/kube-node-dns/deployment.yaml: HEALTH_CHECK and its interval and timeout.
    var kit: [String: String] = [:]
    var interval: Double { goDurationSeconds(kit["HEALTH_CHECK_INTERVAL"] ?? "2s") ?? 2 }
    var timeout: Double { goDurationSeconds(kit["HEALTH_CHECK_TIMEOUT"] ?? "1s") ?? 1 }
    let fall = 2.0
    let dnsName = "www.example.com"
    let token = "health-scenario-token"

    /// Node `index`'s addresses: 203.0.113.1-3 for the three nodes with an nginx of their own, then 198.18.0.0/15
    /// (RFC 2544's benchmark range) for the nodes that share one nginx; 2001:db8::N for IPv6.
    static func address(_ index: Int) -> String {
        index < ownServers ? "203.0.113.\(index + 1)" : "198.18.\(index / 256).\(index % 256)"
    }
    static func address6(_ index: Int) -> String { "2001:db8::\(String(index + 1, radix: 16))" }
    /// Node `index`'s addresses: dual-stack for the nodes with an nginx of their own, IPv4 for the shared ones (as
    /// most clusters' nodes are; the CPU row is then per node).
    static func addresses(_ index: Int) -> [String] {
        index < ownServers ? [address(index), address6(index)] : [address(index)]
    }
    /// Nodes with an nginx of their own (the ones killed, hung, 503ed and flapped); the rest share one nginx.
    static let ownServers = 3
    /// Seconds of steady state over which the controller's CPU is measured (0: not measured).
    var steadySeconds = 0
    /// Overrides the kit's HEALTH_CHECK_INTERVAL (the CPU row at 2 s).
    var intervalOverride: String?

    /// Refuses to run where a probe could reach a real network: the namespace must hold nothing but `lo`.
    static func refuseOutsideAPrivateNamespace() throws {
        // This process's own namespace (/sys/class/net shows the namespace that mounted /sys, not ours).
        let table = try String(contentsOfFile: "/proc/self/net/dev", encoding: .utf8)
        let interfaces = table.split(separator: "\n").dropFirst(2).compactMap {
            $0.split(separator: ":").first.map { $0.trimmingCharacters(in: .whitespaces) }
        }.sorted()
        guard interfaces == ["lo"] else {
            throw CommandLineOptions.Invalid(
                description:
                    "--health-scenario runs only in a private network namespace with nothing but lo (found \(interfaces.joined(separator: ", "))): run it as `unshare --net sh -c 'ip link set lo up && exec kube-node-dns-bench --health-scenario'`"
            )
        }
        guard getuid() == 0 else { throw CommandLineOptions.Invalid(description: "--health-scenario needs root (ip addr add)") }
        // Foundation's run loop makes its wake-up sockets over loopback at its first Process: lo must be up before.
        guard table.contains("lo:"), (try? String(contentsOfFile: "/sys/class/net/lo/operstate", encoding: .utf8)) != nil else {
            throw CommandLineOptions.Invalid(description: "no lo in this namespace")
        }
    }

    static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandLineOptions.Invalid(description: "ip \(arguments.joined(separator: " ")) failed")
        }
    }

    /// One node's nginx: the kit's nginx.conf, listening on the node's addresses only (port 80 unless said), with a
    /// switch file that makes `/nginx-health` answer 503. The soak runs one per node too, on 127.x addresses.
    final class NodeServer: @unchecked Sendable {
        let directory: String
        var process: ManagedProcess?
        var failSwitch: String { directory + "/fail" }

        convenience init(index: Int, kitConfig: String, listenOn indices: [Int]? = nil, tls: TestCertificates? = nil) throws {
            try self.init(
                tag: "\(index)\(tls == nil ? "" : "-tls")", kitConfig: kitConfig,
                addresses: (indices ?? [index]).flatMap(HealthScenario.addresses), tls: tls)
        }

        /// `tls`: the https component's nginx.conf is given, and serves this certificate on the addresses' port 443.
        init(tag: String, kitConfig: String, addresses: [String], port: Int = 80, tls: TestCertificates? = nil) throws {
            directory = NSTemporaryDirectory() + "knd-health-\(getpid())-\(tag)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // The kit keeps everything nginx writes under /tmp (an emptyDir); here, under this node's directory.
            var config = kitConfig.replacingOccurrences(of: "/tmp/", with: directory + "/")
            func listen(_ port: Int, _ options: String) -> String {
                addresses.map { $0.contains(":") ? "listen [\($0)]:\(port)\(options);" : "listen \($0):\(port)\(options);" }
                    .joined(separator: "\n    ")
            }
            var replacements = [
                (
                    "listen 80 default_server;", listen(port, " default_server")
                ),
                ("pid \(directory)/nginx.pid;", "pid \(directory)/nginx.pid; daemon off; master_process off;"),
                ("access_log /dev/stdout;", "access_log off;"),
                // The shared nginx listens on every other node's two addresses: a connection for each, and room.
                ("worker_connections 1024;", "worker_connections \(max(1024, 4 * addresses.count + 1024));"),
                ("server swift-www-example.www.svc.cluster.local:80;", "server 127.0.0.1:9;"),
                ("      return 200 \"ok\\n\";", "      if (-f \(directory)/fail) { return 503; }\n      return 200 \"ok\\n\";"),
            ]
            if let tls {
                replacements += [
                    ("listen 443 ssl http2 default_server;", listen(443, " ssl http2 default_server")),
                    ("ssl_certificate /etc/nginx/tls/tls.crt;", "ssl_certificate \(tls.certificatePath);"),
                    ("ssl_certificate_key /etc/nginx/tls/tls.key;", "ssl_certificate_key \(tls.keyPath);"),
                ]
            }
            for (from, to) in replacements {
                guard config.contains(from) else {
                    throw CommandLineOptions.Invalid(description: "deploy/nginx/nginx.conf no longer has `\(from)`")
                }
                config = config.replacingOccurrences(of: from, with: to)
            }
            try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        }

        func start() throws {
            process = try ManagedProcess("/usr/sbin/nginx", ["-c", directory + "/nginx.conf", "-e", directory + "/error.log"])
        }

        func kill(_ signal: Int32) { process?.signal(signal) }

        func stop() async {
            guard let process else { return }
            process.signal(SIGCONT)
            process.signal(SIGKILL)
            _ = await process.waitForExit()
            self.process = nil
        }
    }

    /// The `{name: HEALTH_CHECK..., value: ...}` lines of the kit's Deployment.
    static func kitSettings() throws -> [String: String] {
        let deployment = try String(contentsOfFile: "deploy/kube-node-dns/deployment.yaml", encoding: .utf8)
        var settings: [String: String] = [:]
        for line in deployment.split(separator: "\n") where line.contains("{name: HEALTH_CHECK") {
            let parts = line.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, let name = parts[0].split(separator: ":").last,
                let value = parts[1].split(separator: ":", maxSplits: 1).last
            else { continue }
            settings[name.trimmingCharacters(in: .whitespaces)] = value.trimmingCharacters(in: CharacterSet(charactersIn: " }\""))
        }
        guard settings["HEALTH_CHECK"] == "http://{address}/nginx-health" else {
            throw CommandLineOptions.Invalid(description: "the kit's Deployment does not set HEALTH_CHECK=http://{address}/nginx-health")
        }
        return settings
    }

    /// "500ms", "1s" or "2m" in seconds.
    func run() async throws -> Bool {
        try Self.refuseOutsideAPrivateNamespace()
        var scenario = self
        scenario.kit = try Self.kitSettings()
        if let intervalOverride { scenario.kit["HEALTH_CHECK_INTERVAL"] = intervalOverride }
        print(
            "the kit's settings: \(scenario.kit.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")) (fall and rise 2); \(nodes) nodes, one nginx each with the kit's nginx.conf, on 203.0.113.N and 2001:db8::N"
        )
        return try await scenario.scenario()
    }

    private func scenario() async throws -> Bool {
        // Every address in one `ip -batch`.
        let batch = (0..<nodes).map {
            Self.addresses($0).map { $0.contains(":") ? "addr add \($0)/128 dev lo nodad" : "addr add \($0)/32 dev lo" }
                .joined(separator: "\n")
        }.joined(separator: "\n")
        let batchFile = NSTemporaryDirectory() + "knd-health-\(getpid())-addresses"
        try batch.write(toFile: batchFile, atomically: true, encoding: .utf8)
        try Self.run(["-batch", batchFile])
        let kitConfig = try String(contentsOfFile: "deploy/nginx/nginx.conf", encoding: .utf8)
        let servers = try (0..<min(nodes, Self.ownServers)).map { try NodeServer(index: $0, kitConfig: kitConfig) }
        let shared =
            nodes > Self.ownServers
            ? try NodeServer(index: nodes, kitConfig: kitConfig, listenOn: Array(Self.ownServers..<nodes)) : nil
        let everyServer = servers + [shared].compactMap { $0 }
        for server in everyServer { try server.start() }
        defer {
            for server in everyServer {
                server.process?.signal(SIGCONT)
                server.process?.signal(SIGKILL)
            }
        }
        let cf = CloudflareEmulator(options: .init(zones: ["example.com"], tokens: [.init(token)]))
        let violations = try await EmulatorHarness.withEmulators(cloudflare: cf) { env -> [String] in
            var violations: [String] = []
            for index in 0..<nodes {
                env.kube.putNode(
                    NodeFixtures.node("node-\(index)", external: Self.addresses(index)))
            }
            let kubeconfig = try EmulatorHarness.kubeconfig(server: env.kubeURL)
            /// The controller, with the kit's settings and `settings` over them.
            func launch(_ settings: [String: String] = [:]) throws -> ManagedProcess {
                try ManagedProcess(
                    self.controller,
                    [
                        "--dns-name=\(dnsName)", "--node-name-template={node}.nodes.example.com", "--kubeconfig=\(kubeconfig)",
                        "--cloudflare-api-url=\(env.cloudflareURL)",
                        "--http-address=127.0.0.1:18080", "--log-format=json", "--events=false",
                    ],
                    environment: kit.merging(["CF_API_TOKEN": token]) { $1 }.merging(settings) { $1 })
            }
            var controller = try launch()
            defer { controller.signal(SIGKILL) }
            // Every node has a name of its own ({node}.nodes.example.com), so every address is in DNS once published
            // (the shared name carries a subset above --max-addresses-per-name).
            func published() -> Set<String> { Set(cf.records(zone: "example.com").compactMap { $0["content"]?.string }) }
            func shared() -> Set<String> {
                Set(cf.records(zone: "example.com").filter { $0["name"]?.string == dnsName }.compactMap { $0["content"]?.string })
            }
            func writes() -> Int { cf.exchanges.filter { $0.method != "GET" }.count }
            let all = Set((0..<nodes).flatMap(Self.addresses))
            guard await Self.waitUntil(timeout: 120, { published() == all }) else {
                violations.append("the nodes were never all published: \(published().count) \(controller.lines.suffix(5))")
                return violations
            }
            if steadySeconds > 0 {
                // The cost of checking: the controller's CPU over a steady period, nothing else changing.
                let checks = Self.checksDone()
                let cpu = controller.cpuSeconds() ?? 0
                let before = writes()
                try await Task.sleep(for: .seconds(steadySeconds))
                let used = (controller.cpuSeconds() ?? 0) - cpu
                let (user, system) = Self.userAndSystemSeconds(controller.pid)
                let done = Self.checksDone() - checks
                let share = used / Double(steadySeconds)
                print(
                    "checking \(nodes) nodes (\(all.count) addresses) every \(Self.seconds(interval)) for \(steadySeconds) s: \(done) checks, controller CPU \(String(format: "%.2f", used)) s = \(String(format: "%.1f", share * 100)) % of a core, \(String(format: "%.0f", used / Double(max(done, 1)) * 1e6)) µs a check (over its life so far: user \(String(format: "%.2f", user)) s, kernel \(String(format: "%.2f", system)) s, the kernel's part including both ends of each loopback connection); writes: \(writes() - before)"
                )
            }
            // Steady state: checks pass every second, and nothing is written.
            let before = writes()
            let checks = Self.checksDone()
            guard await Self.waitUntil(timeout: 30, { Self.checksDone() >= checks + 5 * 2 * nodes }) else {
                violations.append("health checks did not keep running")
                return violations
            }
            if writes() != before { violations.append("steady state wrote \(writes() - before) times") }
            print("steady state: \(5 * 2 * nodes)+ checks passed, writes: \(writes() - before)")

            let bound = fall * interval + timeout + 1
            for (label, signal, revive) in [("SIGKILL", SIGKILL, "restart"), ("SIGSTOP", SIGSTOP, "SIGCONT")] {
                var outTimes: [Double] = []
                var backTimes: [Double] = []
                for kill in 0..<kills {
                    let index = kill % servers.count
                    let server = servers[index]
                    let gone = all.subtracting(Self.addresses(index))
                    // A random moment within the check interval, so the kills do not all land just after a round.
                    try await Task.sleep(for: .milliseconds(Int.random(in: 0..<Int(interval * 1000))))
                    let started = Date()
                    server.kill(signal)
                    guard await Self.waitUntil(timeout: 30, { published() == gone }) else {
                        violations.append("\(label) of node-\(index)'s nginx: never left DNS")
                        return violations
                    }
                    outTimes.append(Date().timeIntervalSince(started))
                    let revived = Date()
                    if signal == SIGKILL {
                        await server.stop()
                        try server.start()
                    } else {
                        server.kill(SIGCONT)
                    }
                    guard await Self.waitUntil(timeout: 30, { published() == all }) else {
                        violations.append("node-\(index) never came back after \(revive)")
                        return violations
                    }
                    backTimes.append(Date().timeIntervalSince(revived))
                }
                let worst = outTimes.max() ?? 0
                if worst > bound {
                    violations.append("\(label): out of DNS after \(String(format: "%.2f", worst)) s, over the bound \(bound) s")
                }
                print(
                    "nginx \(label), \(kills) times at \(nodes) nodes: out of DNS p50 \(Self.seconds(median(outTimes))) p99 \(Self.seconds(percentile(outTimes, 0.99))) max \(Self.seconds(worst)) (bound: fall x interval + timeout + 1 s = \(Self.seconds(bound))); back after \(revive) p50 \(Self.seconds(median(backTimes)))"
                )
            }

            // A node whose nginx answers 503.
            _ = FileManager.default.createFile(atPath: servers[0].failSwitch, contents: nil)
            if !(await Self.waitUntil(timeout: 30, { published() == all.subtracting(Self.addresses(0)) })) {
                violations.append("a node answering 503 stayed in DNS")
            }
            let said503 = controller.lines.contains { $0.contains("node-0 left DNS: health check failed twice: HTTP 503") }
            if !said503 { violations.append("no 'node-0 left DNS: health check failed twice: HTTP 503' line") }
            try FileManager.default.removeItem(atPath: servers[0].failSwitch)
            if !(await Self.waitUntil(timeout: 30, { published() == all })) { violations.append("node-0 never came back after its 503") }
            print("nginx answering 503: left DNS and said \"health check failed twice: HTTP 503\": \(said503)")

            // A flapping check: never more than one write per transition.
            // Writes that carry node-1's address (in the request, or in the answer for a delete by id).
            func writesOfNode1() -> Int {
                cf.exchanges.filter {
                    $0.method != "GET"
                        && (($0.body?.serialized() ?? "") + ($0.response?.serialized() ?? "")).contains("\"\(Self.address(1))\"")
                }.count
            }
            let flapWrites = writesOfNode1()
            let flapLines = controller.lines.count
            for step in 0..<6 {
                if step % 2 == 0 {
                    _ = FileManager.default.createFile(atPath: servers[1].failSwitch, contents: nil)
                } else {
                    try? FileManager.default.removeItem(atPath: servers[1].failSwitch)
                }
                try await Task.sleep(for: .milliseconds(2500))
            }
            try? FileManager.default.removeItem(atPath: servers[1].failSwitch)
            _ = await Self.waitUntil(timeout: 30, { published() == all })
            let transitions = controller.lines.dropFirst(flapLines).filter {
                $0.contains("node-1 left DNS") || $0.contains("node-1 joined DNS")
            }.count
            let wrote = writesOfNode1() - flapWrites
            // A transition writes A and AAAA in one batch for Cloudflare: one write request per transition.
            if wrote > transitions { violations.append("a flapping node: \(wrote) writes for \(transitions) transitions") }
            print("flapping check (503 on and off every 2.5 s for 15 s): \(transitions) transitions, \(wrote) writes")

            // Every nginx gone at once: the likelier fault is the checker's own network; the name keeps its records.
            let sharedBefore = shared()
            for server in everyServer { server.kill(SIGKILL) }
            let loud = await Self.waitUntil(timeout: 30) {
                controller.lines.contains { $0.contains("every health check fails at once") }
            }
            if !loud { violations.append("every nginx gone: no loud line") }
            if shared() != sharedBefore { violations.append("every nginx gone: the name lost records: \(shared().sorted())") }
            let status = Self.fetch("/status")
            if !status.contains("EVERY PROBED NODE FAILS") { violations.append("/status does not say every probed node fails") }
            print("every nginx gone: \(dnsName) kept its \(shared().count) records; loud line: \(loud)")

            // The other two forms, against the kit's https component (deploy/components/https/nginx.conf) on every
            // node, serving a test CA's certificate for the site's name: https (the name verified, sent as SNI, over
            // IPv4 and IPv6), and tcp (a connection to port 443 is enough). One controller at a time, each fresh.
            controller.signal(SIGKILL)
            _ = await controller.waitForExit()
            let certificates = try TestCertificates.make(subjectAltNames: "DNS:\(dnsName)")
            let httpsConfig = try String(contentsOfFile: "deploy/components/https/nginx.conf", encoding: .utf8)
            let tlsServers = try (0..<min(nodes, Self.ownServers)).map {
                try NodeServer(index: $0, kitConfig: httpsConfig, tls: certificates)
            }
            let tlsShared =
                nodes > Self.ownServers
                ? try NodeServer(index: nodes, kitConfig: httpsConfig, listenOn: Array(Self.ownServers..<nodes), tls: certificates) : nil
            let everyTLSServer = tlsServers + [tlsShared].compactMap { $0 }
            for server in everyTLSServer { try server.start() }
            defer { for server in everyTLSServer { server.process?.signal(SIGKILL) } }
            for (form, settings) in [
                ("https", ["HEALTH_CHECK": "https://{address}/nginx-health", "HEALTH_CHECK_CA_FILE": certificates.caPath]),
                ("tcp", ["HEALTH_CHECK": "tcp://{address}:443"]),
            ] {
                controller = try launch(settings)
                // Two rounds in which every address passes, so the names are this controller's doing.
                guard await Self.waitUntil(timeout: 60, { published() == all && Self.checksDone(result: "pass") >= 2 * all.count })
                else {
                    violations.append("\(form): the nodes' checks never all passed: \(controller.lines.suffix(5))")
                    return violations
                }
                let server = tlsServers[0]
                let started = Date()
                server.kill(SIGKILL)
                guard await Self.waitUntil(timeout: 30, { published() == all.subtracting(Self.addresses(0)) }) else {
                    violations.append("\(form): node-0's nginx killed, and it never left DNS")
                    return violations
                }
                let out = Date().timeIntervalSince(started)
                if out > bound {
                    violations.append("\(form): out of DNS after \(Self.seconds(out)), over the bound \(Self.seconds(bound))")
                }
                await server.stop()
                try server.start()
                guard await Self.waitUntil(timeout: 30, { published() == all }) else {
                    violations.append("\(form): node-0 never came back after its nginx restarted")
                    return violations
                }
                print(
                    "\(form) checks (\(settings["HEALTH_CHECK"]!), the https component's nginx.conf, IPv4 and IPv6): node-0's nginx SIGKILLed, out of DNS after \(Self.seconds(out)) (bound \(Self.seconds(bound))), back after a restart"
                )
                controller.signal(SIGKILL)
                _ = await controller.waitForExit()
            }
            return violations
        }
        for violation in violations { print("VIOLATION: \(violation)") }
        print("health scenario: \(violations.isEmpty ? "passed" : "FAILED")")
        return violations.isEmpty
    }

    static func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }

    /// A process's user and kernel CPU seconds so far (/proc/PID/stat).
    static func userAndSystemSeconds(_ pid: Int32) -> (Double, Double) {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")")
        else { return (0, 0) }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((Double(fields[11]) ?? 0) / ticks, (Double(fields[12]) ?? 0) / ticks)
    }

    /// Polls every 10 ms (reading thousands of records every millisecond would take the CPU the controller needs).
    static func waitUntil(timeout: Double, _ condition: () -> Bool) async -> Bool {
        await Bench.waitUntil(timeout: timeout, every: .milliseconds(10), condition)
    }

    /// A GET on the controller's ops port, with curl (empty on failure).
    static func fetch(_ path: String, port: Int = 18080) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "--max-time", "5", "http://127.0.0.1:\(port)" + path]
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return "" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// `kube_node_dns_health_checks_total` summed over results (or of one result), from the controller's /metrics.
    static func checksDone(result: String? = nil) -> Int {
        let prefix = "kube_node_dns_health_checks_total{" + (result.map { "result=\"\($0)\"" } ?? "")
        return fetch("/metrics").split(separator: "\n").filter { $0.hasPrefix(prefix) }.reduce(0) {
            $0 + (Int(Double($1.split(separator: " ").last ?? "0") ?? 0))
        }
    }
}
