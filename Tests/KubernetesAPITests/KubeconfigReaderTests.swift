import Emulators
import Foundation
import KubernetesAPI
import Testing
import Yams

/// The kubeconfig corpus: files in the shapes people get them (kubectl's own output, GKE, EKS, k3s, kind,
/// minikube, a hand-edited one, JSON), each read by the controller's reader and by Yams.
@Suite struct KubeconfigReaderTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("kubeconfigs")

    static let files = [
        "kubectl-set-commands.yaml", "kubectl-view-flatten.json", "gke-gcloud-auth-plugin.yaml", "eks-aws-exec.yaml",
        "k3s.yaml", "kind.yaml", "minikube-certificate-files.yaml", "hand-edited.yaml",
    ]

    /// Yams' node tree in the reader's terms: the same text for every scalar, plain or not, in the same order.
    static func tree(_ node: Yams.Node) -> YAMLNode {
        switch node {
        case .scalar(let scalar): return .scalar(scalar.string, plain: scalar.style == .plain)
        case .mapping(let mapping):
            return .mapping(mapping.map { YAMLEntry(key: $0.key.scalar?.string ?? "<not a scalar>", value: tree($0.value)) })
        case .sequence(let sequence): return .sequence(sequence.map(tree))
        default: return .scalar("<alias>", plain: false)
        }
    }

    static func text(_ file: String) throws -> String {
        try String(contentsOf: corpus.appendingPathComponent(file), encoding: .utf8)
    }

    /// Every file reads to the very tree Yams composes, also with Windows line endings.
    @Test(arguments: files)
    func everyCorpusFileReadsAsYamsReadsIt(file: String) throws {
        for text in [try Self.text(file), try Self.text(file).replacingOccurrences(of: "\n", with: "\r\n")] {
            let expected = try Yams.compose(yaml: text).map(Self.tree)
            let actual = try KubeconfigYAMLReader.parse(text)
            #expect(actual != nil)
            #expect(actual == expected, "\(file)")
        }
    }

    /// And the configuration the controller takes from each: the server, the credentials, the namespace.
    @Test(
        arguments: [
            ("kubectl-set-commands.yaml", nil, "https://203.0.113.10:6443", "token kubectl-token-0123456789", "dns"),
            ("kubectl-set-commands.yaml", "hobby-cert", "https://203.0.113.10:6443", "client certificate", "default"),
            ("kubectl-view-flatten.json", "hobby-cert", "https://203.0.113.10:6443", "client certificate", "default"),
            ("gke-gcloud-auth-plugin.yaml", nil, "https://34.118.0.10", "exec gke-gcloud-auth-plugin []", "default"),
            (
                "eks-aws-exec.yaml", nil, "https://0123456789ABCDEF0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
                "exec aws [--region eu-west-1 eks get-token --cluster-name hobby --output json] AWS_PROFILE=hobby AWS_STS_REGIONAL_ENDPOINTS=regional",
                "default"
            ),
            ("k3s.yaml", nil, "https://127.0.0.1:6443", "client certificate", "default"),
            ("kind.yaml", nil, "https://127.0.0.1:41235", "client certificate", "default"),
            ("minikube-certificate-files.yaml", nil, "https://192.168.49.2:8443", "client certificate", "default"),
            ("hand-edited.yaml", nil, "https://[2001:db8::10]:6443", "token line one continued", "dns"),
            ("hand-edited.yaml", "quoted", "https://[2001:db8::10]:6443", "token folded token", "default"),
            ("hand-edited.yaml", "literal", "https://spare.example.org:6443", "token kept\n  as\nwritten\n", "default"),
            ("hand-edited.yaml", "nobody", "https://spare.example.org:6443", "none", "default"),
        ] as [(String, String?, String, String, String)])
    func theConfigurationTakenFromEachFile(
        file: String, context: String?, server: String, credentials: String, namespace: String
    )
        throws
    {
        let config = try ClusterConfig.kubeconfig(path: Self.corpus.appendingPathComponent(file).path, context: context)
        #expect(config.server == server)
        #expect(config.namespace == namespace)
        let ca = try String(contentsOf: Self.corpus.appendingPathComponent("certs/ca.crt"), encoding: .utf8)
        if !file.hasPrefix("hand-edited") { #expect(config.caPEM.map { String(decoding: $0, as: UTF8.self) } == ca) }
        let described: String
        switch config.credentials {
        case .none: described = "none"
        case .token(let token): described = "token \(token)"
        case .tokenFile(let path): described = "token file \(path)"
        case .clientCertificate(let certificate, let key):
            let expectedCertificate = try Data(contentsOf: Self.corpus.appendingPathComponent("certs/client.crt"))
            let expectedKey = try Data(contentsOf: Self.corpus.appendingPathComponent("certs/client.key"))
            #expect(Data(certificate) == expectedCertificate && Data(key) == expectedKey)
            described = "client certificate"
        case .exec(let plugin):
            described = (["exec \(plugin.command) [\(plugin.args.joined(separator: " "))]"] + plugin.env.map { "\($0.0)=\($0.1)" })
                .joined(separator: " ")
        case .basic(let user, _): described = "basic \(user)"
        }
        #expect(described == credentials)
        if file == "hand-edited.yaml" && context == nil { #expect(config.insecureSkipTLSVerify) }
    }

    /// YAML a kubeconfig has no use for, and broken YAML, stop start-up at the line and column, with what to change.
    @Test(arguments: [
        (
            "anchor", "clusters:\n- name: a\n  cluster: &base {server: 'https://x'}\n",
            "3:12: an anchor (&name) is YAML that kube-node-dns does not read"
        ),
        ("alias", "clusters:\n- name: a\n  cluster: *base\n", "3:12: an alias (*name) is YAML that kube-node-dns does not read"),
        ("tag", "current-context: !!str x\n", "1:18: a tag (!tag) is YAML that kube-node-dns does not read"),
        ("second document", "current-context: a\n---\ncurrent-context: b\n", "2:1: a second document (---): a kubeconfig holds one"),
        ("directive", "%YAML 1.2\n---\nkind: Config\n", "1:1: a directive (%YAML, %TAG)"),
        ("complex key", "? a\n: b\n", "1:1: a complex key (?)"),
        ("tab", "clusters:\n\t- name: a\n", "2:1: not valid YAML: a tab in the indentation; YAML indents with spaces only"),
        ("unclosed quote", "kind: Config\ncurrent-context: \"home\n", "2:18: not valid YAML: a double-quoted string that never closes"),
        ("unclosed flow", "users: [{name: a}\n", "1:8: not valid YAML: a [ that never closes"),
        ("garbage", "clusters: [: :", "1:12: not valid YAML: expected a value, found ':'"),
        (
            "over-indented", "kind: Config\n  apiVersion: v1\n",
            "2:3: not valid YAML: this line is indented more than the key above it"
        ),
        ("two keys on a line", "kind: Config current-context: a\n", "1:29: not valid YAML: a second `key:` on one line"),
        ("duplicate key", "kind: Config\nkind: Other\n", "2:1: not valid YAML: the key \"kind\" appears twice"),
        ("list on key line", "clusters: - a\n", "1:11: not valid YAML: a list item cannot start on its key's line"),
        ("bad escape", "current-context: \"a\\qb\"\n", "1:20: not valid YAML: an unknown escape \\q"),
    ])
    func unsupportedOrBrokenYAMLNamesLineAndColumn(label: String, text: String, message: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kubeconfig-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ClusterConfig.kubeconfig(path: path)
            Issue.record("\(label) should fail")
        } catch {
            #expect(error.description.hasPrefix("kubeconfig \(path):\(message)"), "\(label): \(error.description)")
        }
    }

    /// Corner cases of the subset, each checked against Yams rather than against what the reader happens to do.
    @Test(arguments: [
        "a: |+\n  kept\n\n\nb: 1\n",
        "a: >\n  one\n  two\n\n  three\n    indented\n  four\n",
        "a: |2-\n    two spaces kept\n",
        "a: 'one\n  two\n\n  three'\n",
        "a: \"tab\\there \\u00e9 \\U0001F600 \\x41\"\n",
        "a: [1, [2, 3], {b: c}, \"d\", 'e', ]\n",
        "{\"a\": {\"b\": [true, null, 1.5, \"\\u00e9\"]}, \"c\": {}}\n",
        "- a\n- - b\n  - c\n- d: e\n  f: g\n-\n  h: i\n",
        "a:\n  b:\n  c: ~\nd: null\n",
        "a: plain # comment\nb: 'quoted' # comment\nc: x#y\n",
        "a: https://example.org:6443/path?q=1#frag\n",
        "--- # comment\na: b\n...\n",
        "key with spaces: value with spaces  \n\"quoted key\": 1\n'single': 2\n",
        "a:\n- 1\n- 2\nb: 3\n",
        "# only a comment\n",
        "",
        "a: multi\n  line\n\n  plain\nb: c\n",
        // Found by the kubeconfig fuzzer: an escaped space or tab before a line break is kept, not trimmed with the
        // blanks the fold removes (the reader read "a\\ \n  b" as "a b", Yams as "a  b").
        "token: \"linene\\ \n  o   continued\"\n",
        "token: \"tab\\t \n  next\"\n",
        // Found by the kubeconfig fuzzer: empty lines after a plain key in { } were kept in it as newlines.
        "{\"a\": 1,\n  key\n\r\r\r  }\n",
        "{a: multi\n  line\n\n  plain, b: c}\n",
        // Found by the kubeconfig fuzzer: a block scalar that ends the file without a line break has none to keep.
        "token: |\n  kept\n    as\n  written",
        "token: |+\n  kept",
        "token: >\n  folded\n  text",
        // Found by a ten-minute kubeconfig run: an empty line after an escaped line break is a newline.
        "token: \"line one \\\n      \n  two\"\n",
        "token: \"a\\\n\n\n  b\"\n",
    ])
    func subsetCornerCasesReadAsYamsReadsThem(text: String) throws {
        #expect(try KubeconfigYAMLReader.parse(text) == (try Yams.compose(yaml: text).map(Self.tree)), "\(text.debugDescription)")
    }

    /// JSON writes a character outside the BMP as a UTF-16 surrogate pair; libyaml (under Yams) refuses it, JSON
    /// readers such as kubectl's take it.
    @Test func aJSONSurrogatePairIsOneCharacter() throws {
        #expect(try KubeconfigYAMLReader.parse(#"{"user": "\ud83d\ude00"}"#)?["user"]?.string == "\u{1F600}")
    }
}

