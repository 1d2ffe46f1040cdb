import AsyncHTTPClient
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NodeDNSCore
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A failure talking to the API server, classified so callers know whether to retry, relist or stop.
package enum KubeAPIError: Error, CustomStringConvertible, Equatable {
    /// The server answered with a Status (or another non-2xx body).
    case status(code: Int, reason: String, message: String, retryAfter: Int?)
    /// The answer could not be read (bad JSON, wrong content type, a proxy's HTML page).
    case malformed(String)
    /// The connection failed or timed out.
    case transport(String)

    package var description: String {
        switch self {
        case .status(let code, let reason, let message, _): "API server answered \(code) \(reason): \(message)"
        case .malformed(let detail): "malformed API answer: \(detail)"
        case .transport(let detail): "cannot reach the API server: \(detail)"
        }
    }

    package var code: Int? {
        if case .status(let code, _, _, _) = self { return code }
        return nil
    }
}

/// A small hand-written Kubernetes API client: the verbs kube-node-dns needs, over AsyncHTTPClient.
package final class KubeClient: Sendable {
    /// The most one answer, one watch line or one list item may hold: a Kubernetes object is at most about 1.5 MiB
    /// (etcd's default request limit), and its watch event's envelope adds little. More is refused as it arrives, so
    /// a hostile peer cannot make memory follow the size of its answer.
    package static let maxAnswerBytes = 2 << 20
    package let config: ClusterConfig
    let http: HTTPClient
    let logger: Logger
    private let credentials: CredentialSource
    /// Sent with every request, so the API server's audit log names the release.
    let userAgent: String
    /// Every exchange but a watch (a list page, a Lease call, an Event) completes within this, however slowly the
    /// peer sends: a drip of one byte a second fails at the deadline instead of holding the loop.
    package let exchangeDeadline: Duration
    /// A watch that delivers no complete event (a line) for this long is replaced, even while bytes trickle in.
    package let frameIdle: Duration
    /// Told each time an exchange hits its deadline (a metric counts them).
    let onDeadline: @Sendable () -> Void

    /// `readIdleTimeout` bounds every wait for the next bytes of an answer (a watch included: the API server sends a
    /// bookmark about every minute), so a half-open connection after a failover fails instead of hanging forever;
    /// it is also the longest a watch may go without a complete event. `exchangeDeadline` bounds every other exchange.
    package init(
        config: ClusterConfig, logger: Logger, userAgent: String = "kube-node-dns", readIdleTimeout: TimeAmount = .seconds(35),
        exchangeDeadline: Duration = .seconds(30), onDeadline: @escaping @Sendable () -> Void = {}
    ) throws(ConfigError) {
        self.config = config
        self.logger = logger
        self.userAgent = userAgent
        self.exchangeDeadline = exchangeDeadline
        self.frameIdle = .nanoseconds(readIdleTimeout.nanoseconds)
        self.onDeadline = onDeadline
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.shutdownTimeout = .milliseconds(500)
        if let caPEM = config.caPEM {
            do {
                let certificates = try NIOSSLCertificate.fromPEMBytes(caPEM)
                guard !certificates.isEmpty else { throw ConfigError("no certificate in the PEM") }
                tls.trustRoots = .certificates(certificates)
            } catch {
                throw ConfigError("\(config.source): the certificate authority is not a valid PEM certificate")
            }
        }
        if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
        // The HTTP client verifies the certificate against the server URL's host and has no way to send or check
        // another name; say so once rather than ignore the setting silently.
        if let serverName = config.tlsServerName, !serverName.isEmpty,
            URL(string: config.server)?.host?.lowercased() != serverName.lowercased()
        {
            logger.warning(
                "the kubeconfig sets tls-server-name, which this client cannot use: the API server's certificate is checked against the server URL's host instead; if TLS fails, put a name from the certificate in the server URL",
                metadata: ["tls-server-name": "\(serverName)", "server": "\(config.server)"])
        }
        if case .clientCertificate(let certificatePEM, let keyPEM) = config.credentials {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificatePEM).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: keyPEM, format: .pem))
            } catch {
                throw ConfigError("\(config.source): the client certificate or key is not valid PEM")
            }
        }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(10), read: readIdleTimeout))
        configuration.httpVersion = .http1Only
        // A refused or failed connection fails the request at once, as client-go's dial does: the callers' own backoff
        // (the reflector's 0.8 s to 30 s, the lease's retry period) decides when to try again. The pool's own retry
        // would otherwise grow its hidden backoff towards 60 s while the API server is away, and hold the first
        // request after it returns for that long.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        credentials = CredentialSource(config.credentials)
    }

    package func shutdown() async {
        try? await http.shutdown()
    }

    /// A client dropped without `shutdown()` (a test or a start-up that threw after making it) shuts its HTTP client
    /// down on the way out: AsyncHTTPClient traps when a running client is deinitialized (found by the thread
    /// sanitizer's run, whose timing let one go). After `shutdown()` this only finds it shut.
    deinit {
        http.shutdown { _ in }
    }

    /// The Authorization header value, if any (never logged).
    func authorization(refresh: Bool = false) async throws -> String? {
        try await credentials.header(refresh: refresh)
    }

    func makeRequest(_ method: HTTPMethod, _ path: String, query: [(String, String)]) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: config.server + path + urlQuery(query))
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: userAgent)
        return request
    }

    /// A request with its Authorization header; `refresh` re-reads a token file or re-runs an exec plugin.
    private func authorizedRequest(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], refresh: Bool
    ) async throws(KubeAPIError) -> HTTPClientRequest {
        var request = makeRequest(method, path, query: query)
        do {
            if let header = try await authorization(refresh: refresh) {
                request.headers.add(name: "Authorization", value: header)
            }
        } catch {
            throw .transport("credentials: \(error)")
        }
        return request
    }

    /// Executes a request with the credentials' Authorization header, and once more with refreshed credentials when the
    /// answer is a 401 that they could fix (a rotated token file, an exec plugin): the client's one 401 rule, for whole
    /// answers, streamed list pages and watches alike.
    func executeAuthorized(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], timeout: TimeAmount,
        prepare: (inout HTTPClientRequest) -> Void = { _ in }
    ) async throws -> HTTPClientResponse {
        var refreshed = false
        while true {
            var request = try await authorizedRequest(method, path, query: query, refresh: refreshed)
            prepare(&request)
            let response = try await http.execute(request, timeout: timeout)
            guard response.status.code == 401, !refreshed, credentials.canRefresh else { return response }
            refreshed = true
            _ = try? await response.body.collect(upTo: 1 << 16)
        }
    }

    /// One request with a whole answer; retries once with refreshed credentials on 401.
    package func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
        contentType: String = "application/json", timeout: TimeAmount = .seconds(30), limit: Int = KubeClient.maxAnswerBytes
    ) async throws(KubeAPIError) -> (status: Int, body: [UInt8]) {
        let status: Int
        let bytes: [UInt8]
        let deadline = ContinuousClock.now + exchangeDeadline
        do {
            let response = try await executeAuthorized(method, path, query: query, timeout: timeout) { request in
                if let body {
                    request.headers.add(name: "Content-Type", value: contentType)
                    request.body = .bytes(ByteBuffer(bytes: body))
                }
            }
            status = Int(response.status.code)
            if (response.headers.first(name: "Content-Length").flatMap { Int($0) } ?? 0) > limit {
                throw NIOTooManyBytesError(maxBytes: limit)
            }
            var buffer = ByteBuffer()
            for try await chunk in response.body {
                try checkDeadline(deadline, what: "the answer to \(method) \(path)")
                guard buffer.readableBytes + chunk.readableBytes <= limit else { throw NIOTooManyBytesError(maxBytes: limit) }
                buffer.writeImmutableBuffer(chunk)
            }
            bytes = Array(buffer.readableBytesView)
            if !(200..<300).contains(status) {
                throw KubeClient.statusError(status, bytes, retryAfter: response.headers.first(name: "Retry-After"))
            }
        } catch {
            throw KubeClient.exchangeError(error, oversized: "answer larger than \(limit) bytes")
        }
        return (status, bytes)
    }

    /// A GET whose answer is handed over chunk by chunk as it arrives (a list page); retries once with refreshed
    /// credentials on 401. A non-2xx answer is read whole and thrown as its Status.
    func stream(
        _ path: String, query: [(String, String)], timeout: TimeAmount = .seconds(30),
        onChunk: (ByteBuffer) throws(KubeAPIError) -> Void
    ) async throws(KubeAPIError) {
        do {
            let response = try await executeAuthorized(.GET, path, query: query, timeout: timeout)
            let status = Int(response.status.code)
            if !(200..<300).contains(status) {
                let buffer = try await response.body.collect(upTo: 1 << 20)
                throw KubeClient.statusError(
                    status, Array(buffer.readableBytesView), retryAfter: response.headers.first(name: "Retry-After"))
            }
            let deadline = ContinuousClock.now + exchangeDeadline
            for try await chunk in response.body {
                try checkDeadline(deadline, what: "the answer to GET \(path)")
                try onChunk(chunk)
            }
        } catch {
            throw KubeClient.exchangeError(error, oversized: "error answer larger than 1 MiB")
        }
    }

    /// What an exchange throws for any error: the client's own as they are, an answer over its cap as malformed,
    /// anything else as a transport problem.
    static func exchangeError(_ error: any Error, oversized: String) -> KubeAPIError {
        switch error {
        case let error as KubeAPIError: error
        case let error as NIOTooManyBytesError: .malformed("\(oversized) (\(error))")
        default: .transport(describe(error))
        }
    }

    /// Fails an exchange that is still running at its deadline (checked as each chunk arrives; silence is the read
    /// idle timeout's to catch), and counts it.
    func checkDeadline(_ deadline: ContinuousClock.Instant, what: String) throws(KubeAPIError) {
        guard ContinuousClock.now > deadline else { return }
        onDeadline()
        throw .transport("\(what) did not complete within \(exchangeDeadline.components.seconds) s: the API server sends it too slowly")
    }

    static func describe(_ error: any Error) -> String {
        if let ssl = error as? NIOSSLError {
            if case .handshakeFailed(let inner) = ssl {
                return "TLS handshake failed (\(inner)); check the cluster's certificate-authority"
            }
            return "TLS error: \(ssl)"
        }
        let text = String(describing: error)
        if text.contains("certificate") || text.contains("CERTIFICATE") {
            return "TLS certificate verification failed (\(text)); check the cluster's certificate-authority"
        }
        return text
    }

    /// Reads a non-2xx answer as a Kubernetes Status when it is one, else says what it was.
    static func statusError(_ status: Int, _ bytes: [UInt8], retryAfter: String?) -> KubeAPIError {
        struct Status: Decodable {
            var reason: String?
            var message: String?
        }
        let retry = retryAfter.flatMap { Int($0) }
        if let decoded = try? JSONDecoder().decode(Status.self, from: Data(bytes)) {
            return .status(code: status, reason: decoded.reason ?? "", message: decoded.message ?? "", retryAfter: retry)
        }
        let snippet = String(decoding: bytes.prefix(120), as: UTF8.self).replacing("\n", with: " ")
        return .status(code: status, reason: "", message: "non-Status body: \(snippet)", retryAfter: retry)
    }

    /// Decodes a JSON answer, classifying failures as malformed.
    package static func decode<T: Decodable>(
        _ type: T.Type, _ bytes: [UInt8], what: String, userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws(KubeAPIError) -> T {
        do {
            let decoder = JSONDecoder()
            decoder.userInfo = userInfo
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            let snippet = String(decoding: bytes.prefix(80), as: UTF8.self).replacing("\n", with: " ")
            throw .malformed("\(what) is not the expected JSON (\(decodingSummary(error))); it starts with \"\(snippet)\"")
        }
    }
}

