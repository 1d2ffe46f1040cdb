import FoundationEssentials
import Logging
import NodeDNSCore
import RFC2136DNS

/// Where the records live: the one choice the composition root branches on.
package enum DNSProviderKind: String, Sendable, CaseIterable {
    case cloudflare, rfc2136
}

/// Everything kube-node-dns is told at start-up, from Go-style flags and environment variables
/// (the original kubernetes-cloudflare-sync's names keep working).
package struct Configuration: Sendable {
    package var dnsNames: [DNSName] = []
    /// `--cname-names`, in the order given: each name, and its target when one was given (the first `--dns-name`
    /// otherwise).
    package var cnameNames: [(name: DNSName, target: DNSName?)] = []
    package var nodeNameTemplate: NodeNameTemplate?
    /// `--node-hostnames-annotation`: the Node annotation that lists extra names for the node; nil when off.
    package var nodeHostnamesAnnotation: String?
    package var maxAddressesPerName = RecordPolicy.defaultMaxValuesPerName
    package var cloudflareToken: String?
    package var cloudflareEmail: String?
    package var cloudflareKey: String?
    /// The files the token and key were read from; they are watched, so a rotated secret needs no restart.
    package var cloudflareTokenFile: String?
    package var cloudflareKeyFile: String?
    package var cloudflareProxy = false
    package var cloudflareTTL = 120
    package var cloudflareAPIURL = "https://api.cloudflare.com/client/v4"
    package var cloudflareZoneID: String?
    package var cloudflareBatchSize = 200
    package var cloudflareRateLimit = 1200
    /// Which DNS provider holds the records: `cloudflare` or `rfc2136`.
    package var provider = DNSProviderKind.cloudflare
    package var rfc2136Server: String?
    package var rfc2136Zone: DNSName?
    package var rfc2136KeyName: String?
    package var rfc2136Secret: String?
    package var rfc2136SecretFile: String?
    package var rfc2136Algorithm = TSIGKey.Algorithm.hmacSHA256
    package var rfc2136Transport = DNSTransportKind.tcp
    package var rfc2136TTL = 120
    package var useInternalIP = false
    package var alwaysUseInternalIP = false
    package var skipExternalIP = false
    package var internalIPFallback = false
    package var nodeSelector: LabelSelector?
    package var servingPods: ServingPodRule?
    package var requireReady = true
    package var excludeCordoned = true
    package var excludeTaints: [String] = Configuration.defaultExcludedTaints
    /// The default of `--exclude-taints`: the lifecycle controller's condition taints, then the departure taints.
    package static let defaultExcludedTaints =
        ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"] + EligibilityPolicy.departureTaints.map(\.key)
    package var honorLoadBalancerExclusion = true
    /// `--health-check`: nil when off (the default).
    package var healthCheck: HealthCheckSpec?
    /// The HTTP Host header and TLS server name of the checks; the first `--dns-name` when nil.
    package var healthCheckHost: String?
    package var healthCheckInsecure = false
    package var healthCheckCAFile: String?
    package var healthCheckTimeout: Double = 1
    package var healthCheckInterval: Double = 2
    package var healthCheckFall = 2
    package var healthCheckRise = 2
    package var kubeconfig: String?
    package var kubeReadTimeout: Double = 35
    /// Every Kubernetes exchange but a watch completes within this, however slowly the API server sends.
    package var kubeRequestTimeout: Double = 30
    /// Every Cloudflare call (one attempt) completes within this, however slowly Cloudflare sends.
    package var cloudflareRequestTimeout: Double = 30
    /// `/healthz` fails once a peer (the API server, the DNS provider) has failed or stalled for this long.
    package var healthzPeerLimit: Double = 600
    package var kubeContext: String?
    package var ownerID = "default"
    package var takeOwnership = false
    package var allowEmpty = false
    package var debounce: Double = 0.1
    /// Every retry wait of the reflectors, the reconciler and the Cloudflare client, multiplied by this. 1 in the
    /// product, where no flag or variable sets it; the hostile-peer tests' controller (`kube-node-dns-bench
    /// --retry-scale`) lowers it, so that 10,000 refused answers take a minute rather than days.
    package var retryScale: Double = 1
    package var resyncInterval: Double = 300
    package var dryRun = false
    package var once = false
    /// Set by the executable, not a flag: after the first complete reconcile, give the kernel back the binary's
    /// pages that only start-up used (`ProcessMemory.releaseStartupPages`). Off in tests, which share one process.
    package var releaseStartupPages = false
    package var leaderElect = false
    package var leaseName = "kube-node-dns"
    package var leaseNamespace: String?
    package var leaseIdentity: String = ""
    package var leaseDuration: Double = 15
    package var leaseRenewDeadline: Double = 10
    package var leaseRetryPeriod: Double = 2
    package var httpAddress = ":8080"
    package var logFormat = "text"
    package var logLevel = Logger.Level.info
    package var events = true
    package var eventNamespace = "default"

    package init() {}

    /// Each `--cname-names` name and the `--dns-name` it points at.
    package var cnames: [DNSName: DNSName] {
        var result: [DNSName: DNSName] = [:]
        for entry in cnameNames { if let target = entry.target ?? dnsNames.first { result[entry.name] = target } }
        return result
    }

    /// The secrets this configuration holds, so logs and errors can be scrubbed of them.
    package var secrets: [String] {
        [cloudflareToken, cloudflareKey, rfc2136Secret].compactMap { $0 }.filter { $0.count >= 4 }
    }

    /// The RFC 2136 server's host and port (53 unless given): `host`, `host:port`, `[v6]:port` or a bare IPv6.
    package func rfc2136Endpoint() throws(ConfigurationError) -> (host: String, port: Int) {
        let label = "--rfc2136-server (RFC2136_SERVER)"
        guard let text = rfc2136Server, !text.isEmpty else {
            throw ConfigurationError("no DNS server: set \(label), e.g. --rfc2136-server=ns1.example.com:53")
        }
        func bad() -> ConfigurationError {
            ConfigurationError("invalid value \"\(text)\" for \(label): want HOST or HOST:PORT, e.g. 192.0.2.53:53 or [2001:db8::53]:53")
        }
        var host = text
        var port = 53
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw bad() }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let value = Int(rest.dropFirst()) else { throw bad() }
                port = value
            }
        } else if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
            host = String(text[..<colon])
            guard let value = Int(text[text.index(after: colon)...]) else { throw bad() }
            port = value
        }
        guard !host.isEmpty, (1...65535).contains(port), !host.contains(" ") else { throw bad() }
        return (host, port)
    }

    package var recordPolicy: RecordPolicy {
        var eligibility = EligibilityPolicy()
        eligibility.requireReady = requireReady
        eligibility.excludeCordoned = excludeCordoned
        eligibility.excludedTaintKeys = Set(excludeTaints)
        eligibility.honorLoadBalancerExclusion = honorLoadBalancerExclusion
        eligibility.selector = nodeSelector
        eligibility.servingPods = servingPods
        var policy = RecordPolicy(
            sharedNames: dnsNames, nodeNameTemplate: nodeNameTemplate, maxValuesPerName: maxAddressesPerName,
            addresses: AddressPolicy(
                useExternal: !skipExternalIP, useInternal: alwaysUseInternalIP, internalFallback: internalIPFallback,
                internalWhenNoExternal: useInternalIP),
            eligibility: eligibility)
        policy.cnames = cnames
        policy.readsNodeHostnames = nodeHostnamesAnnotation != nil
        return policy
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
    /// Sets the value; `label` is this flag as messages name it, e.g. `--cloudflare-ttl (CF_TTL)`.
    var set: @Sendable (_ config: inout Configuration, _ value: String, _ label: String) throws(ConfigurationError) -> Void
    /// Reads a boolean flag's value back (nil for other kinds).
    var readBool: (@Sendable (Configuration) -> Bool)? = nil
    /// The values the flag accepts, for --help (bounded numbers and durations).
    var rangeText: String? = nil

    /// How messages name the flag: with its environment variable, so either spelling is found.
    var label: String { env.map { "--\(name) (\($0))" } ?? "--\(name)" }

    func apply(_ config: inout Configuration, _ value: String) throws(ConfigurationError) {
        try set(&config, value, label)
    }

    static func bool(
        _ name: String, _ env: String, _ defaultValue: Bool, _ help: String,
        _ field: any WritableKeyPath<Configuration, Bool> & Sendable
    ) -> FlagSpec {
        var spec = FlagSpec(name: name, env: env, kind: .bool, defaultText: String(defaultValue), help: help) {
            config, value, label throws(ConfigurationError) in
            config[keyPath: field] = try Configuration.parseBool(value, flag: label)
        }
        spec.readBool = { $0[keyPath: field] }
        return spec
    }

    /// A string where empty means unset.
    static func optional(
        _ name: String, _ env: String?, _ help: String, _ field: any WritableKeyPath<Configuration, String?> & Sendable
    ) -> FlagSpec {
        FlagSpec(name: name, env: env, kind: .string, defaultText: "", help: help) { config, value, _ in
            config[keyPath: field] = value.isEmpty ? nil : value
        }
    }

    static func string(
        _ name: String, _ env: String, _ defaultText: String, _ help: String,
        _ field: any WritableKeyPath<Configuration, String> & Sendable
    ) -> FlagSpec {
        FlagSpec(name: name, env: env, kind: .string, defaultText: defaultText, help: help) { config, value, _ in
            config[keyPath: field] = value
        }
    }

    static func duration(
        _ name: String, _ env: String, _ defaultText: String, _ help: String, minimumText: String? = nil,
        minimum: Double = 0, _ field: any WritableKeyPath<Configuration, Double> & Sendable
    ) -> FlagSpec {
        var spec = FlagSpec(name: name, env: env, kind: .duration, defaultText: defaultText, help: help) {
            config, value, label throws(ConfigurationError) in
            let seconds = try Configuration.parseDuration(value, flag: label)
            guard seconds >= minimum else {
                throw ConfigurationError(
                    "invalid value \"\(value)\" for \(label): want at least \(minimumText ?? "\(Int(minimum))s")")
            }
            config[keyPath: field] = seconds
        }
        if minimum > 0 { spec.rangeText = "at least \(minimumText ?? "\(Int(minimum))s")" }
        return spec
    }

    static func int(
        _ name: String, _ env: String, _ defaultValue: Int, _ help: String, range: ClosedRange<Int>, what: String,
        _ field: any WritableKeyPath<Configuration, Int> & Sendable
    ) -> FlagSpec {
        var spec = FlagSpec(name: name, env: env, kind: .int, defaultText: String(defaultValue), help: help) {
            config, value, label throws(ConfigurationError) in
            config[keyPath: field] = try Configuration.parseInt(value, flag: label, range: range, what: what)
        }
        spec.rangeText = "\(range.lowerBound) to \(range.upperBound)"
        return spec
    }

    /// A secret read from a file; empty means unset.
    static func secretFile(
        _ name: String, _ env: String, _ help: String, _ field: any WritableKeyPath<Configuration, String?> & Sendable,
        path: any WritableKeyPath<Configuration, String?> & Sendable
    ) -> FlagSpec {
        FlagSpec(name: name, env: env, kind: .string, defaultText: "", help: help) { config, value, label throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            config[keyPath: field] = try WatchedSecretFile.read(value, flag: label)
            config[keyPath: path] = value
        }
    }
}

