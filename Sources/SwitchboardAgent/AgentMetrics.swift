import Foundation
import NFTModel
import Prometheus

/// Every metric the agent exports, by name. kube-proxy's names where the meaning is the same, so existing
/// dashboards and alerts keep working; `switchboard_` where kube-proxy has no equivalent.
public enum MetricName {
    /// Histogram: how long each sync took (compile, plan and apply), full or partial, successful or not.
    public static let syncProxyRulesDuration = "kubeproxy_sync_proxy_rules_duration_seconds"
    /// Histogram: the same, full syncs only (as kube-proxy's nftables mode).
    public static let syncFullProxyRulesDuration = "kubeproxy_sync_full_proxy_rules_duration_seconds"
    /// Histogram: the same, partial syncs only.
    public static let syncPartialProxyRulesDuration = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
    /// Gauge: Unix time of the last successful sync.
    public static let syncProxyRulesLastTimestamp = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
    /// Gauge: Unix time at which the last change was queued for syncing.
    public static let syncProxyRulesLastQueuedTimestamp = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"
    /// Histogram: from an EndpointSlice's `endpoints.kubernetes.io/last-change-trigger-time` to the commit
    /// of the rules that reflect it.
    public static let networkProgrammingDuration = "kubeproxy_network_programming_duration_seconds"
    /// Counter with labels `type` (`full`, `partial`) and `result` (`success`, `failure`).
    public static let syncTotal = "switchboard_sync_total"
    /// Counter with label `kind` (`Service`, `EndpointSlice`, `Node`, `unknown`): objects skipped or partly
    /// ignored, as diagnosed by the decoder or the compiler.
    public static let invalidObjects = "switchboard_invalid_objects_total"
    /// Gauge: set and map elements in the last applied ruleset.
    public static let rulesetElements = "switchboard_ruleset_elements"
    /// Gauge: chains in the last applied ruleset.
    public static let rulesetChains = "switchboard_ruleset_chains"
    /// Counter: stale UDP/SCTP conntrack entries deleted after syncs.
    public static let conntrackDeletedEntries = "switchboard_conntrack_deleted_entries_total"
    /// Counter: conntrack cleanups that failed (the stale entries stay until they time out).
    public static let conntrackCleanupErrors = "switchboard_conntrack_cleanup_errors_total"
    /// Counter: ipset export failures (`--ipset-export`): one per set whose rebuild failed, or per sync
    /// whose kernel read failed.
    public static let ipsetExportErrors = "switchboard_ipset_export_errors_total"
    /// Counter: health-check servers (`healthCheckNodePort` of `externalTrafficPolicy: Local` Services)
    /// that could not listen on their port. kube-proxy records an event instead.
    public static let serviceHealthCheckListenErrors = "switchboard_service_health_check_listen_errors_total"
}

