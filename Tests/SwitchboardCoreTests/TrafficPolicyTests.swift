import NetworkTypes
import NFTModel
import SwitchboardTesting
import Testing

@testable import SwitchboardCore

/// Endpoint selection (traffic policies, terminating endpoints, topology hints) and the entries that
/// session affinity and source ranges add. The traffic itself is exercised in EndToEndTests.
@Suite struct TrafficPolicyTests {
    private let v4 = TableID(.ip, "switchboard")
    private let ctx = NodeContext(nodeName: "n1", clusterCIDRs: [CIDR("10.244.0.0/16")!])

    private func ep(
        _ a: String, node: String = "n1", ready: Bool? = true, serving: Bool? = nil, terminating: Bool? = nil,
        hints: [String]? = nil, nodeHints: [String]? = nil
    ) -> Endpoint {
        Endpoint(addresses: [IPAddress(a)!], ready: ready, serving: serving, terminating: terminating, nodeName: node,
                 zoneHints: hints, nodeHints: nodeHints)
    }

    private func choice(_ endpoints: [Endpoint], zone: String? = nil) -> (cluster: [String], local: [String], any: Bool) {
        let slice = EndpointSlice(ref: ObjectRef(namespace: "d", name: "s-1"), serviceName: "s",
                                  ports: [EndpointPort(name: "", port: 80)], endpoints: endpoints)
        let c = EndpointClasses(ServicePort(port: 80).resolve([slice]), nodeName: ctx.nodeName, zone: zone)
        return (c.cluster.map(\.address.description), c.local.map(\.address.description), c.hasAny)
    }

    @Test func readyEndpointsWinOverTerminatingOnes() {
        let c = choice([ep("10.0.0.1", node: "n2"), ep("10.0.0.2", ready: false, serving: true, terminating: true)])
        #expect(c.cluster == ["10.0.0.1"])
        #expect(c.local == ["10.0.0.2"])  // no ready local one: the local serving terminating one
    }

    @Test func servingTerminatingEndpointsAreTheFallback() {
        let c = choice([
            ep("10.0.0.1", ready: false, serving: true, terminating: true),
            ep("10.0.0.2", node: "n2", ready: false, serving: true, terminating: true),
            ep("10.0.0.3", ready: false, serving: false, terminating: true),
            ep("10.0.0.4", ready: false),
        ])
        #expect(c.cluster == ["10.0.0.1", "10.0.0.2"])
        #expect(c.local == ["10.0.0.1"])
        #expect(c.any)
        let none = choice([ep("10.0.0.3", ready: false, serving: false, terminating: true), ep("10.0.0.4", ready: false)])
        #expect(none.cluster.isEmpty && none.local.isEmpty && !none.any)
    }

    @Test(arguments: [
        // (zone of this node, hints per endpoint, expected cluster endpoints)
        ("a", [["a"], ["b"], ["a"]], ["10.0.0.1", "10.0.0.3"]),
        ("b", [["a"], ["b"], ["a"]], ["10.0.0.2"]),
        ("c", [["a"], ["b"], ["a"]], ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),  // no endpoint for this zone
        ("a", [["a"], nil, ["a"]], ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),  // one endpoint without hints
        (nil, [["a"], ["b"], ["a"]], ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),  // node without a zone
    ] as [(String?, [[String]?], [String])])
    func topologyHints(zone: String?, hints: [[String]?], expected: [String]) {
        let endpoints = hints.enumerated().map { i, h in ep("10.0.0.\(i + 1)", node: "n\(i + 2)", hints: h) }
        #expect(choice(endpoints, zone: zone).cluster == expected)
    }

