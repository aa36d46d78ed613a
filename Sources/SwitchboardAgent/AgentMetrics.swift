import Foundation
import NFTModel
import NetworkTypes
import Prometheus
import SwitchboardCore

/// Every metric the agent exports, by name. kube-proxy's names where the meaning is the same, so existing
/// dashboards and alerts keep working; `switchboard_` where kube-proxy has no equivalent.
///
/// Labels are kube-proxy 1.31/1.32's. 1.33 added `ip_family` to most of its series, since it runs one proxier
/// per family; Switchboard syncs both families in one transaction, so a per-family sync duration or
/// timestamp would be made up. The conntrack reconciler's series, which have `ip_family` in every release
/// that has them (1.33+), keep it: the cleanup does run per family.
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
    /// Gauge: EndpointSlice changes not yet synced (each event that changed a slice counts).
    public static let endpointChangesPending = "kubeproxy_sync_proxy_rules_endpoint_changes_pending"
    /// Counter: EndpointSlice events (adds, updates, deletes; listed objects count one each).
    public static let endpointChangesTotal = "kubeproxy_sync_proxy_rules_endpoint_changes_total"
    /// Gauge: Services whose object changed since the last sync.
    public static let serviceChangesPending = "kubeproxy_sync_proxy_rules_service_changes_pending"
    /// Counter: Service events (adds, updates, deletes; listed objects count one each).
    public static let serviceChangesTotal = "kubeproxy_sync_proxy_rules_service_changes_total"
    /// Gauge (despite its name, as in kube-proxy) with label `traffic_policy` (`internal`, `external`): service
    /// ports, per IP family, with endpoints but none on this node under a Local traffic policy.
    public static let noLocalEndpoints = "kubeproxy_sync_proxy_rules_no_local_endpoints_total"
    /// Counter: syncs whose nftables transaction failed.
    public static let nftablesSyncFailures = "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"
    /// Counter: failed nftables cleanups after a sync (stale session-affinity entries; retried next sync).
    public static let nftablesCleanupFailures = "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total"
    /// Counter with label `code` (`200`, `503`): `/healthz` answers.
    public static let proxyHealthz = "kubeproxy_proxy_healthz_total"
    /// Counter with label `code` (`200`, `503`): `/livez` answers.
    public static let proxyLivez = "kubeproxy_proxy_livez_total"
    /// Counter with label `ip_family` (`IPv4`, `IPv6`): stale conntrack entries deleted after syncs.
    public static let conntrackReconcilerDeletedEntries = "kubeproxy_conntrack_reconciler_deleted_entries_total"
    /// Histogram with label `ip_family`: how long each conntrack cleanup took.
    public static let conntrackReconcilerDuration = "kubeproxy_conntrack_reconciler_sync_duration_seconds"
    /// Counter with labels `type` (`full`, `partial`) and `result` (`success`, `failure`).
    public static let syncTotal = "switchboard_sync_total"
    /// Counter with label `kind` (`Service`, `EndpointSlice`, `Node`, `unknown`): objects skipped or partly
    /// ignored, as diagnosed by the decoder or the compiler.
    public static let invalidObjects = "switchboard_invalid_objects_total"
    /// Gauge: set and map elements in the last applied ruleset.
    public static let rulesetElements = "switchboard_ruleset_elements"
    /// Gauge: chains in the last applied ruleset.
    public static let rulesetChains = "switchboard_ruleset_chains"
    /// Counter: stale UDP/SCTP conntrack entries deleted after syncs (both families; kept from before
    /// `conntrackReconcilerDeletedEntries`, which splits it by family).
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
    private let endpointChangesPending: Gauge
    private let endpointChangesTotal: Counter
    private let serviceChangesPending: Gauge
    private let serviceChangesTotal: Counter
    private let noLocalEndpointsInternal: Gauge
    private let noLocalEndpointsExternal: Gauge
    private let nftablesSyncFailures: Counter
    private let nftablesCleanupFailures: Counter
    private let conntrackReconciler: [IPFamily: (deleted: Counter, duration: ValueHistogram)]

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
        endpointChangesPending = registry.makeGauge(
            descriptor: descriptor(MetricName.endpointChangesPending, "Pending proxy rules Endpoint changes"))
        endpointChangesTotal = registry.makeCounter(
            descriptor: descriptor(MetricName.endpointChangesTotal, "Cumulative proxy rules Endpoint changes"))
        serviceChangesPending = registry.makeGauge(
            descriptor: descriptor(MetricName.serviceChangesPending, "Pending proxy rules Service changes"))
        serviceChangesTotal = registry.makeCounter(
            descriptor: descriptor(MetricName.serviceChangesTotal, "Cumulative proxy rules Service changes"))
        func noLocal(_ policy: String) -> Gauge {
            registry.makeGauge(
                descriptor: descriptor(
                    MetricName.noLocalEndpoints, "Number of services with a Local traffic policy and no endpoints"),
                labels: [("traffic_policy", policy)])
        }
        noLocalEndpointsInternal = noLocal("internal")
        noLocalEndpointsExternal = noLocal("external")
        nftablesSyncFailures = registry.makeCounter(
            descriptor: descriptor(MetricName.nftablesSyncFailures, "Cumulative proxy nftables sync failures"))
        nftablesCleanupFailures = registry.makeCounter(
            descriptor: descriptor(MetricName.nftablesCleanupFailures, "Cumulative proxy nftables cleanup failures"))
        var conntrackReconciler: [IPFamily: (deleted: Counter, duration: ValueHistogram)] = [:]
        for family in IPFamily.allCases {
            let labels = [("ip_family", family.rawValue)]
            conntrackReconciler[family] = (
                registry.makeCounter(
                    descriptor: descriptor(
                        MetricName.conntrackReconcilerDeletedEntries,
                        "Cumulative conntrack flows deleted by conntrack reconciler"),
                    labels: labels),
                registry.makeValueHistogram(
                    descriptor: descriptor(
                        MetricName.conntrackReconcilerDuration, "ReconcileConntrackFlowsLatency latency in seconds"),
                    labels: labels, buckets: Self.syncBuckets)
            )
        }
        self.conntrackReconciler = conntrackReconciler
        // Known kinds and codes start at zero, so a dashboard sees the series before the first event.
        for kind in ObjectKind.allCases { _ = invalidObjectsCounter(kind.rawValue) }
        for code in [200, 503] {
            _ = probeCounter(MetricName.proxyHealthz, code: code)
            _ = probeCounter(MetricName.proxyLivez, code: code)
        }
    }

    /// One sync: its duration by kind; on success also the timestamp and the size of what is now applied.
    public func recordSync(_ kind: SyncKind, succeeded: Bool, duration: Duration, finishedAt: Date, applied: Ruleset?) {
        let seconds = duration.seconds
        syncDuration.record(seconds)
        (kind == .full ? fullSyncDuration : partialSyncDuration).record(seconds)
        let counters = syncs[kind]!
        (succeeded ? counters.success : counters.failure).increment()
        if !succeeded { nftablesSyncFailures.increment() }
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

    /// Service and EndpointSlice events seen (kube-proxy's `_changes_total`).
    public func countChanges(services: Int, endpointSlices: Int) {
        if services > 0 { serviceChangesTotal.increment(by: Int64(services)) }
        if endpointSlices > 0 { endpointChangesTotal.increment(by: Int64(endpointSlices)) }
    }

    /// Changes not yet synced (kube-proxy's `_changes_pending`): Services that differ from the last sync,
    /// and EndpointSlice events that changed a slice since then.
    public func setPendingChanges(services: Int, endpointSlices: Int) {
        serviceChangesPending.set(Double(services))
        endpointChangesPending.set(Double(endpointSlices))
    }

    /// Service ports whose Local traffic policy finds no endpoint on this node, as of the last sync.
    public func setNoLocalEndpoints(_ counts: NoLocalEndpointCounts) {
        noLocalEndpointsInternal.set(Double(counts.internalPolicy))
        noLocalEndpointsExternal.set(Double(counts.externalPolicy))
    }

    /// A cleanup after a sync failed in the kernel (it is retried after the next sync).
    public func countNFTablesCleanupFailure() {
        nftablesCleanupFailures.increment()
    }

    /// One `/healthz` answer, by HTTP status code.
    public func countHealthz(code: UInt) {
        probeCounter(MetricName.proxyHealthz, code: Int(code)).increment()
    }

    /// One `/livez` answer, by HTTP status code.
    public func countLivez(code: UInt) {
        probeCounter(MetricName.proxyLivez, code: Int(code)).increment()
    }

    /// One conntrack cleanup of one family: how long it took and how many entries it deleted.
    public func recordConntrackCleanup(_ family: IPFamily, deleted: Int, duration: Duration) {
        let metrics = conntrackReconciler[family]!
        metrics.duration.record(duration.seconds)
        if deleted > 0 { metrics.deleted.increment(by: Int64(deleted)) }
    }

    private func probeCounter(_ name: String, code: Int) -> Counter {
        let help = "Cumulative proxy \(name == MetricName.proxyHealthz ? "healthz" : "livez") HTTP status"
        return registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help),
            labels: [("code", String(code))])
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
