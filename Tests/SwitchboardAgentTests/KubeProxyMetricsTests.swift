import Foundation
import NFTModel
import NetworkTypes
import SwitchboardCore
import SwitchboardTesting
import Testing

@testable import SwitchboardAgent
import SwitchboardTestTraits

/// kube-proxy's metrics that follow the controller's events and syncs, driven through the controller.
@Suite(.exclusive) struct KubeProxyMetricsTests {
    private static func service(
        _ name: String, ip: String, port: Int = 80, internal itp: TrafficPolicy = .cluster
    ) -> KubeObject {
        .service(name, ips: [ip], ports: [ServicePort(name: "http", port: port)], internalPolicy: itp)
    }

    /// kube-proxy's change trackers: every event counts in `_total`; `_pending` counts Services that differ
    /// from the last sync (a change undone is not pending) and every EndpointSlice event that changed a slice.
    @Test func changesAreCountedAndPendingUntilTheSync() async throws {
        let h = ControllerHarness(minSyncPeriod: .seconds(1))
        let pendingServices = MetricName.serviceChangesPending
        let pendingSlices = MetricName.endpointChangesPending
        try await h.run {
            // The initial lists are changes too, pending until the first sync.
            h.source.send(.synced(.services, [Objects.web, Objects.api]))
            h.source.send(.synced(.endpointSlices, [Objects.webSlice, Objects.apiSlice]))
            try await eventually("the lists to be counted") { h.sample(pendingSlices) == 2 }
            #expect(h.sample(pendingServices) == 2)
            #expect(h.sample(MetricName.serviceChangesTotal) == 2)
            #expect(h.sample(MetricName.endpointChangesTotal) == 2)
            h.source.send(.synced(.nodes, [Objects.node]))
            #expect(try await h.nextReport().succeeded)
            #expect(h.sample(pendingServices) == 0 && h.sample(pendingSlices) == 0)

            // Within the minimum period nothing syncs, so the changes wait.
            h.source.send(.upsert(Objects.webSlice))  // a resync: counted, changes nothing
            h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.7"])))
            h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.8"])))
            h.source.send(.upsert(Self.service("api", ip: "10.96.0.20", port: 8080)))
            h.source.send(.upsert(Self.service("new", ip: "10.96.0.30")))
            try await eventually("the changes to be pending") { h.sample(pendingServices) == 2 }
            #expect(h.sample(pendingSlices) == 2)
            h.source.send(.upsert(Objects.api))  // undone: api is as it was at the sync
            try await eventually("the undone change to leave") { h.sample(pendingServices) == 1 }
            #expect(h.sample(MetricName.serviceChangesTotal) == 5)
            #expect(h.sample(MetricName.endpointChangesTotal) == 5)

            // A sync that fails leaves them pending (kube-proxy zeroes them when a sync starts).
            await h.fake.failNextApply()
            try await eventually("the min-period timer") { h.clock.nextDeadline != nil }
            h.clock.advance(by: .seconds(1))
            #expect(try await h.nextReport().succeeded == false)
            #expect(h.sample(pendingServices) == 1 && h.sample(pendingSlices) == 2)
            #expect(h.sample(MetricName.nftablesSyncFailures) == 1)

            try await eventually("the retry timer") { h.clock.sleeperCount > 0 }
            h.clock.advance(by: .seconds(1))
            #expect(try await h.nextReport().succeeded)
            #expect(h.sample(pendingServices) == 0 && h.sample(pendingSlices) == 0)
            #expect(h.sample(MetricName.nftablesSyncFailures) == 1)

            // Deletions count; a list counts every object it holds and every one it drops.
            h.source.send(.delete(Self.service("new", ip: "10.96.0.30")))
            h.source.send(.synced(.endpointSlices, [Objects.webSlice]))  // api-1 dropped
            try await eventually("the re-list to be counted") { h.sample(MetricName.endpointChangesTotal) == 7 }
            #expect(h.sample(MetricName.serviceChangesTotal) == 6)
        }
    }

