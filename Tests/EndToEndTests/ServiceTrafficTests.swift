import Foundation
import NFTModel
import Netfilter
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// `switchboard apply` in a node namespace, and real TCP/UDP packets from client namespaces through
/// the node to backend (pod) namespaces. Each test builds its own topology and tears it down.
@Suite(
    "End to end: Services carry real traffic",
    .serialized,
    .enabled(if: SB.available, "needs root, `ip netns` and the switchboard binary (reason printed as SKIP)"),
    .exclusive
)
struct ServiceTrafficTests {
    static let twoBackends = Topology.Builder()
        .node("n1").backend("b1", on: "n1").backend("b2", on: "n1").client("c1", attachedTo: "n1")

    private func webService(_ net: Topology, type: String = "ClusterIP", nodePort: Int? = nil,
                            externalIPs: [String] = [], loadBalancerIPs: [String] = []) -> [String] {
        [
            SB.nodeManifest(net),
            Manifest.service("web", type: type, clusterIPs: ["10.96.0.10"],
                             ports: [.init(name: "http", port: 80, targetPort: "8080", nodePort: nodePort),
                                     .init(name: "dns", proto: "UDP", port: 53, targetPort: "5353")],
                             externalIPs: externalIPs, loadBalancerIPs: loadBalancerIPs),
            Manifest.slice("web-1", service: "web", ports: [("http", "TCP", 8080), ("dns", "UDP", 5353)],
                           endpoints: [.init(address: net.backend("b1").ipv4), .init(address: net.backend("b2").ipv4)]),
        ]
    }

    private func startWebServers(_ net: Topology, backends: [String] = ["b1", "b2"]) async throws {
        for b in backends {
            try await net.startServer(on: b, proto: .tcp, port: 8080)
            try await net.startServer(on: b, proto: .udp, port: 5353)
        }
    }

