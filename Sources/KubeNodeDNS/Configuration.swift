import Foundation
import NodeDNSCore

/// Everything kube-node-dns is told at start-up, from Go-style flags and environment variables
/// (the original kubernetes-cloudflare-sync's names keep working).
package struct Configuration: Sendable {
    package var dnsNames: [DNSName] = []
    package var nodeNameTemplate: NodeNameTemplate?
    package var maxAddressesPerName = RecordPolicy.defaultMaxValuesPerName
    package var cloudflareToken: String?
    package var cloudflareEmail: String?
    package var cloudflareKey: String?
    package var cloudflareProxy = false
    package var cloudflareTTL = 120
    package var cloudflareAPIURL = "https://api.cloudflare.com/client/v4"
    package var cloudflareZoneID: String?
    package var cloudflareBatchSize = 200
    package var cloudflareRateLimit = 1200
    package var useInternalIP = false
    package var skipExternalIP = false
    package var internalIPFallback = false
    package var nodeSelector: LabelSelector?
    package var requireReady = true
    package var excludeCordoned = true
    package var excludeTaints: [String] = ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"]
    package var kubeconfig: String?
    package var kubeContext: String?
    package var ownerID = "default"
    package var takeOwnership = false
    package var allowEmpty = false
    package var debounce: Double = 0.1
    package var resyncInterval: Double = 300
    package var dryRun = false
    package var once = false
    package var leaderElect = false
    package var leaseName = "kube-node-dns"
    package var leaseNamespace: String?
    package var leaseIdentity: String = ""
    package var leaseDuration: Double = 15
    package var leaseRenewDeadline: Double = 10
    package var leaseRetryPeriod: Double = 2
    package var httpAddress = ":8080"
    package var logFormat = "text"
    package var logLevel = "info"
    package var events = true
    package var eventNamespace = "default"

    package init() {}

    /// The secrets this configuration holds, so logs and errors can be scrubbed of them.
    package var secrets: [String] { [cloudflareToken, cloudflareKey].compactMap { $0 }.filter { $0.count >= 4 } }

    package var recordPolicy: RecordPolicy {
        var eligibility = EligibilityPolicy()
        eligibility.requireReady = requireReady
        eligibility.excludeCordoned = excludeCordoned
        eligibility.excludedTaintKeys = Set(excludeTaints)
        eligibility.selector = nodeSelector
        return RecordPolicy(
            sharedNames: dnsNames, nodeNameTemplate: nodeNameTemplate, maxValuesPerName: maxAddressesPerName,
            addresses: AddressPolicy(useExternal: !skipExternalIP, useInternal: useInternalIP, internalFallback: internalIPFallback),
            eligibility: eligibility)
    }
}

/// A bad command line or environment: the message names the flag, its variable and what to fix.
package struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// One flag, its environment variable, its default and its help line.
struct FlagSpec: Sendable {
    enum Kind: Sendable { case bool, string, int, duration }
    var name: String
    var env: String?
    var kind: Kind
    var defaultText: String
    var help: String
    var apply: @Sendable (inout Configuration, String) throws(ConfigurationError) -> Void
}

extension Configuration {
    static func parseBool(_ text: String, flag: String) throws(ConfigurationError) -> Bool {
        switch text.lowercased() {
        case "1", "t", "true", "yes", "y", "on": return true
        case "0", "f", "false", "no", "n", "off", "": return false
        default: throw ConfigurationError("invalid value \"\(text)\" for \(flag): want true or false")
        }
    }

