import Emulators
import Foundation

/// Everything measured at one cluster size.
struct SizeResult: Sendable {
    var size: Int
    var startSeconds: [Double] = []
    var startRequests: [String: Int] = [:]
    var reactions: [Double] = []
    /// Reactions to a serving pod's readiness (with --pods).
    var podReactions: [Double] = []
    /// A revived node's return: from its kubelet's Ready=True (with --pods, its nginx's Ready) to the write.
    var revivals: [Double] = []
    /// How many of those returns reached DNS while the lifecycle controller's NoExecute taint was still on.
    var revivalsBeforeTheLateLift = 0
    var heartbeatCPUPercent = 0.0
    var heartbeatProviderCalls = 0
    var heartbeatEvents = 0
    var steadySeconds = 0
    var steadyRequests: [String: Int] = [:]
    var memory: [(String, Int, Int)] = []  // scenario, VmRSS KiB, VmHWM KiB
    var leakEvents = 0
    var leakHWMBefore = 0
    var leakHWMAfter = 0
    var problems: [String] = []
    /// One node's JSON as the API server stores and lists it (managedFields included).
    var nodeBytes = 0
    var threads = 0

    var json: JSON {
        [
            "nodes": .int(Int64(size)),
            "start_seconds_median": .double(median(startSeconds)), "start_runs": .int(Int64(startSeconds.count)),
            "start_requests": .object(startRequests.mapValues { .int(Int64($0)) }),
            "reaction_p50_seconds": .double(percentile(reactions, 0.5)),
            "reaction_p99_seconds": .double(percentile(reactions, 0.99)),
            "reaction_max_seconds": .double(reactions.max() ?? 0), "reactions": .int(Int64(reactions.count)),
            "reaction_seconds": .array(reactions.map { .double($0) }),
            "revival_p50_seconds": .double(percentile(revivals, 0.5)),
            "revival_p99_seconds": .double(percentile(revivals, 0.99)), "revivals": .int(Int64(revivals.count)),
            "revivals_before_the_late_lift": .int(Int64(revivalsBeforeTheLateLift)),
            "pod_reaction_p50_seconds": .double(percentile(podReactions, 0.5)),
            "pod_reaction_p99_seconds": .double(percentile(podReactions, 0.99)),
            "heartbeat_cpu_percent": .double(heartbeatCPUPercent), "heartbeat_events": .int(Int64(heartbeatEvents)),
            "heartbeat_provider_calls": .int(Int64(heartbeatProviderCalls)),
            "steady_seconds": .int(Int64(steadySeconds)),
            "steady_requests": .object(steadyRequests.mapValues { .int(Int64($0)) }),
            "memory_kib": .array(memory.map { ["scenario": .string($0.0), "rss": .int(Int64($0.1)), "hwm": .int(Int64($0.2))] }),
            "leak_events": .int(Int64(leakEvents)),
            "leak_hwm_before_kib": .int(Int64(leakHWMBefore)), "leak_hwm_after_kib": .int(Int64(leakHWMAfter)),
            "problems": .array(problems.map { .string($0) }),
        ]
    }
}

func median(_ values: [Double]) -> Double { percentile(values, 0.5) }

/// Nearest-rank percentile.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// The kind of a Cloudflare request, for counting.
func requestKind(_ exchange: CloudflareEmulator.Exchange) -> String {
    let path = exchange.path
    if path.hasSuffix("/batch") { return "batch" }
    if path.hasSuffix("/tokens/verify") { return "verify" }
    if path.hasSuffix("/zones") { return "zones" }
    if path.contains("/dns_records") { return exchange.method == "GET" ? "read" : "write" }
    return "other"
}

func countKinds(_ exchanges: [CloudflareEmulator.Exchange]) -> [String: Int] {
    exchanges.reduce(into: [:]) { $0[requestKind($1), default: 0] += 1 }
}

extension Bench {
    static let zone = "example.com"
    static let sharedName = "k.example.com"
    static let template = "{node}.nodes.example.com"
    static let token = "bench-token"
    static let cap = 12

    static func nodeName(_ index: Int) -> String { "node-\(index)" }
    /// The benchmark's node number `index`, shaped as `--node-shape` says.
    static func node(_ index: Int, shape: String) -> JSON {
        shape == "small"
            ? NodeFixtures.node(nodeName(index), external: [address(index)])
            : NodeFixtures.kubeletNode(nodeName(index), external: [address(index)], index: index)
    }
    static func podName(_ index: Int) -> String { "nginx-\(index)" }
    /// Addresses from 198.18.0.0/15, the range set aside for benchmarks.
    static func address(_ index: Int) -> String { "198.\(18 + index / 65536).\((index / 256) % 256).\(index % 256)" }

