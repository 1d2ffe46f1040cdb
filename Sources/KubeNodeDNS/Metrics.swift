import NodeDNSCore
import Prometheus

/// The controller's Prometheus metrics; one registry per controller so tests can run several side by side.
package final class ControllerMetrics: Sendable {
    package let registry = PrometheusCollectorRegistry()
    let reconcileDuration: DurationHistogram
    let eligibleNodes: Gauge
    let managedRecords: Gauge
    let conflicts: Gauge
    let leader: Gauge
    let ready: Gauge
    let heldNames: Gauge
    let failuresInARow: Gauge
    let providerRefused: Gauge
    let watchProgressAge: Gauge
    let healthChecksAllFailing: Gauge
    let healthCheckDuration: DurationHistogram
    /// Made once: a thousand checks a second should not look them up by name and labels each time.
    /// `--cname-names` names by state (in_place, pending, conflict).
    let cnames: [String: Gauge]
    /// Names Nodes ask for by annotation: accepted, and refused.
    let nodeHostnamesAccepted: Gauge
    let nodeHostnamesRefused: Gauge
    let healthChecksPassed: Counter
    let healthChecksFailed: Counter

    package init() {
        reconcileDuration = registry.makeDurationHistogram(
            descriptor: .init(
                metricName: "kube_node_dns_reconcile_duration_seconds", unitName: "",
                helpText: "Time from the start of a reconcile to its end"),
            buckets: [
                .milliseconds(5), .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                .seconds(1), .seconds(5), .seconds(30),
            ])
        eligibleNodes = registry.makeGauge(
            descriptor: .init(metricName: "kube_node_dns_eligible_nodes", unitName: "", helpText: "Nodes that may serve traffic"))
        managedRecords = registry.makeGauge(
            descriptor: .init(metricName: "kube_node_dns_managed_records", unitName: "", helpText: "Records this controller owns"))
        conflicts = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_conflicts", unitName: "", helpText: "Records on managed names owned by someone else"))
        leader = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_leader", unitName: "",
                helpText: "1 while this replica holds the Lease (or leader election is off)"))
        ready = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_ready", unitName: "", helpText: "1 once the first sync succeeded and the provider answers"))
        heldNames = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_held_names", unitName: "",
                helpText: "Names that keep their last records because every node left them at once"))
        failuresInARow = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_reconcile_failures_in_a_row", unitName: "",
                helpText: "Reconciles that failed since the last one that succeeded"))
        providerRefused = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_provider_refused", unitName: "",
                helpText: "1 while the DNS provider refuses the credentials or a name (the /readyz reason)"))
        healthChecksAllFailing = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_health_checks_all_failing", unitName: "",
                helpText: "1 while every health-checked node fails at once (the controller's own network is the likelier fault)"))
        healthCheckDuration = registry.makeDurationHistogram(
            descriptor: .init(
                metricName: "kube_node_dns_health_check_duration_seconds", unitName: "",
                helpText: "Time a health check took, passed or failed (a timeout counts as the timeout)"),
            buckets: [
                .milliseconds(1), .milliseconds(5), .milliseconds(20), .milliseconds(50), .milliseconds(100),
                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
            ])
        var cnames: [String: Gauge] = [:]
        for state in ["in_place", "pending", "conflict"] {
            cnames[state] = registry.makeGauge(
                descriptor: .init(
                    metricName: "kube_node_dns_cnames", unitName: "",
                    helpText: "--cname-names names by state: in_place, pending (to be written), conflict (a record not ours in the way)"),
                labels: [("state", state)])
        }
        self.cnames = cnames
        nodeHostnamesAccepted = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_node_hostnames", unitName: "",
                helpText: "Names Nodes ask for by --node-hostnames-annotation: accepted, or refused (see the Node's Events)"),
            labels: [("state", "accepted")])
        nodeHostnamesRefused = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_node_hostnames", unitName: "",
                helpText: "Names Nodes ask for by --node-hostnames-annotation: accepted, or refused (see the Node's Events)"),
            labels: [("state", "refused")])
        healthChecksPassed = registry.makeCounter(
            descriptor: .init(
                metricName: "kube_node_dns_health_checks_total", unitName: "", helpText: "Health checks by result (pass, fail)"),
            labels: [("result", "pass")])
        healthChecksFailed = registry.makeCounter(
            descriptor: .init(
                metricName: "kube_node_dns_health_checks_total", unitName: "", helpText: "Health checks by result (pass, fail)"),
            labels: [("result", "fail")])
        watchProgressAge = registry.makeGauge(
            descriptor: .init(
                metricName: "kube_node_dns_watch_progress_age_seconds", unitName: "",
                helpText: "Seconds since the node (or serving-pod) watch last delivered an event or a bookmark"))
    }

    /// The gauges read from the reconciler's state when Prometheus scrapes.
    func update(from status: ReconcileStatus, watchProgressAge age: Duration) {
        heldNames.set(to: Double(status.heldNames.count))
        failuresInARow.set(to: Double(status.failuresInARow))
        providerRefused.set(to: status.operatorProblem == nil ? 0 : 1)
        watchProgressAge.set(to: age.inSeconds)
    }

    /// One health check done: counted by result, and its latency observed.
    package func healthChecked(passed: Bool, latency: Duration) {
        (passed ? healthChecksPassed : healthChecksFailed).increment()
        healthCheckDuration.record(latency)
    }

    package func reconciled(result: String) {
        registry.makeCounter(
            descriptor: .init(metricName: "kube_node_dns_reconciles_total", unitName: "", helpText: "Reconciles by result"),
            labels: [("result", result)]
        ).increment()
    }

    package func changed(action: String, count: Int) {
        guard count > 0 else { return }
        registry.makeCounter(
            descriptor: .init(
                metricName: "kube_node_dns_dns_changes_total", unitName: "", helpText: "DNS record changes written, by action"),
            labels: [("action", action)]
        ).increment(by: Int64(count))
    }

    package func providerCall(endpoint: String, status: Int) {
        registry.makeCounter(
            descriptor: .init(
                metricName: "kube_node_dns_provider_requests_total", unitName: "",
                helpText: "Provider API calls by endpoint and HTTP status (0: network failure)"),
            labels: [("endpoint", endpoint), ("status", String(status))]
        ).increment()
    }

    /// An exchange with a peer (`kubernetes`, `cloudflare`) hit its deadline: it sent too slowly, and was retried.
    package func deadlineHit(peer: String) {
        registry.makeCounter(
            descriptor: .init(
                metricName: "kube_node_dns_deadlines_total", unitName: "",
                helpText: "Exchanges with a peer that hit their deadline (the peer sent too slowly) and were retried"),
            labels: [("peer", peer)]
        ).increment()
    }

    /// One RFC 2136 exchange: `operation` is query or update, `outcome` the response code or "unreachable".
    package func dnsMessage(operation: String, outcome: String) {
        registry.makeCounter(
            descriptor: .init(
                metricName: "kube_node_dns_rfc2136_messages_total", unitName: "",
                helpText: "RFC 2136 messages sent, by operation and the server's response code (unreachable: no answer)"),
            labels: [("operation", operation), ("outcome", outcome)]
        ).increment()
    }

    package func text() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
