import Foundation
import NIOConcurrencyHelpers

/// A child process (the real `kube-node-dns` binary, or any controller under test) whose output is kept line
/// by line, so tests and the benchmark can signal it, wait for it and read what it said.
package final class ManagedProcess: Sendable {
    private final class Shared: Sendable {
        let output = NIOLockedValueBox<[String]>([])
        let partial = NIOLockedValueBox<[UInt8]>([])
        let exitCode = NIOLockedValueBox<Int32?>(nil)
    }

    private let process: Process
    private let shared = Shared()
    private let exited: AsyncStream<Int32>

    /// Starts `executable` with `arguments`; `environment` replaces the parent's (PATH and HOME are kept).
    package init(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    )
        throws
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = environment
        for key in ["PATH", "HOME"] { env[key] = env[key] ?? ProcessInfo.processInfo.environment[key] }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        self.process = process
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.exited = stream
        let shared = self.shared
        // A thread of its own reads the output to its end (the child's exit): Foundation's readabilityHandler leaves
        // its dispatch source's references behind after the end, which LeakSanitizer reports once per process.
        let output = pipe.fileHandleForReading
        let reader: @Sendable () -> Void = {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(output.fileDescriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                let lines = shared.partial.withLockedValue { buffer -> [String] in
                    buffer += chunk[..<count]
                    var lines: [String] = []
                    while let newline = buffer.firstIndex(of: 0x0A) {
                        lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                        buffer.removeSubrange(...newline)
                    }
                    return lines
                }
                shared.output.withLockedValue { $0 += lines }
            }
            try? output.close()
        }
        process.terminationHandler = { finished in
            shared.exitCode.withLockedValue { $0 = finished.terminationStatus }
            continuation.yield(finished.terminationStatus)
            continuation.finish()
        }
        try process.run()
        // The parent's copy of the write end goes, so the reader sees the end when the child exits.
        try? pipe.fileHandleForWriting.close()
        runOnThreadOfItsOwn(reader)
    }

    package var pid: Int32 { process.processIdentifier }
    package var lines: [String] { shared.output.withLockedValue { $0 } }
    package var isRunning: Bool { shared.exitCode.withLockedValue { $0 == nil } }

    package func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// The exit status (or the signal number, for a process killed by a signal), once it has exited.
    package func waitForExit() async -> Int32 {
        for await status in exited { return status }
        return shared.exitCode.withLockedValue { $0 } ?? -1
    }

    /// The resident set size and its peak (VmRSS, VmHWM) in KiB, from /proc.
    package func memoryKiB() -> (rss: Int, peak: Int)? {
        guard let rss = statusField("VmRSS"), let peak = statusField("VmHWM") else { return nil }
        return (rss, peak)
    }

    /// How many threads the process runs now (`Threads:` in /proc/PID/status).
    package func threadCount() -> Int? { statusField("Threads") }

    private func statusField(_ name: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") }
    }

    /// User plus system CPU time in seconds, from /proc/PID/stat.
    package func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            return nil
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The directory of the running test or tool binary: `swift build` puts every product there.
    package static var productsDirectory: String {
        if let explicit = ProcessInfo.processInfo.environment["KUBE_NODE_DNS_PRODUCTS"] {
            return explicit
        }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        // An .xctest bundle on macOS nests the binary; on Linux it is a plain file beside the products.
        while url.path.contains(".xctest") { url.deleteLastPathComponent() }
        return url.path
    }
}

/// Runs `body` on a detached POSIX thread of its own: for a read that blocks as long as a child runs (too long for
/// NIO's small blocking pool), without Foundation's `Thread` (LeakSanitizer finds its objects left behind).
private func runOnThreadOfItsOwn(_ body: @escaping @Sendable () -> Void) {
    final class Work: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let work = Unmanaged.passRetained(Work(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(
        &thread, nil,
        { raw in
            guard let raw else { return nil }
            Unmanaged<Work>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, work)
    precondition(created == 0, "pthread_create failed with \(created)")
    pthread_detach(thread)
}
