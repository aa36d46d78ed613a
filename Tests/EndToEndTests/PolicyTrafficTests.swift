import Foundation
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// kube-proxy's traffic semantics with real packets across three nodes, each running `switchboard
/// apply` with its own `--hostname-override`: n1 runs pod b1, n2 runs pod b2, n3 runs none; clients c1,
/// c2 and c3 are external hosts routed through n1, n2 and n3. Servers answer "<pod> <client address as
/// the pod sees it>", so a test sees both which endpoint answered and whether the source was kept.
/// Modeled on the upstream sig-network e2e tests named in each test.
@Suite(
    "End to end: traffic policies, terminating endpoints, topology, affinity, source ranges, masquerade",
    .serialized,
    .enabled(if: SB.available, "needs root, `ip netns` and the switchboard binary (reason printed as SKIP)"),
    .exclusive
)
struct PolicyTrafficTests {
    static let threeNodes = Topology.Builder()
        .node("n1").node("n2").node("n3")
        .backend("b1", on: "n1").backend("b2", on: "n2")
        .client("c1", attachedTo: "n1").client("c2", attachedTo: "n2").client("c3", attachedTo: "n3")

    static let lbIP = "10.201.0.10"
    static let clusterIP = "10.96.0.10"

    /// A TCP/UDP Service (port 80/53, node ports 30080/30053) of `type`, backed by `endpoints`.
    private func manifests(
        _ net: Topology, type: String = "LoadBalancer", options: Manifest.ServiceOptions = .init(),
        endpoints: [Manifest.EndpointEntry]? = nil, zones: [String: String] = [:]
    ) -> [String] {
        let eps = endpoints ?? [
            .init(address: net.backend("b1").ipv4, nodeName: "n1"), .init(address: net.backend("b2").ipv4, nodeName: "n2"),
        ]
        return ["n1", "n2", "n3"].map { SB.nodeManifest(net, $0, zone: zones[$0]) } + [
            Manifest.service(
                "web", type: type, clusterIPs: [Self.clusterIP],
                ports: [.init(name: "http", port: 80, targetPort: "8080", nodePort: type == "ClusterIP" ? nil : 30080),
                        .init(name: "dns", proto: "UDP", port: 53, targetPort: "5353", nodePort: type == "ClusterIP" ? nil : 30053)],
                loadBalancerIPs: type == "LoadBalancer" ? [Self.lbIP] : [], options: options),
            Manifest.slice("web-1", service: "web", ports: [("http", "TCP", 8080), ("dns", "UDP", 5353)], endpoints: eps),
        ]
    }

    private func startServers(_ net: Topology) async throws {
        for b in ["b1", "b2"] {
            try await net.startServer(on: b, proto: .tcp, port: 8080, reply: "\(b) {peer}")
            try await net.startServer(on: b, proto: .udp, port: 5353, reply: "\(b) {peer}")
        }
    }

    /// Applies on every node, each as itself.
    private func applyEverywhere(_ net: Topology, _ manifests: [String], extra: [String] = []) async throws {
        for node in ["n1", "n2", "n3"] { try await SB.apply(net, node: node, manifests, extra: extra) }
    }

    /// `count` requests from `host` with distinct source ports: the set of "<pod> <peer>" replies.
    private func answers(
        _ net: Topology, from host: String, to address: String, port: Int, proto: TransportProtocol = .tcp,
        count: Int = 12, base: Int = 41000
    ) async throws -> Set<String> {
        Set(try await net.requests(from: host, to: address, port: port, proto: proto,
                                   sourcePorts: SB.sourcePorts(count, from: base)).replies())
    }