/// The agent's metrics, in a `PrometheusCollectorRegistry` that the metrics server exposes.
///
/// The registry is used directly rather than through swift-metrics: the names, help texts and buckets
/// must be kube-proxy's exactly, and the registry can be shared with other code (pass one in).
public final class AgentMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    private let syncDuration: ValueHistogram
    private let fullSyncDuration: ValueHistogram
    private let partialSyncDuration: ValueHistogram
    private let lastSyncTimestamp: Gauge
    private let lastQueuedTimestamp: Gauge
    private let networkProgramming: ValueHistogram
    private let syncs: [SyncKind: (success: Counter, failure: Counter)]
    private let elements: Gauge
    private let chains: Gauge
    private let conntrackDeleted: Counter
    private let conntrackErrors: Counter
    private let ipsetExportErrors: Counter
    private let healthCheckListenErrors: Counter

    /// kube-proxy's sync latency buckets: 1 ms × 2^n, n = 0...14.
    static let syncBuckets: [Double] = (0..<15).map { 0.001 * Double(1 << $0) }
    /// kube-proxy's network programming buckets: 0.25 s, 0.5 s, 1...59 s, 60...115 s by 5, 2...5 min by 30 s.
    static let networkProgrammingBuckets: [Double] =
        [0.25, 0.5] + (1...59).map(Double.init) + (0..<12).map { 60 + 5 * Double($0) }
        + (0..<7).map { 120 + 30 * Double($0) }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
        syncDuration = registry.makeValueHistogram(
            descriptor: descriptor(MetricName.syncProxyRulesDuration, "SyncProxyRules latency in seconds"),
            buckets: Self.syncBuckets)
        fullSyncDuration = registry.makeValueHistogram(
            descriptor: descriptor(
                MetricName.syncFullProxyRulesDuration, "SyncProxyRules latency in seconds for full resyncs"),
            buckets: Self.syncBuckets)
        partialSyncDuration = registry.makeValueHistogram(
            descriptor: descriptor(
                MetricName.syncPartialProxyRulesDuration, "SyncProxyRules latency in seconds for partial resyncs"),
            buckets: Self.syncBuckets)
        lastSyncTimestamp = registry.makeGauge(
            descriptor: descriptor(
                MetricName.syncProxyRulesLastTimestamp, "The last time proxy rules were successfully synced"))
        lastQueuedTimestamp = registry.makeGauge(
            descriptor: descriptor(
                MetricName.syncProxyRulesLastQueuedTimestamp,
                "The last time a sync of proxy rules was queued"))
        networkProgramming = registry.makeValueHistogram(
            descriptor: descriptor(
                MetricName.networkProgrammingDuration, "In Cluster Network Programming Latency in seconds"),
            buckets: Self.networkProgrammingBuckets)
        var syncs: [SyncKind: (success: Counter, failure: Counter)] = [:]
        for kind in SyncKind.allCases {
            func counter(_ result: String) -> Counter {
                registry.makeCounter(
                    descriptor: descriptor(MetricName.syncTotal, "Rule syncs by type and result"),
                    labels: [("type", kind.rawValue), ("result", result)])
            }
            syncs[kind] = (counter("success"), counter("failure"))
        }
        self.syncs = syncs
        elements = registry.makeGauge(
            descriptor: descriptor(MetricName.rulesetElements, "Set and map elements in the last applied ruleset"))
        chains = registry.makeGauge(
            descriptor: descriptor(MetricName.rulesetChains, "Chains in the last applied ruleset"))
        conntrackDeleted = registry.makeCounter(
            descriptor: descriptor(
                MetricName.conntrackDeletedEntries, "Stale UDP/SCTP conntrack entries deleted after syncs"))
        conntrackErrors = registry.makeCounter(
            descriptor: descriptor(MetricName.conntrackCleanupErrors, "Conntrack cleanups that failed"))
        ipsetExportErrors = registry.makeCounter(
            descriptor: descriptor(MetricName.ipsetExportErrors, "Failed ipset export operations"))
        healthCheckListenErrors = registry.makeCounter(
            descriptor: descriptor(
                MetricName.serviceHealthCheckListenErrors,
                "Service health-check servers that could not listen on their healthCheckNodePort"))
        // Known kinds start at zero, so a dashboard sees the series before the first bad object.
        for kind in ObjectKind.allCases { _ = invalidObjectsCounter(kind.rawValue) }
    }

    /// One sync: its duration by kind; on success also the timestamp and the size of what is now applied.
    public func recordSync(_ kind: SyncKind, succeeded: Bool, duration: Duration, finishedAt: Date, applied: Ruleset?) {
        let seconds = duration.seconds
        syncDuration.record(seconds)
        (kind == .full ? fullSyncDuration : partialSyncDuration).record(seconds)
        let counters = syncs[kind]!
        (succeeded ? counters.success : counters.failure).increment()
        if succeeded { lastSyncTimestamp.set(finishedAt.timeIntervalSince1970) }
        if let applied {
            elements.set(Double(applied.elementCount))
            chains.set(Double(applied.chainCount))
        }
    }

    /// A change was queued for the next sync.
    public func recordQueued(at date: Date) {
        lastQueuedTimestamp.set(date.timeIntervalSince1970)
    }

    /// The time from an endpoint change to its rules being committed.
    public func observeNetworkProgramming(seconds: Double) {
        networkProgramming.record(max(0, seconds))
    }

    /// One diagnosed object, by kind (`Service`, `EndpointSlice`, `Node`, or `unknown`).
    public func countInvalidObject(kind: String) {
        invalidObjectsCounter(kind).increment()
    }

    /// A Service's health-check server could not listen on its port.
    public func countHealthCheckListenError() {
        healthCheckListenErrors.increment()
    }

    private func invalidObjectsCounter(_ kind: String) -> Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: MetricName.invalidObjects, unitName: "",
                helpText: "Objects skipped or partly ignored because they are invalid, by kind"),
            labels: [("kind", kind)])
    }

    /// Stale conntrack entries deleted by one cleanup.
    public func countConntrackDeleted(_ entries: Int) {
        conntrackDeleted.increment(by: Int64(entries))
    }

    /// A conntrack cleanup failed.
    public func countConntrackCleanupError() {
        conntrackErrors.increment()
    }

    /// One failed ipset export operation.
    public func countIPSetExportError() {
        ipsetExportErrors.increment()
    }

    /// The Prometheus text exposition of everything in the registry.
    public func exposition() -> String {
        registry.emitToString()
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
