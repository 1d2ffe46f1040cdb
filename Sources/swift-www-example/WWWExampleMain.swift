import FoundationEssentials
import Logging
import NIOCore
import WWWExample

#if canImport(Glibc)
    import Glibc
#endif

/// Serves the hello-world page on $PORT until SIGTERM or SIGINT, then drains and exits 0.
@main
struct WWWExampleMain {
    static func main() async {
        // One event-loop thread: a hello-world page on a small node needs no more, and each loop is a thread with
        // its own stack and allocator arena.
        NIOSingletons.groupLoopCountSuggestion = 1
        NIOSingletons.blockingPoolThreadCountSuggestion = 1
        var logger = Logger(label: "swift-www-example")
        logger.logLevel = .info
        let environment = ProcessInfo.processInfo.environment
        switch WWWExample.port(from: environment) {
        case .failure(let error):
            let message = Array("swift-www-example: \(error)\n".utf8)
            _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            exit(2)
        case .success(let port):
            do {
                // runService installs SIGTERM and SIGINT handlers and shuts the server down gracefully.
                try await WWWExample.application(port: port, logger: logger).runService()
            } catch {
                logger.critical("server stopped: \(error)")
                exit(1)
            }
        }
    }
}
