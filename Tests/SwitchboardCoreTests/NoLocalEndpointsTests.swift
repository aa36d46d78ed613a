import NetworkTypes
import SwitchboardTesting
import Testing

@testable import SwitchboardCore

/// `IncrementalCompiler.noLocalEndpoints`: kube-proxy's `kubeproxy_sync_proxy_rules_no_local_endpoints_total`.
@Suite struct NoLocalEndpointsTests {
    static let context = NodeContext(nodeName: "n1")
    static let dualStack = ["10.96.0.10", "fd00:10:96::10"]

    static func service(
        _ name: String, type: ServiceType = .clusterIP, ips: [String] = ["10.96.0.10"], ports: [Int] = [80],
        externalIPs: [String] = [], external: TrafficPolicy = .cluster, internal itp: TrafficPolicy = .cluster
    ) -> KubeObject {
        .service(
            name, type: type, ips: ips,
            ports: ports.map { ServicePort(name: "p\($0)", port: $0, nodePort: type == .clusterIP ? nil : 30000 + $0) },
            externalIPs: externalIPs, externalPolicy: external, internalPolicy: itp)
    }

    /// `nodes`: where each endpoint runs, one endpoint per entry.
    static func slice(
        _ service: String, _ nodes: [String], family: IPFamily = .v4, ports: [Int] = [80], ready: Bool = true
    ) -> KubeObject {
        .slice(
            "\(service)-\(family.rawValue)", service: service, family: family == .v4 ? .ipv4 : .ipv6,
            ports: ports.map { EndpointPort(name: "p\($0)", port: 8000 + $0) },
            endpoints: nodes.enumerated().map { index, node in
                .at(family == .v4 ? "10.1.0.\(index + 1)" : "fd00:1::\(index + 1)", ready: ready, node: node)
            })
    }

    static func counts(_ objects: [KubeObject]) -> NoLocalEndpointCounts {
        var compiler = IncrementalCompiler(node: context)
        compiler.update(ClusterState(objects + [.node(Node(name: "n1"))]), changed: nil)
        return compiler.noLocalEndpoints
    }

    @Test(arguments: [
        ("Cluster policies", [service("s"), slice("s", ["n2"])], 0, 0),
        ("internal Local, endpoint elsewhere", [service("s", internal: .local), slice("s", ["n2"])], 1, 0),
        ("internal Local, endpoint here", [service("s", internal: .local), slice("s", ["n1", "n2"])], 0, 0),
        ("internal Local, no endpoint at all (rejected, not counted)", [service("s", internal: .local)], 0, 0),
        ("internal Local, endpoint elsewhere not ready",
         [service("s", internal: .local), slice("s", ["n2"], ready: false)], 0, 0),
        ("NodePort external Local, elsewhere",
         [service("s", type: .nodePort, external: .local), slice("s", ["n2"])], 0, 1),
        ("LoadBalancer external Local, here",
         [service("s", type: .loadBalancer, external: .local), slice("s", ["n1"])], 0, 0),
        ("external IP, external Local, elsewhere",
         [service("s", externalIPs: ["192.0.2.1"], external: .local), slice("s", ["n2"])], 0, 1),
        ("ClusterIP with external Local: not externally reachable",
         [service("s", external: .local), slice("s", ["n2"])], 0, 0),
        ("both Local, two ports, elsewhere",
         [service("s", type: .nodePort, ports: [80, 443], external: .local, internal: .local),
          slice("s", ["n2"], ports: [80, 443])], 2, 2),
        ("dual-stack: per family",
         [service("s", ips: dualStack, internal: .local), slice("s", ["n2"]), slice("s", ["n2"], family: .v6)], 2, 0),
        ("dual-stack, endpoints in one family only",
         [service("s", ips: dualStack, internal: .local), slice("s", ["n2"])], 1, 0),
    ] as [(String, [KubeObject], Int, Int)])
    func counted(name: String, objects: [KubeObject], internalPolicy: Int, externalPolicy: Int) {
        let expected = NoLocalEndpointCounts(internalPolicy: internalPolicy, externalPolicy: externalPolicy)
        #expect(Self.counts(objects) == expected, "\(name)")
    }

    @Test func keptUpToDateServiceByService() {
        var compiler = IncrementalCompiler(node: Self.context)
        let a = Self.service("a", internal: .local)
        let b = Self.service("b", ips: ["10.96.0.11"], internal: .local)
        var state = ClusterState([.node(Node(name: "n1")), a, Self.slice("a", ["n2"]), b, Self.slice("b", ["n2"])])
        compiler.update(state, changed: nil)
        #expect(compiler.noLocalEndpoints == NoLocalEndpointCounts(internalPolicy: 2))

        let bRef = ObjectRef(namespace: "default", name: "b")
        let touched = state.upsert(Self.slice("b", ["n1"]))
        compiler.update(state, changed: touched)
        #expect(compiler.noLocalEndpoints == NoLocalEndpointCounts(internalPolicy: 1))
        state.remove(a)
        compiler.update(state, changed: [ObjectRef(namespace: "default", name: "a"), bRef])
        #expect(compiler.noLocalEndpoints == NoLocalEndpointCounts())
    }
}