    /// `trafficDistribution: PreferSameNode` (kube-proxy 1.34's `topologyModeFromHints`): node hints win when
    /// every ready endpoint has them and one names this node (n1); otherwise zone hints as before.
    @Test(arguments: [
        // (node hints per endpoint, zone hints per endpoint, this node's zone, expected cluster endpoints)
        ([["n1"], ["n2"], ["n1", "n2"]], [["a"], ["b"], ["a"]], "b", ["10.0.0.1", "10.0.0.3"]),
        // none for this node: zone hints apply
        ([["n2"], ["n3"], ["n2"]], [["a"], ["b"], ["a"]], "b", ["10.0.0.2"]),
        // one ready endpoint without node hints: zone hints apply
        ([["n1"], nil, ["n1"]], [["a"], ["b"], ["a"]], "b", ["10.0.0.2"]),
        // an empty node-hint list counts as none
        ([["n1"], [], ["n1"]], [["a"], ["a"], ["a"]], "a", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        // node hints alone, none for this node, no zone hints: every ready endpoint
        ([["n2"], ["n2"], ["n3"]], [nil, nil, nil], "a", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        // node hints alone, this node without a zone: still narrowed to this node
        ([["n2"], ["n1"], ["n3"]], [nil, nil, nil], nil, ["10.0.0.2"]),
    ] as [([[String]?], [[String]?], String?, [String])])
    func nodeHints(nodeHints: [[String]?], zoneHints: [[String]?], zone: String?, expected: [String]) {
        let endpoints = nodeHints.indices.map { i in
            ep("10.0.0.\(i + 1)", node: "n\(i + 2)", hints: zoneHints[i], nodeHints: nodeHints[i])
        }
        #expect(choice(endpoints, zone: zone).cluster == expected)
    }

    @Test func notReadyEndpointsDoNotBreakNodeHints() {
        let c = choice([ep("10.0.0.1", nodeHints: ["n1"]), ep("10.0.0.2", ready: false), ep("10.0.0.3", nodeHints: ["n9"])])
        #expect(c.cluster == ["10.0.0.1"])
        let classes = EndpointClasses(
            ServicePort(port: 80).resolve([EndpointSlice(
                ref: ObjectRef(namespace: "d", name: "s-1"), serviceName: "s", ports: [EndpointPort(port: 80)],
                endpoints: [ep("10.0.0.1", nodeHints: ["n1"]), ep("10.0.0.3", nodeHints: ["n9"])])]),
            nodeName: "n1", zone: nil)
        #expect(classes.clusterChoice == .readyOnNode("n1"))
    }

    /// From files, as `switchboard render` reads them (the shared v1.20 API server cannot serve `forNodes`):
    /// a `PreferSameNode` Service's Maglev table on node n1 holds only the endpoint hinted for n1, and on a
    /// node no endpoint is hinted for, all of them.
    @Test func preferSameNodeFromManifests() throws {
        let text = """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: d}
            spec: {clusterIP: 10.96.0.20, trafficDistribution: PreferSameNode, ports: [{port: 80}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-1, namespace: d, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            ports: [{port: 80}]
            endpoints:
            - {addresses: [10.244.1.5], nodeName: n1, hints: {forNodes: [{name: n1}], forZones: [{name: a}]}}
            - {addresses: [10.244.2.5], nodeName: n2, hints: {forNodes: [{name: n2}], forZones: [{name: a}]}}
            """
        let decoded = ManifestDecoder.decode(text, source: "web.yaml")
        #expect(decoded.diagnostics == [])
        func targets(on node: String) -> Set<String> {
            let table = compile(ClusterState(decoded.objects), for: NodeContext(nodeName: node)).ruleset[v4]!
            return Set(table.sets["backends"]!.elements.filter { $0.key.hasPrefix("10.96.0.20 . tcp . 80 . ") }.values)
        }
        #expect(targets(on: "n1") == ["10.244.1.5 . 80"])
        #expect(targets(on: "n2") == ["10.244.2.5 . 80"])
        #expect(targets(on: "n3") == ["10.244.1.5 . 80", "10.244.2.5 . 80"])
    }

    @Test func notReadyEndpointsDoNotBreakTopology() {
        // Only ready endpoints need hints.
        let c = choice([ep("10.0.0.1", hints: ["a"]), ep("10.0.0.2", ready: false), ep("10.0.0.3", hints: ["b"])], zone: "a")
        #expect(c.cluster == ["10.0.0.1"])
    }

    private func lb(
        etp: TrafficPolicy = .cluster, itp: TrafficPolicy = .cluster, affinity: SessionAffinity = .none,
        ranges: [String] = []
    ) -> KubeObject {
        .service(
            "s", namespace: "d", type: .loadBalancer, ports: [ServicePort(port: 80, nodePort: 30080)],
            externalIPs: ["192.0.2.1"], ingress: [LoadBalancerIngress(ip: .parsing("203.0.113.5"))], sourceRanges: ranges,
            externalPolicy: etp, internalPolicy: itp, affinity: affinity)
    }

    private func compiled(_ service: KubeObject, _ endpoints: [Endpoint]) -> Table {
        let slice = KubeObject.slice("s-1", service: "s", namespace: "d", ports: [EndpointPort(port: 80)], endpoints: endpoints)
        return compile(ClusterState([.node(Node(name: "n1")), service, slice]), for: ctx).ruleset[v4]!
    }

    private func keys(_ t: Table, _ set: String) -> Set<String> { Set(t.sets[set]!.elements.keys) }

    @Test func externalTrafficPolicyLocal() {
        let t = compiled(lb(etp: .local), [ep("10.244.1.2"), ep("10.244.2.2", node: "n2")])
        #expect(keys(t, "external-local-ips") == ["192.0.2.1 . tcp . 80", "203.0.113.5 . tcp . 80"])
        #expect(keys(t, "external-local-nodeports") == ["tcp . 30080"])
        #expect(keys(t, "external-ips").isEmpty && keys(t, "external-nodeports").isEmpty)
        // The local tables hold this node's endpoint only; the cluster tables (pods, the node) both.
        #expect(Set(t.sets["local-backends"]!.elements.values) == ["10.244.1.2 . 80"])
        #expect(Set(t.sets["local-nodeport-backends"]!.elements.values) == ["10.244.1.2 . 80"])
        #expect(Set(t.sets["backends"]!.elements.values) == ["10.244.1.2 . 80", "10.244.2.2 . 80"])
        #expect(keys(t, "local-ips-m13") == ["192.0.2.1 . tcp . 80", "203.0.113.5 . tcp . 80"])
    }

    @Test func externalTrafficPolicyLocalWithoutLocalEndpoint() {
        let t = compiled(lb(etp: .local), [ep("10.244.2.2", node: "n2")])
        #expect(t.sets["local-backends"]!.elements.isEmpty)
        #expect(keys(t, "external-local-ips").count == 2)  // marked: the external-local chain drops them
        #expect(t.chains["external-local"]!.rules.last == "drop")
        #expect(keys(t, "no-endpoint-services").isEmpty)
    }

    @Test func internalTrafficPolicyLocal() {
        let withLocal = compiled(lb(itp: .local), [ep("10.244.1.2"), ep("10.244.2.2", node: "n2")])
        let clusterIP = withLocal.sets["backends"]!.elements.filter { $0.key.hasPrefix("10.96.0.10 ") }
        #expect(Set(clusterIP.values) == ["10.244.1.2 . 80"])
        let external = withLocal.sets["backends"]!.elements.filter { $0.key.hasPrefix("192.0.2.1 ") }
        #expect(Set(external.values) == ["10.244.1.2 . 80", "10.244.2.2 . 80"])
        let without = compiled(lb(itp: .local), [ep("10.244.2.2", node: "n2")])
        #expect(keys(without, "no-local-endpoint-services") == ["10.96.0.10 . tcp . 80"])
        #expect(keys(without, "no-endpoint-services").isEmpty)
        let none = compiled(lb(itp: .local), [])
        #expect(keys(none, "no-endpoint-services").contains("10.96.0.10 . tcp . 80"))
    }

    @Test func sourceRangesFilterLoadBalancerIPsOnly() {
        let t = compiled(lb(ranges: ["10.0.0.0/8", "192.168.7.7/32", "10.1.0.0/16"]), [ep("10.244.1.2")])
        #expect(keys(t, "firewall-ips") == ["203.0.113.5 . tcp . 80"])
        #expect(keys(t, "firewall-allow") == ["203.0.113.5 . tcp . 80 . 10.0.0.0/8", "203.0.113.5 . tcp . 80 . 192.168.7.7"])
        #expect(keys(compiled(lb(), [ep("10.244.1.2")]), "firewall-ips").isEmpty)
    }

    @Test func sessionAffinityClaimsItsTimeoutChain() {
        let t = compiled(lb(affinity: .clientIP(timeoutSeconds: 90)), [ep("10.244.1.2")])
        #expect(Set(t.sets["affinity-services"]!.elements.values) == ["jump affinity-t90"])
        #expect(keys(t, "affinity-services") == ["10.96.0.10 . tcp . 80", "192.0.2.1 . tcp . 80", "203.0.113.5 . tcp . 80"])
        #expect(
            t.sets["affinity-nodeports"]!.elements
                == SetElements(["tcp . 30080": "jump affinity-t90"], comments: ["tcp . 30080": "d/s"]))
        #expect(t.chains["affinity-t90"]!.rules.first
            == "tcp dport != 0 update @affinity { ip saddr . ct original ip daddr . meta l4proto . ct original proto-dst timeout 1m30s : ip daddr . tcp dport }")
        // Without affinity the chain is gone.
        #expect(compiled(lb(), [ep("10.244.1.2")]).chains["affinity-t90"] == nil)
    }

