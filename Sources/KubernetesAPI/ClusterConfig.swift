import FoundationEssentials

/// How to reach and authenticate to one API server, from a kubeconfig or the in-cluster service account.
package struct ClusterConfig: Sendable {
    /// How requests prove who they are.
    package enum Credentials: Sendable {
        case none
        case token(String)
        /// A token file re-read when it rotates (projected service-account tokens rotate hourly).
        case tokenFile(String)
        case clientCertificate(certificatePEM: [UInt8], keyPEM: [UInt8])
        case exec(ExecCredentialPlugin)
        case basic(username: String, password: String)
    }

    package var server: String
    package var caPEM: [UInt8]?
    package var insecureSkipTLSVerify = false
    package var tlsServerName: String?
    package var credentials: Credentials
    /// The namespace of the context or the service account; where leases and events go by default.
    package var namespace: String
    /// Where the configuration came from, for messages.
    package var source: String

    package init(
        server: String, caPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false, credentials: Credentials = .none,
        namespace: String = "default", source: String = "flags"
    ) {
        self.server = server
        self.caPEM = caPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.credentials = credentials
        self.namespace = namespace
        self.source = source
    }
}

/// An exec credential plugin (`client.authentication.k8s.io/v1`), as GKE's and EKS's kubeconfigs use.
package struct ExecCredentialPlugin: Sendable {
    package var command: String
    package var args: [String]
    package var env: [(String, String)]
    package var apiVersion: String
    package var baseDirectory: String
}

/// A configuration problem that stops start-up; the message names the file and the field.
package struct ConfigError: Error, CustomStringConvertible, Equatable {
    package let description: String
    package init(_ description: String) { self.description = description }
}

