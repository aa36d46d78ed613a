import Foundation
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// Upstream sig-network's "should be able to preserve UDP traffic when server pod cycles for a
/// ClusterIP service", with real datagrams: a client keeps sending from one fixed source port, so every
/// datagram reuses one conntrack entry in the node; the Service's only backend b1 is replaced by b2.
/// Without cleanup the entry keeps the flow on b1 (whose server is gone: refused); with it, b2 answers.
enum UDPFlow {
    static let topology = Topology.Builder()
        .node("n1").backend("b1", on: "n1").backend("b2", on: "n1").client("c1", attachedTo: "n1")

    static func service(_ name: String, ip: String, type: String = "ClusterIP", nodePort: Int? = nil) -> String {
        Manifest.service(name, type: type, clusterIPs: [ip],
                         ports: [.init(name: "dns", proto: "UDP", port: 53, targetPort: "8080", nodePort: nodePort)])
    }

    static func slice(_ name: String, service: String, _ net: Topology, _ backends: [String],
                      apiVersion: String = "discovery.k8s.io/v1") -> String {
        Manifest.slice(name, service: service, apiVersion: apiVersion, ports: [("dns", "UDP", 8080)],
                       endpoints: backends.map { .init(address: net.backend($0).ipv4) })
    }

    /// `count` datagrams, one after another, all from `sourcePort`: the backends that answered, or
    /// `<refused>` / `<timeout>`.
    static func send(_ net: Topology, to address: String, port: Int = 53, from sourcePort: Int, count: Int = 1)
        async throws -> [String]
    {
        try await net.requests(from: "c1", to: address, port: port, proto: .udp,
                               sourcePorts: Array(repeating: sourcePort, count: count), timeout: .milliseconds(300))
            .map { result in
                switch result {
                case .success(let reply): reply.trimmingCharacters(in: .whitespacesAndNewlines)
                case .failure(let error): "<\(error)>"
                }
            }
    }

    /// Sends from `sourcePort` until `backend` answers or `deadline` passes; returns how long it took.
    static func untilAnswered(by backend: String, _ net: Topology, to address: String, port: Int = 53,
                              from sourcePort: Int, within deadline: Duration) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < deadline {
            if try await send(net, to: address, port: port, from: sourcePort).first == backend {
                return ContinuousClock.now - start
            }
        }
        return nil
    }

    /// The conntrack entries of the node (`conntrack -L`, read-only) that mention `address`.
    static func entries(_ net: Topology, mentioning address: String) async throws -> [String] {
        let listing = try await Shell.run(["conntrack", "-L", "-p", "udp"], in: net.node("n1").namespace).stdout
        return listing.split(separator: "\n").map(String.init).filter { $0.contains("=\(address) ") }
    }
}

@Suite(
    "End to end: stale UDP conntrack entries are deleted (switchboard apply)",
    .serialized,
    .enabled(if: SB.available && Shell.which("conntrack") != nil,
             "needs root, `ip netns`, the binary and the conntrack tool; reason printed as SKIP"),
    .exclusive
)
struct ConntrackApplyTests {
    /// Three Services in one node: `stuck` is moved from b1 to b2 with `--no-conntrack-cleanup` (the test
    /// failing as it would without the feature), then `moved` (ClusterIP) and `nodeport` (NodePort) are
    /// moved with the cleanup, and `late` gets its first endpoint after a client had already sent to it.
    @Test("a fixed-source-port UDP flow follows the endpoint change only with the cleanup")
    func udpFlowFollowsTheNewEndpoint() async throws {
        try await withTopology(UDPFlow.topology) { net in
            let b1 = try await net.startServer(on: "b1", proto: .udp, port: 8080)
            try await net.startServer(on: "b2", proto: .udp, port: 8080)
            let node = net.node("n1").ipv4
            let services = [
                SB.nodeManifest(net),
                UDPFlow.service("stuck", ip: "10.96.0.10"), UDPFlow.service("moved", ip: "10.96.0.11"),
                UDPFlow.service("nodeport", ip: "10.96.0.12", type: "NodePort", nodePort: 30053),
            ]
            func slices(stuck: String, moved: String, nodeport: String) -> [String] {
                [UDPFlow.slice("stuck-1", service: "stuck", net, [stuck]),
                 UDPFlow.slice("moved-1", service: "moved", net, [moved]),
                 UDPFlow.slice("nodeport-1", service: "nodeport", net, [nodeport])]
            }
            try await SB.apply(net, services + slices(stuck: "b1", moved: "b1", nodeport: "b1"))

            // Each flow is established on b1, from its own fixed source port.
            #expect(try await UDPFlow.send(net, to: "10.96.0.10", from: 42001, count: 3) == ["b1", "b1", "b1"])
            #expect(try await UDPFlow.send(net, to: "10.96.0.11", from: 42002, count: 3) == ["b1", "b1", "b1"])
            #expect(try await UDPFlow.send(net, to: node, port: 30053, from: 42003, count: 3) == ["b1", "b1", "b1"])
            // A client sends to a Service that does not exist yet: routed nowhere, and an entry without NAT.
            #expect(try await UDPFlow.send(net, to: "10.96.0.13", from: 42004) == ["<timeout>"])

            // b1's pod goes away.
            await b1.stop()

            // 1. Without cleanup: the rules say b2, but the flow's entry still says b1.
            let withoutCleanup = try await SB.run(
                "apply", net, manifests: services + slices(stuck: "b2", moved: "b1", nodeport: "b1"),
                extra: ["--no-conntrack-cleanup"])
            #expect(withoutCleanup.status.code == 0, "\(withoutCleanup.stderr)")
            #expect(!withoutCleanup.stdout.contains("conntrack"), "\(withoutCleanup.stdout)")
            let stuck = try await UDPFlow.send(net, to: "10.96.0.10", from: 42001, count: 8)
            #expect(!stuck.contains("b2"), "without cleanup the flow should stay on b1: \(stuck)")
            #expect(try await UDPFlow.entries(net, mentioning: net.backend("b1").ipv4).contains { $0.contains("dst=10.96.0.10 ") })
            // A new flow (another source port) already goes to b2: the rules are right, the entry is stale.
            #expect(try await UDPFlow.send(net, to: "10.96.0.10", from: 42101) == ["b2"])
            print("conntrack: without cleanup, the fixed-port flow after the move got \(stuck)")

            // 2. With cleanup (the default): the moved flows reach b2 at their next datagram.
            let late = [UDPFlow.service("late", ip: "10.96.0.13"), UDPFlow.slice("late-1", service: "late", net, ["b2"])]
            let withCleanup = try await SB.apply(net, services + slices(stuck: "b2", moved: "b2", nodeport: "b2") + late)
            #expect(withCleanup.stdout.contains("stale conntrack entries"), "\(withCleanup.stdout)")
            print("conntrack: apply said: \(withCleanup.stdout.split(separator: "\n").joined(separator: "; "))")
            for (name, address, port, sport) in [("ClusterIP", "10.96.0.11", 53, 42002), ("NodePort", node, 30053, 42003),
                                                 ("new Service", "10.96.0.13", 53, 42004)] {
                let took = try await UDPFlow.untilAnswered(by: "b2", net, to: address, port: port, from: sport,
                                                           within: .seconds(2))
                #expect(took != nil, "\(name): the flow from port \(sport) never reached b2")
                print("conntrack: \(name) flow from fixed port \(sport) reached b2 after \(took.map { "\($0)" } ?? "never")")
            }
            // The flow moved without cleanup is still stuck: only what this apply changed was cleaned.
            #expect(try await UDPFlow.send(net, to: "10.96.0.10", from: 42001) != ["b2"])
        }
    }
}

