import AsyncHTTPClient
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1
import NodeDNSCore
import NIOConcurrencyHelpers

/// How requests to Cloudflare authenticate: an API token (preferred) or an email with the Global API Key.
package enum CloudflareCredentials: Sendable {
    case token(String)
    case globalKey(email: String, key: String)
}

/// Where the client takes its credentials before each request, so a token rotated in its file is used without a
/// restart. Fixed credentials are their own source.
package protocol CloudflareCredentialSource: Sendable {
    /// The credentials to send now (a file-backed source re-reads its file when the file changed).
    func current() -> CloudflareCredentials
    /// Called after a 401 or 403: looks again at once; true when the credentials changed, so the request is retried.
    func refreshAfterAuthFailure() -> Bool
}

extension CloudflareCredentials: CloudflareCredentialSource {
    package func current() -> CloudflareCredentials { self }
    package func refreshAfterAuthFailure() -> Bool { false }
}

/// A Cloudflare failure with Cloudflare's own codes and messages, and what to do about the common ones.
package enum CloudflareError: Error, CustomStringConvertible {
    case api(status: Int, errors: [(code: Int, message: String)], retryAfter: Double?)
    case transport(String)
    /// An answer that did not complete within the call's deadline (Cloudflare sent it too slowly).
    case tooSlow(String)
    case malformed(String)
    case configuration(String)
    /// A write was about to be sent after this replica lost the right to write.
    case notAuthorized
    /// Cloudflare refused one operation of a batch (found by splitting the batch).
    case refused(operation: String, String)
    /// The caller was cancelled (a graceful shutdown) in mid-call: not a failure of Cloudflare's, never retried.
    case cancelled

    package var description: String {
        switch self {
        case .api(let status, let errors, _):
            let detail = errors.map { "\($0.code) \($0.message)" }.joined(separator: "; ")
            let codes = Set(errors.map(\.code))
            var hint = ""
            if codes.contains(9109) {
                hint = " (the API token is invalid, expired, or not allowed for this zone: create one with Zone:Read and DNS:Edit)"
            } else if codes.contains(10000) {
                hint = " (the credentials lack a permission: the token needs Zone > DNS > Edit on this zone)"
            } else if codes.contains(6003) {
                hint =
                    " (a malformed authentication header: check the token or key for stray spaces or newlines, and that a token is not given as a Global API Key)"
            } else if codes.contains(9103) {
                hint = " (the email and Global API Key do not match)"
            }
            return "Cloudflare answered \(status): \(detail.isEmpty ? "no error details" : detail)\(hint)"
        case .transport(let detail): return "cannot reach Cloudflare: \(detail)"
        case .cancelled: return "the Cloudflare call was cancelled (shutting down)"
        case .tooSlow(let detail): return "Cloudflare too slow: \(detail)"
        case .malformed(let detail): return "malformed Cloudflare answer: \(detail)"
        case .configuration(let detail): return detail
        case .notAuthorized: return WriteNotAuthorized().description
        case .refused(let operation, let detail): return "Cloudflare refused \(operation): \(detail)"
        }
    }

    /// Whether waiting and trying again may help.
    package var isRetryable: Bool {
        switch self {
        case .api(let status, _, _): status == 429 || status >= 500
        case .transport, .tooSlow, .malformed: true
        case .configuration, .notAuthorized, .refused, .cancelled: false
        }
    }

    /// A 4xx that refuses what a batch asked for (a validation or a conflict), not who asked or how often.
    package var isRefusalOfContent: Bool {
        guard case .api(let status, _, _) = self else { return false }
        return (400..<500).contains(status) && ![401, 403, 429].contains(status) && !needsOperator
    }

    package var codes: [Int] {
        if case .api(_, let errors, _) = self { return errors.map(\.code) }
        return []
    }
}

extension CloudflareError: DNSProviderError {
    /// Bad or revoked credentials (401, 403), a missing permission and a name outside every zone need an operator;
    /// rate limits, server errors, timeouts and malformed answers pass with retries.
    package var needsOperator: Bool {
        switch self {
        case .api(let status, let errors, _):
            status == 401 || status == 403 || errors.contains { [9109, 10000, 6003, 6111, 9103, 9106].contains($0.code) }
        case .configuration: true
        case .transport, .tooSlow, .malformed, .notAuthorized, .refused, .cancelled: false
        }
    }
}