    @Test func affinityChainLivesWhileAnyServiceUsesItsTimeout() {
        func affinityService(_ name: String, _ timeout: Int?) -> KubeObject {
            .service(Service(
                ref: ObjectRef(namespace: "d", name: name), clusterIPs: [IPAddress("10.96.0.\(name.count + 10)")!],
                ports: [ServicePort(port: 80)], sessionAffinity: timeout.map { .clientIP(timeoutSeconds: $0) } ?? .none))
        }
        var compiler = IncrementalCompiler(node: ctx)
        var state = ClusterState([.node(Node(name: "n1")), affinityService("a", 10), affinityService("bb", 10)])
        compiler.update(state, changed: nil)
        #expect(compiler.ruleset[v4]!.chains["affinity-t10"] != nil)
        state.upsert(affinityService("a", nil))
        compiler.update(state, changed: [ObjectRef(namespace: "d", name: "a")])
        #expect(compiler.ruleset[v4]!.chains["affinity-t10"] != nil)
        state.upsert(affinityService("bb", 20))
        let change = compiler.update(state, changed: [ObjectRef(namespace: "d", name: "bb")])
        #expect(compiler.ruleset[v4]!.chains["affinity-t10"] == nil)
        #expect(compiler.ruleset[v4]!.chains["affinity-t20"] != nil)
        #expect(change.scope.tables[v4]!.chains.isSuperset(of: ["affinity-t10", "affinity-t20"]))
        #expect(compiler.ruleset == compile(state, for: ctx).ruleset)
    }

