import Emulators
import Foundation
import KubernetesAPI
import Testing

/// Runs a Kubernetes emulator over HTTPS with a fresh test CA for the body's length.
func withTLSKubeEmulator<T: Sendable>(
    _ emulator: KubeAPIEmulator, _ body: @Sendable (Int, TestCertificates) async throws -> T
) async throws -> T {
    let certificates = try TestCertificates.make()
    let tls = try certificates.serverConfiguration()
    return try await EmulatorHarness.serving({
        try await emulator.run(tls: tls, logger: quietLogger, onReady: $0)
    }) { port in
        try await body(port, certificates)
    }
}

/// A client for the body's length, shut down however the body ends.
func withKubeClient<T: Sendable>(
    _ config: ClusterConfig, _ body: (KubeClient) async throws -> T
)
    async throws -> T
{
    let client = try KubeClient(config: config, logger: quietLogger)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

func temporaryDirectory(_ label: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
        "knd-\(label)-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The error a client's list gets, as text, or "" when the list succeeded.
func refusal(_ config: ClusterConfig) async throws -> String {
    try await withKubeClient(config) { client in
        do {
            _ = try await client.listAllNodes()
            return ""
        } catch {
            return "\(error)"
        }
    }
}

@Suite(.serialized) struct TransportTests {
    @Test func tlsIsVerifiedAgainstTheConfiguredCAAndRefusedWithoutIt() async throws {
        let emulator = KubeAPIEmulator()
        emulator.putNode(NodeFixtures.node("tls-node", external: ["203.0.113.9"]))
        try await withTLSKubeEmulator(emulator) { port, certificates in
            let server = "https://127.0.0.1:\(port)"
            let ca = Array(try Data(contentsOf: URL(fileURLWithPath: certificates.caPath)))
            let trusted = try KubeClient(
                config: ClusterConfig(server: server, caPEM: ca), logger: quietLogger)
            #expect(try await trusted.listAllNodes().nodes.map(\.name) == ["tls-node"])
            await trusted.shutdown()

            // No CA given (the system roots do not know ours), or a CA that did not sign the server's
            // certificate: both refused, with advice that names the kubeconfig field. (AsyncHTTPClient retries a
            // failed handshake until the 10 s connect timeout, so both run at once.)
            let other = try TestCertificates.make(name: "some other CA")
            let wrongCA = Array(try Data(contentsOf: URL(fileURLWithPath: other.caPath)))
            async let noCA = refusal(ClusterConfig(server: server))
            async let wrong = refusal(ClusterConfig(server: server, caPEM: wrongCA))
            for message in try await [noCA, wrong] {
                #expect(message.contains("certificate-authority"), "\(message)")
            }

            // Only a kubeconfig that says insecure-skip-tls-verify turns verification off.
            let skipping = try KubeClient(
                config: ClusterConfig(server: server, insecureSkipTLSVerify: true), logger: quietLogger)
            #expect(try await skipping.listAllNodes().nodes.count == 1)
            await skipping.shutdown()
        }
    }

    @Test func inClusterConfigUsesTheServiceAccountTokenCAAndNamespace() async throws {
        let emulator = KubeAPIEmulator(options: .init(token: "service-account-token"))
        try await withTLSKubeEmulator(emulator) { port, certificates in
            let directory = try temporaryDirectory("serviceaccount")
            try "service-account-token".write(
                toFile: directory + "/token", atomically: true, encoding: .utf8)
            try FileManager.default.copyItem(atPath: certificates.caPath, toPath: directory + "/ca.crt")
            try "dns-system\n".write(toFile: directory + "/namespace", atomically: true, encoding: .utf8)
            let environment = [
                "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": String(port),
            ]
            let config = try #require(
                try ClusterConfig.inCluster(environment: environment, directory: directory))
            #expect(config.namespace == "dns-system" && config.server == "https://127.0.0.1:\(port)")
            let client = try KubeClient(config: config, logger: quietLogger)
            #expect(try await client.listAllNodes().nodes.isEmpty)
            await client.shutdown()
            #expect(
                try ClusterConfig.inCluster(environment: [:], directory: directory) == nil, "outside a pod")
        }
    }

    @Test func execCredentialPluginSuppliesTheToken() async throws {
        let emulator = KubeAPIEmulator(options: .init(token: "from-the-plugin"))
        try await withKubeEmulator(emulator) { port in
            let directory = try temporaryDirectory("exec")
            let plugin = directory + "/fake-auth-plugin"
            try """
            #!/bin/sh
            # Prints an ExecCredential as gke-gcloud-auth-plugin does; KUBERNETES_EXEC_INFO must be set.
            [ -n "$KUBERNETES_EXEC_INFO" ] || exit 3
            echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"'"$PLUGIN_TOKEN"'"}}'
            """.write(toFile: plugin, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: plugin)
            let kubeconfig = directory + "/config"
            try """
            apiVersion: v1
            clusters:
            - name: c
              cluster: {server: 'http://127.0.0.1:\(port)'}
            contexts:
            - name: x
              context: {cluster: c, user: u}
            users:
            - name: u
              user:
                exec:
                  apiVersion: client.authentication.k8s.io/v1
                  command: ./fake-auth-plugin
                  env: [{name: PLUGIN_TOKEN, value: from-the-plugin}]
                  interactiveMode: Never
            current-context: x
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            let client = try KubeClient(
                config: try ClusterConfig.kubeconfig(path: kubeconfig), logger: quietLogger)
            #expect(try await client.listAllNodes().nodes.isEmpty, "the plugin's token was accepted")
            await client.shutdown()
        }
    }

    @Test func bookmarksAdvanceTheResourceVersionPastCompaction() async throws {
        let emulator = KubeAPIEmulator()
        emulator.putNode(NodeFixtures.node("quiet", external: ["203.0.113.1"]))
        try await withKubeEmulator(emulator) { port in
            try await withKubeClient(ClusterConfig(server: "http://127.0.0.1:\(port)")) { client in
                let start = try await client.listAllNodes().resourceVersion
                // Other objects move the global resourceVersion; no node changes, so a node watch sees nothing.
                for index in 0..<3 {
                    _ = try await client.createLease(
                        Lease(
                            name: "other-\(index)", namespace: "default", holderIdentity: "x",
                            leaseDurationSeconds: 15,
                            acquireTime: nil, renewTime: nil, leaseTransitions: 0))
                }
                struct Stop: Error { var resourceVersion: String }
                let bookmarked = try await withThrowingTaskGroup(of: String?.self) { group in
                    group.addTask {
                        do {
                            try await client.watchNodes(from: start, timeoutSeconds: 30) { event in
                                if case .bookmark(let resourceVersion) = event {
                                    throw Stop(resourceVersion: resourceVersion)
                                }
                                Issue.record("a node watch saw \(event) though no node changed")
                            }
                        } catch let stop as Stop {
                            return stop.resourceVersion
                        }
                        return nil
                    }
                    group.addTask {
                        #expect(await EmulatorHarness.eventually { emulator.openWatches == 1 })
                        emulator.bookmarkNow()
                        return nil
                    }
                    var found: String?
                    for try await value in group where value != nil { found = value }
                    return found
                }
                let resourceVersion = try #require(bookmarked.flatMap { Int($0) })
                #expect(
                    resourceVersion == Int(emulator.resourceVersion) && resourceVersion > Int(start)!,
                    "the bookmark carries the newest resourceVersion")
                emulator.compactNow()
                var expired = false
                try await client.watchNodes(from: start, timeoutSeconds: 1) { event in
                    if case .expired = event { expired = true }
                }
                #expect(expired, "the list's resourceVersion is gone after compaction")
                expired = false
                try await client.watchNodes(from: String(resourceVersion), timeoutSeconds: 1) { event in
                    if case .expired = event { expired = true }
                }
                #expect(!expired, "the bookmark's resourceVersion survives it: no relist needed")
            }
        }
    }
}

@Suite(.serialized) struct RestartTests {
    @Test func aWatchSurvivesAnAPIServerRestartWithoutLosingAnEvent() async throws {
        let server = RestartableKube(emulator: KubeAPIEmulator())
        server.emulator.putNode(NodeFixtures.node("before", external: ["203.0.113.1"]))
        await server.start()
        let client = try KubeClient(config: ClusterConfig(server: "http://127.0.0.1:\(server.port)"), logger: quietLogger)
        let received = EventLog()
        let watcher = Task {
            var watcher = Reflector<Node>(client: client, logger: quietLogger)
            watcher.backoff = .init(initial: 0.01, maximum: 0.1)
            await watcher.run { event in received.events.withLockedValue { $0.append(event) } }
        }
        func names() -> Set<String> {
            var names: Set<String> = []
            for event in received.events.withLockedValue({ $0 }) {
                switch event {
                case .synced(let nodes): names = Set(nodes.map(\.name))
                case .upsert(let node): names.insert(node.name)
                case .delete(let name): names.remove(name)
                }
            }
            return names
        }
        #expect(await EmulatorHarness.eventually { names() == ["before"] && server.emulator.openWatches == 1 })
        await server.stop()
        server.emulator.putNode(NodeFixtures.node("while-down", external: ["203.0.113.2"]))
        await server.start()
        server.emulator.putNode(NodeFixtures.node("after", external: ["203.0.113.3"]))
        #expect(await EmulatorHarness.eventually { names() == ["before", "while-down", "after"] }, "\(names())")
        watcher.cancel()
        _ = await watcher.value
        await client.shutdown()
        await server.stop()
    }
}