/// Time as the rate limiter and retries see it (monotonic); tests inject a virtual clock.
package typealias CloudflareClock = TimeSource

/// The real, monotonic clock.
package typealias SystemCloudflareClock = SystemTimeSource

/// Keeps requests under `limit` per `window` seconds (Cloudflare: 1,200 per 5 minutes per user).
package final class SlidingWindowLimiter: Sendable {
    package let limit: Int
    package let window: Double
    private let granted = NIOLockedValueBox<[Double]>([])

    package init(limit: Int, window: Double) {
        self.limit = max(1, limit)
        self.window = window
    }

    /// Requests granted in the current window (for /status: the budget used).
    package func used(clock: any CloudflareClock) -> Int {
        let now = clock.now()
        return granted.withLockedValue { times in times.filter { $0 > now - window }.count }
    }

    /// Waits until one more request fits in the window, then records it.
    package func acquire(clock: any CloudflareClock) async throws {
        while true {
            let now = clock.now()
            let wait = granted.withLockedValue { times -> Double in
                while let first = times.first, first <= now - window { times.removeFirst() }
                if times.count < limit {
                    times.append(now)
                    return 0
                }
                return times[0] + window - now
            }
            if wait <= 0 { return }
            try await clock.sleep(seconds: wait)
        }
    }
}

