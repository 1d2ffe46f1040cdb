/// What `--health-check` probes on each node: a visitor's view of the node, which Kubernetes learns of late.
package struct HealthCheckSpec: Hashable, Sendable, CustomStringConvertible {
    package enum Scheme: String, Hashable, Sendable { case http, https, tcp }
    package var scheme: Scheme
    package var port: Int
    /// The path with its query, for http and https ("/" when the URL has none).
    package var path: String
    /// `{internal_address}`: probe the node's InternalIP (one probe decides for every address it publishes), for
    /// clusters whose pods cannot reach the nodes' external addresses.
    package var internalAddress: Bool

    package var description: String {
        let host = internalAddress ? "{internal_address}" : "{address}"
        return scheme == .tcp ? "tcp://\(host):\(port)" : "\(scheme.rawValue)://\(host):\(port)\(path)"
    }

    package struct Invalid: Error, CustomStringConvertible, Equatable {
        package let description: String
    }

    /// Reads `http://{address}[:PORT]/PATH`, `https://{address}[:PORT]/PATH` or `tcp://{address}:PORT`, with
    /// `{internal_address}` in place of `{address}` where wanted.
    package init(_ text: String) throws(Invalid) {
        let want = "want http://{address}[:PORT]/PATH, https://{address}[:PORT]/PATH or tcp://{address}:PORT"
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let scheme = Scheme(rawValue: String(parts[0])) else {
            throw Invalid(description: want)
        }
        self.scheme = scheme
        var rest = parts[1]
        if rest.hasPrefix("{address}") {
            internalAddress = false
            rest = rest.dropFirst("{address}".count)
        } else if rest.hasPrefix("{internal_address}") {
            internalAddress = true
            rest = rest.dropFirst("{internal_address}".count)
        } else {
            throw Invalid(description: "the host must be {address} or {internal_address}; \(want)")
        }
        port = scheme == .https ? 443 : 80
        let pathStart = rest.firstIndex(of: "/") ?? rest.endIndex
        let portText = rest[..<pathStart]
        if !portText.isEmpty {
            guard portText.hasPrefix(":"), let value = Int(portText.dropFirst()), (1...65535).contains(value) else {
                throw Invalid(description: "the port must be 1 to 65535; \(want)")
            }
            port = value
        } else if scheme == .tcp {
            throw Invalid(description: "a tcp check needs a port; \(want)")
        }
        let path = String(rest[pathStart...])
        if scheme == .tcp {
            guard path.isEmpty || path == "/" else { throw Invalid(description: "a tcp check has no path; \(want)") }
            self.path = ""
        } else {
            guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw Invalid(description: "the path must be printable ASCII without spaces")
            }
            self.path = path.isEmpty ? "/" : path
        }
    }
}

/// What active health checks say about one node: one more eligibility rule, read by the pure core.
package enum NodeHealth: Hashable, Sendable {
    /// No check has passed yet: a node is published only after its first success.
    case awaitingFirstCheck
    case healthy
    /// It failed `fall` checks in a row; the reason is the failure that tripped it (it stays the same until the
    /// node recovers, so the node's membership is said once).
    case unhealthy(String)

    /// Why the node is left out, or nil when it may be published.
    package var exclusionReason: String? {
        switch self {
        case .healthy: nil
        case .awaitingFirstCheck: "awaiting its first passing health check"
        case .unhealthy(let reason): reason
        }
    }
}

/// The fall/rise rule that turns a node's check results into a verdict; pure, so a table of results can drive it.
package struct HealthStreak: Hashable, Sendable {
    package private(set) var verdict = NodeHealth.awaitingFirstCheck
    /// Passes in a row (0 after a failure), and failures in a row (0 after a pass).
    package private(set) var passes = 0
    package private(set) var failures = 0

    package init() {}

    /// Records one result; whether the verdict changed. A node awaiting its first check becomes healthy at its
    /// first pass; a healthy one becomes unhealthy after `fall` failures in a row; an unhealthy one (or one that
    /// has never passed) returns after `rise` passes in a row.
    package mutating func record(passed: Bool, failure: @autoclosure () -> String = "", fall: Int, rise: Int) -> Bool {
        let before = verdict
        if passed {
            passes += 1
            failures = 0
            switch verdict {
            case .awaitingFirstCheck: verdict = .healthy
            case .unhealthy: if passes >= rise { verdict = .healthy }
            case .healthy: break
            }
        } else {
            failures += 1
            passes = 0
            let alreadyOut: Bool
            if case .unhealthy = verdict { alreadyOut = true } else { alreadyOut = false }
            if failures >= fall && !alreadyOut {
                let times = fall == 1 ? "once" : fall == 2 ? "twice" : "\(fall) times in a row"
                verdict = .unhealthy("health check failed \(times): \(failure())")
            }
        }
        return verdict != before
    }
}

/// The addresses to probe for each node that every other rule would publish: the addresses it would publish, or
/// with `{internal_address}` its first InternalIP. Nodes left out for another reason are not probed.
package func healthCheckTargets(
    nodes: some Collection<NodeSnapshot>, pods: some Collection<PodSnapshot> = [PodSnapshot](), policy: RecordPolicy,
    spec: HealthCheckSpec
) -> [String: [String]] {
    let desired = desiredRecords(nodes: nodes, pods: pods, policy: policy)
    guard spec.internalAddress else { return desired.published }
    var targets: [String: [String]] = [:]
    for node in nodes where desired.published[node.name] != nil {
        let internalIPs = node.addresses.lazy.filter { $0.type == "InternalIP" }.compactMap { try? IPAddress(parsing: $0.address) }
        if let first = internalIPs.first { targets[node.name] = [first.description] }
    }
    return targets
}
