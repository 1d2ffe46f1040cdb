import Foundation
import Logging
import NIOConcurrencyHelpers

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

    /// Quiet logging for emulators that serve tests and the demo.
    package static let quietLogger: Logger = {
        var logger = Logger(label: "emulator")
        logger.logLevel = .critical
        return logger
    }()

    /// Runs one server (`start` receives the callback that reports its port) for the length of `body`.
    package static func serving<T: Sendable>(
        _ start: @escaping @Sendable (_ onReady: @escaping @Sendable (Int) async -> Void) async throws -> Void,
        _ body: @Sendable (Int) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            let (ports, ready) = AsyncStream<Int>.makeStream()
            group.addTask {
                try await start { ready.yield($0) }
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            defer { group.cancelAll() }
            return try await body(port)
        }
    }

    /// Runs one server for the length of `body`, then stops it gracefully (see `ServerStopper`): cancelling it while
    /// a client connects could trap in NIO. `drain` ends what would keep it busy (open watches); if it has not
    /// finished a few seconds later, it is cancelled after all.
    package static func servingGracefully<T: Sendable>(
        _ start: @escaping @Sendable (_ stopper: ServerStopper, _ onReady: @escaping @Sendable (Int) async -> Void) async throws -> Void,
        drain: @escaping @Sendable () -> Void = {},
        _ body: @Sendable (Int) async throws -> T
    ) async throws -> T {
        let stopper = ServerStopper()
        let finished = FinishedFlag()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            let (ports, ready) = AsyncStream<Int>.makeStream()
            group.addTask {
                defer { finished.set() }
                try await start(stopper) { ready.yield($0) }
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let outcome: Result<T, any Error>
            do {
                outcome = .success(try await body(port))
            } catch {
                outcome = .failure(error)
            }
            await stopper.stop()
            // Wait for the server to finish, draining long streams meanwhile; cancel it as the last resort.
            let deadline = ContinuousClock.now + .seconds(5)
            while !finished.isSet && ContinuousClock.now < deadline {
                drain()
                try? await Task.sleep(for: .milliseconds(20))
            }
            group.cancelAll()
            return try outcome.get()
        }
    }

    package static func withEmulators<T: Sendable>(
        kube: KubeAPIEmulator = KubeAPIEmulator(), cloudflare: CloudflareEmulator,
        _ body: @Sendable (Running) async throws -> T
    ) async throws -> T {
        try await servingGracefully({ try await kube.run(logger: quietLogger, stopper: $0, onReady: $1) }, drain: { kube.dropWatches() }) {
            kubePort in
            try await servingGracefully({ try await cloudflare.run(logger: quietLogger, stopper: $0, onReady: $1) }) { cloudflarePort in
                try await body(Running(kube: kube, kubePort: kubePort, cloudflare: cloudflare, cloudflarePort: cloudflarePort))
            }
        }
    }

    /// A kubeconfig file (no credentials) that points at `server`, as a user's would: for the tests that run the
    /// real binary, the benchmark and the soak.
    package static func kubeconfig(server: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kubeconfig-\(UUID().uuidString)").path
        try """
        apiVersion: v1
        kind: Config
        clusters: [{name: emulator, cluster: {server: '\(server)'}}]
        contexts: [{name: emulator, context: {cluster: emulator, user: emulator}}]
        users: [{name: emulator, user: {}}]
        current-context: emulator
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// How long a test waits for the system under test before it calls a wait failed: the one deadline every
    /// `eventually` shares, so that a busy machine needs one knob, not a hundred (`KUBE_NODE_DNS_TEST_PATIENCE`,
    /// in seconds). It bounds a wait; it never measures one: reaction times are the benchmark's.
    package static let patience: Double = {
        if let text = ProcessInfo.processInfo.environment["KUBE_NODE_DNS_TEST_PATIENCE"], let value = Double(text), value > 0 {
            return value
        }
        return 30
    }()

    /// Waits for a condition that the system under test makes true, checking every few milliseconds, for at least
    /// `patience` (longer when a wait that spans a slow step asks for more).
    package static func eventually(timeout: Double = patience, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(max(timeout, patience))
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return await condition()
    }
}

/// The Kubernetes emulator's server, stopped and started again on the same port (the data stays, as an API
/// server restart keeps etcd): for the soak and the restart tests.
package final class RestartableKube: Sendable {
    package let emulator: KubeAPIEmulator
    package init(emulator: KubeAPIEmulator) { self.emulator = emulator }
    private let task = NIOLockedValueBox<(Task<Void, any Error>, ServerStopper)?>(nil)
    private let portBox = NIOLockedValueBox(0)
    package var port: Int { portBox.withLockedValue { $0 } }

    package func start() async {
        let (ports, ready) = AsyncStream<Int>.makeStream()
        let port = self.port
        let emulator = self.emulator
        let stopper = ServerStopper()
        task.withLockedValue {
            $0 = (
                Task {
                    try await emulator.run(port: port, logger: EmulatorHarness.quietLogger, stopper: stopper) {
                        ready.yield($0)
                    }
                }, stopper
            )
        }
        for await bound in ports {
            portBox.withLockedValue { $0 = bound }
            break
        }
    }

    /// Stops the server gracefully (see `ServerStopper`) and waits until it has let go of its port.
    package func stop() async {
        guard let (running, stopper) = task.withLockedValue({ $0 }) else { return }
        await stopper.stop()
        // A graceful shutdown waits for the requests in flight, and a watch lasts minutes: end the open watches
        // (as an API server's restart does) until the server has finished.
        let emulator = self.emulator
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = await running.result }
            group.addTask {
                while !Task.isCancelled {
                    emulator.dropWatches()
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}

/// A flag one task sets and another reads: the server task says it has returned.
private final class FinishedFlag: Sendable {
    private let value = NIOLockedValueBox(false)
    func set() { value.withLockedValue { $0 = true } }
    var isSet: Bool { value.withLockedValue { $0 } }
}
