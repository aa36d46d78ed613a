import Foundation
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// `switchboard run` against the real kube-apiserver: `/healthz` follows this node's Node object as
/// kube-proxy 1.31+ does (tainted `ToBeDeletedByClusterAutoscaler` or deleted: 503 with
/// `"nodeEligible": false`, `/livez` unaffected), and `/metrics` has kube-proxy's series.
@Suite(
    "End to end: /healthz follows the Node; /metrics has kube-proxy's series",
    .serialized,
    .enabled(
        if: AgentHealthPrerequisites.met,
        "needs root, `ip netns`, the binary and ../shared/k8s (SWITCHBOARD_K8S_UP); reason printed as SKIP"),
    .exclusive
)
struct AgentHealthTests {
    static let topology = Topology.Builder().node("n1")

    @Test("ToBeDeletedByClusterAutoscaler taint → 503, removed → 200, Node deleted (finalizer, then gone) → 503; a scrape")
    func nodeEligibilityAndMetrics() async throws {
        try await withControlPlane(in: Self.topology) { net, plane in try await scenario(net, plane) }
    }

    /// A GET in the node's namespace: status ("000": no connection) and body.
    private func get(_ ns: String, _ url: String) async throws -> (status: String, body: String) {
        let r = try await Shell.run(["curl", "-s", "-m", "2", "-o", "/dev/stderr", "-w", "%{http_code}", url], in: ns)
        return (r.stdout, r.stderr)
    }

