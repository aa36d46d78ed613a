import Foundation
import SwitchboardCore
import Testing

@testable import SwitchboardAgent
import SwitchboardTestTraits

private let autoscalerTaint = Taint(key: Node.toBeDeletedTaint, value: "1735787045", effect: "NoSchedule")

private func node(_ name: String = "n1", taints: [Taint] = [], deleting: Bool = false) -> KubeObject {
    .node(
        Node(
            name: name, addresses: [NodeAddress(type: "InternalIP", address: "10.200.0.1")], taints: taints,
            deletionTimestamp: deleting ? "2025-01-02T03:04:05Z" : nil))
}

/// `NodeEligibility`: what `/healthz` says in `nodeEligible`, followed from the events about this node.
@Suite(.exclusive) struct NodeEligibilityTests {
    @Test func followsItsOwnNodeThroughTaintsDeletionAndRecreation() {
        var eligibility = NodeEligibility(nodeName: "n1")
        #expect(eligibility.isEligible, "eligible while starting, before the Node is known")
        let steps: [(String, ClusterEvent, Bool?)] = [
            ("a first list without the Node (not registered yet): still eligible", .synced(.nodes, []), nil),
            ("another kind's list says nothing", .synced(.services, [Objects.web]), nil),
            ("the Node appears", .upsert(node()), nil),
            ("the autoscaler taints it", .upsert(node(taints: [autoscalerTaint])), false),
            ("another node's taint is not ours", .upsert(node("n2")), nil),
            ("the taint is removed", .upsert(node()), true),
            ("cordoned and not ready: still eligible",
             .upsert(node(taints: [Taint(key: "node.kubernetes.io/unschedulable", effect: "NoSchedule")])), nil),
            ("deleted with a finalizer pending", .upsert(node(deleting: true)), false),
            ("gone", .delete(node(deleting: true)), nil),
            ("registered again", .upsert(node()), true),
            ("deleted outright", .delete(node()), false),
            ("listed again, present", .synced(.nodes, [node(), node("n2")]), true),
            ("a re-list without it: deleted while the watch was down", .synced(.nodes, [node("n2")]), false),
            ("another node deleted", .delete(node("n2")), nil),
        ]
        for (what, event, expected) in steps {
            #expect(eligibility.apply(event) == expected, "\(what)")
        }
        #expect(!eligibility.isEligible)
    }

    @Test func theFirstListDecides() {
        var tainted = NodeEligibility(nodeName: "n1")
        #expect(tainted.apply(.synced(.nodes, [node(taints: [autoscalerTaint])])) == false)
        var deleting = NodeEligibility(nodeName: "n1")
        #expect(deleting.apply(.synced(.nodes, [node(deleting: true)])) == false)
    }
}

@Suite(.exclusive) struct HealthzEligibilityTests {
    @Test func anIneligibleNodeFailsHealthzOnlyAndSaysSo() async throws {
        let wall = TestWallClock()
        let health = HealthState(healthzTimeout: .seconds(60), now: { wall.now })
        let metrics = AgentMetrics()
        let server = HealthzServer(bindAddress: loopback, health: health, metrics: metrics, logger: quietLogger())
        func sample(_ series: String) -> Double? {
            metrics.exposition().split(separator: "\n").lazy.compactMap { line -> Double? in
                line.hasPrefix(series + " ") ? Double(line.dropFirst(series.count + 1)) : nil
            }.first
        }
        try await withServices([server]) {
            let port = try await server.port()
            health.updated()
            let synced = wall.now
            wall.advance(seconds: 5)

            let ok = try await get(port, "/healthz")
            #expect(ok.status == 200 && ok.contentType == "application/json")
            let okJSON = try #require(try JSONSerialization.jsonObject(with: Data(ok.body.utf8)) as? [String: Any])
            #expect(okJSON["nodeEligible"] as? Bool == true)
            #expect(okJSON["lastUpdated"] as? String == RFC3339.format(wall.now))

            health.setNodeEligible(false)
            #expect(health.status.isHealthy && !health.status.isHealthzOK)
            let drained = try await get(port, "/healthz")
            #expect(drained.status == 503)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(drained.body.utf8)) as? [String: Any])
            #expect(json["nodeEligible"] as? Bool == false)
            // Not 200, so lastUpdated is the last sync (kube-proxy's rule), not the current time.
            #expect(json["lastUpdated"] as? String == RFC3339.format(synced))
            #expect(json["currentTime"] as? String == RFC3339.format(wall.now))

            // /livez only asks whether the rules keep up, and never mentions the Node.
            let live = try await get(port, "/livez")
            #expect(live.status == 200)
            let liveJSON = try #require(try JSONSerialization.jsonObject(with: Data(live.body.utf8)) as? [String: Any])
            #expect(liveJSON["nodeEligible"] == nil)
            #expect(liveJSON["lastUpdated"] as? String == RFC3339.format(wall.now))

            for response in [HealthzServer.healthz(health.status), HealthzServer.livez(health.status)] {
                #expect(response.extraHeaders.contains { $0.0 == "X-Content-Type-Options" && $0.1 == "nosniff" })
            }

            health.setNodeEligible(true)
            #expect(try await get(port, "/healthz").status == 200)
            #expect(try await get(port, "/nope").status == 404)
        }
        #expect(sample(#"kubeproxy_proxy_healthz_total{code="200"}"#) == 2)
        #expect(sample(#"kubeproxy_proxy_healthz_total{code="503"}"#) == 1)
        #expect(sample(#"kubeproxy_proxy_livez_total{code="200"}"#) == 1)
        #expect(sample(#"kubeproxy_proxy_livez_total{code="503"}"#) == 0)
    }

    /// The controller follows its Node as events arrive: `/healthz` turns 503 with no sync at all, and a
    /// taint change, which no rule depends on, syncs nothing.
    @Test func theControllerDrainsTheNodeWithoutASync() async throws {
        let h = ControllerHarness()
        let healthz = HealthzServer(bindAddress: loopback, health: h.health, logger: quietLogger())
        try await withServices([healthz]) {
            let port = try await healthz.port()
            try await h.run {
                try await h.start()
                #expect(h.health.status.nodeEligible)

                h.source.send(.upsert(Objects.node.tainted(autoscalerTaint)))
                try await eventually("the node to be drained") { !h.health.status.nodeEligible }
                #expect(try await get(port, "/healthz").status == 503)
                #expect(try await get(port, "/livez").status == 200)

                h.source.send(.upsert(Objects.node))
                try await eventually("the node to be eligible again") { h.health.status.nodeEligible }
                #expect(try await get(port, "/healthz").status == 200)

                // Neither change synced: the next sync is the slice change's, and only the second apply.
                h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.9"])))
                let report = try await h.nextReport()
                #expect(report.kind == .partial && report.changedServices == 1)
                #expect(await h.fake.applyCount == 2)

                // The Node deleted: not eligible (and its NodePort addresses leave the rules).
                h.source.send(.delete(Objects.node))
                try await eventually("the deleted node to be drained") { !h.health.status.nodeEligible }
                #expect(try await h.nextReport().succeeded)
                #expect(try await get(port, "/healthz").status == 503)
            }
        }
    }
}

extension KubeObject {
    /// This Node with `taint` added.
    fileprivate func tainted(_ taint: Taint) -> KubeObject {
        guard case .node(var node) = self else { return self }
        node.taints.append(taint)
        return .node(node)
    }
}
