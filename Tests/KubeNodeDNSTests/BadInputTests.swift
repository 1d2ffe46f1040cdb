import Emulators
import Foundation
import KubeNodeDNS
import KubernetesAPI
import Testing

func writeTemporary(_ contents: String, _ label: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)").path
    try contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// The catalogue of bad inputs: each gives its exact message and exit code, or its log line and its recovery.
/// The README's troubleshooting table lists the same cases.
@Suite(.serialized) struct BadInputTests {
    static let base = ["--dns-name=k.example.com", "--cloudflare-api-token=t"]

    @Test(
        arguments: [
            (["--bogus"], [:], "kube-node-dns: unknown flag --bogus (see --help for the list)"),
            (
                base + ["--cloudflare-ttl=5"], [:],
                #"kube-node-dns: invalid value "5" for --cloudflare-ttl (CF_TTL): want 1 (automatic) or 60 to 86400 seconds"#
            ),
            (
                base + ["--node-selector=role in (web"], [:],
                #"kube-node-dns: --node-selector (NODE_SELECTOR): invalid label selector "role in (web": "in" needs a parenthesised list, as in role in (a,b)"#
            ),
            (
                ["--dns-name=bad_name!.example.com", "--cloudflare-api-token=t"], [:],
                #"kube-node-dns: --dns-name (DNS_NAME): invalid DNS name "bad_name!.example.com": label "bad_name!" may hold only letters, digits, '-' and '_' (use Punycode for IDNs)"#
            ),
            (
                ["--dns-name=k.example.com"], [:],
                "kube-node-dns: no Cloudflare credentials: set --cloudflare-api-token (CF_API_TOKEN) or --cloudflare-api-token-file, or --cloudflare-api-email with --cloudflare-api-key"
            ),
            (
                ["--dns-name=k.example.com"], ["CF_API_TOKEN": ""],
                "kube-node-dns: no Cloudflare credentials: set --cloudflare-api-token (CF_API_TOKEN) or --cloudflare-api-token-file, or --cloudflare-api-email with --cloudflare-api-key"
            ),
            (
                ["--dns-name=k.example.com", "--cloudflare-api-token-file=/nonexistent/token"], [:],
                "kube-node-dns: cannot read /nonexistent/token given by --cloudflare-api-token-file (CF_API_TOKEN_FILE): no such file"
            ),
            (
                base + ["--health-check=http://203.0.113.1/nginx-health"], [:],
                #"kube-node-dns: invalid value "http://203.0.113.1/nginx-health" for --health-check (HEALTH_CHECK): the host must be {address} or {internal_address}; want http://{address}[:PORT]/PATH, https://{address}[:PORT]/PATH or tcp://{address}:PORT"#
            ),
            (
                base + ["--health-check=tcp://{address}"], [:],
                #"kube-node-dns: invalid value "tcp://{address}" for --health-check (HEALTH_CHECK): a tcp check needs a port; want http://{address}[:PORT]/PATH, https://{address}[:PORT]/PATH or tcp://{address}:PORT"#
            ),
            (
                base + ["--health-check=https://{address}/", "--health-check-ca-file=/nonexistent/ca.pem"], [:],
                "kube-node-dns: cannot read /nonexistent/ca.pem given by --health-check-ca-file (HEALTH_CHECK_CA_FILE): no such file, or not readable"
            ),
            (
                base + ["--health-check=http://{address}/", "--health-check-timeout=3s"], [:],
                "kube-node-dns: --health-check-timeout (HEALTH_CHECK_TIMEOUT) must not be longer than --health-check-interval (HEALTH_CHECK_INTERVAL)"
            ),
            (base + ["--log-format=yaml"], [:], #"kube-node-dns: invalid value "yaml" for --log-format (LOG_FORMAT): want text or json"#),
            (
                ["--dns-name=k.example.com", "--provider=route53"], [:],
                #"kube-node-dns: invalid value "route53" for --provider (PROVIDER): want cloudflare or rfc2136"#
            ),
            (
                ["--dns-name=k.example.com", "--provider=rfc2136", "--rfc2136-zone=example.com"], [:],
                "kube-node-dns: no DNS server: set --rfc2136-server (RFC2136_SERVER), e.g. --rfc2136-server=ns1.example.com:53"
            ),
            (
                ["--dns-name=k.example.com", "--provider=rfc2136", "--rfc2136-server=ns1:99999", "--rfc2136-zone=example.com"], [:],
                #"kube-node-dns: invalid value "ns1:99999" for --rfc2136-server (RFC2136_SERVER): want HOST or HOST:PORT, e.g. 192.0.2.53:53 or [2001:db8::53]:53"#
            ),
            (
                ["--dns-name=k.example.com", "--provider=rfc2136", "--rfc2136-server=ns1", "--rfc2136-zone=example.com"], [:],
                "kube-node-dns: --provider=rfc2136 needs a TSIG key: set --rfc2136-tsig-key-name (RFC2136_TSIG_KEY_NAME) and --rfc2136-tsig-secret-file (RFC2136_TSIG_SECRET_FILE) or --rfc2136-tsig-secret"
            ),
            (
                [
                    "--dns-name=k.example.org", "--provider=rfc2136", "--rfc2136-server=ns1", "--rfc2136-zone=example.com",
                    "--rfc2136-tsig-key-name=k", "--rfc2136-tsig-secret=c2VjcmV0c2VjcmV0",
                ], [:], "kube-node-dns: --dns-name k.example.org is not inside --rfc2136-zone example.com"
            ),
            (
                base + ["--rfc2136-tsig-algorithm=hmac-md5"], [:],
                #"kube-node-dns: invalid value "hmac-md5" for --rfc2136-tsig-algorithm (RFC2136_TSIG_ALGORITHM): want hmac-sha256, hmac-sha512 or hmac-sha1"#
            ),
        ] as [([String], [String: String], String)])
    func badFlagsExit2WithTheirMessage(arguments: [String], environment: [String: String], message: String) async throws {
        let process = try kubeNodeDNS(arguments, environment: environment)
        #expect(await process.waitForExit() == 2)
        #expect(process.lines == [message])
    }

    @Test func badKubeconfigsExit1NamingTheFileAndField() async throws {
        let malformed = try writeTemporary("clusters: [: :", "kubeconfig-malformed")
        let valid = try writeTemporary(
            """
            apiVersion: v1
            clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]
            contexts: [{name: here, context: {cluster: c, user: u}}]
            users: [{name: u, user: {token: t}}]
            current-context: here
            """, "kubeconfig-valid")
        let cases: [([String], String)] = [
            (["--kubeconfig=/nonexistent/kubeconfig"], "kubeconfig /nonexistent/kubeconfig: cannot read the file (no such file)"),
            (["--kubeconfig=\(malformed)"], "kubeconfig \(malformed):1:12: not valid YAML: expected a value, found ':'"),
            (["--kubeconfig=\(valid)", "--context=elsewhere"], #"kubeconfig \#(valid): context "elsewhere" not found (contexts: here)"#),
        ]
        for (arguments, message) in cases {
            let process = try kubeNodeDNS(Self.base + arguments)
            #expect(await process.waitForExit() == 1)
            let critical = process.lines.filter { $0.contains(" CRITICAL cannot run: ") }
            #expect(critical.count == 1 && critical[0].contains(message), "\(process.lines)")
        }
    }

    @Test func cloudflareRefusalsAtStartExit1WithTheFix() async throws {
        let cf = CloudflareEmulator(options: .init(zones: ["example.com"], tokens: [.init(token)]))
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let kubeconfig = try EmulatorHarness.kubeconfig(server: env.kubeURL)
            let cases: [([String], String)] = [
                (["--dns-name=k.other.org", "--cloudflare-api-token=\(token)"], "k.other.org is not inside any Cloudflare zone"),
                (["--dns-name=k.example.com", "--cloudflare-api-token=wrong-token"], "9109"),
            ]
            for (arguments, message) in cases {
                let process = try kubeNodeDNS(
                    arguments + ["--kubeconfig=\(kubeconfig)", "--cloudflare-api-url=\(env.cloudflareURL)", "--http-address=off"])
                #expect(await process.waitForExit() == 1)
                #expect(process.lines.contains { $0.contains("CRITICAL") && $0.contains(message) }, "\(process.lines)")
                #expect(!process.lines.contains { $0.contains("wrong-token") || $0.contains(token) }, "a token in the output")
            }
        }
    }

    @Test func tokenWithoutDNSEditIsLoggedAndRecoversWhenGranted() async throws {
        let cf = CloudflareEmulator(options: .init(zones: ["example.com"], tokens: [.init(token, dnsEdit: false)]))
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            let process = try startController(env, ["--debounce=10ms"])
            defer { process.signal(SIGKILL) }
            #expect(await EmulatorHarness.eventually { process.lines.contains { $0.contains("10000") } })
            #expect(process.isRunning && ownedValues(cf).isEmpty)
            cf.setDNSEdit(token: token, allowed: true)
            #expect(await EmulatorHarness.eventually(timeout: 30) { ownedValues(cf) == ["203.0.113.1"] }, "retried after backoff")
        }
    }