/// The same through the node agent: `switchboard run` against the real kube-apiserver, the
/// EndpointSlice updated with kubectl.
@Suite(
    "End to end: the agent deletes stale UDP conntrack entries",
    .serialized,
    .enabled(if: SB.available && ControlPlane.unavailableReason == nil && Shell.which("conntrack") != nil,
             "needs root, `ip netns`, the binary, conntrack and ../shared/k8s (SWITCHBOARD_K8S_UP)"),
    .exclusive
)
struct ConntrackAgentTests {
    @Test("server pod cycles behind a ClusterIP: the fixed-port UDP flow reaches the new pod")
    func udpTrafficSurvivesPodCycle() async throws {
        try await withControlPlane(in: UDPFlow.topology) { net, plane in try await scenario(net, plane) }
    }

    private func scenario(_ net: Topology, _ plane: ControlPlane) async throws {
        let b1 = try await net.startServer(on: "b1", proto: .udp, port: 8080)
        try await net.startServer(on: "b2", proto: .udp, port: 8080)
        try await plane.apply([SB.nodeManifest(net)])
        let agent = try Shell.start([
            SwitchboardBinary.path!, "run", "--kubeconfig", plane.nodeKubeconfig, "--hostname-override", "n1",
            "--cluster-cidr", SB.clusterCIDRs, "--min-sync-period", "100ms", "--sync-period", "2s", "--v", "2",
            "--metrics-bind-address", "127.0.0.1:10249",
        ], in: net.node("n1").namespace)
        net.adopt(agent)

        let v1beta1 = "discovery.k8s.io/v1beta1"
        try await plane.apply([UDPFlow.service("dns", ip: "10.96.0.10"),
                               UDPFlow.slice("dns-1", service: "dns", net, ["b1"], apiVersion: v1beta1)])
        let up = try await UDPFlow.untilAnswered(by: "b1", net, to: "10.96.0.10", from: 43001, within: .seconds(15))
        #expect(up != nil, "the Service never answered from b1")

        // The pod cycles: b1 goes away, b2 replaces it in the EndpointSlice.
        await b1.stop()
        let start = ContinuousClock.now
        try await plane.apply([UDPFlow.slice("dns-1", service: "dns", net, ["b2"], apiVersion: v1beta1)])
        let moved = try await UDPFlow.untilAnswered(by: "b2", net, to: "10.96.0.10", from: 43001, within: .seconds(10))
        #expect(moved != nil, "the fixed-port flow never reached b2")
        print("conntrack (agent): kubectl apply → fixed-port flow answered by b2 after \(ContinuousClock.now - start)")

        let metrics = try await Shell.run(["curl", "-s", "http://127.0.0.1:10249/metrics"], in: net.node("n1").namespace)
            .checked().stdout
        let deleted = metrics.split(separator: "\n").first { $0.hasPrefix("switchboard_conntrack_deleted_entries_total") }
        #expect(deleted.map { !$0.hasSuffix(" 0") } == true, "\(deleted ?? "no metric")")
        #expect(metrics.contains("switchboard_conntrack_cleanup_errors_total 0"))
        _ = await agent.stop(grace: .seconds(10))
    }
}
