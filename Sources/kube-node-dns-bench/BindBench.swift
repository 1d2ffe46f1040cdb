import Emulators
import Foundation
import Logging
import NodeDNSCore
import RFC2136DNS

/// Start-up and reaction with the RFC 2136 provider against a real BIND 9 (the Kubernetes side is the emulator, as
/// in the Cloudflare runs). A change counts as done when BIND answers with it, as a resolver would see it.
enum BindBench {
    static let zone = "example.com"

    struct Result: Sendable {
        var size: Int
        var startSeconds: [Double] = []
        var updates = 0
        var reactions: [Double] = []
        var rssKiB = 0
        var peakKiB = 0
        var problems: [String] = []
    }

    static func run(
        sizes: [Int], startRuns: Int, reactions: Int, reactionGapMilliseconds: Int, controller: [String], nodeShape: String
    ) async throws -> String {
        guard RealDNSServer.Kind.bind.isInstalled else {
            throw CommandLineOptions.Invalid(
                description: "--provider rfc2136 needs BIND 9: apt-get install \(RealDNSServer.debianPackages)")
        }
        var results: [Result] = []
        for size in sizes {
            var result = Result(size: size)
            for run in 0..<max(1, startRuns) {
                let last = run == max(1, startRuns) - 1
                try await measure(
                    size: size, reactions: last ? reactions : 0, reactionGapMilliseconds: reactionGapMilliseconds,
                    controller: controller, nodeShape: nodeShape, into: &result)
            }
            results.append(result)
        }
        var lines = [
            "| RFC 2136, BIND 9 | " + results.map { "\($0.size) nodes" }.joined(separator: " | ") + " |",
            "|---|" + results.map { _ in "---" }.joined(separator: "|") + "|",
        ]
        func row(_ label: String, _ value: (Result) -> String) {
            lines.append("| \(label) | " + results.map(value).joined(separator: " | ") + " |")
        }
        func ms(_ seconds: Double) -> String { String(format: "%.0f ms", seconds * 1000) }
        row("start to complete DNS (median of runs)") { String(format: "%.2f s", median($0.startSeconds)) }
        row("start runs") { $0.startSeconds.map { String(format: "%.2f", $0) }.joined(separator: ", ") }
        row("UPDATE messages at start (last run)") { "\($0.updates)" }
        row("reaction p50 / p99 / max (\(reactions) changes)") {
            $0.reactions.isEmpty
                ? "-" : "\(ms(percentile($0.reactions, 0.5))) / \(ms(percentile($0.reactions, 0.99))) / \(ms($0.reactions.max()!))"
        }
        row("VmRSS / VmHWM after the reactions") { String(format: "%.1f / %.1f MiB", Double($0.rssKiB) / 1024, Double($0.peakKiB) / 1024) }
        for result in results { for problem in result.problems { lines.append("problem at \(result.size) nodes: \(problem)") } }
        return lines.joined(separator: "\n")
    }

    static func measure(
        size: Int, reactions: Int, reactionGapMilliseconds: Int, controller command: [String], nodeShape: String,
        into result: inout Result
    ) async throws {
        let server = try await RealDNSServer(kind: .bind, zone: zone)
        defer { server.kill() }
        let kube = KubeAPIEmulator()
        for index in 0..<size { kube.putNode(Bench.node(index, shape: nodeShape)) }
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let client = RFC2136Client(
            transport: DNSTransport(host: "127.0.0.1", port: server.port, timeout: 2), kind: .udp,
            zone: try WireName(zone), key: try TSIGKey(name: server.keyName, algorithm: .hmacSHA256, base64Secret: server.secret),
            logger: logger, now: { UInt64(Date().timeIntervalSince1970) })
        let before = result
        result = try await EmulatorHarness.serving({ try await kube.run(logger: EmulatorHarness.quietLogger, onReady: $0) }) {
            port -> Result in
            var result = before
            let kubeconfig = try EmulatorHarness.kubeconfig(server: "http://127.0.0.1:\(port)")
            var environment = [
                "KUBECONFIG": kubeconfig, "PROVIDER": "rfc2136", "RFC2136_SERVER": "127.0.0.1:\(server.port)",
                "RFC2136_ZONE": zone, "RFC2136_TSIG_KEY_NAME": server.keyName, "RFC2136_TSIG_SECRET": server.secret,
                "DNS_NAME": Bench.sharedName, "LOG_LEVEL": "info",
            ]
            if size > 3 { environment["NODE_NAME_TEMPLATE"] = Bench.template }
            let started = Date().timeIntervalSince1970
            let process = try ManagedProcess(command[0], Array(command.dropFirst()) + ["--log-level=info"], environment: environment)
            defer { process.signal(SIGKILL) }
            // Each record the first reconcile adds is logged once its UPDATE has been acknowledged.
            let expected = (size > 3 ? size : 0) + min(size, Bench.cap)
            func added() -> Int { process.lines.filter { $0.contains("dns: add ") }.count }
            guard
                await Bench.waitUntil(
                    timeout: Double(ProcessInfo.processInfo.environment["BENCH_START_TIMEOUT"] ?? "") ?? 120, { added() >= expected })
            else {
                result.problems.append(
                    "start: \(added()) of \(expected) records after 120 s: \(process.lines.filter { !$0.contains(" INFO ") }.prefix(12))")
                return result
            }
            result.startSeconds.append(Date().timeIntervalSince1970 - started)
            // Check with the server that they are all there.
            var names = [try WireName(Bench.sharedName)]
            if size > 3 { names += try (0..<size).map { try WireName("\(Bench.nodeName($0)).nodes.\(zone)") } }
            let lookups = try await client.lookup(names.map { ($0, .a) })
            let present = lookups.dropFirst().filter { !$0.records.isEmpty }.count + min(1, lookups[0].records.count)
            if present < names.count { result.problems.append("start: BIND answers for \(present) of \(names.count) names") }
            result.updates = (server.soaSerial ?? 1) - 1  // one serial step per applied UPDATE
            for step in 0..<reactions {
                try await Task.sleep(for: .milliseconds(reactionGapMilliseconds))
                let index = (step / 2) % size
                let ready = step % 2 == 1
                let name = size > 3 ? "\(Bench.nodeName(index)).nodes.\(zone)" : Bench.sharedName
                kube.mutateNode(Bench.nodeName(index)) { NodeFixtures.setReady(&$0, ready ? "True" : "False") }
                let applied = Date().timeIntervalSince1970
                let wire = try WireName(name)
                var done = false
                let deadline = applied + 30
                while Date().timeIntervalSince1970 < deadline {
                    let values = Set(
                        ((try? await client.lookup([(wire, .a)]))?.first?.records ?? []).compactMap { AddressData.decode($0.rdata) })
                    if values.contains(Bench.address(index)) == ready {
                        done = true
                        break
                    }
                }
                if done {
                    result.reactions.append(Date().timeIntervalSince1970 - applied)
                } else {
                    result.problems.append("reaction \(step): \(name) never changed")
                }
            }
            let memory = process.memoryKiB()
            result.rssKiB = memory?.rss ?? 0
            result.peakKiB = memory?.peak ?? 0
            return result
        }
    }
}