    @Test("ClusterIP: TCP and UDP reach both backends")
    func clusterIPTCPAndUDP() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            try await SB.apply(net, webService(net))
            for proto in [TransportProtocol.tcp, .udp] {
                let port = proto == .tcp ? 80 : 53
                let replies = try await net.requests(from: "c1", to: "10.96.0.10", port: port, proto: proto,
                                                     sourcePorts: SB.sourcePorts(24)).replies()
                #expect(Set(replies) == ["b1", "b2"], "\(proto): \(replies)")
            }
        }
    }

    @Test("NodePort answers on the node's InternalIP")
    func nodePort() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            try await SB.apply(net, webService(net, type: "NodePort", nodePort: 30080))
            let replies = try await net.requests(from: "c1", to: net.node("n1").ipv4, port: 30080, proto: .tcp,
                                                 sourcePorts: SB.sourcePorts(16)).replies()
            #expect(Set(replies) == ["b1", "b2"])
            // The service port is not a node port.
            let wrong = try await net.request(from: "c1", to: net.node("n1").ipv4, port: 80, proto: .tcp,
                                              timeout: .milliseconds(500))
            #expect(wrong.reply == nil)
        }
    }

    @Test("LoadBalancer ingress IP and external IP answer")
    func loadBalancerAndExternalIP() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            try await SB.apply(net, webService(net, type: "LoadBalancer", nodePort: 30081,
                                               externalIPs: ["10.202.0.10"], loadBalancerIPs: ["10.201.0.10"]))
            for vip in ["10.201.0.10", "10.202.0.10"] {
                let replies = try await net.requests(from: "c1", to: vip, port: 80, proto: .tcp,
                                                     sourcePorts: SB.sourcePorts(16)).replies()
                #expect(Set(replies) == ["b1", "b2"], "\(vip): \(replies)")
            }
        }
    }

    @Test("IPv6 ClusterIP")
    func ipv6ClusterIP() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            try await SB.apply(net, [
                SB.nodeManifest(net),
                Manifest.service("web6", clusterIPs: ["fd00:10:96::a"],
                                 ports: [.init(name: "http", port: 80, targetPort: "8080")]),
                Manifest.slice("web6-1", service: "web6", addressType: "IPv6", ports: [("http", "TCP", 8080)],
                               endpoints: [.init(address: net.backend("b1").ipv6), .init(address: net.backend("b2").ipv6)]),
            ])
            let replies = try await net.requests(from: "c1", to: "fd00:10:96::a", port: 80, proto: .tcp,
                                                 sourcePorts: SB.sourcePorts(16)).replies()
            #expect(Set(replies) == ["b1", "b2"])
        }
    }

    /// A named targetPort resolves per endpoint through its slice's port: b1 serves "http" on 8080,
    /// b2 on 9090; the second port of the Service has its own endpoints' port.
    @Test("Multi-port Service with named target ports")
    func multiPortNamedTargetPorts() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await net.startServer(on: "b1", proto: .tcp, port: 8080, reply: "b1-http")
            try await net.startServer(on: "b2", proto: .tcp, port: 9090, reply: "b2-http")
            try await net.startServer(on: "b1", proto: .tcp, port: 9100, reply: "b1-metrics")
            try await net.startServer(on: "b2", proto: .tcp, port: 9100, reply: "b2-metrics")
            try await SB.apply(net, [
                SB.nodeManifest(net),
                Manifest.service("multi", clusterIPs: ["10.96.0.30"],
                                 ports: [.init(name: "http", port: 80, targetPort: "web"),
                                         .init(name: "metrics", port: 9100, targetPort: "metrics")]),
                Manifest.slice("multi-a", service: "multi", ports: [("http", "TCP", 8080), ("metrics", "TCP", 9100)],
                               endpoints: [.init(address: net.backend("b1").ipv4)]),
                Manifest.slice("multi-b", service: "multi", ports: [("http", "TCP", 9090), ("metrics", "TCP", 9100)],
                               endpoints: [.init(address: net.backend("b2").ipv4)]),
            ])
            let http = try await net.requests(from: "c1", to: "10.96.0.30", port: 80, proto: .tcp,
                                              sourcePorts: SB.sourcePorts(16)).replies()
            #expect(Set(http) == ["b1-http", "b2-http"])
            let metrics = try await net.requests(from: "c1", to: "10.96.0.30", port: 9100, proto: .tcp,
                                                 sourcePorts: SB.sourcePorts(16)).replies()
            #expect(Set(metrics) == ["b1-metrics", "b2-metrics"])
        }
    }

    @Test("No ready endpoint: TCP and UDP clients are refused, not left to time out")
    func noEndpointsRefuses() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            var manifests = webService(net)
            manifests[2] = Manifest.slice("web-1", service: "web", ports: [("http", "TCP", 8080), ("dns", "UDP", 5353)],
                                          endpoints: [.init(address: net.backend("b1").ipv4, ready: false)])
            try await SB.apply(net, manifests)
            let tcp = try await net.request(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp)
            #expect(tcp == .failure(.refused))
            let udp = try await net.request(from: "c1", to: "10.96.0.10", port: 53, proto: .udp)
            #expect(udp == .failure(.refused))
        }
    }

    @Test("A port removed from a Service stops answering; the other keeps working")
    func portRemoved() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            try await SB.apply(net, webService(net))
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 53, proto: .udp).reply != nil)
            try await SB.apply(net, [
                SB.nodeManifest(net),
                Manifest.service("web", clusterIPs: ["10.96.0.10"], ports: [.init(name: "http", port: 80, targetPort: "8080")]),
                Manifest.slice("web-1", service: "web", ports: [("http", "TCP", 8080)],
                               endpoints: [.init(address: net.backend("b1").ipv4), .init(address: net.backend("b2").ipv4)]),
            ])
            try await Shell.run(["conntrack", "-F"], in: net.node("n1").namespace).checked()
            let removed = try await net.request(from: "c1", to: "10.96.0.10", port: 53, proto: .udp)
            #expect(removed == .failure(.refused), "a cluster IP's unknown port is rejected")
            let kept = try await net.requests(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp,
                                              sourcePorts: SB.sourcePorts(8)).replies()
            #expect(Set(kept).isSubset(of: ["b1", "b2"]) && !kept.isEmpty)
        }
    }

    @Test("A Service deleted from the input loses its rules on the next apply")
    func serviceDeleted() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            let other = [
                Manifest.service("other", clusterIPs: ["10.96.0.40"], ports: [.init(name: "http", port: 80, targetPort: "8080")]),
                Manifest.slice("other-1", service: "other", ports: [("http", "TCP", 8080)],
                               endpoints: [.init(address: net.backend("b2").ipv4)]),
            ]
            try await SB.apply(net, webService(net) + other)
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp).reply != nil)
            try await SB.apply(net, [SB.nodeManifest(net)] + other)
            let gone = try await net.request(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp, timeout: .milliseconds(500))
            #expect(gone.reply == nil)
            let kernel = try KernelNFTables(networkNamespace: net.node("n1").namespace)
            let ruleset = try await kernel.read([TableID(.ip, "switchboard")])
            #expect(!ruleset.script.contains("10.96.0.10"))
            #expect(!ruleset.script.contains("default/web/"))
            #expect(try await net.request(from: "c1", to: "10.96.0.40", port: 80, proto: .tcp).reply == "b2")
        }
    }

    /// A pod reaching itself through its own Service: only works if the node masquerades it.
    @Test("Hairpin: a pod reaches itself through its Service")
    func hairpin() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await net.startServer(on: "b1", proto: .tcp, port: 8080)
            try await SB.apply(net, [
                SB.nodeManifest(net),
                Manifest.service("self", clusterIPs: ["10.96.0.50"], ports: [.init(name: "http", port: 80, targetPort: "8080")]),
                Manifest.slice("self-1", service: "self", ports: [("http", "TCP", 8080)],
                               endpoints: [.init(address: net.backend("b1").ipv4)]),
            ])
            #expect(try await net.request(from: "b1", to: "10.96.0.50", port: 80, proto: .tcp) == .success("b1"))
        }
    }

    /// One bad object costs only itself: the others compile and carry traffic.
    @Test("A malformed Service is skipped with a diagnostic; the others keep working")
    func malformedServiceSkipped() async throws {
        try await withTopology(Self.twoBackends) { net in
            try await startWebServers(net)
            let bad = Manifest.service("bad", clusterIPs: ["10.96.0.60"], ports: [.init(name: "http", port: 70000)])
            let result = try await SB.run("apply", net, manifests: webService(net) + [bad])
            #expect(result.status.code == 0)
            #expect(result.stderr.contains("Service default/bad"), "\(result.stderr)")
            #expect(result.stderr.contains("spec.ports[0].port"), "\(result.stderr)")
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp).reply != nil)
        }
    }
}