    /// Go duration text ("100ms", "5m", "1h30m") or plain seconds.
    static func parseDuration(_ text: String, flag: String) throws(ConfigurationError) -> Double {
        if let seconds = Double(text), seconds >= 0 { return seconds }
        var total = 0.0
        var number = ""
        var index = text.startIndex
        var sawUnit = false
        while index < text.endIndex {
            let character = text[index]
            if character.isNumber || character == "." {
                number.append(character)
                index = text.index(after: index)
                continue
            }
            var unit = String(character)
            let next = text.index(after: index)
            if character == "m" && next < text.endIndex && text[next] == "s" { unit = "ms" }
            if (character == "u" || character == "µ") && next < text.endIndex && text[next] == "s" { unit = "us" }
            if character == "n" && next < text.endIndex && text[next] == "s" { unit = "ns" }
            let scale: Double
            switch unit {
            case "h": scale = 3600
            case "m": scale = 60
            case "s": scale = 1
            case "ms": scale = 0.001
            case "us": scale = 0.000_001
            case "ns": scale = 0.000_000_001
            default: throw ConfigurationError("invalid value \"\(text)\" for \(flag): want a duration such as 100ms, 30s or 5m")
            }
            guard let value = Double(number) else {
                throw ConfigurationError("invalid value \"\(text)\" for \(flag): want a duration such as 100ms, 30s or 5m")
            }
            total += value * scale
            number = ""
            sawUnit = true
            index = text.index(index, offsetBy: unit.count)
        }
        guard sawUnit, number.isEmpty else {
            throw ConfigurationError("invalid value \"\(text)\" for \(flag): want a duration such as 100ms, 30s or 5m")
        }
        return total
    }

