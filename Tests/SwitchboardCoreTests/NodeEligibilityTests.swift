import NetworkTypes
import Testing

@testable import SwitchboardCore

private func taint(_ key: String, value: String? = nil, effect: String = "NoSchedule") -> Taint {
    Taint(key: key, value: value, effect: effect)
}

/// A Node's taints and deletion: decoded, deciding `isEligibleForTraffic`, and never touching a rule.
@Suite struct NodeEligibilityTests {
    private static func node(_ result: DecodeResult) -> Node? {
        for case .node(let node) in result.objects { return node }
        return nil
    }

    @Test func taintsAndDeletionTimestampAreDecodedAndABadTaintIsDroppedWithAWarning() throws {
        let result = ManifestDecoder.decode(
            """
            apiVersion: v1
            kind: Node
            metadata:
              name: n1
              deletionTimestamp: "2025-01-02T03:04:05Z"
              finalizers: [example.com/hold]
            spec:
              taints:
              - {key: node.kubernetes.io/unschedulable, effect: NoSchedule}
              - {key: ToBeDeletedByClusterAutoscaler, value: "1735787045", effect: NoSchedule}
              - {key: 7, effect: NoSchedule}
              - {effect: NoExecute}
              - {key: dedicated, value: "", effect: PreferNoSchedule}
            """, source: "n.yaml")
        let node = try #require(Self.node(result))
        #expect(node.deletionTimestamp == "2025-01-02T03:04:05Z")
        #expect(
            node.taints == [
                Taint(key: "node.kubernetes.io/unschedulable", effect: "NoSchedule"),
                Taint(key: Node.toBeDeletedTaint, value: "1735787045", effect: "NoSchedule"),
                Taint(key: "dedicated", effect: "PreferNoSchedule"),
            ])
        #expect(result.diagnostics.map(\.field) == ["spec.taints[2].key", "spec.taints[3].key"])
        #expect(result.diagnostics.allSatisfy { $0.severity == .warning && $0.message.hasSuffix("; taint skipped") })
    }

    @Test func aNodeWithoutEitherHasNone() throws {
        let text = #"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}"#
        let result = ManifestDecoder.decode(text, source: "n.json")
        let node = try #require(Self.node(result))
        #expect(node.taints.isEmpty && node.deletionTimestamp == nil)
        #expect(node.isEligibleForTraffic)
    }

    /// kube-proxy's `SyncNode`: a deletion timestamp, or the cluster autoscaler's taint (any value or
    /// effect, key matched exactly); nothing else.
    @Test(arguments: [
        ("no taints", [], nil, true),
        ("not ready", [taint("node.kubernetes.io/not-ready")], nil, true),
        ("cordoned", [taint("node.kubernetes.io/unschedulable")], nil, true),
        ("unreachable", [taint("node.kubernetes.io/unreachable", effect: "NoExecute")], nil, true),
        ("autoscaler", [taint(Node.toBeDeletedTaint, value: "1735787045")], nil, false),
        ("autoscaler, other effect", [taint(Node.toBeDeletedTaint, effect: "PreferNoSchedule")], nil, false),
        ("autoscaler among others", [taint("a"), taint(Node.toBeDeletedTaint)], nil, false),
        ("key case differs", [taint("tobedeletedbyclusterautoscaler")], nil, true),
        ("the autoscaler's soft taint",
         [taint("DeletionCandidateOfClusterAutoscaler", effect: "PreferNoSchedule")], nil, true),
        ("being deleted", [], "2025-01-02T03:04:05Z", false),
    ] as [(String, [Taint], String?, Bool)])
    func eligibility(name: String, taints: [Taint], deletionTimestamp: String?, eligible: Bool) {
        let node = Node(name: "n1", taints: taints, deletionTimestamp: deletionTimestamp)
        #expect(node.isEligibleForTraffic == eligible, "\(name)")
    }

    @Test func taintsAndDeletionTouchNoServiceAndRecompileNothing() {
        let ref = ObjectRef(namespace: "default", name: "web")
        let service = KubeObject.service(
            Service(ref: ref, clusterIPs: [IPAddress("10.96.0.10")!], ports: [ServicePort(name: "http", port: 80)]))
        let plain = Node(name: "n1", addresses: [NodeAddress(type: "InternalIP", address: "10.200.0.1")])
        var state = ClusterState([service, .node(plain)])
        var compiler = IncrementalCompiler(node: NodeContext(nodeName: "n1"))
        compiler.update(state, changed: nil)
        let ruleset = compiler.ruleset

        var tainted = plain
        tainted.taints = [Taint(key: Node.toBeDeletedTaint, effect: "NoSchedule")]
        tainted.deletionTimestamp = "2025-01-02T03:04:05Z"
        #expect(tainted.forRules == plain)
        #expect(state.upsert(.node(tainted)).isEmpty)
        #expect(state.nodes["n1"] == tainted)
        #expect(compiler.update(state, changed: nil).isEmpty)
        #expect(compiler.ruleset == ruleset)

        var moved = tainted
        moved.addresses = [NodeAddress(type: "InternalIP", address: "10.200.0.2")]
        #expect(state.upsert(.node(moved)) == [ref])
        #expect(!compiler.update(state, changed: nil).isEmpty)
    }
}
