import FoundationEssentials
import KubernetesAPI
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The controller's command line: parse flags and environment, build the controller, run it until SIGTERM. The
/// product's `main` is this; the hostile-peer tests run the same path with a `retryScale` below 1.
package enum ControllerCommand {
    package static func run(arguments: [String], retryScale: Double = 1) async {
        ProcessMemory.useOneArena()
        if arguments.contains("--help") || arguments.contains("-help") || arguments.contains("-h") {
            print(Configuration.helpText)
            return
        }
        if arguments.contains("--version") || arguments.contains("-version") {
            print(BuildInfo.versionLine)
            return
        }
        let config: Configuration
        do {
            var parsed = try Configuration.parse(arguments: arguments, environment: ProcessInfo.processInfo.environment)
            parsed.releaseStartupPages = true
            parsed.retryScale = retryScale
            config = parsed
        } catch {
            writeToStandardError("kube-node-dns: \(error)\n")
            exit(2)
        }
        // Before any client or server exists: they all take their threads from these singletons.
        Controller.useOneEventLoopThread()
        let secrets = config.secrets
        let level = config.logLevel
        LoggingSystem.bootstrap { label in
            ControllerLogHandler(label: label, level: level, json: config.logFormat == "json", secrets: secrets)
        }
        let logger = Logger(label: "kube-node-dns")
        do {
            let cluster = try ClusterConfig.resolve(kubeconfig: config.kubeconfig, context: config.kubeContext)
            let controller = try Controller.make(config: config, cluster: cluster, logger: logger)
            logger.info(
                "starting",
                metadata: [
                    "version": "\(BuildInfo.version)", "commit": "\(BuildInfo.commit)",
                    "names": "\(config.dnsNames.map(\.text).joined(separator: ","))", "cluster": "\(cluster.server)",
                    "owner": "\(config.ownerID)", "leaderElect": "\(config.leaderElect)", "dryRun": "\(config.dryRun)",
                ])
            // Flags, the kubeconfig, TLS and the clients are set up: their code is not needed again, and giving it
            // back now lowers the peak that the first full list and reconcile reach (the rest goes after them).
            ProcessMemory.releaseStartupPages()
            try await controller.run()
            // A first look before granting the token edit rights: what would be published, and why each node is in
            // or out.
            if config.dryRun && config.once { print(controller.statusText) }
            logger.info("stopped")
        } catch {
            logger.critical("cannot run: \(Redactor(secrets: secrets).redact("\(error)"))")
            exit(1)
        }
    }
}