    /// The whole set of measurements at one size; the last start run's controller stays up for the rest.
    static func measure(size: Int, settings: Settings) async throws -> SizeResult {
        var result = SizeResult(size: size)
        for run in 0..<max(1, settings.startRuns) {
            let last = run == max(1, settings.startRuns) - 1
            let kube = KubeAPIEmulator()
            for index in 0..<size { kube.putNode(node(index, shape: settings.nodeShape)) }
            if run == 0, let stored = kube.objects("nodes").first {
                result.nodeBytes = Array(stored.serialized().utf8).count
            }
            if settings.pods {
                kube.createNamespace("www")
                for index in 0..<size { kube.putPod(NodeFixtures.pod(podName(index), node: nodeName(index)), namespace: "www") }
            }
            // Cloudflare's own rate limit stays on: the controller must live within it.
            let cloudflare = CloudflareEmulator(options: .init(zones: [zone], tokens: [.init(token)]))
            let run = try await EmulatorHarness.withEmulators(kube: kube, cloudflare: cloudflare) { env -> SizeResult in
                var result = SizeResult(size: size)
                let controller = try launch(env, size: size, settings: settings)
                defer { controller.signal(SIGKILL) }
                let started = Date().timeIntervalSince1970
                let expected = (size > 3 ? size : 0) + min(size, cap)
                // The emulator applies a batch before it logs the exchange: wait for both.
                let complete = { cloudflare.recordCount(zone: zone) >= expected && cloudflare.isQuiet }
                guard await waitUntil(timeout: 120, complete) else {
                    result.problems.append("start: \(cloudflare.recordCount(zone: zone)) of \(expected) records after 120 s")
                    return result
                }
                let exchanges = cloudflare.exchanges
                let lastWrite = exchanges.last { requestKind($0) == "batch" }?.at ?? Date().timeIntervalSince1970
                result.startSeconds.append(lastWrite - started)
                result.startRequests = countKinds(exchanges)
                let firstWrite = exchanges.first { requestKind($0) == "batch" }?.at ?? lastWrite
                let firstRequest = exchanges.first?.at ?? lastWrite
                log(
                    "start run \(run + 1): \(String(format: "%.3f", lastWrite - started)) s, \(exchanges.count) requests"
                        + String(format: " (first request at %.3f s, first write at %.3f s)", firstRequest - started, firstWrite - started))
                guard last else { return result }
                result.memory.append(("start", controller.memoryKiB()?.rss ?? 0, controller.memoryKiB()?.peak ?? 0))
                try await scenarios(env, controller: controller, size: size, settings: settings, into: &result)
                if !controller.isRunning { result.problems.append("the controller exited: \(controller.lines.suffix(5))") }
                return result
            }
            let starts = result.startSeconds + run.startSeconds
            let problems = result.problems + run.problems
            let nodeBytes = result.nodeBytes
            if last { result = run }
            result.nodeBytes = nodeBytes
            result.startSeconds = starts
            result.problems = problems
        }
        return result
    }

    static func launch(_ env: EmulatorHarness.Running, size: Int, settings: Settings) throws -> ManagedProcess {
        let kubeconfig = try EmulatorHarness.kubeconfig(server: env.kubeURL)
        var environment = [
            "KUBECONFIG": kubeconfig, "CF_API_TOKEN": token, "CF_API_URL": env.cloudflareURL, "DNS_NAME": sharedName,
            "RESYNC_INTERVAL": "\(settings.resyncSeconds)s",
        ]
        if size > 3 { environment["NODE_NAME_TEMPLATE"] = template }
        if settings.pods { environment["SERVING_PODS"] = "www/app=nginx" }
        let substitutions = [
            "{kubeconfig}": kubeconfig, "{cloudflare_url}": env.cloudflareURL, "{token}": token, "{dns_name}": sharedName,
            "{node_name_template}": size > 3 ? template : "",
        ]
        let command = settings.controller.map { word in
            substitutions.reduce(word) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
        }
        return try ManagedProcess(command[0], Array(command.dropFirst()), environment: environment)
    }