/// An exec credential plugin, as GKE's and EKS's kubeconfigs name one: started with the kubeconfig's env and
/// KUBERNETES_EXEC_INFO, its ExecCredential's token sent as the bearer token.
@Suite struct ExecCredentialPluginTests {
    @Test func thePluginsTokenAuthenticatesAndItsFailureIsNamed() async throws {
        let emulator = KubeAPIEmulator(options: .init(token: "exec-token"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knd-exec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let plugin = directory.appendingPathComponent("plugin.sh").path
        try """
        #!/bin/sh
        [ "$HOBBY_PROFILE" = "from-kubeconfig" ] || exit 3
        [ "$1" = "get-token" ] || exit 4
        case "$KUBERNETES_EXEC_INFO" in *'"interactive":false'*) ;; *) exit 5 ;; esac
        printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"exec-token","expirationTimestamp":"2099-01-01T00:00:00Z"}}'
        """.write(toFile: plugin, atomically: true, encoding: .utf8)
        chmod(plugin, 0o755)
        try await withKubeEmulator(emulator) { port in
            func kubeconfig(profile: String) throws -> String {
                let path = directory.appendingPathComponent("config-\(profile)").path
                try """
                apiVersion: v1
                clusters: [{name: c, cluster: {server: 'http://127.0.0.1:\(port)'}}]
                contexts: [{name: x, context: {cluster: c, user: u}}]
                current-context: x
                users:
                - name: u
                  user:
                    exec:
                      apiVersion: client.authentication.k8s.io/v1
                      command: ./plugin.sh
                      args: [get-token]
                      env:
                      - name: HOBBY_PROFILE
                        value: \(profile)
                """.write(toFile: path, atomically: true, encoding: .utf8)
                return path
            }
            let client = try KubeClient(
                config: try ClusterConfig.kubeconfig(path: try kubeconfig(profile: "from-kubeconfig")), logger: quietLogger)
            #expect(try await client.getLease(namespace: "default", name: "absent") == nil)
            await client.shutdown()

            let failing = try KubeClient(config: try ClusterConfig.kubeconfig(path: try kubeconfig(profile: "wrong")), logger: quietLogger)
            let error = await #expect(throws: (any Error).self) { try await failing.getLease(namespace: "default", name: "absent") }
            #expect(
                "\(error.map { "\($0)" } ?? "")".contains("exec credential plugin ./plugin.sh exited with status 3"),
                "\(String(describing: error))")
            await failing.shutdown()
        }
    }

    /// A plugin that never finishes (waiting for a login nobody will do) is killed at its deadline and named, instead
    /// of holding a thread of the controller for ever.
    @Test func aPluginThatNeverFinishesIsKilledAtItsDeadline() async throws {
        let started = ContinuousClock.now
        #expect(throws: ConfigError("did not finish within 0.3 seconds (killed)")) {
            try ExecRunner.spawn(["/bin/sleep", "600"], environment: [:], deadline: .milliseconds(300))
        }
        #expect(started.duration(to: .now) < .seconds(60), "the plugin was killed, not waited for")
    }
}
