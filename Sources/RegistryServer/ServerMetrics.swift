import Prometheus

/// Request counts and latencies of one server, kept in its own Prometheus registry (no global bootstrap, so that
/// many servers can run in one process).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    private static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "registry", metricName: "http_requests", unitName: "total",
            helpText: "HTTP requests by method, route and status.")
    }

    private static var latency: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "registry", metricName: "http_request_duration", unitName: "seconds",
            helpText: "Time to produce the response head, by route.")
    }

    private static let buckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    /// Resolve watches (`?wait=`) open right now: about one per serving instance that follows a stage.
    let openWatches: Gauge
    /// Passes of the rollout supervisor over every active rollout, failed ones included (they are logged): an
    /// operator sees it is alive, a test that a check ran.
    let rolloutChecks: Counter
    let leading: Gauge

    init(readsServed: (@Sendable () -> (primary: Int, replica: Int))? = nil) {
        self.readsServed = readsServed
        openWatches = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "registry", metricName: "resolve_watches", unitName: "open",
                helpText: "Resolve watches waiting for a change right now."))
        rolloutChecks = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "registry", metricName: "rollout_checks", unitName: "total",
                helpText: "Periodic checks of every active rollout by the rollout supervisor."))
        leading = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "registry", metricName: "rollout_supervisor", unitName: "leading",
                helpText:
                    "1 while this instance runs the rollout supervisor (one instance among those sharing a database)."))
    }

    /// Counts one request; `route` is the route template, never the raw path, to bound cardinality.
    func record(method: String, route: String, status: Int, duration: Duration) {
        registry.makeCounter(
            descriptor: Self.requests, labels: [("method", method), ("route", route), ("status", String(status))]
        ).increment()
        registry.makeDurationHistogram(descriptor: Self.latency, labels: [("route", route)], buckets: Self.buckets)
            .record(duration)
    }

    /// The Prometheus text exposition.
    /// Where the store served reads, sampled at each scrape.
    let readsServed: (@Sendable () -> (primary: Int, replica: Int))?

    func render() -> [UInt8] {
        var bytes = registry.emitToBuffer()
        if let readsServed {
            let (primary, replica) = readsServed()
            bytes += Array(
                """
                # HELP registry_database_reads_total Reads of requests that only read, by the database that served them.
                # TYPE registry_database_reads_total counter
                registry_database_reads_total{served_by="primary"} \(primary)
                registry_database_reads_total{served_by="replica"} \(replica)

                """.utf8)
        }
        return bytes
    }
}