/// Produces the Authorization header: static tokens, token files re-read on rotation, exec plugins.
final class CredentialSource: Sendable {
    private struct Cached {
        var header: String?
        var fetched: Date = .distantPast
        var expires: Date?
    }

    private let credentials: ClusterConfig.Credentials
    private let cache = NIOLockedValueBox(Cached())
    /// A token file is re-read at least this often, and at once after a 401.
    static let tokenFileRefresh: TimeInterval = 60

    init(_ credentials: ClusterConfig.Credentials) { self.credentials = credentials }

    var canRefresh: Bool {
        switch credentials {
        case .tokenFile, .exec: true
        default: false
        }
    }

    func header(refresh: Bool) async throws -> String? {
        switch credentials {
        case .none, .clientCertificate: return nil
        case .token(let token): return "Bearer " + token
        case .basic(let user, let password): return "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        case .tokenFile(let path):
            let now = Date()
            if !refresh,
                let header = cache.withLockedValue({
                    $0.fetched.addingTimeInterval(CredentialSource.tokenFileRefresh) > now ? $0.header : nil
                })
            {
                return header
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError("cannot read the token file \(path)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingWhitespace
            let header = "Bearer " + token
            cache.withLockedValue { $0 = Cached(header: header, fetched: now) }
            return header
        case .exec(let plugin):
            let now = Date()
            if !refresh,
                let header = cache.withLockedValue({ cached -> String? in
                    guard let header = cached.header else { return nil }
                    if let expires = cached.expires, expires < now.addingTimeInterval(10) { return nil }
                    return header
                })
            {
                return header
            }
            let (token, expires) = try await ExecRunner.run(plugin)
            let header = "Bearer " + token
            cache.withLockedValue { $0 = Cached(header: header, fetched: now, expires: expires) }
            return header
        }
    }
}

/// Runs an exec credential plugin and reads its ExecCredential, with posix_spawn: Foundation's Process would bring
/// ICU into the binary.
package enum ExecRunner {
    /// How long a plugin may take before it is killed: a cloud API call takes a second or two; a plugin that waits
    /// for a person (a browser login) can never finish inside a controller anyway.
    package static let deadline: Duration = .seconds(30)
    /// The most a plugin may print: an ExecCredential is a few KiB.
    static let maxOutput = 1 << 20

    static func run(_ plugin: ExecCredentialPlugin) async throws -> (String, Date?) {
        // The plugin may take seconds: wait for it on NIO's blocking pool, off the cooperative pool.
        try await NIOThreadPool.singleton.runIfActive { try runSync(plugin) }
    }

    /// Starts `arguments[0]` (looked up in PATH when it has no slash) with `environment`, stdin and stderr on
    /// /dev/null; answers its exit status and standard output. A process still running at `deadline`, or printing
    /// more than `maxOutput`, is killed and refused.
    package static func spawn(
        _ arguments: [String], environment: [String: String], deadline: Duration = ExecRunner.deadline
    ) throws(ConfigError) -> (status: Int32, output: [UInt8]) {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw ConfigError("cannot create a pipe (errno \(errno))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, envp)
        close(pipeEnds[1])
        guard spawned == 0 else {
            close(pipeEnds[0])
            throw ConfigError("cannot start it (\(String(cString: strerror(spawned)).lowercased()))")
        }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let ends = ContinuousClock.now + deadline
        var refused: String?
        while true {
            let left = ContinuousClock.now.duration(to: ends)
            guard left > .zero else {
                refused = "did not finish within \(deadline) (killed)"
                break
            }
            var ready = pollfd(fd: pipeEnds[0], events: Int16(POLLIN), revents: 0)
            let polled = poll(&ready, 1, Int32(min(left.inSeconds * 1000 + 1, 60_000)))
            if polled == 0 || (polled < 0 && errno == EINTR) { continue }
            let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
            if count > 0 {
                output += buffer[..<count]
                if output.count > maxOutput {
                    refused = "printed more than \(maxOutput >> 20) MiB"
                    break
                }
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(pipeEnds[0])
        if refused != nil { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        if let refused { throw ConfigError(refused) }
        // WIFEXITED / WEXITSTATUS, which Swift cannot import as macros.
        let exited = status & 0x7F == 0
        return (exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F), output)
    }

    private static func runSync(_ plugin: ExecCredentialPlugin) throws -> (String, Date?) {
        let command =
            plugin.command.contains("/") && !plugin.command.hasPrefix("/")
            ? plugin.baseDirectory + "/" + plugin.command : plugin.command
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in plugin.env { environment[name] = value }
        environment["KUBERNETES_EXEC_INFO"] =
            #"{"apiVersion":"\#(plugin.apiVersion)","kind":"ExecCredential","spec":{"interactive":false}}"#
        let result: (status: Int32, output: [UInt8])
        do {
            result = try spawn([command] + plugin.args, environment: environment)
        } catch {
            throw ConfigError("exec credential plugin \(plugin.command): \(error.description)")
        }
        guard result.status == 0 else {
            throw ConfigError("exec credential plugin \(plugin.command) exited with status \(result.status)")
        }
        let data = Data(result.output)
        struct Credential: Decodable {
            struct Status: Decodable {
                var token: String?
                var expirationTimestamp: String?
            }
            var status: Status?
        }
        guard let credential = try? JSONDecoder().decode(Credential.self, from: data), let token = credential.status?.token, !token.isEmpty
        else {
            throw ConfigError("exec credential plugin \(plugin.command) printed no ExecCredential with status.token")
        }
        let expires = credential.status?.expirationTimestamp.flatMap { try? Date($0, strategy: .iso8601) }
        return (token, expires)
    }
}