    /// Polls `condition` every `period` (a millisecond unless given); false after `timeout` seconds.
    static func waitUntil(timeout: Double, every period: Duration = .milliseconds(1), _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: period)
        }
        return condition()
    }

    static func scenarios(
        _ env: EmulatorHarness.Running, controller: ManagedProcess, size: Int, settings: Settings, into result: inout SizeResult
    ) async throws {
        let kube = env.kube
        let cloudflare = env.cloudflare

        // Reaction: single changes in a cycle, each timed from the emulator applying it to the write that shows it.
        for step in 0..<settings.reactions {
            // Each change comes after a quiet period longer than the controller's collapse window, as a node's
            // failure does: a change hard on the heels of the last one would share its follow-up by design.
            try await Task.sleep(for: .milliseconds(settings.reactionGapMilliseconds))
            let index = (step / 6) % size
            let name = nodeName(index)
            let present: Bool
            switch step % 6 {
            case 0:
                kube.mutateNode(name) { NodeFixtures.setReady(&$0, "False") }
                present = false
            case 1:
                kube.mutateNode(name) { NodeFixtures.setReady(&$0, "True") }
                present = true
            case 2:
                kube.mutateNode(name) { NodeFixtures.setUnschedulable(&$0, true) }
                present = false
            case 3:
                kube.mutateNode(name) { NodeFixtures.setUnschedulable(&$0, false) }
                present = true
            case 4:
                kube.deleteNode(name)
                present = false
            default:
                kube.putNode(node(index, shape: settings.nodeShape))
                present = true
            }
            let applied = Date().timeIntervalSince1970
            let seen = cloudflare.exchangeCount
            let shows = {
                size > 3
                    ? cloudflare.hasRecord(zone: zone, name: "\(name).nodes.example.com") == present
                    : cloudflare.hasRecord(zone: zone, name: sharedName, content: address(index)) == present
            }
            let written = { shows() && cloudflare.isQuiet }
            guard await waitUntil(timeout: 30, written) else {
                result.problems.append("reaction \(step): the change to \(name) never reached Cloudflare")
                continue
            }
            let write = cloudflare.exchanges(from: seen).last { requestKind($0) == "batch" && $0.status == 200 }
            result.reactions.append((write?.at ?? Date().timeIntervalSince1970) - applied)
        }
        // Pod-driven reaction: a node's nginx goes NotReady, then Ready again, timed the same way.
        for step in 0..<(settings.pods ? settings.reactions : 0) {
            try await Task.sleep(for: .milliseconds(settings.reactionGapMilliseconds))
            let index = (step / 2 + 1) % size
            let name = nodeName(index)
            let present = step % 2 == 1
            kube.mutatePod(namespace: "www", podName(index)) { NodeFixtures.setPodReady(&$0, present) }
            let applied = Date().timeIntervalSince1970
            let seen = cloudflare.exchangeCount
            let written = {
                (size > 3
                    ? cloudflare.hasRecord(zone: zone, name: "\(name).nodes.example.com") == present
                    : cloudflare.hasRecord(zone: zone, name: sharedName, content: address(index)) == present)
                    && cloudflare.isQuiet
            }
            guard await waitUntil(timeout: 30, written) else {
                result.problems.append("pod reaction \(step): the change to \(podName(index)) never reached Cloudflare")
                continue
            }
            let write = cloudflare.exchanges(from: seen).last { requestKind($0) == "batch" && $0.status == 200 }
            result.podReactions.append((write?.at ?? Date().timeIntervalSince1970) - applied)
        }
        try await revivals(env, size: size, settings: settings, into: &result)
        result.memory.append(("reaction", controller.memoryKiB()?.rss ?? 0, controller.memoryKiB()?.peak ?? 0))

        // Heartbeats: every node's status heartbeat, every period, spread over the period as kubelets are.
        let callsBefore = cloudflare.exchangeCount
        let cpuBefore = controller.cpuSeconds() ?? 0
        let heartbeatStart = Date()
        let slices = 10
        var beat = 0
        while Date().timeIntervalSince(heartbeatStart) < Double(settings.heartbeatSeconds) {
            beat += 1
            let stamp = "2026-01-01T\(String(format: "%02d:%02d:%02d", beat / 3600 % 24, beat / 60 % 60, beat % 60))Z"
            for slice in 0..<slices {
                for index in stride(from: slice, to: size, by: slices) {
                    kube.mutateNode(nodeName(index)) { NodeFixtures.setHeartbeat(&$0, stamp) }
                    result.heartbeatEvents += 1
                }
                try await Task.sleep(for: .milliseconds(settings.heartbeatPeriod * 1000 / slices))
            }
        }
        let heartbeatWall = Date().timeIntervalSince(heartbeatStart)
        result.heartbeatCPUPercent = ((controller.cpuSeconds() ?? 0) - cpuBefore) / heartbeatWall * 100
        // Resync reads fall in this window too; what heartbeats must never cause is a write.
        result.heartbeatProviderCalls = cloudflare.exchanges(from: callsBefore).filter { requestKind($0) != "read" }.count
        result.memory.append(("heartbeats", controller.memoryKiB()?.rss ?? 0, controller.memoryKiB()?.peak ?? 0))

        // Steady state: nothing changes.
        let steadyFrom = cloudflare.exchangeCount
        try await Task.sleep(for: .seconds(settings.steadySeconds))
        result.steadySeconds = settings.steadySeconds
        result.steadyRequests = countKinds(cloudflare.exchanges(from: steadyFrom))
        // Drift repair: each resync reads each shared name once, plus once for all per-node names; never more.
        let readsPerResync = size > 3 ? 2 : 1
        let resyncs = settings.steadySeconds / max(1, settings.resyncSeconds)
        let reads = result.steadyRequests["read"] ?? 0
        if reads > (resyncs + 1) * readsPerResync || (resyncs >= 2 && reads < (resyncs - 1) * readsPerResync) {
            result.problems.append(
                "steady: \(reads) reads over \(settings.steadySeconds) s with a \(settings.resyncSeconds) s resync; want about \(resyncs * readsPerResync)"
            )
        }
        if result.steadyRequests.keys.contains(where: { $0 != "read" }) {
            result.problems.append("steady: requests other than reads: \(result.steadyRequests)")
        }
        result.memory.append(("steady", controller.memoryKiB()?.rss ?? 0, controller.memoryKiB()?.peak ?? 0))
        result.threads = controller.threadCount() ?? 0

        // Leak check: many node events (heartbeats and Ready flips that change nothing lasting), paced.
        result.leakHWMBefore = controller.memoryKiB()?.peak ?? 0
        let perSecond = 5000
        var sent = 0
        while sent < settings.leakEvents {
            let batchStart = Date()
            for _ in 0..<min(perSecond / 10, settings.leakEvents - sent) {
                let stamp = "2026-02-01T00:00:\(String(format: "%02d", sent % 60))Z"
                kube.mutateNode(nodeName(sent % size)) { NodeFixtures.setHeartbeat(&$0, stamp) }
                sent += 1
            }
            let elapsed = Date().timeIntervalSince(batchStart)
            if elapsed < 0.1 { try await Task.sleep(for: .milliseconds(Int((0.1 - elapsed) * 1000))) }
        }
        // A controller under test tells nothing about how far it has read its watch, so memory is read after a
        // fixed 2 s pause for the last events to drain (a measurement settle time, not a synchronisation).
        try await Task.sleep(for: .seconds(2))
        result.leakEvents = sent
        result.leakHWMAfter = controller.memoryKiB()?.peak ?? 0
        result.memory.append(("leak check", controller.memoryKiB()?.rss ?? 0, controller.memoryKiB()?.peak ?? 0))
    }

    /// Revived → back in DNS: a node's kubelet dies, the node lifecycle marks it Unknown (the harness runs the monitor
    /// pass as if the grace period had passed, rather than waiting 50 s each time), DNS drops it; then the kubelet
    /// comes back, and the return is timed from its Ready=True (with --pods, from its nginx's Ready) to the write.
    static func revivals(
        _ env: EmulatorHarness.Running, size: Int, settings: Settings, into result: inout SizeResult
    ) async throws {
        let kube = env.kube
        let cloudflare = env.cloudflare
        let grace = (kube.options.nodeLifecycle ?? NodeLifecycleSettings()).gracePeriod
        for step in 0..<settings.revivals {
            let index = (step * 7 + 2) % size
            let name = nodeName(index)
            let shows = { (present: Bool) in
                size > 3
                    ? cloudflare.hasRecord(zone: zone, name: "\(name).nodes.example.com") == present
                    : cloudflare.hasRecord(zone: zone, name: sharedName, content: address(index)) == present
            }
            kube.startKubelet(name)
            try await Task.sleep(for: .milliseconds(settings.reactionGapMilliseconds))
            kube.killKubelet(name)
            kube.runMonitorPass(after: grace + .seconds(1))
            guard await waitUntil(timeout: 30, { shows(false) && cloudflare.isQuiet }) else {
                result.problems.append("revival \(step): \(name) never left DNS after its kubelet died")
                continue
            }
            try await Task.sleep(for: .milliseconds(settings.reactionGapMilliseconds))
            let seen = cloudflare.exchangeCount
            kube.reviveKubelet(name)
            if settings.pods {
                try await Task.sleep(for: .milliseconds(50))  // the readiness probe passes a moment later
                kube.mutatePod(namespace: "www", podName(index)) { NodeFixtures.setPodReady(&$0, true) }
            }
            let ready = Date().timeIntervalSince1970
            guard await waitUntil(timeout: 30, { shows(true) && cloudflare.isQuiet }) else {
                result.problems.append("revival \(step): \(name) never came back to DNS")
                continue
            }
            if kube.taints(of: name).contains("node.kubernetes.io/unreachable:NoExecute") { result.revivalsBeforeTheLateLift += 1 }
            let write = cloudflare.exchanges(from: seen).last { requestKind($0) == "batch" && $0.status == 200 }
            result.revivals.append((write?.at ?? Date().timeIntervalSince1970) - ready)
        }
    }

    static func table(_ results: [SizeResult], settings: Settings) -> String {
        func ms(_ seconds: Double) -> String { String(format: "%.0f ms", seconds * 1000) }
        func mib(_ kib: Int) -> String { String(format: "%.1f", Double(kib) / 1024) }
        func kinds(_ counts: [String: Int]) -> String {
            counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        let unit = settings.pods ? " nodes, 1 pod each" : " nodes"
        var lines = ["| measure | " + results.map { "\($0.size)\(unit)" }.joined(separator: " | ") + " |"]
        lines.append("|---|" + results.map { _ in "---|" }.joined())
        func row(_ label: String, _ value: (SizeResult) -> String) {
            lines.append("| \(label) | " + results.map(value).joined(separator: " | ") + " |")
        }
        row("one node's JSON as listed (node shape: \(settings.nodeShape))") { "\($0.nodeBytes) bytes" }
        row("controller threads (after steady)") { "\($0.threads)" }
        row("start to complete DNS (median of \(settings.startRuns))") { String(format: "%.2f s", median($0.startSeconds)) }
        row("start: Cloudflare requests") { "\($0.startRequests.values.reduce(0, +)) (\(kinds($0.startRequests)))" }
        row("reaction p50 / p99 / max (\(settings.reactions) changes)") {
            "\(ms(percentile($0.reactions, 0.5))) / \(ms(percentile($0.reactions, 0.99))) / \(ms($0.reactions.max() ?? 0))"
        }
        if settings.revivals > 0 {
            row("revived → back in DNS p50 / p99 / max (\(settings.revivals) revivals; the monitor pass lifts NoExecute every 5 s)") {
                "\(ms(percentile($0.revivals, 0.5))) / \(ms(percentile($0.revivals, 0.99))) / \(ms($0.revivals.max() ?? 0))"
                    + " (\($0.revivalsBeforeTheLateLift) before the lift)"
            }
        }
        if settings.pods {
            row("pod reaction p50 / p99 / max (\(settings.reactions) changes)") {
                "\(ms(percentile($0.podReactions, 0.5))) / \(ms(percentile($0.podReactions, 0.99))) / \(ms($0.podReactions.max() ?? 0))"
            }
        }
        row("heartbeats: controller CPU (\(settings.heartbeatSeconds) s, every \(settings.heartbeatPeriod) s)") {
            String(format: "%.2f%% of a core (%d events)", $0.heartbeatCPUPercent, $0.heartbeatEvents)
        }
        row("heartbeats: Cloudflare calls other than resync reads") { "\($0.heartbeatProviderCalls)" }
        row("steady state (\(settings.steadySeconds) s, resync every \(settings.resyncSeconds) s): Cloudflare requests") {
            kinds($0.steadyRequests)
        }
        row("steady state: reads per resync (limit: shared names + 1)") { result in
            // A window of M seconds with one resync every R seconds holds up to ceil(M / R) of them.
            let period = max(1, settings.resyncSeconds)
            let resyncs = max(1, (settings.steadySeconds + period - 1) / period)
            return String(format: "%.1f (limit %d)", Double(result.steadyRequests["read"] ?? 0) / Double(resyncs), result.size > 3 ? 2 : 1)
        }
        for scenario in ["start", "reaction", "heartbeats", "steady", "leak check"] {
            row("VmRSS / VmHWM after \(scenario) (MiB)") { result in
                result.memory.first { $0.0 == scenario }.map { "\(mib($0.1)) / \(mib($0.2))" } ?? "-"
            }
        }
        row("VmHWM growth over the leak check") {
            $0.leakHWMBefore == 0
                ? "-"
                : String(
                    format: "%+.1f%% (%d events)", Double($0.leakHWMAfter - $0.leakHWMBefore) / Double($0.leakHWMBefore) * 100,
                    $0.leakEvents)
        }
        return lines.joined(separator: "\n")
    }
}