    /// Polls until `check` holds or `deadline` passes; returns the time it took, or nil.
    private func eventually(within deadline: Duration, _ check: () async throws -> Bool) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < deadline {
            if try await check() { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    private func scenario(_ net: Topology, _ plane: ControlPlane) async throws {
        let ns = net.node("n1").namespace
        let healthz = "http://127.0.0.1:10256/healthz"
        let livez = "http://127.0.0.1:10256/livez"
        // A NodePort Service with externalTrafficPolicy Local whose one endpoint runs on another node: one
        // service port without local endpoints for external traffic.
        try await plane.apply([
            SB.nodeManifest(net),
            Manifest.service(
                "local", type: "NodePort", clusterIPs: ["10.96.0.50"],
                ports: [.init(name: "http", port: 80, targetPort: "8080", nodePort: 30050)],
                options: .init(externalTrafficPolicy: "Local")),
            Manifest.slice(
                "local-1", service: "local", apiVersion: "discovery.k8s.io/v1beta1", ports: [("http", "TCP", 8080)],
                endpoints: [.init(address: "10.244.9.9", nodeName: "n2")]),
        ])
        let agent = try Shell.start(
            [SwitchboardBinary.path!, "run", "--kubeconfig", plane.nodeKubeconfig, "--hostname-override", "n1",
             "--cluster-cidr", SB.clusterCIDRs, "--min-sync-period", "100ms", "--sync-period", "2s", "--v", "2"],
            in: ns)
        net.adopt(agent)
        func said() -> String { String(agent.output().stderr.suffix(4000)) }

        var last = (status: "", body: "")
        let up = try await eventually(within: .seconds(20)) {
            last = try await get(ns, healthz)
            return last.status == "200"
        }
        #expect(up != nil, "/healthz never answered 200: \(last); the agent said:\n\(said())")
        #expect(last.body.contains(#""nodeEligible": true"#), "\(last.body)")

        // 1. The cluster autoscaler marks the node: /healthz drains it, /livez does not care.
        try await plane.kubectl(["taint", "node", "n1", "ToBeDeletedByClusterAutoscaler=1735787045:NoSchedule"])
        let drained = try await eventually(within: .seconds(10)) {
            last = try await get(ns, healthz)
            return last.status == "503"
        }
        #expect(drained != nil, "/healthz did not turn 503 for the autoscaler's taint: \(last); said:\n\(said())")
        #expect(last.body.contains(#""nodeEligible": false"#), "\(last.body)")
        print("agent health: ToBeDeletedByClusterAutoscaler taint → /healthz 503 after \(drained.map { "\($0)" } ?? "never")")
        let live = try await get(ns, livez)
        #expect(live.status == "200", "/livez follows the Node too: \(live)")
        #expect(!live.body.contains("nodeEligible"), "\(live.body)")

        // 2. The taint removed (the scale-down cancelled): 200 again.
        try await plane.kubectl(["taint", "node", "n1", "ToBeDeletedByClusterAutoscaler-"])
        let back = try await eventually(within: .seconds(10)) {
            last = try await get(ns, healthz)
            return last.status == "200"
        }
        #expect(back != nil, "/healthz did not return to 200 when the taint went: \(last)")
        #expect(last.body.contains(#""nodeEligible": true"#), "\(last.body)")

        // 3. A scrape of /metrics: kube-proxy's series, with values from what happened so far.
        let scrape = try await Shell.run(["curl", "-s", "-m", "2", "http://127.0.0.1:10249/metrics"], in: ns)
        let text = try scrape.checked().stdout
        func value(_ series: String) -> Double? {
            text.split(separator: "\n").lazy
                .compactMap { $0.hasPrefix(series + " ") ? Double($0.dropFirst(series.count + 1)) : nil }.first
        }
        for (name, type) in [
            ("kubeproxy_sync_proxy_rules_endpoint_changes_pending", "gauge"),
            ("kubeproxy_sync_proxy_rules_endpoint_changes_total", "counter"),
            ("kubeproxy_sync_proxy_rules_service_changes_pending", "gauge"),
            ("kubeproxy_sync_proxy_rules_service_changes_total", "counter"),
            ("kubeproxy_sync_proxy_rules_no_local_endpoints_total", "gauge"),
            ("kubeproxy_sync_proxy_rules_nftables_sync_failures_total", "counter"),
            ("kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total", "counter"),
            ("kubeproxy_proxy_healthz_total", "counter"), ("kubeproxy_proxy_livez_total", "counter"),
            ("kubeproxy_conntrack_reconciler_deleted_entries_total", "counter"),
            ("kubeproxy_conntrack_reconciler_sync_duration_seconds", "histogram"),
            ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram"),
            ("kubeproxy_sync_full_proxy_rules_duration_seconds", "histogram"),
            ("kubeproxy_sync_partial_proxy_rules_duration_seconds", "histogram"),
            ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge"),
            ("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "gauge"),
            ("kubeproxy_network_programming_duration_seconds", "histogram"),
        ] {
            #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name) (\(type)) missing from /metrics")
        }
        // The API server's own `kubernetes` Service and ours; our slice (the API server's Endpoints are not
        // mirrored into slices without a controller manager).
        #expect((value("kubeproxy_sync_proxy_rules_service_changes_total") ?? 0) >= 2, "\(text.prefix(3000))")
        #expect((value("kubeproxy_sync_proxy_rules_endpoint_changes_total") ?? 0) >= 1)
        #expect(value("kubeproxy_sync_proxy_rules_service_changes_pending") == 0)
        #expect(value("kubeproxy_sync_proxy_rules_endpoint_changes_pending") == 0)
        #expect(value(#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external"}"#) == 1)
        #expect(value(#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal"}"#) == 0)
        #expect(value("kubeproxy_sync_proxy_rules_nftables_sync_failures_total") == 0)
        #expect((value(#"kubeproxy_proxy_healthz_total{code="503"}"#) ?? 0) >= 1)
        #expect((value(#"kubeproxy_proxy_healthz_total{code="200"}"#) ?? 0) >= 2)
        #expect((value(#"kubeproxy_proxy_livez_total{code="200"}"#) ?? 0) >= 1)
        #expect(value(#"kubeproxy_proxy_livez_total{code="503"}"#) == 0)

        // 4. The Node deleted while a finalizer holds it (deletionTimestamp set): 503.
        let hold = #"{"metadata":{"finalizers":["switchboard.test/hold"]}}"#
        try await plane.kubectl(["patch", "node", "n1", "--type=merge", "-p", hold])
        try await plane.kubectl(["delete", "node", "n1", "--wait=false"])
        let deleting = try await eventually(within: .seconds(10)) {
            last = try await get(ns, healthz)
            return last.status == "503"
        }
        #expect(deleting != nil, "/healthz did not turn 503 for a Node being deleted: \(last); said:\n\(said())")
        #expect(last.body.contains(#""nodeEligible": false"#), "\(last.body)")

        // 5. The finalizer released: the Node is gone, and /healthz stays 503 (/livez 200).
        try await plane.kubectl(["patch", "node", "n1", "--type=merge", "-p", #"{"metadata":{"finalizers":null}}"#])
        let gone = try await eventually(within: .seconds(10)) {
            let r = try await Shell.run(["kubectl", "--kubeconfig", plane.adminKubeconfig, "get", "node", "n1"], in: ns)
            return r.status.code != 0
        }
        #expect(gone != nil, "the Node was not deleted")
        for _ in 0..<5 {
            last = try await get(ns, healthz)
            #expect(
                last.status == "503" && last.body.contains(#""nodeEligible": false"#), "after the Node went: \(last)")
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await get(ns, livez).status == "200", "/livez after the Node went")

        // 6. Registered again: eligible again.
        try await plane.apply([SB.nodeManifest(net)])
        let reregistered = try await eventually(within: .seconds(10)) { try await get(ns, healthz).status == "200" }
        #expect(reregistered != nil, "/healthz did not return to 200 when the Node came back")

        let status = await agent.stop(grace: .seconds(10))
        #expect(status == ExitStatus(code: 0), "SIGTERM should stop the agent cleanly: \(status)\n\(said())")
    }
}

enum AgentHealthPrerequisites {
    /// Whether `AgentHealthTests` can run; the reason it cannot is printed once.
    static let met: Bool = {
        guard SB.available else { return false }
        if let reason = ControlPlane.unavailableReason {
            print("SKIP agent health end-to-end tests: \(reason)")
            return false
        }
        return true
    }()
}