extension ClusterConfig {
    /// Standard in-cluster paths; tests point `directory` elsewhere.
    package static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The in-cluster configuration, or nil when not running in a pod.
    package static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = serviceAccountDirectory
    ) throws(ConfigError) -> ClusterConfig? {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else { return nil }
        let tokenPath = directory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw ConfigError("in-cluster: cannot read the service-account token \(tokenPath); is automountServiceAccountToken off?")
        }
        let ca = FileManager.default.contents(atPath: directory + "/ca.crt").map { Array($0) }
        let namespace =
            (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?
            .trimmingWhitespace ?? "default"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return ClusterConfig(
            server: "https://\(hostPart):\(port)", caPEM: ca, credentials: .tokenFile(tokenPath),
            namespace: namespace.isEmpty ? "default" : namespace, source: "in-cluster service account")
    }

    /// Loads a kubeconfig file; `context` nil means its current-context.
    package static func kubeconfig(path: String, context wanted: String? = nil) throws(ConfigError) -> ClusterConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(
                "kubeconfig \(path): cannot read the file (\(FileManager.default.fileExists(atPath: path) ? "permission denied or not UTF-8" : "no such file"))"
            )
        }
        let root: YAMLNode?
        do {
            root = try KubeconfigYAMLReader.parse(text)
        } catch {
            throw ConfigError("kubeconfig \(path):\(error)")
        }
        guard let document = root, document.entries != nil else {
            throw ConfigError("kubeconfig \(path): expected a mapping with clusters, users and contexts")
        }
        let baseDirectory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        func named(_ field: String) throws(ConfigError) -> [String: YAMLNode] {
            guard let raw = document[field], !raw.isNull else { return [:] }
            guard let list = raw.items else { throw ConfigError("kubeconfig \(path): \(field) must be a list") }
            var result: [String: YAMLNode] = [:]
            let inner = String(field.dropLast())  // clusters -> cluster
            for (index, entry) in list.enumerated() {
                guard let name = entry["name"]?.string else {
                    throw ConfigError("kubeconfig \(path): \(field)[\(index)] needs a name")
                }
                result[name] = entry[inner].flatMap { $0.entries != nil ? $0 : nil } ?? .mapping([])
            }
            return result
        }
        let contexts = try named("contexts")
        let clusters = try named("clusters")
        let users = try named("users")
        guard let contextName = wanted ?? document["current-context"]?.string, !contextName.isEmpty else {
            throw ConfigError(
                "kubeconfig \(path): current-context is not set; name a context with --context (contexts: \(contexts.keys.sorted().joined(separator: ", ")))"
            )
        }
        guard let context = contexts[contextName] else {
            throw ConfigError(
                "kubeconfig \(path): context \"\(contextName)\" not found (contexts: \(contexts.keys.sorted().joined(separator: ", ")))")
        }
        guard let clusterName = context["cluster"]?.string, let cluster = clusters[clusterName] else {
            throw ConfigError(
                "kubeconfig \(path): contexts[\(contextName)].cluster \"\(context["cluster"]?.string ?? "")\" not found among clusters")
        }
        guard let server = cluster["server"]?.string, let url = URL(string: server), url.scheme == "https" || url.scheme == "http",
            url.host != nil
        else {
            throw ConfigError(
                "kubeconfig \(path): clusters[\(clusterName)].server \"\(cluster["server"]?.string ?? "")\" is not an http(s) URL")
        }
        func resolve(_ file: String) -> String { file.hasPrefix("/") ? file : baseDirectory + "/" + file }
        func data(_ entry: YAMLNode, dataKey: String, fileKey: String, where owner: String) throws(ConfigError) -> [UInt8]? {
            if let encoded = entry[dataKey]?.string {
                guard let decoded = Data(base64Encoded: encoded.filter { !$0.isWhitespace }) else {
                    throw ConfigError("kubeconfig \(path): \(owner).\(dataKey) is not valid base64")
                }
                return Array(decoded)
            }
            if let file = entry[fileKey]?.string {
                guard let contents = FileManager.default.contents(atPath: resolve(file)) else {
                    throw ConfigError("kubeconfig \(path): \(owner).\(fileKey): cannot read \(resolve(file))")
                }
                return Array(contents)
            }
            return nil
        }
        var config = ClusterConfig(server: server.hasSuffix("/") ? String(server.dropLast()) : server, source: "kubeconfig \(path)")
        config.caPEM = try data(
            cluster, dataKey: "certificate-authority-data", fileKey: "certificate-authority", where: "clusters[\(clusterName)]")
        config.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"]?.bool ?? false
        config.tlsServerName = cluster["tls-server-name"]?.string
        config.namespace = context["namespace"]?.string ?? "default"

        let userName = context["user"]?.string
        let user = userName.flatMap { users[$0] } ?? .mapping([])
        if let userName, users[userName] == nil {
            throw ConfigError("kubeconfig \(path): contexts[\(contextName)].user \"\(userName)\" not found among users")
        }
        let owner = "users[\(userName ?? "")]"
        if let token = user["token"]?.string, !token.isEmpty {
            config.credentials = .token(token)
        } else if let tokenFile = user["tokenFile"]?.string {
            let resolved = resolve(tokenFile)
            guard FileManager.default.isReadableFile(atPath: resolved) else {
                throw ConfigError("kubeconfig \(path): \(owner).tokenFile: cannot read \(resolved)")
            }
            config.credentials = .tokenFile(resolved)
        } else if let cert = try data(user, dataKey: "client-certificate-data", fileKey: "client-certificate", where: owner) {
            guard let key = try data(user, dataKey: "client-key-data", fileKey: "client-key", where: owner) else {
                throw ConfigError("kubeconfig \(path): \(owner) has a client certificate but no client-key or client-key-data")
            }
            config.credentials = .clientCertificate(certificatePEM: cert, keyPEM: key)
        } else if let exec = user["exec"], exec.entries != nil {
            guard let command = exec["command"]?.string, !command.isEmpty else {
                throw ConfigError("kubeconfig \(path): \(owner).exec.command is missing")
            }
            let apiVersion = exec["apiVersion"]?.string ?? ""
            guard apiVersion == "client.authentication.k8s.io/v1" || apiVersion == "client.authentication.k8s.io/v1beta1" else {
                throw ConfigError(
                    "kubeconfig \(path): \(owner).exec.apiVersion \"\(apiVersion)\" is not supported; use client.authentication.k8s.io/v1")
            }
            let env = (exec["env"]?.items ?? []).compactMap { item -> (String, String)? in
                guard let name = item["name"]?.string, let value = item["value"]?.string else { return nil }
                return (name, value)
            }
            config.credentials = .exec(
                ExecCredentialPlugin(
                    command: command, args: (exec["args"]?.items ?? []).compactMap(\.string), env: env, apiVersion: apiVersion,
                    baseDirectory: baseDirectory))
        } else if let username = user["username"]?.string, let password = user["password"]?.string {
            config.credentials = .basic(username: username, password: password)
        } else if user["auth-provider"] != nil {
            throw ConfigError(
                "kubeconfig \(path): \(owner).auth-provider is no longer supported by Kubernetes; use an exec plugin (for GKE: gke-gcloud-auth-plugin)"
            )
        }
        return config
    }

    /// kubectl's order: an explicit path, else $KUBECONFIG (first entry), else in-cluster, else ~/.kube/config.
    package static func resolve(
        kubeconfig explicit: String?, context: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory: String = serviceAccountDirectory
    ) throws(ConfigError) -> ClusterConfig {
        if let explicit, !explicit.isEmpty { return try kubeconfig(path: explicit, context: context) }
        if let fromEnv = environment["KUBECONFIG"]?.split(separator: ":").first, !fromEnv.isEmpty {
            return try kubeconfig(path: String(fromEnv), context: context)
        }
        if let inCluster = try inCluster(environment: environment, directory: serviceAccountDirectory) { return inCluster }
        let home = environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path
        let fallback = home + "/.kube/config"
        guard FileManager.default.fileExists(atPath: fallback) else {
            throw ConfigError(
                "no Kubernetes configuration: not in a cluster (KUBERNETES_SERVICE_HOST unset), no --kubeconfig, no $KUBECONFIG and no \(fallback)"
            )
        }
        return try kubeconfig(path: fallback, context: context)
    }
}