    static func parseInt(_ text: String, flag: String, range: ClosedRange<Int>, what: String) throws(ConfigurationError) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError("invalid value \"\(text)\" for \(flag): \(what)")
        }
        return value
    }

    static func readSecretFile(_ path: String, flag: String) throws(ConfigurationError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("cannot read \(path) given by \(flag): \(FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")")
        }
        let value = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else { throw ConfigurationError("\(path) given by \(flag) is empty") }
        return value
    }

    static let flags: [FlagSpec] = [
        FlagSpec(name: "dns-name", env: "DNS_NAME", kind: .string, defaultText: "", help: "comma-separated DNS names that carry every eligible node's addresses (required unless --node-name-template)") { config, value throws(ConfigurationError) in
            config.dnsNames = []
            for part in value.split(separator: ",") where !part.trimmingCharacters(in: .whitespaces).isEmpty {
                do {
                    config.dnsNames.append(try DNSName(part.trimmingCharacters(in: .whitespaces)))
                } catch {
                    throw ConfigurationError("--dns-name (DNS_NAME): \(error)")
                }
            }
        },
        FlagSpec(name: "node-name-template", env: "NODE_NAME_TEMPLATE", kind: .string, defaultText: "", help: "also publish one name per node, e.g. {node}.nodes.example.com") { config, value throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            do { config.nodeNameTemplate = try NodeNameTemplate(value) } catch { throw ConfigurationError("--node-name-template (NODE_NAME_TEMPLATE): \(error)") }
        },
        FlagSpec(name: "max-addresses-per-name", env: "MAX_ADDRESSES_PER_NAME", kind: .int, defaultText: "12", help: "at most this many addresses on a shared name (a stable subset is chosen)") { config, value throws(ConfigurationError) in
            config.maxAddressesPerName = try parseInt(value, flag: "--max-addresses-per-name (MAX_ADDRESSES_PER_NAME)", range: 1...100, what: "want a whole number from 1 to 100")
        },
        FlagSpec(name: "cloudflare-api-token", env: "CF_API_TOKEN", kind: .string, defaultText: "", help: "Cloudflare API token with Zone:Read and DNS:Edit (preferred over email and key)") { config, value in config.cloudflareToken = value.isEmpty ? nil : value },
        FlagSpec(name: "cloudflare-api-token-file", env: "CF_API_TOKEN_FILE", kind: .string, defaultText: "", help: "read the Cloudflare API token from this file") { config, value throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            config.cloudflareToken = try readSecretFile(value, flag: "--cloudflare-api-token-file (CF_API_TOKEN_FILE)")
        },
        FlagSpec(name: "cloudflare-api-email", env: "CF_API_EMAIL", kind: .string, defaultText: "", help: "Cloudflare account email, with --cloudflare-api-key (legacy)") { config, value in config.cloudflareEmail = value.isEmpty ? nil : value },
        FlagSpec(name: "cloudflare-api-key", env: "CF_API_KEY", kind: .string, defaultText: "", help: "Cloudflare Global API Key, with --cloudflare-api-email (legacy)") { config, value in config.cloudflareKey = value.isEmpty ? nil : value },
        FlagSpec(name: "cloudflare-api-key-file", env: "CF_API_KEY_FILE", kind: .string, defaultText: "", help: "read the Cloudflare Global API Key from this file") { config, value throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            config.cloudflareKey = try readSecretFile(value, flag: "--cloudflare-api-key-file (CF_API_KEY_FILE)")
        },
        FlagSpec(name: "cloudflare-proxy", env: "CF_PROXY", kind: .bool, defaultText: "false", help: "proxy the records through Cloudflare (orange cloud)") { config, value throws(ConfigurationError) in
            config.cloudflareProxy = try parseBool(value, flag: "--cloudflare-proxy (CF_PROXY)")
        },
        FlagSpec(name: "cloudflare-ttl", env: "CF_TTL", kind: .int, defaultText: "120", help: "record TTL in seconds: 1 (automatic) or 60 to 86400") { config, value throws(ConfigurationError) in
            let ttl = try parseInt(value, flag: "--cloudflare-ttl (CF_TTL)", range: 1...86400, what: "want 1 (automatic) or 60 to 86400 seconds")
            guard ttl == 1 || ttl >= 60 else { throw ConfigurationError("invalid value \"\(value)\" for --cloudflare-ttl (CF_TTL): want 1 (automatic) or 60 to 86400 seconds") }
            config.cloudflareTTL = ttl
        },
        FlagSpec(name: "cloudflare-api-url", env: "CF_API_URL", kind: .string, defaultText: "https://api.cloudflare.com/client/v4", help: "Cloudflare API v4 base URL") { config, value throws(ConfigurationError) in
            guard let url = URL(string: value), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                throw ConfigurationError("invalid value \"\(value)\" for --cloudflare-api-url (CF_API_URL): want an http(s) URL")
            }
            config.cloudflareAPIURL = value
        },
        FlagSpec(name: "cloudflare-zone-id", env: "CF_ZONE_ID", kind: .string, defaultText: "", help: "use this zone id instead of looking zones up by name") { config, value in config.cloudflareZoneID = value.isEmpty ? nil : value },
        FlagSpec(name: "cloudflare-batch-size", env: "CF_BATCH_SIZE", kind: .int, defaultText: "200", help: "records per batch request (Free plan: 200)") { config, value throws(ConfigurationError) in
            config.cloudflareBatchSize = try parseInt(value, flag: "--cloudflare-batch-size (CF_BATCH_SIZE)", range: 1...3500, what: "want 1 to 3500")
        },
        FlagSpec(name: "cloudflare-rate-limit", env: "CF_RATE_LIMIT", kind: .int, defaultText: "1200", help: "client-side limit of Cloudflare requests per 5 minutes") { config, value throws(ConfigurationError) in
            config.cloudflareRateLimit = try parseInt(value, flag: "--cloudflare-rate-limit (CF_RATE_LIMIT)", range: 1...100_000, what: "want a whole number of requests per 5 minutes")
        },
        FlagSpec(name: "use-internal-ip", env: "USE_INTERNAL_IP", kind: .bool, defaultText: "false", help: "publish InternalIP addresses too") { config, value throws(ConfigurationError) in
            config.useInternalIP = try parseBool(value, flag: "--use-internal-ip (USE_INTERNAL_IP)")
        },
        FlagSpec(name: "skip-external-ip", env: "SKIP_EXTERNAL_IP", kind: .bool, defaultText: "false", help: "do not publish ExternalIP addresses") { config, value throws(ConfigurationError) in
            config.skipExternalIP = try parseBool(value, flag: "--skip-external-ip (SKIP_EXTERNAL_IP)")
        },
        FlagSpec(name: "internal-ip-fallback", env: "INTERNAL_IP_FALLBACK", kind: .bool, defaultText: "false", help: "publish a node's InternalIP when it has no ExternalIP") { config, value throws(ConfigurationError) in
            config.internalIPFallback = try parseBool(value, flag: "--internal-ip-fallback (INTERNAL_IP_FALLBACK)")
        },
        FlagSpec(name: "node-selector", env: "NODE_SELECTOR", kind: .string, defaultText: "", help: "label selector the nodes must match, e.g. role=web,tier!=batch") { config, value throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            do { config.nodeSelector = try LabelSelector(value) } catch { throw ConfigurationError("--node-selector (NODE_SELECTOR): \(error)") }
        },
        FlagSpec(name: "require-ready", env: "REQUIRE_READY", kind: .bool, defaultText: "true", help: "only nodes whose Ready condition is True") { config, value throws(ConfigurationError) in
            config.requireReady = try parseBool(value, flag: "--require-ready (REQUIRE_READY)")
        },
        FlagSpec(name: "exclude-cordoned", env: "EXCLUDE_CORDONED", kind: .bool, defaultText: "true", help: "leave out cordoned (unschedulable) nodes") { config, value throws(ConfigurationError) in
            config.excludeCordoned = try parseBool(value, flag: "--exclude-cordoned (EXCLUDE_CORDONED)")
        },
        FlagSpec(name: "exclude-taints", env: "EXCLUDE_TAINTS", kind: .string, defaultText: "node.kubernetes.io/unreachable,node.kubernetes.io/not-ready", help: "leave out nodes with any of these taint keys (comma-separated; empty for none)") { config, value in
            config.excludeTaints = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        },
        FlagSpec(name: "kubeconfig", env: nil, kind: .string, defaultText: "", help: "kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)") { config, value in config.kubeconfig = value.isEmpty ? nil : value },
        FlagSpec(name: "context", env: "KUBE_CONTEXT", kind: .string, defaultText: "", help: "kubeconfig context (default: its current-context)") { config, value in config.kubeContext = value.isEmpty ? nil : value },
        FlagSpec(name: "owner-id", env: "OWNER_ID", kind: .string, defaultText: "default", help: "owner id written in each record's comment; give each cluster its own") { config, value throws(ConfigurationError) in
            guard !value.isEmpty, value.count <= 63, value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw ConfigurationError("invalid value \"\(value)\" for --owner-id (OWNER_ID): want 1 to 63 letters, digits, '-', '_' or '.'")
            }
            config.ownerID = value
        },
        FlagSpec(name: "take-ownership", env: "TAKE_OWNERSHIP", kind: .bool, defaultText: "false", help: "adopt existing A/AAAA records of the managed names (migrating from kubernetes-cloudflare-sync)") { config, value throws(ConfigurationError) in
            config.takeOwnership = try parseBool(value, flag: "--take-ownership (TAKE_OWNERSHIP)")
        },
        FlagSpec(name: "allow-empty", env: "ALLOW_EMPTY", kind: .bool, defaultText: "false", help: "let a shared name lose all records when every node becomes ineligible") { config, value throws(ConfigurationError) in
            config.allowEmpty = try parseBool(value, flag: "--allow-empty (ALLOW_EMPTY)")
        },
        FlagSpec(name: "debounce", env: "DEBOUNCE", kind: .duration, defaultText: "100ms", help: "collapse node changes arriving within this window into one reconcile") { config, value throws(ConfigurationError) in
            config.debounce = try parseDuration(value, flag: "--debounce (DEBOUNCE)")
        },
        FlagSpec(name: "resync-interval", env: "RESYNC_INTERVAL", kind: .duration, defaultText: "5m", help: "how often to re-read the provider and repair drift") { config, value throws(ConfigurationError) in
            let seconds = try parseDuration(value, flag: "--resync-interval (RESYNC_INTERVAL)")
            guard seconds >= 1 else { throw ConfigurationError("invalid value \"\(value)\" for --resync-interval (RESYNC_INTERVAL): want at least 1s") }
            config.resyncInterval = seconds
        },
        FlagSpec(name: "dry-run", env: "DRY_RUN", kind: .bool, defaultText: "false", help: "log the planned changes and write nothing") { config, value throws(ConfigurationError) in
            config.dryRun = try parseBool(value, flag: "--dry-run (DRY_RUN)")
        },
        FlagSpec(name: "once", env: "ONCE", kind: .bool, defaultText: "false", help: "reconcile once and exit (0 on success)") { config, value throws(ConfigurationError) in
            config.once = try parseBool(value, flag: "--once (ONCE)")
        },
        FlagSpec(name: "leader-elect", env: "LEADER_ELECT", kind: .bool, defaultText: "false", help: "elect a leader through a Lease so several replicas are safe") { config, value throws(ConfigurationError) in
            config.leaderElect = try parseBool(value, flag: "--leader-elect (LEADER_ELECT)")
        },
        FlagSpec(name: "lease-name", env: "LEASE_NAME", kind: .string, defaultText: "kube-node-dns", help: "name of the leader-election Lease") { config, value in config.leaseName = value },
        FlagSpec(name: "lease-namespace", env: "LEASE_NAMESPACE", kind: .string, defaultText: "the pod's namespace", help: "namespace of the Lease") { config, value in config.leaseNamespace = value.isEmpty ? nil : value },
        FlagSpec(name: "lease-identity", env: "LEASE_IDENTITY", kind: .string, defaultText: "$POD_NAME, else the host name", help: "this replica's identity in the Lease") { config, value in config.leaseIdentity = value },
        FlagSpec(name: "lease-duration", env: "LEASE_DURATION", kind: .duration, defaultText: "15s", help: "how long a Lease stays valid without renewal") { config, value throws(ConfigurationError) in
            config.leaseDuration = try parseDuration(value, flag: "--lease-duration (LEASE_DURATION)")
        },
        FlagSpec(name: "lease-renew-deadline", env: "LEASE_RENEW_DEADLINE", kind: .duration, defaultText: "10s", help: "a leader that cannot renew within this stops writing") { config, value throws(ConfigurationError) in
            config.leaseRenewDeadline = try parseDuration(value, flag: "--lease-renew-deadline (LEASE_RENEW_DEADLINE)")
        },
        FlagSpec(name: "lease-retry-period", env: "LEASE_RETRY_PERIOD", kind: .duration, defaultText: "2s", help: "how often to try to acquire or renew the Lease") { config, value throws(ConfigurationError) in
            config.leaseRetryPeriod = try parseDuration(value, flag: "--lease-retry-period (LEASE_RETRY_PERIOD)")
        },
        FlagSpec(name: "http-address", env: "HTTP_ADDRESS", kind: .string, defaultText: ":8080", help: "listen address of /healthz, /readyz and /metrics (\"off\" to disable)") { config, value in config.httpAddress = value },
        FlagSpec(name: "log-format", env: "LOG_FORMAT", kind: .string, defaultText: "text", help: "text or json") { config, value throws(ConfigurationError) in
            guard ["text", "json"].contains(value) else { throw ConfigurationError("invalid value \"\(value)\" for --log-format (LOG_FORMAT): want text or json") }
            config.logFormat = value
        },
        FlagSpec(name: "log-level", env: "LOG_LEVEL", kind: .string, defaultText: "info", help: "trace, debug, info, notice, warning, error or critical") { config, value throws(ConfigurationError) in
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw ConfigurationError("invalid value \"\(value)\" for --log-level (LOG_LEVEL): want trace, debug, info, notice, warning, error or critical")
            }
            config.logLevel = value
        },
        FlagSpec(name: "events", env: "EVENTS", kind: .bool, defaultText: "true", help: "record Kubernetes Events on Nodes for record changes and conflicts") { config, value throws(ConfigurationError) in
            config.events = try parseBool(value, flag: "--events (EVENTS)")
        },
        FlagSpec(name: "event-namespace", env: "EVENT_NAMESPACE", kind: .string, defaultText: "default", help: "namespace the Node Events are written to") { config, value in config.eventNamespace = value },
    ]

    /// The `--help` text: each flag with its variable and default.
    package static var helpText: String {
        var lines = [
            "kube-node-dns keeps DNS records pointed at the Kubernetes nodes that can serve traffic.", "",
            "usage: kube-node-dns [flags]   (flags take --name=value or --name value; booleans also --name)", "",
        ]
        for flag in flags {
            let env = flag.env.map { " [$\($0)]" } ?? ""
            let def = flag.defaultText.isEmpty ? "" : " (default \(flag.defaultText))"
            lines.append("  --\(flag.name)\(flag.kind == .bool ? "" : " value")\(env)")
            lines.append("        \(flag.help)\(def)")
        }
        lines.append("  --help\n        print this help")
        return lines.joined(separator: "\n")
    }

    /// Reads the environment first, then the flags (flags win), then checks the whole.
    package static func parse(arguments: [String], environment: [String: String]) throws(ConfigurationError) -> Configuration {
        var config = Configuration()
        config.leaseIdentity = environment["POD_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? ProcessInfo.processInfo.hostName
        for flag in flags {
            if let env = flag.env, let value = environment[env] {
                try flag.apply(&config, value)
            }
        }
        var index = 0
        while index < arguments.count {
            var argument = arguments[index]
            index += 1
            guard argument.hasPrefix("-"), argument != "-", argument != "--" else {
                throw ConfigurationError("unexpected argument \"\(argument)\"; flags look like --dns-name=example.com (see --help)")
            }
            argument = String(argument.drop { $0 == "-" })
            var value: String?
            if let equals = argument.firstIndex(of: "=") {
                value = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            guard let flag = flags.first(where: { $0.name == argument }) else {
                throw ConfigurationError("unknown flag --\(argument) (see --help for the list)")
            }
            if flag.kind == .bool {
                try flag.apply(&config, value ?? "true")
                continue
            }
            if value == nil {
                guard index < arguments.count else { throw ConfigurationError("flag --\(argument) needs a value") }
                value = arguments[index]
                index += 1
            }
            try flag.apply(&config, value!)
        }
        try config.validate()
        return config
    }

    func validate() throws(ConfigurationError) {
        if dnsNames.isEmpty && nodeNameTemplate == nil {
            throw ConfigurationError("no DNS name to manage: set --dns-name (DNS_NAME), e.g. --dns-name=kubernetes.example.com")
        }
        if cloudflareToken == nil && (cloudflareEmail == nil || cloudflareKey == nil) {
            if cloudflareEmail != nil || cloudflareKey != nil {
                throw ConfigurationError("--cloudflare-api-email (CF_API_EMAIL) and --cloudflare-api-key (CF_API_KEY) go together; or use --cloudflare-api-token (CF_API_TOKEN)")
            }
            throw ConfigurationError("no Cloudflare credentials: set --cloudflare-api-token (CF_API_TOKEN) or --cloudflare-api-token-file, or --cloudflare-api-email with --cloudflare-api-key")
        }
        if skipExternalIP && !useInternalIP && !internalIPFallback {
            throw ConfigurationError("--skip-external-ip without --use-internal-ip leaves no address to publish")
        }
        if leaderElect && leaseRenewDeadline >= leaseDuration {
            throw ConfigurationError("--lease-renew-deadline must be shorter than --lease-duration")
        }
        if leaderElect && leaseIdentity.isEmpty {
            throw ConfigurationError("--lease-identity is empty and neither POD_NAME nor the host name is known")
        }
        _ = try httpBinding()
    }

    /// Host and port of the ops server, or nil when disabled.
    package func httpBinding() throws(ConfigurationError) -> (host: String, port: Int)? {
        if httpAddress == "off" || httpAddress.isEmpty { return nil }
        guard let colon = httpAddress.lastIndex(of: ":"), let port = Int(httpAddress[httpAddress.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("invalid value \"\(httpAddress)\" for --http-address (HTTP_ADDRESS): want host:port or :port")
        }
        let host = String(httpAddress[..<colon])
        return (host.isEmpty ? "0.0.0.0" : host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }
}