/// Cloudflare API v4 for DNS: token check, zone lookup, record reads and batched writes,
/// with rate limiting, Retry-After and retries of 5xx and network errors.
package final class CloudflareClient: Sendable {
    /// A record as Cloudflare returns it (only the fields the provider reads).
    package struct Record: Sendable, Decodable, Equatable {
        package var id: String
        package var name: String
        package var type: String
        package var content: String
        package var ttl: Int
        package var proxied: Bool?
        package var comment: String?
    }

    /// A zone's id and name, and the account that owns it (where account tokens are verified).
    package struct Zone: Sendable, Decodable, Equatable {
        package struct Account: Sendable, Decodable, Equatable {
            package var id: String
        }
        package var id: String
        package var name: String
        package var account: Account?
    }

    /// The most one answer may hold. The largest a real one gets is a page of 5,000 records, about 2 MB (a record is
    /// about 370 bytes); more is refused as it arrives (or at once, by its Content-Length), so a hostile or broken
    /// peer cannot make memory follow the size of its answer.
    package static let maxAnswerBytes = 3 << 20
    package let baseURL: String
    private let credentials: any CloudflareCredentialSource
    private let http: HTTPClient
    private let logger: Logger
    package let limiter: SlidingWindowLimiter
    private let clock: any CloudflareClock
    package let maxAttempts: Int
    /// The waits between a call's attempts (a Retry-After overrides them).
    private let retryBackoff: Backoff
    /// Sent with every request, so Cloudflare's audit log names the release.
    private let userAgent: String
    /// Every call (one attempt) completes within this, however slowly Cloudflare sends: a drip fails at the deadline
    /// and is retried, instead of holding the reconcile.
    package let exchangeDeadline: Duration
    /// Told each time an attempt hits its deadline (a metric counts them).
    private let onDeadline: @Sendable () -> Void
    /// Observes each API call: endpoint label and HTTP status (0 for a network failure); for metrics.
    private let observer: @Sendable (String, Int) -> Void

    package init(
        baseURL: String, credentials: any CloudflareCredentialSource, logger: Logger,
        rateLimit: Int = 1200, rateWindow: Double = 300, clock: any CloudflareClock = SystemCloudflareClock(),
        maxAttempts: Int = 6, retryBackoff: Backoff = Backoff(initial: 0.5, maximum: 30), userAgent: String = "kube-node-dns",
        exchangeDeadline: Duration = .seconds(30), observer: @escaping @Sendable (String, Int) -> Void = { _, _ in },
        onDeadline: @escaping @Sendable () -> Void = {}
    ) {
        self.userAgent = userAgent
        self.exchangeDeadline = exchangeDeadline
        self.onDeadline = onDeadline
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.credentials = credentials
        self.logger = logger
        self.limiter = SlidingWindowLimiter(limit: rateLimit, window: rateWindow)
        self.clock = clock
        self.observer = observer
        self.maxAttempts = max(1, maxAttempts)
        self.retryBackoff = retryBackoff
        // The process-wide client: system trust roots, pooled connections, no shutdown to forget.
        http = HTTPClient.shared
    }

    /// Cloudflare's answer envelope: `success`, its errors, the result and the page information.
    package struct Envelope<Result: Decodable>: Decodable {
        struct Message: Decodable {
            var code: Int
            var message: String
        }
        struct Info: Decodable {
            var page: Int?
            var perPage: Int?
            var count: Int?
            var totalCount: Int?
            var totalPages: Int?
            enum CodingKeys: String, CodingKey {
                case page, count
                case perPage = "per_page"
                case totalCount = "total_count"
                case totalPages = "total_pages"
            }
        }
        package var success: Bool
        var errors: [Message]?
        package var result: Result?
        var resultInfo: Info?
        enum CodingKeys: String, CodingKey {
            case success, errors, result
            case resultInfo = "result_info"
        }
    }

    private struct ErrorEnvelope: Decodable {
        struct Message: Decodable {
            var code: Int
            var message: String
        }
        var errors: [Message]?
    }

    /// One call with retries; `endpoint` is a short label for metrics and logs (never the token).
    private func call<Result: Decodable>(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
        endpoint: String, authorized: WriteAuthorization? = nil, as: Result.Type
    ) async throws(CloudflareError) -> Envelope<Result> {
        var attempt = 0
        var backoff = retryBackoff
        while true {
            attempt += 1
            do {
                try await limiter.acquire(clock: clock)
            } catch {
                throw .transport("cancelled")
            }
            // Checked after every wait (the rate limiter, a Retry-After): a lost Lease stops the write here.
            if let authorized, !authorized() { throw .notAuthorized }
            var request = HTTPClientRequest(url: baseURL + path + urlQuery(query))
            request.method = method
            request.headers.add(name: "Accept", value: "application/json")
            request.headers.add(name: "User-Agent", value: userAgent)
            switch credentials.current() {
            case .token(let token): request.headers.add(name: "Authorization", value: "Bearer " + token)
            case .globalKey(let email, let key):
                request.headers.add(name: "X-Auth-Email", value: email)
                request.headers.add(name: "X-Auth-Key", value: key)
            }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            let failure: CloudflareError
            do {
                let deadline = ContinuousClock.now + exchangeDeadline
                let response = try await http.execute(request, timeout: .nanoseconds(Int64(exchangeDeadline.inSeconds * 1e9)))
                let status = Int(response.status.code)
                // Read as it arrives, within the size cap and the attempt's deadline.
                var oversized = (response.headers.first(name: "Content-Length").flatMap { Int($0) } ?? 0) > CloudflareClient.maxAnswerBytes
                var late = false
                var buffer = ByteBuffer()
                for try await chunk in response.body where !oversized {
                    if ContinuousClock.now > deadline {
                        late = true
                        break
                    }
                    guard buffer.readableBytes + chunk.readableBytes <= CloudflareClient.maxAnswerBytes else {
                        oversized = true
                        break
                    }
                    buffer.writeImmutableBuffer(chunk)
                }
                observer(endpoint, late ? 0 : status)
                if late {
                    onDeadline()
                    failure = .tooSlow(
                        "\(endpoint): the answer did not complete within \(exchangeDeadline.components.seconds) s")
                } else if oversized {
                    failure = .malformed("\(endpoint): the answer is larger than \(CloudflareClient.maxAnswerBytes >> 20) MiB")
                } else {
                    let retryAfter = response.headers.first(name: "Retry-After").flatMap {
                        RetryAfter.seconds($0, now: Date().timeIntervalSince1970)
                    }
                    // Decoded in place: a full read at 5,000 records is megabytes, and a copy would add to the peak.
                    let read = buffer.withUnsafeReadableBytes { raw in
                        Swift.Result { () throws(CloudflareError) in
                            try CloudflareClient.readAnswer(
                                status: status, body: raw, retryAfter: retryAfter, endpoint: endpoint, as: Result.self)
                        }
                    }
                    switch read {
                    case .success(let envelope): return envelope
                    case .failure(let error):
                        // A 2xx that says `success: false` is Cloudflare's verdict, not a failure to retry.
                        if case .api = error, (200..<300).contains(status) { throw error }
                        failure = error
                    }
                }
            } catch let error as CloudflareError {
                throw error
            } catch {
                // A shutdown in mid-call is neither Cloudflare's failure nor a reason to retry: said nowhere, counted nowhere.
                if error is CancellationError || Task.isCancelled { throw .cancelled }
                observer(endpoint, 0)
                failure = .transport("\(error)")
            }
            if case .api(let status, _, _) = failure, status == 401 || status == 403, attempt < maxAttempts,
                credentials.refreshAfterAuthFailure()
            {
                continue  // the token file changed since this request was sent: try again with the new one
            }
            // A write cut off at its deadline may have been applied: it is not sent again blindly, but thrown, so the
            // reconciler reads the records back before it plans again.
            if method == .POST, case .tooSlow = failure { throw failure }
            guard failure.isRetryable, attempt < maxAttempts else { throw failure }
            var wait = backoff.next(random: Double.random(in: 0..<1))
            if case .api(let status, _, let retryAfter) = failure, status == 429 || status == 503, let retryAfter {
                wait = min(max(retryAfter, 0), 300)
            } else if case .api(429, _, _) = failure {
                wait = 1
            }
            // The reconciler says the failure if the call's last attempt fails too; each attempt is for debugging.
            logger.debug(
                "Cloudflare call failed; retrying",
                metadata: [
                    "endpoint": "\(endpoint)", "error": "\(failure)", "attempt": "\(attempt)",
                    "retryIn": "\(wait.twoDecimals)s",
                ])
            do {
                try await clock.sleep(seconds: wait)
            } catch {
                throw Task.isCancelled ? .cancelled : failure
            }
        }
    }

    /// Reads one answer: a 2xx is the envelope, decoded in place, or `.malformed` when it is not one (never read as
    /// an empty result); a 2xx with `success: false`, or any other status, is `.api` with Cloudflare's errors. Pure,
    /// so the fuzzer drives it with whatever a peer could send.
    package static func readAnswer<Result: Decodable>(
        status: Int, body: UnsafeRawBufferPointer, retryAfter: Double?, endpoint: String, as: Result.Type
    ) throws(CloudflareError) -> Envelope<Result> {
        let snippet = { CloudflareClient.snippet(Array(body.prefix(100))) }
        let data = Data(
            bytesNoCopy: UnsafeMutableRawPointer(mutating: body.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!), count: body.count,
            deallocator: .none)
        guard (200..<300).contains(status) else {
            if let decoded = try? JSONDecoder().decode(ErrorEnvelope.self, from: data) {
                throw .api(status: status, errors: (decoded.errors ?? []).map { ($0.code, $0.message) }, retryAfter: retryAfter)
            }
            throw .api(status: status, errors: [(0, "non-JSON answer: \(snippet())")], retryAfter: retryAfter)
        }
        let envelope: Envelope<Result>
        do {
            envelope = try JSONDecoder().decode(Envelope<Result>.self, from: data)
        } catch {
            throw .malformed("\(endpoint): \(snippet()) (\(decodingSummary(error)))")
        }
        guard envelope.success else {
            throw .api(status: status, errors: (envelope.errors ?? []).map { ($0.code, $0.message) }, retryAfter: nil)
        }
        return envelope
    }

    static func snippet(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(100), as: UTF8.self).replacing("\n", with: " ")
    }

    // MARK: endpoints

    /// Checks an API token; throws with Cloudflare's code and a hint when it is not active. A user token is
    /// verified at /user/tokens/verify; an account-owned token (which Cloudflare recommends, and which that endpoint
    /// answers with 401) is verified at its account's endpoint, the account taken from the zones it can read.
    package func verifyToken() async throws(CloudflareError) {
        guard case .token = credentials.current() else { return }
        let user: Result<Envelope<TokenStatus>, CloudflareError>
        do {
            user = .success(try await call(.GET, "/user/tokens/verify", endpoint: "tokens/verify", as: TokenStatus.self))
        } catch {
            user = .failure(error)
        }
        switch user {
        case .success(let envelope):
            try CloudflareClient.requireActive(envelope.result)
        case .failure(let error):
            guard case .api(401, _, _) = error else { throw error }
            let accounts = Set(try await allZones().compactMap(\.account?.id)).sorted()
            guard let account = accounts.first else {
                throw .configuration(
                    "the Cloudflare API token was refused as a user token (\(error)), and it can read no zone to find an account to verify it with; create a token with Zone:Read and DNS:Edit"
                )
            }
            let envelope = try await call(
                .GET, "/accounts/\(account)/tokens/verify", endpoint: "accounts/tokens/verify", as: TokenStatus.self)
            try CloudflareClient.requireActive(envelope.result)
            logger.info("the Cloudflare API token is an account token", metadata: ["account": "\(account)"])
        }
    }

    private struct TokenStatus: Decodable { var status: String }

    private static func requireActive(_ result: TokenStatus?) throws(CloudflareError) {
        guard let status = result?.status, status == "active" else {
            throw .configuration(
                "the Cloudflare API token is \(result?.status ?? "not active"); create a new one with Zone:Read and DNS:Edit")
        }
    }

    /// Zones with exactly this name (0 or 1).
    /// Every zone these credentials can read (a token scoped to one zone sees one).
    package func allZones() async throws(CloudflareError) -> [Zone] {
        try await allPages("/zones", query: [], perPage: 50, endpoint: "zones")
    }

    /// All records matching a filter, across pages.
    package func records(zoneID: String, filter: [(String, String)], perPage: Int = 5000) async throws(CloudflareError) -> [Record] {
        try await allPages(
            "/zones/\(zoneID)/dns_records", query: filter + [("match", "all")], perPage: perPage, endpoint: "dns_records/list")
    }

    /// A list endpoint read to its end: pages until a short page or the last of `result_info.total_pages`.
    private func allPages<Item: Decodable>(
        _ path: String, query: [(String, String)], perPage: Int, endpoint: String
    ) async throws(CloudflareError) -> [Item] {
        var all: [Item] = []
        var page = 1
        while true {
            let envelope = try await call(
                .GET, path, query: query + [("per_page", String(perPage)), ("page", String(page))], endpoint: endpoint, as: [Item].self)
            let items = envelope.result ?? []
            all += items
            let totalPages = envelope.resultInfo?.totalPages
            if items.count < perPage || (totalPages.map { page >= $0 } ?? false) { break }
            page += 1
        }
        return all
    }

    /// One batch request: deletes, patches, puts and posts, all or nothing.
    package struct Batch: Sendable {
        package var deletes: [String] = []
        package var patches: [[String: JSONValue]] = []
        package var posts: [[String: JSONValue]] = []
        package init() {}
        package var count: Int { deletes.count + patches.count + posts.count }
    }

    /// What Cloudflare says a batch did: the records deleted, patched and created (nil where the answer left the
    /// list out, or when its `result` is null).
    package struct BatchResult: Sendable, Decodable {
        package var deletes: [Record]?
        package var patches: [Record]?
        package var posts: [Record]?
    }

    package func batch(
        zoneID: String, _ batch: Batch, authorized: WriteAuthorization? = nil
    ) async throws(CloudflareError) -> BatchResult {
        var body: [String: JSONValue] = [:]
        if !batch.deletes.isEmpty { body["deletes"] = .array(batch.deletes.map { .object(["id": .string($0)]) }) }
        if !batch.patches.isEmpty { body["patches"] = .array(batch.patches.map { .object($0) }) }
        if !batch.posts.isEmpty { body["posts"] = .array(batch.posts.map { .object($0) }) }
        let envelope = try await call(
            .POST, "/zones/\(zoneID)/dns_records/batch", body: JSONValue.object(body).bytes, endpoint: "dns_records/batch",
            authorized: authorized, as: BatchResult.self)
        return envelope.result ?? BatchResult()
    }
}