    @Test(arguments: [
        (LocalDetection.clusterCIDR, "ip daddr @cluster-ips ip saddr != @pod-cidrs jump mark-for-masquerade"),
        (.nodeCIDR, "ip daddr @cluster-ips ip saddr != @pod-cidrs jump mark-for-masquerade"),
        (.interfaceNamePrefix("veth"), "ip daddr @cluster-ips iifname != \"veth*\" jump mark-for-masquerade"),
        (.bridgeInterface("cbr0"), "ip daddr @cluster-ips iifname != \"cbr0\" jump mark-for-masquerade"),
    ])
    func detectLocalMode(mode: LocalDetection, rule: String) {
        var context = ctx
        context.localDetection = mode
        let node = Node(name: "n1", podCIDRs: [CIDR("10.244.7.0/24")!])
        let t = compile(ClusterState([.node(node)]), for: context).ruleset[v4]!
        #expect(t.chains["services"]!.rules.contains(Rule(rule)))
        let pods = Set(t.sets["pod-cidrs"]!.elements.keys)
        switch mode {
        case .clusterCIDR: #expect(pods == ["10.244.0.0/16"])
        case .nodeCIDR: #expect(pods == ["10.244.7.0/24"])
        default: #expect(pods.isEmpty)
        }
    }
}