    /// Requests that must all go unanswered (dropped: a timeout, not a refusal).
    private func expectDropped(
        _ net: Topology, from host: String, to address: String, port: Int, proto: TransportProtocol = .tcp,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let results = try await net.requests(from: host, to: address, port: port, proto: proto,
                                             sourcePorts: SB.sourcePorts(3, from: 42000), timeout: .milliseconds(800))
        for result in results {
            #expect(result == .failure(.timeout), "\(host) → \(address):\(port)/\(proto): \(result)",
                    sourceLocation: sourceLocation)
        }
    }

    // MARK: - 1. externalTrafficPolicy: Local

    @Test("externalTrafficPolicy=Local: local endpoints only, client address kept, dropped without one; pods and the node use all")
    func externalTrafficPolicyLocal() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            try await applyEverywhere(net, manifests(net, options: .init(externalTrafficPolicy: "Local")))
            let c1 = net.client("c1").ipv4, c2 = net.client("c2").ipv4
            let n1 = net.node("n1").ipv4, n2 = net.node("n2").ipv4, n3 = net.node("n3").ipv4
            // External clients: only the endpoint on the node they came through, and it sees their address.
            #expect(try await answers(net, from: "c1", to: Self.lbIP, port: 80) == ["b1 \(c1)"])
            #expect(try await answers(net, from: "c1", to: n1, port: 30080) == ["b1 \(c1)"])
            #expect(try await answers(net, from: "c1", to: n1, port: 30053, proto: .udp) == ["b1 \(c1)"])
            #expect(try await answers(net, from: "c2", to: Self.lbIP, port: 80) == ["b2 \(c2)"])
            #expect(try await answers(net, from: "c2", to: n2, port: 30080) == ["b2 \(c2)"])
            // n3 has no endpoint: external traffic is dropped there, not sent elsewhere.
            try await expectDropped(net, from: "c3", to: n3, port: 30080)
            try await expectDropped(net, from: "c3", to: Self.lbIP, port: 80)
            // A pod and the node itself still reach every endpoint.
            let fromPod = try await answers(net, from: "b1", to: Self.lbIP, port: 80, count: 24)
            #expect(Set(fromPod.map { $0.split(separator: " ")[0] }) == ["b1", "b2"], "\(fromPod)")
            let fromNode = try await answers(net, from: "n1", to: Self.lbIP, port: 80, count: 24)
            #expect(Set(fromNode.map { $0.split(separator: " ")[0] }) == ["b1", "b2"], "\(fromNode)")
        }
    }

    @Test("externalTrafficPolicy=Cluster: external traffic reaches all endpoints, masqueraded to the node")
    func externalTrafficPolicyCluster() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            try await applyEverywhere(net, manifests(net))
            let n3 = net.node("n3").ipv4
            #expect(try await answers(net, from: "c3", to: n3, port: 30080, count: 24) == ["b1 \(n3)", "b2 \(n3)"])
            #expect(try await answers(net, from: "c3", to: Self.lbIP, port: 80, count: 24) == ["b1 \(n3)", "b2 \(n3)"])
        }
    }

    // MARK: - 2. internalTrafficPolicy: Local

    @Test("internalTrafficPolicy=Local: cluster IP traffic stays on the node; none there → dropped")
    func internalTrafficPolicyLocal() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", options: .init(internalTrafficPolicy: "Local")))
            let fromB1 = try await answers(net, from: "b1", to: Self.clusterIP, port: 80)
            #expect(fromB1.map { $0.split(separator: " ")[0] } == ["b1"], "\(fromB1)")
            let fromB2 = try await answers(net, from: "b2", to: Self.clusterIP, port: 53, proto: .udp)
            #expect(fromB2.map { $0.split(separator: " ")[0] } == ["b2"], "\(fromB2)")
            try await expectDropped(net, from: "c3", to: Self.clusterIP, port: 80)
            try await expectDropped(net, from: "c3", to: Self.clusterIP, port: 53, proto: .udp)
        }
    }

    // MARK: - 3. Terminating endpoints

    @Test("should fallback to local terminating endpoints when there are no ready endpoints with externalTrafficPolicy=Local")
    func localTerminatingFallback() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            let eps: [Manifest.EndpointEntry] = [
                .init(address: net.backend("b1").ipv4, ready: false, nodeName: "n1", serving: true, terminating: true),
                .init(address: net.backend("b2").ipv4, ready: true, nodeName: "n2"),
            ]
            try await applyEverywhere(net, manifests(net, options: .init(externalTrafficPolicy: "Local"), endpoints: eps))
            let c1 = net.client("c1").ipv4
            #expect(try await answers(net, from: "c1", to: net.node("n1").ipv4, port: 30080) == ["b1 \(c1)"])
            // Cluster-wide, a ready endpoint exists: the terminating one gets no cluster traffic.
            let fromPod = try await answers(net, from: "b2", to: Self.clusterIP, port: 80)
            #expect(fromPod.map { $0.split(separator: " ")[0] } == ["b2"], "\(fromPod)")
        }
    }

    @Test("should fallback to terminating endpoints when there are no ready endpoints with internalTrafficPolicy=Cluster")
    func clusterTerminatingFallback() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            let eps: [Manifest.EndpointEntry] = [
                .init(address: net.backend("b1").ipv4, ready: false, nodeName: "n1", serving: true, terminating: true),
                .init(address: net.backend("b2").ipv4, ready: false, nodeName: "n2", serving: false, terminating: true),
            ]
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: eps))
            let replies = try await answers(net, from: "c3", to: Self.clusterIP, port: 80)
            #expect(replies.map { $0.split(separator: " ")[0] } == ["b1"], "\(replies)")
            // No endpoint serving at all: refused, as a Service without endpoints.
            let none: [Manifest.EndpointEntry] = [
                .init(address: net.backend("b1").ipv4, ready: false, nodeName: "n1", serving: false, terminating: true),
            ]
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: none))
            #expect(try await net.request(from: "c3", to: Self.clusterIP, port: 80, proto: .tcp) == .failure(.refused))
        }
    }

    // MARK: - 4. Topology hints

    @Test("topology hints: each zone's node uses the endpoints hinted for its zone; an endpoint without hints disables them")
    func topologyHints() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            let zones = ["n1": "zone-a", "n2": "zone-b", "n3": "zone-a"]
            let hinted: [Manifest.EndpointEntry] = [
                .init(address: net.backend("b1").ipv4, nodeName: "n1", zone: "zone-a", hints: ["zone-a"]),
                .init(address: net.backend("b2").ipv4, nodeName: "n2", zone: "zone-b", hints: ["zone-b"]),
            ]
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: hinted, zones: zones))
            func pods(_ client: String) async throws -> Set<String> {
                Set(try await answers(net, from: client, to: Self.clusterIP, port: 80, count: 24).map { String($0.split(separator: " ")[0]) })
            }
            #expect(try await pods("c1") == ["b1"])
            #expect(try await pods("c3") == ["b1"])  // n3 is in zone-a too
            #expect(try await pods("c2") == ["b2"])
            // One ready endpoint without hints: hints are ignored, every node uses both.
            var partial = hinted
            partial[1].hints = nil
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: partial, zones: zones))
            #expect(try await pods("c1") == ["b1", "b2"])
            #expect(try await pods("c2") == ["b1", "b2"])
        }
    }

    // MARK: - 5. Session affinity

    /// Which pods answered `count` TCP connections from c3 (distinct source ports) to the cluster IP.
    private func affinityPods(_ net: Topology, count: Int = 16, base: Int = 41000) async throws -> Set<String> {
        Set(try await answers(net, from: "c3", to: Self.clusterIP, port: 80, count: count, base: base)
            .map { String($0.split(separator: " ")[0]) })
    }

    @Test("should have session affinity timeout work for service with type clusterIP")
    func sessionAffinityTimeout() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            let timeout = 3
            try await applyEverywhere(net, manifests(net, type: "NodePort", options: .init(affinityTimeout: timeout)))
            // Sticky: every connection of the client (16 source ports) reaches one endpoint; through the
            // node port too (its entry is the node's address and the node port).
            let first = try await affinityPods(net)
            #expect(first.count == 1, "\(first)")
            let viaNodePort = try await answers(net, from: "c3", to: net.node("n3").ipv4, port: 30080, count: 16, base: 48000)
            #expect(Set(viaNodePort.map { $0.split(separator: " ")[0] }).count == 1, "\(viaNodePort)")
            // After the timeout passes idle, a new connection may go elsewhere: within ten tries (each after
            // the timeout) some connection reaches the other endpoint.
            var seen = first
            for attempt in 0..<10 where seen.count < 2 {
                try await Task.sleep(for: .seconds(timeout + 1))
                seen.formUnion(try await affinityPods(net, count: 1, base: 43000 + attempt))
            }
            #expect(seen == ["b1", "b2"], "session still sticky after the timeout: \(seen)")
        }
    }

    @Test("should be able to switch session affinity for service with type clusterIP; an endpoint removed releases its clients")
    func switchSessionAffinity() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            try await applyEverywhere(net, manifests(net, type: "ClusterIP"))
            #expect(try await affinityPods(net, count: 24) == ["b1", "b2"])
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", options: .init(affinityTimeout: 600)))
            let sticky = try await affinityPods(net, count: 24, base: 44000)
            #expect(sticky.count == 1, "\(sticky)")
            try await applyEverywhere(net, manifests(net, type: "ClusterIP"))
            #expect(try await affinityPods(net, count: 24, base: 45000) == ["b1", "b2"])
            // Back on, then the endpoint the client sticks to goes away: the client moves on at once
            // instead of waiting 600 s for its entry to expire.
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", options: .init(affinityTimeout: 600)))
            let pod = try await affinityPods(net, count: 8, base: 46000)
            #expect(pod.count == 1, "\(pod)")
            let other = pod == ["b1"] ? "b2" : "b1"
            let remaining: [Manifest.EndpointEntry] = [
                .init(address: net.backend(other).ipv4, nodeName: other == "b1" ? "n1" : "n2"),
            ]
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", options: .init(affinityTimeout: 600), endpoints: remaining))
            #expect(try await affinityPods(net, count: 8, base: 47000) == [other])
        }
    }

    // MARK: - 6. loadBalancerSourceRanges

    @Test("should only allow access from service loadbalancer source ranges")
    func loadBalancerSourceRanges() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            let c1 = net.client("c1").ipv4
            // c1 and c2 reach the LB IP through n1 and n2 (every node has the rules); only c1 is allowed.
            try await applyEverywhere(net, manifests(net, options: .init(loadBalancerSourceRanges: ["\(c1)/32", "192.0.2.0/24"])))
            #expect(try await answers(net, from: "c1", to: Self.lbIP, port: 80).count >= 1)
            try await expectDropped(net, from: "c2", to: Self.lbIP, port: 80)
            try await expectDropped(net, from: "c2", to: Self.lbIP, port: 53, proto: .udp)
            // Not filtered: the node port and the cluster IP; and the node itself reaches its LB IP.
            #expect(try await answers(net, from: "c2", to: net.node("n2").ipv4, port: 30080).count >= 1)
            #expect(try await answers(net, from: "c2", to: Self.clusterIP, port: 80).count >= 1)
            #expect(try await answers(net, from: "n2", to: Self.lbIP, port: 80).count >= 1)
            // Ranges changed to c2's: now c1 is the one dropped.
            try await applyEverywhere(net, manifests(net, options: .init(loadBalancerSourceRanges: ["\(net.client("c2").ipv4)/32"])))
            try await expectDropped(net, from: "c1", to: Self.lbIP, port: 80)
            #expect(try await answers(net, from: "c2", to: Self.lbIP, port: 80).count >= 1)
        }
    }

    // MARK: - 7. Masquerade

    @Test("--detect-local-mode NodeCIDR / InterfaceNamePrefix / BridgeInterface decide which cluster-IP traffic is masqueraded", arguments: [
        ["--detect-local-mode", "NodeCIDR"],
        ["--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "p-"],
        // The topology has no pod bridge: with BridgeInterface naming an absent one, pod traffic is
        // masqueraded like any other (the inverse check of the two above).
        ["--detect-local-mode", "BridgeInterface", "--pod-bridge-interface", "cbr0"],
    ])
    func detectLocalMode(mode: [String]) async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            let b1 = net.backend("b1").ipv4, n1 = net.node("n1").ipv4
            let onlyB2: [Manifest.EndpointEntry] = [.init(address: net.backend("b2").ipv4, nodeName: "n2")]
            // A --cluster-cidr that holds no pod: with the default mode (ClusterCIDR) every source would
            // count as off-cluster; the mode under test must not look at it.
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: onlyB2),
                                      extra: ["--cluster-cidr", "10.99.0.0/16"] + mode)
            #expect(try await answers(net, from: "c1", to: Self.clusterIP, port: 80) == ["b2 \(n1)"])
            let podSeen = mode.contains("BridgeInterface") ? n1 : b1
            #expect(try await answers(net, from: "b1", to: Self.clusterIP, port: 80) == ["b2 \(podSeen)"])
        }
    }

    @Test("masquerade: off-cluster clients to a cluster IP and hairpin are masqueraded; pod to pod is not; --masquerade-all masquerades all")
    func masquerade() async throws {
        try await withTopology(Self.threeNodes) { net in
            try await startServers(net)
            let b1 = net.backend("b1").ipv4, n1 = net.node("n1").ipv4
            let onlyB2: [Manifest.EndpointEntry] = [.init(address: net.backend("b2").ipv4, nodeName: "n2")]
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: onlyB2))
            #expect(try await answers(net, from: "c1", to: Self.clusterIP, port: 80) == ["b2 \(n1)"])
            #expect(try await answers(net, from: "b1", to: Self.clusterIP, port: 80) == ["b2 \(b1)"])
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: onlyB2), extra: ["--masquerade-all"])
            #expect(try await answers(net, from: "b1", to: Self.clusterIP, port: 80) == ["b2 \(n1)"])
            // Hairpin: b1 reaching itself through the Service sees the node's pod gateway, not itself.
            let onlyB1: [Manifest.EndpointEntry] = [.init(address: b1, nodeName: "n1")]
            try await applyEverywhere(net, manifests(net, type: "ClusterIP", endpoints: onlyB1))
            #expect(try await answers(net, from: "b1", to: Self.clusterIP, port: 80) == ["b1 \(net.node("n1").podGatewayIPv4)"])
        }
    }
}
