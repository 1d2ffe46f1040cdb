import Emulators
import Foundation
import KubeNodeDNS

/// Measures a DNS controller between the two emulators: start-up, reaction to node changes, heartbeats,
/// steady state and memory, at several cluster sizes. The controller runs as a separate process from the
/// command line it is given, so any build, or any controller that speaks the same APIs, is measured alike.
@main
struct Bench {
    static let usage = """
        usage: kube-node-dns-bench [--controller "CMD ARGS..."] [--sizes 3,1000,5000] [--start-runs 3]
               [--reactions 50] [--heartbeat-seconds 60] [--steady-seconds 300] [--resync-seconds 60]
               [--leak-events 100000] [--reaction-gap-ms 250] [--pods] [--node-shape real|small]
               [--revivals 20] [--json FILE] [--quick] [--provider rfc2136]
        The controller gets KUBECONFIG, CF_API_TOKEN, CF_API_URL, DNS_NAME and (above 3 nodes)
        NODE_NAME_TEMPLATE in its environment; {kubeconfig}, {cloudflare_url}, {token}, {dns_name} and
        {node_name_template} in CMD are replaced too. Default CMD: the kube-node-dns binary beside this one.
        --provider rfc2136: start-up and reaction against a real BIND 9 (needs named and dig) instead of Cloudflare.
        --node-shape: real (default) lists nodes as a kubelet writes them, about 5 KB each with managedFields
        and images; small lists the name, one address and a Ready condition.
        --revivals: nodes whose kubelet dies and comes back through the emulated node lifecycle, each return timed.
        --quick: 3 nodes, 1 start run, 12 reactions, 4 revivals, 20 s of heartbeats, 5 s steady with a 2 s resync, 3,000 leak events (CI smoke).
        unshare --net sh -c 'ip link set lo up && exec kube-node-dns-bench --health-scenario [--nodes 3] [--kills 4]
               [--steady-seconds S] [--interval 2s]'
        Active health checks against one real nginx per node (the kit's nginx.conf) on 203.0.113.N and 2001:db8::N,
        inside a private network namespace it insists on: nginx SIGKILLed and SIGSTOPped (each time to leave DNS),
        a 503, a flapping check, every nginx gone. Exits 1 on a violated bound. Needs root and nginx. Above 3 nodes
        the others share one nginx; --steady-seconds measures the controller's CPU while it checks them all.
        kube-node-dns-bench --soak SECONDS [--seed N] [--traffic FILE.jsonl] [--controller "CMD"] [--provider rfc2136]
        The fault-injection soak: two replicas, node churn, faults on both APIs, the leader SIGKILLed;
        prints its counts and exits 1 on any violated invariant. With --provider rfc2136 the records live on a real
        BIND 9, and its faults are BIND restarts and outages, edits behind the controller's back and foreign records.
        kube-node-dns-bench --reaction-cost NODES [--reactions 20] [--only full|incremental]
        One node's change in the reconcile step alone, the full recomputation against the incremental step; run it
        under valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*Reaction*' to count instructions.
        kube-node-dns-bench --retry-scale FACTOR -- KUBE-NODE-DNS-FLAGS...
        The controller itself, as the kube-node-dns binary runs it, with every retry wait multiplied by FACTOR: the
        hostile-peer tests answer it 10,000 times in a minute instead of waiting out its real backoff.
        """

    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--retry-scale", arguments.count >= 3, arguments[2] == "--" {
            guard let factor = Double(arguments[1]), factor > 0, factor <= 1 else {
                FileHandle.standardError.write(Data("--retry-scale wants a factor above 0 and at most 1\n".utf8))
                exit(2)
            }
            await ControllerCommand.run(arguments: Array(arguments.dropFirst(3)), retryScale: factor)
            return
        }
        do {
            let options = try CommandLineOptions(
                arguments,
                known: [
                    "controller", "sizes", "start-runs", "reactions", "heartbeat-seconds", "steady-seconds", "resync-seconds",
                    "leak-events", "reaction-gap-ms", "node-shape", "revivals",
                    "json",
                    "soak", "seed", "traffic", "provider", "nodes", "kills", "interval", "reaction-cost", "only",
                ], booleans: ["help", "quick", "pods", "health-scenario"])
            if options.flag("help") {
                print(usage)
                return
            }
            let quick = options.flag("quick")
            var settings = Settings()
            settings.pods = options.flag("pods")
            settings.controller =
                options.last("controller").map { $0.split(separator: " ").map(String.init) }
                ?? [ManagedProcess.productsDirectory + "/kube-node-dns", "--http-address=off", "--log-level=warning"]
            if let size = options.last("reaction-cost") {
                guard let nodes = Int(size), nodes > 0 else {
                    throw CommandLineOptions.Invalid(description: "--reaction-cost wants a node count")
                }
                ReactionCost.run(
                    size: nodes, reactions: try options.int("reactions", default: 20), full: options.last("only") != "incremental",
                    incremental: options.last("only") != "full")
                return
            }
            if options.flag("health-scenario") {
                var scenario = HealthScenario(
                    nodes: try options.int("nodes", default: 3), kills: try options.int("kills", default: 4),
                    controller: settings.controller[0])
                scenario.steadySeconds = try options.int("steady-seconds", default: 0)
                scenario.intervalOverride = options.last("interval")
                exit(try await scenario.run() ? 0 : 1)
            }
            if let soakSeconds = options.last("soak") {
                guard let seconds = Int(soakSeconds), seconds > 0 else {
                    throw CommandLineOptions.Invalid(description: "--soak wants seconds")
                }
                let seed = UInt64(options.last("seed") ?? "") ?? UInt64.random(in: 1...999_999)
                let provider = options.last("provider") ?? "cloudflare"
                guard ["cloudflare", "rfc2136"].contains(provider) else {
                    throw CommandLineOptions.Invalid(description: "--provider wants cloudflare or rfc2136")
                }
                let soak = Soak(
                    seconds: seconds, seed: seed, trafficPath: options.last("traffic"), controller: settings.controller,
                    rfc2136: provider == "rfc2136")
                exit(try await soak.run() ? 0 : 1)
            }
            if quick {
                settings.sizes = [3]
                settings.startRuns = 1
                settings.reactions = 12
                settings.revivals = 4
                settings.heartbeatSeconds = 20
                settings.steadySeconds = 5
                settings.resyncSeconds = 2
                settings.leakEvents = 3000
            }
            if let sizes = options.last("sizes") { settings.sizes = sizes.split(separator: ",").compactMap { Int($0) } }
            settings.startRuns = try options.int("start-runs", default: settings.startRuns)
            settings.nodeShape = options.last("node-shape") ?? settings.nodeShape
            guard ["real", "small"].contains(settings.nodeShape) else {
                throw CommandLineOptions.Invalid(description: "--node-shape wants real or small")
            }
            settings.reactions = try options.int("reactions", default: settings.reactions)
            settings.revivals = try options.int("revivals", default: settings.revivals)
            if let provider = options.last("provider"), provider != "cloudflare" {
                guard provider == "rfc2136" else { throw CommandLineOptions.Invalid(description: "--provider wants cloudflare or rfc2136") }
                let table = try await BindBench.run(
                    sizes: settings.sizes, startRuns: settings.startRuns, reactions: settings.reactions,
                    reactionGapMilliseconds: settings.reactionGapMilliseconds, controller: settings.controller,
                    nodeShape: settings.nodeShape)
                print(table)
                exit(table.contains("problem at") ? 1 : 0)
            }
            settings.heartbeatSeconds = try options.int("heartbeat-seconds", default: settings.heartbeatSeconds)
            settings.steadySeconds = try options.int("steady-seconds", default: settings.steadySeconds)
            settings.resyncSeconds = try options.int("resync-seconds", default: settings.resyncSeconds)
            settings.leakEvents = try options.int("leak-events", default: settings.leakEvents)
            settings.reactionGapMilliseconds = try options.int("reaction-gap-ms", default: settings.reactionGapMilliseconds)
            var results: [SizeResult] = []
            for size in settings.sizes {
                log("== \(size) nodes")
                results.append(try await measure(size: size, settings: settings))
            }
            print(table(results, settings: settings))
            if let path = options.last("json") {
                try JSON.array(results.map(\.json)).serialized().write(toFile: path, atomically: true, encoding: .utf8)
            }
            if results.contains(where: { !$0.problems.isEmpty }) {
                for result in results { for problem in result.problems { print("problem at \(result.size) nodes: \(problem)") } }
                exit(1)
            }
        } catch {
            FileHandle.standardError.write(Data("kube-node-dns-bench: \(error)\n\(usage)\n".utf8))
            exit(2)
        }
    }

    struct Settings {
        var controller: [String] = []
        var sizes = [3, 1000, 5000]
        var startRuns = 3
        var reactions = 50
        /// Kubelet deaths and returns through the emulated node lifecycle, each return timed.
        var revivals = 20
        var heartbeatSeconds = 60
        var heartbeatPeriod = 10
        var steadySeconds = 300
        /// The controller's --resync-interval (as RESYNC_INTERVAL), so the steady window holds full re-reads.
        var resyncSeconds = 60
        /// One nginx pod per node, `SERVING_PODS=www/app=nginx`, and pod-driven reactions measured too.
        var pods = false
        var leakEvents = 100_000
        /// The quiet time before each measured change (longer than the default 100 ms collapse window).
        var reactionGapMilliseconds = 250
        /// `real`: nodes as a kubelet writes them, about 5 KB each (`NodeFixtures.kubeletNode`); `small`: the
        /// name, one address and a Ready condition, as the benchmarks used before.
        var nodeShape = "real"
    }

    static func log(_ line: String) { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
}