/// Reads a `Retry-After` header: delay-seconds, or an HTTP date (RFC 9110 section 10.2.3).
package enum RetryAfter {
    /// The seconds to wait, or nil when the header is neither form.
    package static func seconds(_ text: String, now: Double) -> Double? {
        let trimmed = text.trimmingWhitespace
        if let seconds = Double(trimmed) { return max(0, seconds) }
        guard let date = httpDate(trimmed) else { return nil }
        return max(0, date - now)
    }

    /// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, as seconds since 1970.
    static func httpDate(_ text: String) -> Double? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let year = Int(parts[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let monthIndex = months.firstIndex(of: String(parts[2])) else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int($0) }
        guard clock.count == 3 else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm), then seconds.
        let month = monthIndex + 1
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2])
    }
}

/// The few JSON values a request body needs, encoded without Foundation's serializer.
package enum JSONValue: Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])

    package var bytes: [UInt8] {
        var out = ""
        write(&out)
        return Array(out.utf8)
    }

    private func write(_ out: inout String) {
        switch self {
        case .string(let text):
            out += jsonQuoted(text)
        case .int(let value): out += String(value)
        case .bool(let value): out += value ? "true" : "false"
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(&out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                JSONValue.string(key).write(&out)
                out += ":"
                members[key]!.write(&out)
            }
            out += "}"
        }
    }
}