    @Test func portsWithoutLocalEndpointsFollowEachSync() async throws {
        let h = ControllerHarness()
        let local = Self.service("local", ip: "10.96.0.40", internal: .local)
        func slice(on node: String) -> KubeObject {
            .slice("local-1", service: "local", endpoints: [.at("10.1.0.40", node: node)])
        }
        let internalSeries = #"kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal"}"#
        let externalSeries = #"kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external"}"#
        try await h.run {
            try await h.start(with: Objects.initial + [local, slice(on: "n2")])
            #expect(h.sample(internalSeries) == 1)
            #expect(h.sample(externalSeries) == 0)
            h.source.send(.upsert(slice(on: "n1")))
            #expect(try await h.nextReport().succeeded)
            #expect(h.sample(internalSeries) == 0)
        }
    }

    /// The session-affinity cleanup after a sync is kube-proxy's "cleanup": its failure is counted, the
    /// sync still succeeded, and the next sync tries again.
    @Test func aFailedCleanupIsCountedAndRetried() async throws {
        let h = ControllerHarness()
        let v4 = TableID(.ip, "switchboard")
        guard case .service(var sticky) = Objects.web else { return }
        sticky.sessionAffinity = .clientIP(timeoutSeconds: 60)
        let isCleanup: @Sendable (Transaction) -> Bool = { transaction in
            transaction.commands.allSatisfy {
                if case .deleteElements(_, set: RulesetNames.affinity, keys: _) = $0 { true } else { false }
            }
        }
        try await h.run {
            try await h.start(with: Objects.initial.filter { $0 != Objects.web } + [.service(sticky)])
            await h.fake.edit { r in
                r.tables[v4]!.sets["affinity"]!.elements = ["192.0.2.2 . 10.96.0.10 . tcp . 80": "10.1.0.2 . 8080"]
            }
            h.backend.refuse(where: isCleanup)
            h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.1"])))
            #expect(try await h.nextReport().succeeded)
            #expect(h.sample(MetricName.nftablesCleanupFailures) == 1)
            #expect(h.sample(MetricName.nftablesSyncFailures) == 0)
            #expect(await h.ruleset[v4]!.sets["affinity"]!.elements.count == 1)

            h.backend.refuse(where: { _ in false })
            h.source.send(.delete(Objects.api))
            #expect(try await h.nextReport().succeeded)
            #expect(await h.ruleset[v4]!.sets["affinity"]!.elements.isEmpty)
            #expect(h.sample(MetricName.nftablesCleanupFailures) == 1)
        }
    }

    /// Every series exists from the start, with kube-proxy's type and labels, so dashboards and alerts
    /// find them before the first event.
    @Test func everyKubeProxySeriesIsExposedWithItsType() {
        let text = AgentMetrics().exposition()
        let expected: [(String, String, [String])] = [
            (MetricName.endpointChangesPending, "gauge", [""]),
            (MetricName.endpointChangesTotal, "counter", [""]),
            (MetricName.serviceChangesPending, "gauge", [""]),
            (MetricName.serviceChangesTotal, "counter", [""]),
            (MetricName.noLocalEndpoints, "gauge", [#"{traffic_policy="internal"}"#, #"{traffic_policy="external"}"#]),
            (MetricName.nftablesSyncFailures, "counter", [""]),
            (MetricName.nftablesCleanupFailures, "counter", [""]),
            (MetricName.proxyHealthz, "counter", [#"{code="200"}"#, #"{code="503"}"#]),
            (MetricName.proxyLivez, "counter", [#"{code="200"}"#, #"{code="503"}"#]),
            (MetricName.conntrackReconcilerDeletedEntries, "counter", [#"{ip_family="IPv4"}"#, #"{ip_family="IPv6"}"#]),
            (MetricName.conntrackReconcilerDuration + "_count", "", [#"{ip_family="IPv4"}"#, #"{ip_family="IPv6"}"#]),
        ]
        let lines = text.split(separator: "\n").map(String.init)
        func value(_ series: String) -> Double? {
            lines.lazy.compactMap { $0.hasPrefix(series + " ") ? Double($0.dropFirst(series.count + 1)) : nil }.first
        }
        for (name, type, series) in expected {
            if !type.isEmpty { #expect(lines.contains("# TYPE \(name) \(type)"), "\(name)") }
            for labels in series { #expect(value(name + labels) == 0, "\(name)\(labels)") }
        }
        #expect(lines.contains("# TYPE \(MetricName.conntrackReconcilerDuration) histogram"))
    }
}
