import Foundation
import Logging

/// Runs both emulators on loopback for the length of a body: the demo, the end-to-end tests and benchmarks share it.
package enum EmulatorHarness {
    /// The running pair and their ports.
    package struct Running: Sendable {
        package let kube: KubeAPIEmulator
        package let kubePort: Int
        package let cloudflare: CloudflareEmulator
        package let cloudflarePort: Int
        package var kubeURL: String { "http://127.0.0.1:\(kubePort)" }
        package var cloudflareURL: String { "http://127.0.0.1:\(cloudflarePort)/client/v4" }
    }

    package static func withEmulators<T: Sendable>(
        kube: KubeAPIEmulator = KubeAPIEmulator(), cloudflare: CloudflareEmulator,
        _ body: @Sendable (Running) async throws -> T
    ) async throws -> T {
        let logger: Logger = {
            var logger = Logger(label: "emulator")
            logger.logLevel = .critical
            return logger
        }()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            let (kubePorts, kubeReady) = AsyncStream<Int>.makeStream()
            let (cfPorts, cfReady) = AsyncStream<Int>.makeStream()
            group.addTask {
                try await kube.run(logger: logger) { kubeReady.yield($0) }
                return nil
            }
            group.addTask {
                try await cloudflare.run(logger: logger) { cfReady.yield($0) }
                return nil
            }
            var kubeIterator = kubePorts.makeAsyncIterator()
            var cfIterator = cfPorts.makeAsyncIterator()
            guard let kubePort = await kubeIterator.next(), let cfPort = await cfIterator.next() else {
                throw CancellationError()
            }
            let running = Running(kube: kube, kubePort: kubePort, cloudflare: cloudflare, cloudflarePort: cfPort)
            defer { group.cancelAll() }
            return try await body(running)
        }
    }

    /// Waits for a condition that the system under test makes true, checking every few milliseconds.
    package static func eventually(timeout: Double = 10, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return await condition()
    }
}
