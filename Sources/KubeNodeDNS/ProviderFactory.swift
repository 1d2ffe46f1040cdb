import CloudflareDNS
import FoundationEssentials
import Logging
import NodeDNSCore
import RFC2136DNS

extension Controller {
    /// The DNS provider the configuration names, the settings its records carry, and (for Cloudflare) its client,
    /// whose rate limiter `/status` shows.
    static func makeProvider(
        config: Configuration, logger: Logger, metrics: ControllerMetrics, clock: any CloudflareClock
    ) throws -> (provider: any DNSProvider, recordSettings: RecordSettings, cloudflare: CloudflareClient?) {
        // What each provider's records carry: its TTL flag, and Cloudflare's proxy (as the provider reports them back).
        switch config.provider {
        case .rfc2136:
            let provider = try Controller.makeRFC2136Provider(config: config, logger: logger, metrics: metrics)
            return (provider, provider.normalized(RecordSettings(ttl: config.rfc2136TTL, proxied: false)), nil)
        case .cloudflare:
            let fixed: CloudflareCredentials =
                config.cloudflareToken.map { .token($0) }
                ?? .globalKey(email: config.cloudflareEmail ?? "", key: config.cloudflareKey ?? "")
            func watched(_ path: String?, _ flag: String, _ what: String) throws -> WatchedSecretFile? {
                guard let path else { return nil }
                return try WatchedSecretFile(path: path, label: flag, logger: logger) { fresh in
                    SecretRegistry.shared.add(fresh)
                    logger.info("Cloudflare \(what) reloaded", metadata: ["file": "\(path)"])
                }
            }
            let credentials = RotatingCloudflareCredentials(
                fixed: fixed,
                tokenFile: config.cloudflareToken == nil
                    ? nil : try watched(config.cloudflareTokenFile, "--cloudflare-api-token-file (CF_API_TOKEN_FILE)", "token"),
                keyFile: config.cloudflareToken != nil
                    ? nil : try watched(config.cloudflareKeyFile, "--cloudflare-api-key-file (CF_API_KEY_FILE)", "API key"))
            let cloudflare = CloudflareClient(
                baseURL: config.cloudflareAPIURL, credentials: credentials, logger: logger,
                rateLimit: config.cloudflareRateLimit, clock: clock,
                retryBackoff: Backoff(initial: 0.5, maximum: 30).scaled(by: config.retryScale), userAgent: BuildInfo.userAgent,
                exchangeDeadline: .milliseconds(Int64(config.cloudflareRequestTimeout * 1000)),
                observer: { endpoint, status in metrics.providerCall(endpoint: endpoint, status: status) },
                onDeadline: { metrics.deadlineHit(peer: "cloudflare") })
            let provider = CloudflareProvider(
                client: cloudflare, ownerID: config.ownerID, zoneID: config.cloudflareZoneID,
                batchSize: config.cloudflareBatchSize, logger: logger)
            return (provider, provider.normalized(RecordSettings(ttl: config.cloudflareTTL, proxied: config.cloudflareProxy)), cloudflare)
        }
    }

    /// The RFC 2136 provider from the configuration (already validated: server, zone and key are set).
    static func makeRFC2136Provider(
        config: Configuration, logger: Logger, metrics: ControllerMetrics
    ) throws -> RFC2136Provider {
        let endpoint = try config.rfc2136Endpoint()
        let algorithm = config.rfc2136Algorithm
        let key: TSIGKey
        do {
            key = try TSIGKey(name: config.rfc2136KeyName ?? "", algorithm: algorithm, base64Secret: config.rfc2136Secret ?? "")
        } catch {
            throw ConfigurationError("--rfc2136-tsig-secret (RFC2136_TSIG_SECRET): \(error)")
        }
        let zone = try WireName(config.rfc2136Zone?.text ?? "")
        let client = RFC2136Client(
            transport: DNSTransport(host: endpoint.host, port: endpoint.port),
            kind: config.rfc2136Transport, zone: zone, key: key, logger: logger,
            now: { UInt64(Date().timeIntervalSince1970) },
            observer: { operation, outcome in metrics.dnsMessage(operation: operation, outcome: outcome) })
        return RFC2136Provider(client: client, ownerID: config.ownerID, logger: logger)
    }
}