extension Configuration {
    static func parseBool(_ text: String, flag: String) throws(ConfigurationError) -> Bool {
        switch text.lowercased() {
        case "1", "t", "true", "yes", "y", "on": return true
        case "0", "f", "false", "no", "n", "off": return false
        default: throw ConfigurationError("invalid value \"\(text)\" for \(flag): want true or false")
        }
    }

    /// Go duration text ("100ms", "5m", "1h30m") or plain seconds.
    static func parseDuration(_ text: String, flag: String) throws(ConfigurationError) -> Double {
        guard let seconds = goDurationSeconds(text) else {
            throw ConfigurationError("invalid value \"\(text)\" for \(flag): want a duration such as 100ms, 30s or 5m")
        }
        return seconds
    }

    static func parseInt(_ text: String, flag: String, range: ClosedRange<Int>, what: String) throws(ConfigurationError) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError("invalid value \"\(text)\" for \(flag): \(what)")
        }
        return value
    }

    static let flags: [FlagSpec] = [
        FlagSpec(
            name: "dns-name", env: "DNS_NAME", kind: .string, defaultText: "",
            help: "comma-separated DNS names that carry every eligible node's addresses (required unless --node-name-template)"
        ) { config, value, label throws(ConfigurationError) in
            config.dnsNames = []
            for part in value.split(separator: ",") where !part.trimmingWhitespace.isEmpty {
                do {
                    config.dnsNames.append(try DNSName(part.trimmingWhitespace))
                } catch {
                    throw ConfigurationError("\(label): \(error)")
                }
            }
        },
        FlagSpec(
            name: "node-name-template", env: "NODE_NAME_TEMPLATE", kind: .string, defaultText: "",
            help: "also publish one name per node, e.g. {node}.nodes.example.com"
        ) { config, value, label throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            do { config.nodeNameTemplate = try NodeNameTemplate(value) } catch { throw ConfigurationError("\(label): \(error)") }
        },
        FlagSpec(
            name: "cname-names", env: "CNAME_NAMES", kind: .string, defaultText: "",
            help:
                "comma-separated NAME[=TARGET]: keep each NAME as a CNAME to TARGET, one of the --dns-name names (the first when omitted), e.g. www.example.com"
        ) { config, value, label throws(ConfigurationError) in
            config.cnameNames = []
            for entry in value.split(separator: ",").map({ $0.trimmingWhitespace }).filter({ !$0.isEmpty }) {
                let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                do {
                    let name = try DNSName(parts[0])
                    let target = parts.count == 2 ? try DNSName(parts[1]) : nil
                    config.cnameNames.append((name, target))
                } catch {
                    throw ConfigurationError("\(label): \(error) in \"\(entry)\"; want NAME or NAME=TARGET, e.g. www.example.com")
                }
            }
        },
        FlagSpec(
            name: "node-hostnames-annotation", env: "NODE_HOSTNAMES_ANNOTATION", kind: .string, defaultText: "",
            help:
                "a Node annotation listing more names for that node, comma-separated, e.g. kube-node-dns.io/hostnames (off when empty)"
        ) { config, value, label throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            guard Configuration.isAnnotationKey(value) else {
                throw ConfigurationError(
                    "invalid value \"\(value)\" for \(label): want an annotation key, [PREFIX/]NAME, e.g. kube-node-dns.io/hostnames")
            }
            config.nodeHostnamesAnnotation = value
        },
        .int(
            "max-addresses-per-name", "MAX_ADDRESSES_PER_NAME", RecordPolicy.defaultMaxValuesPerName,
            "at most this many addresses on a shared name (a stable subset is chosen)", range: 1...100,
            what: "want a whole number from 1 to 100", \.maxAddressesPerName),
        .optional(
            "cloudflare-api-token", "CF_API_TOKEN", "Cloudflare API token with Zone:Read and DNS:Edit (preferred over email and key)",
            \.cloudflareToken),
        .secretFile(
            "cloudflare-api-token-file", "CF_API_TOKEN_FILE", "read the Cloudflare API token from this file (re-read when it changes)",
            \.cloudflareToken,
            path: \.cloudflareTokenFile),
        .optional(
            "cloudflare-api-email", "CF_API_EMAIL", "Cloudflare account email, with --cloudflare-api-key (legacy)", \.cloudflareEmail),
        .optional("cloudflare-api-key", "CF_API_KEY", "Cloudflare Global API Key, with --cloudflare-api-email (legacy)", \.cloudflareKey),
        .secretFile(
            "cloudflare-api-key-file", "CF_API_KEY_FILE", "read the Cloudflare Global API Key from this file (re-read when it changes)",
            \.cloudflareKey, path: \.cloudflareKeyFile),
        .bool("cloudflare-proxy", "CF_PROXY", false, "proxy the records through Cloudflare (orange cloud)", \.cloudflareProxy),
        FlagSpec(
            name: "cloudflare-ttl", env: "CF_TTL", kind: .int, defaultText: "120",
            help: "record TTL in seconds: takes 1 (automatic) or 60 to 86400"
        ) { config, value, label throws(ConfigurationError) in
            let what = "want 1 (automatic) or 60 to 86400 seconds"
            let ttl = try parseInt(value, flag: label, range: 1...86400, what: what)
            guard ttl == 1 || ttl >= 60 else { throw ConfigurationError("invalid value \"\(value)\" for \(label): \(what)") }
            config.cloudflareTTL = ttl
        },
        FlagSpec(
            name: "cloudflare-api-url", env: "CF_API_URL", kind: .string, defaultText: "https://api.cloudflare.com/client/v4",
            help: "Cloudflare API v4 base URL"
        ) { config, value, label throws(ConfigurationError) in
            guard let url = URL(string: value), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                throw ConfigurationError("invalid value \"\(value)\" for \(label): want an http(s) URL")
            }
            config.cloudflareAPIURL = value
        },
        .optional("cloudflare-zone-id", "CF_ZONE_ID", "use this zone id instead of looking zones up by name", \.cloudflareZoneID),
        .int(
            "cloudflare-batch-size", "CF_BATCH_SIZE", 200, "records per batch request (Free plan: 200)", range: 1...3500,
            what: "want 1 to 3500", \.cloudflareBatchSize),
        .int(
            "cloudflare-rate-limit", "CF_RATE_LIMIT", 1200, "client-side limit of Cloudflare requests per 5 minutes", range: 1...100_000,
            what: "want a whole number of requests per 5 minutes", \.cloudflareRateLimit),
        FlagSpec(
            name: "provider", env: "PROVIDER", kind: .string, defaultText: "cloudflare",
            help: "where the records live: cloudflare, or rfc2136 (your own DNS server, by dynamic update)"
        ) { config, value, label throws(ConfigurationError) in
            guard let provider = DNSProviderKind(rawValue: value) else {
                throw ConfigurationError("invalid value \"\(value)\" for \(label): want cloudflare or rfc2136")
            }
            config.provider = provider
        },
        .optional(
            "rfc2136-server", "RFC2136_SERVER", "the zone's primary DNS server, HOST or HOST:PORT (port 53 unless given)",
            \.rfc2136Server),
        FlagSpec(
            name: "rfc2136-zone", env: "RFC2136_ZONE", kind: .string, defaultText: "",
            help: "the zone the managed names are in, e.g. example.com"
        ) { config, value, label throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            do { config.rfc2136Zone = try DNSName(value) } catch { throw ConfigurationError("\(label): \(error)") }
        },
        .optional(
            "rfc2136-tsig-key-name", "RFC2136_TSIG_KEY_NAME", "name of the TSIG key the server knows, e.g. kube-node-dns",
            \.rfc2136KeyName),
        .optional("rfc2136-tsig-secret", "RFC2136_TSIG_SECRET", "the TSIG key's base64 secret", \.rfc2136Secret),
        .secretFile(
            "rfc2136-tsig-secret-file", "RFC2136_TSIG_SECRET_FILE", "read the TSIG secret from this file", \.rfc2136Secret,
            path: \.rfc2136SecretFile),
        FlagSpec(
            name: "rfc2136-tsig-algorithm", env: "RFC2136_TSIG_ALGORITHM", kind: .string, defaultText: "hmac-sha256",
            help: "hmac-sha256, hmac-sha512 or hmac-sha1"
        ) { config, value, label throws(ConfigurationError) in
            guard let algorithm = TSIGKey.Algorithm(rawValue: value.lowercased()) else {
                throw ConfigurationError("invalid value \"\(value)\" for \(label): want hmac-sha256, hmac-sha512 or hmac-sha1")
            }
            config.rfc2136Algorithm = algorithm
        },
        FlagSpec(
            name: "rfc2136-transport", env: "RFC2136_TRANSPORT", kind: .string, defaultText: "tcp",
            help: "tcp or udp (a truncated UDP answer is asked again over TCP; updates over 512 octets always use TCP)"
        ) { config, value, label throws(ConfigurationError) in
            guard let transport = DNSTransportKind(rawValue: value) else {
                throw ConfigurationError("invalid value \"\(value)\" for \(label): want tcp or udp")
            }
            config.rfc2136Transport = transport
        },
        .int(
            "rfc2136-ttl", "RFC2136_TTL", 120, "TTL in seconds of the records written by dynamic update", range: 1...86400,
            what: "want 1 to 86400 seconds", \.rfc2136TTL),
        .bool(
            "use-internal-ip", "USE_INTERNAL_IP", false,
            "publish InternalIP addresses when no eligible node has an ExternalIP (as kubernetes-cloudflare-sync did)",
            \.useInternalIP),
        .bool(
            "always-use-internal-ip", "ALWAYS_USE_INTERNAL_IP", false, "publish InternalIP addresses beside the external ones",
            \.alwaysUseInternalIP),
        .bool("skip-external-ip", "SKIP_EXTERNAL_IP", false, "do not publish ExternalIP addresses", \.skipExternalIP),
        .bool(
            "internal-ip-fallback", "INTERNAL_IP_FALLBACK", false, "publish a node's InternalIP when it has no ExternalIP",
            \.internalIPFallback),
        FlagSpec(
            name: "node-selector", env: "NODE_SELECTOR", kind: .string, defaultText: "",
            help: "label selector the nodes must match, e.g. role=web,tier!=batch"
        ) { config, value, label throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            do { config.nodeSelector = try LabelSelector(value) } catch { throw ConfigurationError("\(label): \(error)") }
        },
        FlagSpec(
            name: "serving-pods", env: "SERVING_PODS", kind: .string, defaultText: "",
            help:
                "NAMESPACE/SELECTOR: publish a node only while a Ready, non-terminating pod of these runs on it, e.g. www/app=nginx (off by default)"
        ) { config, value, label throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            guard let slash = value.firstIndex(of: "/") else {
                throw ConfigurationError(
                    "invalid value \"\(value)\" for \(label): want NAMESPACE/SELECTOR, e.g. www/app=nginx")
            }
            let namespace = String(value[..<slash])
            let selectorText = String(value[value.index(after: slash)...])
            let isLabel =
                (1...63).contains(namespace.count)
                && namespace.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
                && namespace.first != "-" && namespace.last != "-"
            guard isLabel, !selectorText.isEmpty else {
                throw ConfigurationError(
                    "invalid value \"\(value)\" for \(label): want NAMESPACE/SELECTOR, e.g. www/app=nginx")
            }
            do {
                config.servingPods = ServingPodRule(namespace: namespace, selector: try LabelSelector(selectorText))
            } catch {
                throw ConfigurationError("\(label): \(error)")
            }
        },
        .bool("require-ready", "REQUIRE_READY", true, "only nodes whose Ready condition is True", \.requireReady),
        .bool("exclude-cordoned", "EXCLUDE_CORDONED", true, "leave out cordoned (unschedulable) nodes", \.excludeCordoned),
        FlagSpec(
            name: "exclude-taints", env: "EXCLUDE_TAINTS", kind: .string,
            defaultText: Configuration.defaultExcludedTaints.joined(separator: ","),
            help:
                "leave out nodes with any of these taint keys, whatever the effect (comma-separated; \"none\" for none; the default is the condition and departure taints)"
        ) { config, value, _ in
            config.excludeTaints =
                value == "none"
                ? [] : value.split(separator: ",").map { $0.trimmingWhitespace }.filter { !$0.isEmpty }
        },
        FlagSpec(
            name: "health-check", env: "HEALTH_CHECK", kind: .string, defaultText: "",
            help:
                "probe each node as a visitor would and leave out those that fail: http://{address}[:PORT]/PATH, https://{address}[:PORT]/PATH or tcp://{address}:PORT ({internal_address} probes the InternalIP instead; off by default)"
        ) { config, value, label throws(ConfigurationError) in
            guard !value.isEmpty else { return }
            do { config.healthCheck = try HealthCheckSpec(value) } catch {
                throw ConfigurationError("invalid value \"\(value)\" for \(label): \(error)")
            }
        },
        .optional(
            "health-check-host", "HEALTH_CHECK_HOST",
            "the checks' HTTP Host header and TLS server name (default: the first --cname-names name, else the first --dns-name)",
            \.healthCheckHost),
        .bool(
            "health-check-insecure", "HEALTH_CHECK_INSECURE", false, "do not verify the certificate of an https check",
            \.healthCheckInsecure),
        .optional(
            "health-check-ca-file", "HEALTH_CHECK_CA_FILE",
            "PEM file of the CA certificates an https check trusts instead of the system's (e.g. Cloudflare's Origin CA root)",
            \.healthCheckCAFile),
        .duration(
            "health-check-timeout", "HEALTH_CHECK_TIMEOUT", "1s", "a check fails without a complete status line in this long",
            minimumText: "50ms", minimum: 0.05, \.healthCheckTimeout),
        .duration(
            "health-check-interval", "HEALTH_CHECK_INTERVAL", "2s", "how often each node is checked", minimumText: "100ms", minimum: 0.1,
            \.healthCheckInterval),
        .int(
            "health-check-fall", "HEALTH_CHECK_FALL", 2, "failures in a row that take a node out", range: 1...100,
            what: "want 1 to 100", \.healthCheckFall),
        .int(
            "health-check-rise", "HEALTH_CHECK_RISE", 2, "passes in a row that bring a failed node back", range: 1...100,
            what: "want 1 to 100", \.healthCheckRise),
        .bool(
            "honor-lb-exclusion-label", "HONOR_LB_EXCLUSION_LABEL", true,
            "leave out nodes labelled node.kubernetes.io/exclude-from-external-load-balancers (any value)",
            \.honorLoadBalancerExclusion),
        .optional("kubeconfig", nil, "kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)", \.kubeconfig),
        .optional("context", "KUBE_CONTEXT", "kubeconfig context (default: its current-context)", \.kubeContext),
        .duration(
            "kube-read-timeout", "KUBE_READ_TIMEOUT", "35s",
            "give up on an API server answer (a watch included) after this long without a byte; watches are asked to end 10-20 s sooner, so only a frozen connection reaches it",
            minimum: 1, \.kubeReadTimeout),
        .duration(
            "kube-request-timeout", "KUBE_REQUEST_TIMEOUT", "30s",
            "give up on a list page, a Lease call or an Event that has not completed in this long, however slowly it arrives",
            minimum: 1, \.kubeRequestTimeout),
        .duration(
            "cloudflare-request-timeout", "CF_REQUEST_TIMEOUT", "30s",
            "give up on a Cloudflare call that has not completed in this long (and retry it), however slowly it arrives",
            minimum: 1, \.cloudflareRequestTimeout),
        .duration(
            "healthz-peer-limit", "HEALTHZ_PEER_LIMIT", "10m",
            "/healthz fails (and /status says why) once the API server or the DNS provider has failed, or an exchange has run, this long",
            minimum: 1, \.healthzPeerLimit),
        FlagSpec(
            name: "owner-id", env: "OWNER_ID", kind: .string, defaultText: "default",
            help: "owner id written in each record's comment; give each cluster its own"
        ) { config, value, label throws(ConfigurationError) in
            guard OwnerID.isValid(value) else {
                throw ConfigurationError("invalid value \"\(value)\" for \(label): want 1 to 63 letters, digits, '-', '_' or '.'")
            }
            config.ownerID = value
        },
        .bool(
            "take-ownership", "TAKE_OWNERSHIP", false,
            "adopt existing A/AAAA records of the managed names (migrating from kubernetes-cloudflare-sync)", \.takeOwnership),
        .bool("allow-empty", "ALLOW_EMPTY", false, "let a shared name lose all records when every node becomes ineligible", \.allowEmpty),
        .duration("debounce", "DEBOUNCE", "100ms", "collapse node changes arriving within this window into one reconcile", \.debounce),
        .duration(
            "resync-interval", "RESYNC_INTERVAL", "5m", "how often to re-read the provider and repair drift", minimum: 1, \.resyncInterval),
        .bool("dry-run", "DRY_RUN", false, "log the planned changes and write nothing", \.dryRun),
        .bool("once", "ONCE", false, "reconcile once and exit (0 on success)", \.once),
        .bool("leader-elect", "LEADER_ELECT", false, "elect a leader through a Lease so several replicas are safe", \.leaderElect),
        .string("lease-name", "LEASE_NAME", "kube-node-dns", "name of the leader-election Lease", \.leaseName),
        .optional("lease-namespace", "LEASE_NAMESPACE", "namespace of the Lease (default: the pod's namespace)", \.leaseNamespace),
        .string(
            "lease-identity", "LEASE_IDENTITY", "$POD_NAME, else the host name", "this replica's identity in the Lease", \.leaseIdentity),
        .duration("lease-duration", "LEASE_DURATION", "15s", "how long a Lease stays valid without renewal", \.leaseDuration),
        .duration(
            "lease-renew-deadline", "LEASE_RENEW_DEADLINE", "10s", "a leader that cannot renew within this stops writing",
            \.leaseRenewDeadline),
        .duration(
            "lease-retry-period", "LEASE_RETRY_PERIOD", "2s", "how often to try to acquire or renew the Lease",
            minimumText: "100ms", minimum: 0.1, \.leaseRetryPeriod),
        .string(
            "http-address", "HTTP_ADDRESS", ":8080", "listen address of /healthz, /readyz and /metrics (\"off\" to disable)", \.httpAddress),
        FlagSpec(name: "log-format", env: "LOG_FORMAT", kind: .string, defaultText: "text", help: "text or json") {
            config, value, label throws(ConfigurationError) in
            guard ["text", "json"].contains(value) else {
                throw ConfigurationError("invalid value \"\(value)\" for \(label): want text or json")
            }
            config.logFormat = value
        },
        FlagSpec(
            name: "log-level", env: "LOG_LEVEL", kind: .string, defaultText: "info",
            help: "trace, debug, info, notice, warning, error or critical"
        ) { config, value, label throws(ConfigurationError) in
            guard let level = Logger.Level(rawValue: value) else {
                throw ConfigurationError(
                    "invalid value \"\(value)\" for \(label): want trace, debug, info, notice, warning, error or critical")
            }
            config.logLevel = level
        },
        .bool("events", "EVENTS", true, "record Kubernetes Events on Nodes for record changes and conflicts", \.events),
        .string("event-namespace", "EVENT_NAMESPACE", "default", "namespace the Node Events are written to", \.eventNamespace),
    ]

    /// The environment variables of every boolean flag.
    package static var booleanFlagNames: [String] { flags.filter { $0.kind == .bool }.compactMap(\.env) }

    /// Every boolean setting, by variable, as parsed; for tests that compare configurations.
    package var booleanValues: [String: Bool] {
        var values: [String: Bool] = [:]
        for flag in Configuration.flags {
            if let env = flag.env, let read = flag.readBool { values[env] = read(self) }
        }
        return values
    }

    /// The `--help` text: each flag with its variable and default.
    package static var helpText: String {
        var lines = [
            "kube-node-dns keeps DNS records pointed at the Kubernetes nodes that can serve traffic.", "",
            "usage: kube-node-dns [flags]   (flags take --name=value or --name value; booleans also --name)", "",
        ]
        for flag in flags {
            let env = flag.env.map { " [$\($0)]" } ?? ""
            var def = flag.defaultText.isEmpty ? "" : " (default \(flag.defaultText))"
            if let range = flag.rangeText { def += def.isEmpty ? " (takes \(range))" : ", takes \(range)" }
            lines.append("  --\(flag.name)\(flag.kind == .bool ? "" : " value")\(env)")
            lines.append("        \(flag.help)\(def)")
        }
        lines.append("  --version\n        print the version and the git commit this binary was built from")
        lines.append("  --help\n        print this help")
        return lines.joined(separator: "\n")
    }

    /// Reads the environment first, then the flags (flags win), then checks the whole.
    package static func parse(arguments: [String], environment: [String: String]) throws(ConfigurationError) -> Configuration {
        var config = Configuration()
        config.leaseIdentity = environment["POD_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? ProcessInfo.processInfo.hostName
        // An empty variable means unset, for every variable: templating that renders a missing value as ""
        // must not turn a safety switch off.
        for flag in flags {
            if let env = flag.env, let value = environment[env], !value.isEmpty {
                try flag.apply(&config, value)
            }
        }
        let given: [(name: String, value: String)]
        do {
            given = try GoFlags.split(
                arguments, isKnown: { name in flags.contains { $0.name == name } },
                isBoolean: { name in flags.first { $0.name == name }?.kind == .bool })
        } catch {
            switch error {
            case .unexpected(let argument):
                throw ConfigurationError("unexpected argument \"\(argument)\"; flags look like --dns-name=example.com (see --help)")
            case .unknown(let name):
                throw ConfigurationError("unknown flag --\(name) (see --help for the list)")
            case .needsValue(let name):
                throw ConfigurationError("flag --\(name) needs a value")
            }
        }
        for (name, value) in given {
            guard let flag = flags.first(where: { $0.name == name }) else { continue }
            try flag.apply(&config, value)
        }
        try config.validate()
        return config
    }

    func validate() throws(ConfigurationError) {
        if dnsNames.isEmpty && nodeNameTemplate == nil {
            throw ConfigurationError("no DNS name to manage: set --dns-name (DNS_NAME), e.g. --dns-name=kubernetes.example.com")
        }
        if provider == .rfc2136 {
            _ = try rfc2136Endpoint()
            guard rfc2136Zone != nil else {
                throw ConfigurationError("--provider=rfc2136 needs --rfc2136-zone (RFC2136_ZONE), e.g. --rfc2136-zone=example.com")
            }
            guard rfc2136KeyName != nil, rfc2136Secret != nil else {
                throw ConfigurationError(
                    "--provider=rfc2136 needs a TSIG key: set --rfc2136-tsig-key-name (RFC2136_TSIG_KEY_NAME) and --rfc2136-tsig-secret-file (RFC2136_TSIG_SECRET_FILE) or --rfc2136-tsig-secret"
                )
            }
            if let zone = rfc2136Zone {
                for name in dnsNames where !name.isWithin(zone: zone.text) {
                    throw ConfigurationError("--dns-name \(name) is not inside --rfc2136-zone \(zone)")
                }
            }
        } else if cloudflareToken == nil && (cloudflareEmail == nil || cloudflareKey == nil) {
            if cloudflareEmail != nil || cloudflareKey != nil {
                throw ConfigurationError(
                    "--cloudflare-api-email (CF_API_EMAIL) and --cloudflare-api-key (CF_API_KEY) go together; or use --cloudflare-api-token (CF_API_TOKEN)"
                )
            }
            throw ConfigurationError(
                "no Cloudflare credentials: set --cloudflare-api-token (CF_API_TOKEN) or --cloudflare-api-token-file, or --cloudflare-api-email with --cloudflare-api-key"
            )
        }
        try validateCNAMEs()
        if skipExternalIP && !useInternalIP && !alwaysUseInternalIP && !internalIPFallback {
            throw ConfigurationError("--skip-external-ip without --use-internal-ip leaves no address to publish")
        }
        if leaderElect && leaseRenewDeadline >= leaseDuration {
            throw ConfigurationError("--lease-renew-deadline must be shorter than --lease-duration")
        }
        if leaderElect && leaseIdentity.isEmpty {
            throw ConfigurationError("--lease-identity is empty and neither POD_NAME nor the host name is known")
        }
        _ = try httpBinding()
        if healthCheck != nil {
            guard healthCheckTimeout <= healthCheckInterval else {
                throw ConfigurationError(
                    "--health-check-timeout (HEALTH_CHECK_TIMEOUT) must not be longer than --health-check-interval (HEALTH_CHECK_INTERVAL)")
            }
            if let path = healthCheckCAFile, !FileManager.default.isReadableFile(atPath: path) {
                throw ConfigurationError(
                    "cannot read \(path) given by --health-check-ca-file (HEALTH_CHECK_CA_FILE): no such file, or not readable")
            }
            guard healthCheckHost != nil || !dnsNames.isEmpty else {
                throw ConfigurationError("--health-check needs --health-check-host (HEALTH_CHECK_HOST) when no --dns-name is set")
            }
        }
    }

    /// A Kubernetes annotation key: an optional DNS-subdomain prefix and '/', then a name of 1 to 63 characters,
    /// alphanumeric at both ends, with '-', '_' and '.' between.
    static func isAnnotationKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, (1...63).contains(name.count) else { return false }
        let alphanumeric = { (c: Character) in c.isASCII && (c.isLetter || c.isNumber) }
        guard alphanumeric(name.first!), alphanumeric(name.last!),
            name.allSatisfy({ alphanumeric($0) || $0 == "-" || $0 == "_" || $0 == "." })
        else { return false }
        if parts.count == 2 {
            guard let prefix = try? DNSName(String(parts[0])), prefix.text == parts[0], prefix.text.count <= 253 else { return false }
        }
        return true
    }

    /// `--cname-names` must point at names the controller keeps, and must not be names it keeps otherwise.
    func validateCNAMEs() throws(ConfigurationError) {
        let label = "--cname-names (CNAME_NAMES)"
        guard !cnameNames.isEmpty else { return }
        guard let first = dnsNames.first else {
            throw ConfigurationError("\(label) needs a --dns-name (DNS_NAME) for the CNAMEs to point at")
        }
        let names = cnameNames.map(\.name)
        let perNode = ManagedScope(names: [], template: nodeNameTemplate)
        var seen: Set<DNSName> = []
        for (name, target) in cnameNames {
            let target = target ?? first
            guard seen.insert(name).inserted else { throw ConfigurationError("\(label): \(name) is listed twice") }
            if dnsNames.contains(name) {
                throw ConfigurationError(
                    "\(label): \(name) is also a --dns-name; a name carries either the nodes' addresses or a CNAME, not both")
            }
            if perNode.isUnderTemplate(name) {
                throw ConfigurationError(
                    "\(label): \(name) is a per-node name of --node-name-template \(nodeNameTemplate!.pattern); choose a name outside it")
            }
            if names.contains(target) {
                throw ConfigurationError(
                    "\(label): \(name) points at \(target), which is itself in --cname-names (a chain or a cycle); point it at a --dns-name"
                )
            }
            guard dnsNames.contains(target) else {
                throw ConfigurationError(
                    "\(label): \(name) points at \(target), which is not a --dns-name; a CNAME here points at a name the controller keeps (\(dnsNames.map(\.text).joined(separator: ", ")))"
                )
            }
            if provider == .rfc2136, let zone = rfc2136Zone {
                guard name.isWithin(zone: zone.text) else {
                    throw ConfigurationError("\(label): \(name) is not inside --rfc2136-zone \(zone)")
                }
                if name == zone {
                    throw ConfigurationError(
                        "\(label): \(name) is the apex of --rfc2136-zone \(zone); a CNAME cannot stand beside the zone's SOA and NS records (RFC 1034), so put the apex in --dns-name instead"
                    )
                }
            }
        }
    }

    /// The Host header and TLS name of the health checks.
    /// The name visitors use: the first `--cname-names` name (the site's), else the first `--dns-name`.
    package var healthCheckHostName: String { healthCheckHost ?? cnameNames.first?.name.text ?? dnsNames.first?.text ?? "" }

    /// Host and port of the ops server, or nil when disabled.
    package func httpBinding() throws(ConfigurationError) -> (host: String, port: Int)? {
        if httpAddress == "off" || httpAddress.isEmpty { return nil }
        guard let colon = httpAddress.lastIndex(of: ":"), let port = Int(httpAddress[httpAddress.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ConfigurationError("invalid value \"\(httpAddress)\" for --http-address (HTTP_ADDRESS): want host:port or :port")
        }
        let host = String(httpAddress[..<colon])
        let bracketed = host.hasPrefix("[") && host.hasSuffix("]")  // an IPv6 literal, [::1]
        return (host.isEmpty ? "0.0.0.0" : bracketed ? String(host.dropFirst().dropLast()) : host, port)
    }
}