    @Test func unreachableAPIServerIsRetriedUntilItAppears() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            // A port nobody listens on yet; the controller retries, then the API server comes up there.
            let port = try await EmulatorHarness.serving({
                try await KubeAPIEmulator().run(logger: EmulatorHarness.quietLogger, onReady: $0)
            }) { $0 }
            let kube = KubeAPIEmulator()
            kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
            let process = try kubeNodeDNS(
                [
                    "--dns-name=k.example.com", "--kubeconfig=\(try EmulatorHarness.kubeconfig(server: "http://127.0.0.1:\(port)"))",
                    "--cloudflare-api-url=\(env.cloudflareURL)", "--http-address=off", "--log-format=json",
                ],
                environment: ["CF_API_TOKEN": token])
            defer { process.signal(SIGKILL) }
            #expect(await EmulatorHarness.eventually(timeout: 30) { process.lines.contains { $0.contains("node watch failed; retrying") } })
            #expect(process.isRunning)
            try await EmulatorHarness.serving({ try await kube.run(port: port, logger: EmulatorHarness.quietLogger, onReady: $0) }) { _ in
                // A refused connection is the reflector's to retry (0.8 s, then doubling), not the HTTP pool's, whose
                // hidden backoff grew towards 60 s while the server was away.
                #expect(await EmulatorHarness.eventually(timeout: 30) { ownedValues(cf) == ["203.0.113.1"] }, "\(process.lines)")
                // The controller goes before the server it keeps connecting to: a server torn down while a client
                // connects can trap in NIO ("Deinited NIOAsyncWriter without calling finish()").
                process.signal(SIGKILL)
                _ = await process.waitForExit()
            }
        }
    }

    @Test(arguments: FaultSwitches.BadAnswer.allCases)
    func badKubernetesAnswersAreLoggedAndRelisted(answer: FaultSwitches.BadAnswer) async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            // No Events: the only request after the drop is then the re-watch, which gets the bad answer.
            let controller = try controller(env, ["--events=false"], logs: logs)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                env.kube.faults.inject(answer)
                env.kube.dropWatches()
                #expect(
                    await EmulatorHarness.eventually(timeout: 30) {
                        logs.lines.withLockedValue { $0.contains { $0.contains("\"warning\"") && $0.contains("node watch") } }
                    })
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] }, "recovered")
            }
        }
    }

    @Test(arguments: [FaultSwitches.BadAnswer.proxyHTML, .malformedJSON, .wrongContentType])
    func badCloudflareAnswersAreLoggedAndRetried(answer: FaultSwitches.BadAnswer) async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, logs: logs)
            try await whileRunning(controller) {
                env.kube.putNode(NodeFixtures.node("a", external: ["203.0.113.1"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.1"] })
                cf.faults.inject(answer, count: 2)
                env.kube.putNode(NodeFixtures.node("b", external: ["203.0.113.2"]))
                #expect(await EmulatorHarness.eventually(timeout: 30) { ownedValues(cf) == ["203.0.113.1", "203.0.113.2"] }, "recovered")
                #expect(logs.lines.withLockedValue { $0.contains { $0.contains("\"error\"") || $0.contains("\"warning\"") } })
            }
        }
    }

    @Test func nodeAddressesThatCannotGoIntoDNSAreSkippedWithAWarning() async throws {
        let cf = makeEmulator()
        try await EmulatorHarness.withEmulators(cloudflare: cf) { env in
            let logs = LogLines()
            let controller = try controller(env, logs: logs)
            try await whileRunning(controller) {
                let bad = ["garbage", "", "fe80::1%eth0", "127.0.0.1", "0.0.0.0", "::", "999.1.1.1"]
                env.kube.putNode(NodeFixtures.node("messy", external: bad + ["203.0.113.5", "203.0.113.5"]))
                env.kube.putNode(NodeFixtures.node("hopeless", external: ["::1", "not an address"]))
                #expect(await EmulatorHarness.eventually { ownedValues(cf) == ["203.0.113.5"] })
                let records = cf.records(zone: "example.com")
                #expect(records.count == 1, "one record for the duplicated address, none for the bad ones")
                let warnings = logs.lines.withLockedValue { $0.filter { $0.contains("\"warning\"") && $0.contains("skipped") } }
                #expect(warnings.contains { $0.contains("hopeless") && $0.contains("has no usable address") }, "\(warnings)")
                #expect(warnings.contains { $0.contains("messy") && $0.contains("fe80::1%eth0") }, "\(warnings)")
                #expect(warnings.contains { $0.contains("messy") && $0.contains("127.0.0.1") }, "\(warnings)")
            }
        }
    }
}
