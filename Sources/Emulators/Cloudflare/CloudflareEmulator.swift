import Foundation
import Logging
import NIOConcurrencyHelpers

/// Cloudflare's API v4 DNS endpoints in one process, following ../shared/cloudflare/API.md section 3,
/// recording every exchange in the JSON-lines form that validate_traffic.py checks against the official schema.
package final class CloudflareEmulator: Sendable {
    /// One API token and whether it may edit DNS.
    package struct Token: Sendable {
        package var value: String
        package var dnsEdit: Bool
        /// Owned by the account, not a user: `/user/tokens/verify` answers it with 401 (code 1000), and only
        /// `/accounts/{account_id}/tokens/verify` verifies it, as Cloudflare does.
        package var accountOwned: Bool
        package init(_ value: String, dnsEdit: Bool = true, accountOwned: Bool = false) {
            self.value = value
            self.dnsEdit = dnsEdit
            self.accountOwned = accountOwned
        }
    }

    /// The one account every emulated zone belongs to.
    package static let accountID = CloudflareEmulator.hexID(seed: "account")

    /// Start-up choices.
    package struct Options: Sendable {
        package var zones: [String]
        package var tokens: [Token]
        /// Legacy credentials: email and Global API Key.
        package var globalKeys: [(email: String, key: String)] = []
        package var batchLimit = 200
        /// Requests per five minutes per credential before 429 (Cloudflare's global limit); nil turns it off.
        package var rateLimit: Int? = 1200
        package var enterpriseTTL = false
        /// A file the exchanges are appended to as JSON lines. When nil and the environment names a directory
        /// in `CLOUDFLARE_TRAFFIC_DIR`, each emulator writes a file of its own there (CI validates them all
        /// against Cloudflare's schema); otherwise they stay in memory only.
        package var trafficLogPath: String?
        package init(zones: [String], tokens: [Token]) {
            self.zones = zones
            self.tokens = tokens
        }
    }

    /// One recorded exchange; the secret in Authorization is replaced before it is kept.
    package struct Exchange: Sendable {
        package var method: String
        package var path: String
        package var query: [(String, String)]
        package var body: JSON?
        package var status: Int
        package var response: JSON?
        package var at: Double
        /// Which credential style the client used; the secrets themselves are never logged.
        package var usedGlobalKey = false
        /// In memory only (never in the traffic file): which configured token was used, by its position, so a
        /// test can tell replicas that were given different tokens apart.
        package var tokenIndex: Int?
        /// In memory only: the client's User-Agent header.
        package var userAgent: String?

        package var json: JSON {
            var line: JSON = [
                "method": .string(method), "path": .string(path),
                "query": .array(query.map { [.string($0.0), .string($0.1)] }),
                "headers": usedGlobalKey
                    ? ["X-Auth-Email": "REDACTED@example.com", "X-Auth-Key": "REDACTED", "Content-Type": "application/json"]
                    : ["Authorization": "Bearer REDACTED", "Content-Type": "application/json"],
                "body": body ?? .null, "status": .int(Int64(status)),
            ]
            if let response { line["response"] = response }
            return line
        }
    }

    struct Zone: Sendable {
        var id: String
        var name: String
    }

    struct State: Sendable {
        var records: [String: [JSON]] = [:]  // zone id -> records in creation order
        var tokens: [String: Token] = [:]
        var exchanges: [Exchange] = []
        var failingBatches = 0
        /// Batches applied, then answered `{"success":true,"result":null}`: a write whose answer does not confirm it.
        var vagueBatches = 0
        var outageUntil: Double = 0
        var requestTimes: [String: [Double]] = [:]
        var idCounter: UInt64 = 0
        /// Requests being answered: their effects may be visible before their exchange is logged.
        var inFlight = 0
    }

    package let options: Options
    package let faults = FaultSwitches()
    let zones: [Zone]
    private let state: NIOLockedValueBox<State>
    private let logFile: NIOLockedValueBox<FileHandle?>
    private let startedAt = Date()

    package init(options: Options) {
        self.options = options
        self.zones = options.zones.map { name in
            Zone(id: CloudflareEmulator.hexID(seed: name), name: name.lowercased())
        }
        var initial = State()
        for token in options.tokens { initial.tokens[token.value] = token }
        self.state = NIOLockedValueBox(initial)
        let directory = ProcessInfo.processInfo.environment["CLOUDFLARE_TRAFFIC_DIR"]
        if let path = options.trafficLogPath ?? directory.map({ "\($0)/\(UUID().uuidString).jsonl" }) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            logFile = NIOLockedValueBox(FileHandle(forWritingAtPath: path))
        } else {
            logFile = NIOLockedValueBox(nil)
        }
    }

    // MARK: test hooks

    package func zoneID(_ name: String) -> String? { zones.first { $0.name == name.lowercased() }?.id }

    /// Every record of a zone, exactly as the API would return it.
    package func records(zone name: String) -> [JSON] {
        guard let id = zoneID(name) else { return [] }
        return state.withLockedValue { $0.records[id] ?? [] }
    }

    package func recordCount(zone name: String) -> Int {
        guard let id = zoneID(name) else { return 0 }
        return state.withLockedValue { $0.records[id]?.count ?? 0 }
    }

    /// Whether a record of that name (and content, when given) exists.
    package func hasRecord(zone name: String, name recordName: String, content: String? = nil) -> Bool {
        guard let id = zoneID(name) else { return false }
        return state.withLockedValue { state in
            (state.records[id] ?? []).contains {
                $0["name"]?.string == recordName && (content == nil || $0["content"]?.string == content)
            }
        }
    }

    /// Places a record directly, as another tool or a person in the dashboard would.
    @discardableResult
    package func seed(
        zone name: String, type: String, name recordName: String, content: String, ttl: Int = 1, proxied: Bool = false,
        comment: String? = nil
    ) -> JSON? {
        guard let id = zoneID(name) else { return nil }
        let body: JSON = [
            "type": .string(type), "name": .string(recordName), "content": .string(content), "ttl": .int(Int64(ttl)),
            "proxied": .bool(proxied), "comment": comment.map { .string($0) } ?? .null,
        ]
        return state.withLockedValue { state -> JSON? in
            var list = state.records[id] ?? []
            guard
                case .success(let record) = makeRecord(
                    &state, zone: zones.first { $0.id == id }!, body: body, existing: nil,
                    atName: { name in list.filter { $0["name"]?.string == name } })
            else { return nil }
            list.append(record)
            state.records[id] = list
            return record
        }
    }

    /// Changes records behind the controller's back, as a person in the dashboard would: `change` sees each record of
    /// the zone and returns it changed, or nil to delete it. Returns how many records it changed or deleted.
    @discardableResult
    package func editRecords(zone name: String, _ change: (JSON) -> JSON??) -> Int {
        guard let id = zoneID(name) else { return 0 }
        return state.withLockedValue { state in
            var touched = 0
            var kept: [JSON] = []
            for record in state.records[id] ?? [] {
                switch change(record) {
                case .none: kept.append(record)
                case .some(.none): touched += 1
                case .some(.some(let edited)):
                    touched += 1
                    kept.append(edited)
                }
            }
            state.records[id] = kept
            return touched
        }
    }

    /// Issues a new API token (as a rotation does), accepted from now on.
    package func addToken(_ token: Token) {
        state.withLockedValue { $0.tokens[token.value] = token }
    }

    /// Revokes a token: every later request with it gets 403 9109, as Cloudflare answers a deleted token.
    package func revokeToken(_ value: String) {
        _ = state.withLockedValue { $0.tokens.removeValue(forKey: value) }
    }

    package func setDNSEdit(token: String, allowed: Bool) {
        state.withLockedValue { $0.tokens[token]?.dnsEdit = allowed }
    }

    /// Makes the next `count` batch requests fail as a whole.
    package func failNextBatches(_ count: Int) { state.withLockedValue { $0.failingBatches = count } }
    /// The next `count` batches are applied, but answered with a null result, as a real write was once answered.
    package func answerNextBatchesVaguely(_ count: Int) { state.withLockedValue { $0.vagueBatches = count } }

    /// Disarms every injected fault not yet met (failures, drips, delays, failing and vague batches); an outage runs on.
    package func disarmFaults() {
        faults.disarm()
        state.withLockedValue {
            $0.failingBatches = 0
            $0.vagueBatches = 0
        }
    }

    /// Answers 503 to everything for this many seconds.
    package func outage(seconds: Double) {
        state.withLockedValue { $0.outageUntil = Date().timeIntervalSince1970 + seconds }
    }

    /// True while `outage(seconds:)` is answering 503 to everything.
    package var inOutage: Bool { state.withLockedValue { $0.outageUntil > Date().timeIntervalSince1970 } }

    package var exchanges: [Exchange] { state.withLockedValue { $0.exchanges } }
    package var exchangeCount: Int { state.withLockedValue { $0.exchanges.count } }
    /// True when every request whose effect is visible has its exchange logged.
    package var isQuiet: Bool { state.withLockedValue { $0.inFlight == 0 } }
    /// The exchanges from `index` on (cheap to poll with the count seen last).
    package func exchanges(from index: Int) -> [Exchange] {
        state.withLockedValue { Array($0.exchanges[min(index, $0.exchanges.count)...]) }
    }
    package func clearExchanges() { state.withLockedValue { $0.exchanges.removeAll() } }

    // MARK: serving

    package func run(
        port: Int = 0, logger: Logger = Logger(label: "cloudflare-emulator"), stopper: ServerStopper? = nil,
        onReady: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        try await EmulatorServer.serve(
            port: port, logger: logger, stopper: stopper, handler: { [self] in await self.handle($0) }, onReady: onReady)
    }

    package func handle(_ request: EmulatorRequest) async -> EmulatorResponse {
        if request.path.hasPrefix("/_emulator/") { return control(request) }
        await faults.delay()
        let body = request.body.isEmpty ? nil : try? JSON(parsing: request.body)
        state.withLockedValue { $0.inFlight += 1 }
        let (status, headers, response, raw) = respond(request, body: body)
        let exchange = Exchange(
            method: request.method, path: request.path, query: request.query,
            body: request.body.isEmpty ? nil : body, status: status,
            // The published schema has no 5xx bodies, and its error codes start at 1000 while Cloudflare's
            // real rate-limit answer carries code 971: those responses are logged without their bodies.
            // A batch answered with a null result (`answerNextBatchesVaguely`) is the injected fault the schema has no
            // room for: logged without its body too.
            response: status >= 500 || status == 429 || (request.path.hasSuffix("/batch") && response?["result"] == .null)
                ? nil : response,
            at: Date().timeIntervalSince1970, usedGlobalKey: request.headers["x-auth-key"] != nil,
            tokenIndex: request.header("authorization").flatMap { header in
                options.tokens.firstIndex { "Bearer \($0.value)" == header }
            }, userAgent: request.header("user-agent"))
        state.withLockedValue {
            $0.exchanges.append(exchange)
            $0.inFlight -= 1
        }
        logFile.withLockedValue { handle in
            handle?.write(Data(exchange.json.serialized().utf8 + [0x0A]))
        }
        faults.record(request, status: status)
        let answer: EmulatorResponse =
            raw.map { .full(status: status, headers: headers, body: $0) } ?? .json(status, response ?? .null, headers: headers)
        if let drip = faults.takeDrip(for: request) { return answer.dripped(bytes: drip.bytes, interval: drip.interval) }
        return answer
    }

    private func control(_ request: EmulatorRequest) -> EmulatorResponse {
        let number = { (name: String) in Int(request.queryValue(name) ?? "") }
        switch request.path {
        case "/_emulator/fail":
            faults.inject(status: number("status") ?? 500, count: number("count") ?? 1, retryAfter: number("retryAfter"))
        case "/_emulator/delay": faults.setDelay(milliseconds: number("ms") ?? 0)
        case "/_emulator/fail-batch": failNextBatches(number("count") ?? 1)
        case "/_emulator/vague-batch": answerNextBatchesVaguely(number("count") ?? 1)
        case "/_emulator/outage": outage(seconds: Double(number("seconds") ?? 60))
        case "/_emulator/dns-edit":
            setDNSEdit(token: request.queryValue("token") ?? "", allowed: request.queryValue("allowed") == "true")
        case "/_emulator/revoke":
            revokeToken(request.queryValue("token") ?? "")
        case "/_emulator/records":
            return .json(200, ["records": .array(zones.flatMap { records(zone: $0.name) })])
        default: return .json(404, ["error": "unknown emulator switch"])
        }
        return .json(200, ["ok": true])
    }

    // MARK: responses

    /// The verify endpoints' answer for a token that works (user and account endpoints answer alike).
    private static func activeToken(_ token: Token) -> JSON {
        envelope(
            ["id": .string(hexID(seed: token.value)), "status": "active"],
            messages: [["code": 10000, "message": "This API Token is valid and active", "type": .null]])
    }

    private static func envelope(_ result: JSON, messages: [JSON] = []) -> JSON {
        ["success": true, "errors": [], "messages": .array(messages), "result": result]
    }

    private static func failure(_ code: Int, _ message: String, chain: [(Int, String)] = []) -> JSON {
        var error: JSON = ["code": .int(Int64(code)), "message": .string(message)]
        if !chain.isEmpty {
            error["error_chain"] = .array(chain.map { ["code": .int(Int64($0.0)), "message": .string($0.1)] })
        }
        return ["success": false, "errors": [error], "messages": [], "result": .null]
    }

    private typealias Answer = (Int, [(String, String)], JSON?, [UInt8]?)

    private func respond(_ request: EmulatorRequest, body: JSON?) -> Answer {
        let now = Date().timeIntervalSince1970
        if state.withLockedValue({ $0.outageUntil > now }) {
            return (503, [("Content-Type", "text/html")], nil, Array("<html><body><h1>503 Service Unavailable</h1></body></html>".utf8))
        }
        if let failure = faults.nextFailure() {
            if let raw = failure.raw { return (failure.status, [("Content-Type", raw.contentType)], nil, raw.body) }
            var headers: [(String, String)] = [("Content-Type", "application/json")]
            if let retry = failure.retryAfter {
                headers.append(("Retry-After", String(retry)))
                headers.append(("Ratelimit", "\"default\";r=0;t=\(retry)"))
                headers.append(("Ratelimit-Policy", "\"burst\";q=1200;w=300"))
            }
            if failure.status == 429 {
                return (429, headers, CloudflareEmulator.failure(971, "Please wait and consider throttling your request speed"), nil)
            }
            if failure.status == 502 {
                return (
                    502, [("Content-Type", "text/html")], nil,
                    Array("<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>".utf8)
                )
            }
            return (failure.status, headers, CloudflareEmulator.failure(10002, "Internal server error (injected)"), nil)
        }
        guard request.path.hasPrefix("/client/v4/") else {
            return (404, [], CloudflareEmulator.failure(7003, "No route for the URI"), nil)
        }
        let parts = request.path.dropFirst("/client/v4/".count).split(separator: "/").map(String.init)

        // Authentication
        let credential: String
        var token: Token?
        if let authorization = request.header("authorization") {
            guard authorization.hasPrefix("Bearer "), authorization.count > 7 else {
                return (
                    400, [],
                    CloudflareEmulator.failure(6003, "Invalid request headers", chain: [(6111, "Invalid format for Authorization header")]),
                    nil
                )
            }
            let value = String(authorization.dropFirst(7))
            guard let known = state.withLockedValue({ $0.tokens[value] }) else {
                return (403, [], CloudflareEmulator.failure(9109, "Invalid access token"), nil)
            }
            token = known
            credential = "token:" + value
        } else if let key = request.header("x-auth-key") {
            guard let email = request.header("x-auth-email"), email.contains("@") else {
                return (
                    400, [],
                    CloudflareEmulator.failure(6003, "Invalid request headers", chain: [(6102, "Invalid format for X-Auth-Email header")]),
                    nil
                )
            }
            guard options.globalKeys.contains(where: { $0.email == email && $0.key == key }) else {
                if options.tokens.contains(where: { $0.value == key }) {
                    return (
                        400, [],
                        CloudflareEmulator.failure(
                            6003, "Invalid request headers", chain: [(6103, "Invalid format for X-Auth-Key header")]), nil
                    )
                }
                return (403, [], CloudflareEmulator.failure(9103, "Unknown X-Auth-Key or X-Auth-Email"), nil)
            }
            credential = "key:" + email
        } else {
            return (
                400, [],
                CloudflareEmulator.failure(6003, "Invalid request headers", chain: [(6111, "Invalid format for Authorization header")]), nil
            )
        }

        // Rate limit: a sliding five-minute window per credential.
        var rateHeaders: [(String, String)] = []
        if let limit = options.rateLimit {
            let (allowed, remaining, reset) = state.withLockedValue { state -> (Bool, Int, Int) in
                var times = (state.requestTimes[credential] ?? []).filter { $0 > now - 300 }
                let allowed = times.count < limit
                if allowed { times.append(now) }
                state.requestTimes[credential] = times
                let reset = times.first.map { Int(($0 + 300 - now).rounded(.up)) } ?? 300
                return (allowed, max(0, limit - times.count), reset)
            }
            rateHeaders = [("Ratelimit", "\"default\";r=\(remaining);t=\(reset)"), ("Ratelimit-Policy", "\"burst\";q=\(limit);w=300")]
            if !allowed {
                return (
                    429, rateHeaders + [("Retry-After", String(reset))],
                    CloudflareEmulator.failure(971, "Please wait and consider throttling your request speed"), nil
                )
            }
        }

        let result: (Int, JSON)
        switch (request.method, CloudflareRoute(parts)) {
        case ("GET", .verify) where token?.accountOwned == true:
            result = (401, CloudflareEmulator.failure(1000, "Invalid API Token"))
        case ("GET", .accountVerify(let account)):
            guard let token, token.accountOwned, account == CloudflareEmulator.accountID else {
                result = (401, CloudflareEmulator.failure(1000, "Invalid API Token"))
                break
            }
            result = (200, CloudflareEmulator.activeToken(token))
        case ("GET", .verify):
            guard let token else {
                result = (
                    400,
                    CloudflareEmulator.failure(6003, "Invalid request headers", chain: [(6111, "Invalid format for Authorization header")])
                )
                break
            }
            result = (200, CloudflareEmulator.activeToken(token))
        case ("GET", .zones):
            result = listZones(request)
        case ("GET", .zone(let zoneID)):
            if let zone = zones.first(where: { $0.id == zoneID }) {
                result = (200, CloudflareEmulator.envelope(zoneJSON(zone)))
            } else {
                result = (
                    404, CloudflareEmulator.failure(7003, "Could not route to /zones/\(zoneID), perhaps your object identifier is invalid?")
                )
            }
        case ("POST", .batch(let zoneID)):
            result = withZone(zoneID) { zone in
                guard token?.dnsEdit ?? true else { return (403, CloudflareEmulator.failure(10000, "Authentication error")) }
                return batch(zone, body)
            }
        case (_, .records(let zoneID)):
            result = withZone(zoneID) { zone in
                if request.method == "GET" { return listRecords(zone, request) }
                if request.method == "POST" {
                    guard token?.dnsEdit ?? true else { return (403, CloudflareEmulator.failure(10000, "Authentication error")) }
                    return writeRecord(zone, body: body, id: nil, replace: true)
                }
                return (405, CloudflareEmulator.failure(7001, "Method \(request.method) not allowed for this endpoint"))
            }
        case (_, .record(let zoneID, let recordID)):
            result = withZone(zoneID) { zone in
                if request.method == "GET" {
                    guard let record = state.withLockedValue({ $0.records[zone.id]?.first { $0["id"]?.string == recordID } }) else {
                        return (404, CloudflareEmulator.failure(81044, "Record does not exist."))
                    }
                    return (200, CloudflareEmulator.envelope(record))
                }
                guard token?.dnsEdit ?? true else { return (403, CloudflareEmulator.failure(10000, "Authentication error")) }
                switch request.method {
                case "PUT": return writeRecord(zone, body: body, id: recordID, replace: true)
                case "PATCH": return writeRecord(zone, body: body, id: recordID, replace: false)
                case "DELETE":
                    return state.withLockedValue { state in
                        guard let index = state.records[zone.id]?.firstIndex(where: { $0["id"]?.string == recordID }) else {
                            return (404, CloudflareEmulator.failure(81044, "Record does not exist."))
                        }
                        state.records[zone.id]?.remove(at: index)
                        return (200, CloudflareEmulator.envelope(["id": .string(recordID)]))
                    }
                default: return (405, CloudflareEmulator.failure(7001, "Method \(request.method) not allowed for this endpoint"))
                }
            }
        default:
            result = (404, CloudflareEmulator.failure(7003, "No route for the URI"))
        }
        return (result.0, rateHeaders + [("Content-Type", "application/json")], result.1, nil)
    }

    private func withZone(_ id: String, _ body: (Zone) -> (Int, JSON)) -> (Int, JSON) {
        guard let zone = zones.first(where: { $0.id == id }) else {
            return (
                404,
                CloudflareEmulator.failure(7003, "Could not route to /zones/\(id)/dns_records, perhaps your object identifier is invalid?")
            )
        }
        return body(zone)
    }

    private func zoneJSON(_ zone: Zone) -> JSON {
        let created = WireTime.micros(startedAt)
        return [
            "id": .string(zone.id), "name": .string(zone.name), "status": "active", "paused": false, "type": "full",
            "development_mode": 0, "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": .null, "original_registrar": .null, "original_dnshost": .null,
            "created_on": .string(created), "modified_on": .string(created), "activated_on": .string(created),
            "meta": ["step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3, "phishing_detected": false],
            "owner": ["id": .string(CloudflareEmulator.hexID(seed: "account")), "name": "Emulated Account", "type": "organization"],
            "account": ["id": .string(CloudflareEmulator.hexID(seed: "account")), "name": "Emulated Account"],
            "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
            "plan": [
                "id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "price": 0, "currency": "USD",
                "frequency": "", "is_subscribed": false, "can_subscribe": false, "legacy_id": "free",
                "legacy_discount": false, "externally_managed": false,
            ],
        ]
    }

    private func page(_ request: EmulatorRequest, defaultPerPage: Int, range: ClosedRange<Int>) -> (Int, Int)? {
        let page = Int(request.queryValue("page") ?? "1") ?? 0
        let perPage = Int(request.queryValue("per_page") ?? String(defaultPerPage)) ?? 0
        guard page >= 1, range.contains(perPage) else { return nil }
        return (page, perPage)
    }

    private func listZones(_ request: EmulatorRequest) -> (Int, JSON) {
        guard let (page, perPage) = self.page(request, defaultPerPage: 20, range: 5...50) else {
            return (400, CloudflareEmulator.failure(1001, "Invalid pagination: page must be >= 1 and per_page between 5 and 50"))
        }
        var selected = zones
        if let name = request.queryValue("name") {
            selected = selected.filter { CloudflareEmulator.textMatches($0.name, filter: name, op: "equal") }
        }
        if let status = request.queryValue("status"), status != "active" { selected = [] }
        return (200, CloudflareEmulator.paged(selected.map(zoneJSON), page: page, perPage: perPage))
    }

    private static func paged(_ items: [JSON], page: Int, perPage: Int) -> JSON {
        let start = min(items.count, (page - 1) * perPage)
        let slice = Array(items[start..<min(items.count, start + perPage)])
        var body = envelope(.array(slice))
        body["result_info"] = [
            "page": .int(Int64(page)), "per_page": .int(Int64(perPage)), "count": .int(Int64(slice.count)),
            "total_count": .int(Int64(items.count)),
            "total_pages": .int(Int64(max(1, (items.count + perPage - 1) / perPage))),
        ]
        return body
    }

    /// Cloudflare's name filter operators: `equal` (default, case-insensitive), `contains`, `starts_with`, ...
    private static func textMatches(_ value: String, filter: String, op: String) -> Bool {
        var op = op
        var needle = filter
        for prefix in ["contains:", "starts_with:", "ends_with:", "not_equal:", "equal:"] where filter.hasPrefix(prefix) {
            op = String(prefix.dropLast())
            needle = String(filter.dropFirst(prefix.count))
        }
        let text = value.lowercased()
        needle = needle.lowercased()
        switch op {
        case "contains": return text.contains(needle)
        case "starts_with", "startswith": return text.hasPrefix(needle)
        case "ends_with", "endswith": return text.hasSuffix(needle)
        case "not_equal": return text != needle
        default: return text == needle
        }
    }

    private func listRecords(_ zone: Zone, _ request: EmulatorRequest) -> (Int, JSON) {
        guard let (page, perPage) = self.page(request, defaultPerPage: 100, range: 1...5_000_000) else {
            return (400, CloudflareEmulator.failure(1001, "Invalid pagination: page must be >= 1 and per_page between 1 and 5000000"))
        }
        var tests: [(JSON) -> Bool] = []
        for (name, value) in request.query {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            let field = parts[0]
            let op = parts.count > 1 ? parts[1] : "exact"
            switch field {
            case "name", "content":
                tests.append { record in
                    CloudflareEmulator.textMatches(record[field]?.string ?? "", filter: value, op: op)
                }
            case "type": tests.append { $0["type"]?.string == value.uppercased() }
            case "proxied": tests.append { ($0["proxied"]?.bool ?? false) == (value == "true") }
            case "comment":
                tests.append { record in
                    let comment = record["comment"]?.string
                    switch op {
                    case "present": return comment != nil
                    case "absent": return comment == nil
                    default: return CloudflareEmulator.textMatches(comment ?? "", filter: value, op: op)
                    }
                }
            default: continue
            }
        }
        let any = request.queryValue("match") == "any"
        let all = state.withLockedValue { $0.records[zone.id] ?? [] }
        var selected = all.filter { record in
            tests.isEmpty ? true : (any ? tests.contains { $0(record) } : tests.allSatisfy { $0(record) })
        }
        let order = request.queryValue("order") ?? "type"
        let descending = request.queryValue("direction") == "desc"
        selected = selected.enumerated().sorted { lhs, rhs in
            let a = lhs.element[order]?.serialized() ?? ""
            let b = rhs.element[order]?.serialized() ?? ""
            if a != b { return descending ? a > b : a < b }
            return lhs.offset < rhs.offset
        }.map(\.element)
        return (200, CloudflareEmulator.paged(selected, page: page, perPage: perPage))
    }

    private static let types: Set<String> = [
        "A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR", "NS", "OPENPGPKEY", "PTR",
        "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI",
    ]

    private enum Built {
        case success(JSON)
        case failure(JSON)
    }

    /// Builds a record from a request body, validating as Cloudflare does; `existing` is the record PATCH merges into.
    /// `atName` gives the zone's records on a (normalised) name: the ones a new record could clash with.
    private func makeRecord(
        _ state: inout State, zone: Zone, body: JSON, existing: JSON?, atName: (String) -> [JSON]
    ) -> Built {
        func invalid(_ code: Int, _ message: String) -> Built {
            .failure(CloudflareEmulator.failure(1004, "DNS Validation Error", chain: [(code, message)]))
        }
        guard body.object != nil else { return .failure(CloudflareEmulator.failure(9207, "Request body is invalid.")) }
        let merged = existing.map { KubePatch.merge($0, body) } ?? body
        guard let type = merged["type"]?.string?.uppercased(), CloudflareEmulator.types.contains(type) else {
            return invalid(9000, "DNS record type is invalid.")
        }
        guard var name = merged["name"]?.string?.lowercased(), !name.isEmpty else { return invalid(9007, "DNS name is invalid.") }
        if name.hasSuffix(".") { name.removeLast() }
        if name == "@" { name = zone.name }
        if name != zone.name && !name.hasSuffix("." + zone.name) { name += "." + zone.name }
        guard name.count <= 255 else { return invalid(9007, "DNS name is invalid.") }
        guard let content = merged["content"]?.string, !content.isEmpty else {
            return invalid(9005, "Content for \(type) record is invalid.")
        }
        if type == "A" && !CloudflareEmulator.isIPv4(content) { return invalid(9005, "Content for A record must be a valid IPv4 address.") }
        if type == "AAAA" && !CloudflareEmulator.isIPv6(content) {
            return invalid(9006, "Content for AAAA record must be a valid IPv6 address.")
        }
        let proxiable = ["A", "AAAA", "CNAME"].contains(type)
        let proxied = merged["proxied"]?.bool ?? false
        if proxied && !proxiable { return invalid(9041, "Invalid proxied mode. Record cannot be proxied") }
        let ttl = merged["ttl"]?.int ?? 1
        let minimum: Int64 = options.enterpriseTTL ? 30 : 60
        guard ttl == 1 || (ttl >= minimum && ttl <= 86400) else {
            return invalid(9021, "Invalid TTL. Must be between \(minimum) and 86400 seconds, or 1 for automatic.")
        }
        let comment = merged["comment"]?.string
        if let comment, comment.count > 100 {
            return invalid(9102, "comment: Comment too long (max 100 characters)")
        }
        let id =
            existing?["id"]?.string
            ?? { () -> String in
                state.idCounter += 1
                return CloudflareEmulator.hexID(seed: "record-\(state.idCounter)-\(UInt64.random(in: 0..<UInt64.max))")
            }()
        let others = atName(name).filter { $0["id"]?.string != id }
        if others.contains(where: { $0["type"]?.string == type && $0["content"]?.string == content }) {
            return .failure(CloudflareEmulator.failure(81058, "An identical record already exists."))
        }
        if type == "CNAME" && others.contains(where: { ["A", "AAAA", "CNAME"].contains($0["type"]?.string ?? "") }) {
            return .failure(CloudflareEmulator.failure(81053, "An A, AAAA, or CNAME record with that host already exists."))
        }
        if (type == "A" || type == "AAAA") && others.contains(where: { $0["type"]?.string == "CNAME" }) {
            return .failure(CloudflareEmulator.failure(81054, "A CNAME record with that host already exists."))
        }
        let now = WireTime.micros()
        var record: JSON = [
            "id": .string(id), "name": .string(name), "type": .string(type), "content": .string(content),
            "proxiable": .bool(proxiable), "proxied": .bool(proxied), "ttl": .int(proxied ? 1 : ttl),
            "settings": merged["settings"]?.object.map { .object($0) } ?? [:], "meta": [:],
            "comment": comment.map { .string($0) } ?? .null,
            "tags": merged["tags"]?.array.map { .array($0) } ?? [],
            "created_on": existing?["created_on"] ?? .string(now), "modified_on": .string(now),
        ]
        if comment != nil {
            record["comment_modified_on"] =
                comment == existing?["comment"]?.string ? (existing?["comment_modified_on"] ?? .string(now)) : .string(now)
        }
        if !(record["tags"]?.array ?? []).isEmpty { record["tags_modified_on"] = .string(now) }
        return .success(record)
    }

    private func writeRecord(_ zone: Zone, body: JSON?, id: String?, replace: Bool) -> (Int, JSON) {
        state.withLockedValue { state in
            var list = state.records[zone.id] ?? []
            var existing: JSON?
            var index: Int?
            if let id {
                index = list.firstIndex { $0["id"]?.string == id }
                guard let index else { return (404, CloudflareEmulator.failure(81044, "Record does not exist.")) }
                existing = list[index]
            }
            // PUT replaces: unspecified fields go back to their defaults.
            let base = replace ? existing.map { ["id": $0["id"]!, "created_on": $0["created_on"]!] as JSON } : existing
            switch makeRecord(
                &state, zone: zone, body: body ?? .null, existing: base, atName: { name in list.filter { $0["name"]?.string == name } })
            {
            case .failure(let error): return (400, error)
            case .success(let record):
                if let index { list[index] = record } else { list.append(record) }
                state.records[zone.id] = list
                return (200, CloudflareEmulator.envelope(record))
            }
        }
    }

    private func batch(_ zone: Zone, _ body: JSON?) -> (Int, JSON) {
        guard let body, body.object != nil else { return (400, CloudflareEmulator.failure(9207, "Request body is invalid.")) }
        let deletes = body["deletes"]?.array ?? []
        let patches = body["patches"]?.array ?? []
        let puts = body["puts"]?.array ?? []
        let posts = body["posts"]?.array ?? []
        let total = deletes.count + patches.count + puts.count + posts.count
        guard total <= options.batchLimit else {
            return (400, CloudflareEmulator.failure(81061, "Batch request exceeds the maximum of \(options.batchLimit) records."))
        }
        return state.withLockedValue { state in
            if state.failingBatches > 0 {
                state.failingBatches -= 1
                return (400, CloudflareEmulator.failure(1002, "Batch failed (injected); no changes were applied."))
            }
            var working = state
            // A big batch is indexed first: k operations cost k lookups, not k passes over the zone (a start writes
            // 15,000 records); a small one (a reaction) is cheaper with a pass per operation than with an index.
            var zoneRecords = ZoneRecords(working.records[zone.id] ?? [], indexed: total > 16)
            var result: [String: [JSON]] = ["deletes": [], "patches": [], "puts": [], "posts": []]
            for item in deletes {
                guard let id = item["id"]?.string, let removed = zoneRecords.remove(id: id) else {
                    return (400, CloudflareEmulator.failure(81044, "Record does not exist."))
                }
                result["deletes"]!.append(removed)
            }
            for (kind, items) in [("patches", patches), ("puts", puts)] {
                for item in items {
                    guard let id = item["id"]?.string, let current = zoneRecords.record(id: id) else {
                        return (400, CloudflareEmulator.failure(81044, "Record does not exist."))
                    }
                    var fields = item
                    fields["id"] = nil
                    let base = kind == "puts" ? ["id": current["id"]!, "created_on": current["created_on"]!] as JSON : current
                    switch makeRecord(&working, zone: zone, body: fields, existing: base, atName: { zoneRecords.at(name: $0) }) {
                    case .failure(let error): return (400, error)
                    case .success(let record):
                        zoneRecords.replace(id: id, with: record)
                        result[kind]!.append(record)
                    }
                }
            }
            for item in posts {
                switch makeRecord(&working, zone: zone, body: item, existing: nil, atName: { zoneRecords.at(name: $0) }) {
                case .failure(let error): return (400, error)
                case .success(let record):
                    zoneRecords.append(record)
                    result["posts"]!.append(record)
                }
            }
            let list = zoneRecords.list
            working.records[zone.id] = list
            state.records = working.records
            state.idCounter = working.idCounter
            if state.vagueBatches > 0 {
                state.vagueBatches -= 1
                return (200, CloudflareEmulator.envelope(.null))
            }
            return (200, CloudflareEmulator.envelope(.object(result.mapValues { .array($0) })))
        }
    }

    // MARK: helpers

    /// A zone's records during one batch, indexed by id and by name.
    private struct ZoneRecords {
        private var slots: [JSON?]
        private let indexed: Bool
        private var byID: [String: Int] = [:]
        private var byName: [String: [Int]] = [:]

        init(_ list: [JSON], indexed: Bool) {
            slots = list
            self.indexed = indexed
            if indexed { for (offset, record) in list.enumerated() { index(record, at: offset) } }
        }

        private mutating func index(_ record: JSON, at index: Int) {
            guard indexed else { return }
            if let id = record["id"]?.string { byID[id] = index }
            if let name = record["name"]?.string { byName[name, default: []].append(index) }
        }

        private mutating func unindex(_ record: JSON, at index: Int) {
            guard indexed else { return }
            if let id = record["id"]?.string { byID[id] = nil }
            if let name = record["name"]?.string { byName[name]?.removeAll { $0 == index } }
        }

        private func slot(id: String) -> Int? {
            indexed ? byID[id] : slots.firstIndex { $0?["id"]?.string == id }
        }

        func record(id: String) -> JSON? { slot(id: id).flatMap { slots[$0] } }
        func at(name: String) -> [JSON] {
            indexed
                ? (byName[name] ?? []).compactMap { slots[$0] } : slots.compactMap { $0 }.filter { $0["name"]?.string == name }
        }

        mutating func remove(id: String) -> JSON? {
            guard let index = slot(id: id), let record = slots[index] else { return nil }
            unindex(record, at: index)
            slots[index] = nil
            return record
        }

        mutating func replace(id: String, with record: JSON) {
            guard let index = slot(id: id), let old = slots[index] else { return }
            unindex(old, at: index)
            slots[index] = record
            self.index(record, at: index)
        }

        mutating func append(_ record: JSON) {
            slots.append(record)
            index(record, at: slots.count - 1)
        }

        var list: [JSON] { slots.compactMap { $0 } }
    }

    static func hexID(seed: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var second: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in seed.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
            second = (second ^ UInt64(byte)) &* 0x100_0000_01B3 &+ 7
        }
        func hex(_ value: UInt64) -> String {
            let text = String(value, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }
        return hex(hash) + hex(second)
    }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                guard let value = Int(part), part.count <= 3, part.allSatisfy(\.isNumber) else { return false }
                return value <= 255
            }
    }

    static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }
}

/// The API paths the emulator serves, read from the path segments after /client/v4.
enum CloudflareRoute {
    case verify, zones
    case accountVerify(String)
    case zone(String)
    case batch(String)
    case records(String)
    case record(String, String)
    case unknown

    init(_ parts: [String]) {
        switch parts.count {
        case 3 where parts == ["user", "tokens", "verify"]: self = .verify
        case 4 where parts[0] == "accounts" && parts[2] == "tokens" && parts[3] == "verify": self = .accountVerify(parts[1])
        case 1 where parts[0] == "zones": self = .zones
        case 2 where parts[0] == "zones": self = .zone(parts[1])
        case 3 where parts[0] == "zones" && parts[2] == "dns_records": self = .records(parts[1])
        case 4 where parts[0] == "zones" && parts[2] == "dns_records" && parts[3] == "batch": self = .batch(parts[1])
        case 4 where parts[0] == "zones" && parts[2] == "dns_records": self = .record(parts[1], parts[3])
        default: self = .unknown
        }
    }
}
