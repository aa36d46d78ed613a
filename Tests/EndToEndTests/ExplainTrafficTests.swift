import Foundation
import NetworkTypes
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// `switchboard explain` against real packets: for every flow the binary predicts an endpoint (or REJECT /
/// DROP) from the same manifests `apply` loaded, and then the flow is sent and the endpoint that answers
/// (or the client's error) must be the one predicted.
@Suite(
    "End to end: explain predicts what real packets do",
    .serialized,
    .enabled(if: SB.available, "needs root, `ip netns` and the switchboard binary (reason printed as SKIP)"),
    .exclusive
)
struct ExplainTrafficTests {
    static let builder = Topology.Builder().node("n1").node("n2")
        .client("c1", attachedTo: "n1").client("c2", attachedTo: "n1")
        .backend("b1", on: "n1").backend("b2", on: "n1").backend("b3", on: "n2").backend("b4", on: "n2")

    private func manifests(_ net: Topology) -> [String] {
        typealias E = Manifest.EndpointEntry
        let http = [Manifest.Port(name: "http", port: 80, targetPort: "8080")]
        let ports = [(name: "http", proto: "TCP", port: 8080)]
        func all(_ family: IPFamily = .v4) -> [E] {
            ["b1", "b2", "b3", "b4"].map { E(address: net.backend($0).address(family), nodeName: net.backend($0).node) }
        }
        func on(_ names: [String], _ edit: (inout E) -> Void = { _ in }) -> [E] {
            names.map { name in
                var e = E(address: net.backend(name).ipv4, nodeName: net.backend(name).node)
                edit(&e)
                return e
            }
        }
        let local = Manifest.ServiceOptions(externalTrafficPolicy: "Local")
        return [
            SB.nodeManifest(net, "n1", zone: "zone-a"),
            SB.nodeManifest(net, "n2", zone: "zone-b"),
            Manifest.service("web", clusterIPs: ["10.96.0.80", "fd00:96::80"], ports: http),
            Manifest.slice("web-v4", service: "web", ports: ports, endpoints: all()),
            Manifest.slice("web-v6", service: "web", addressType: "IPv6", ports: ports, endpoints: all(.v6)),
            Manifest.service("np", type: "NodePort", clusterIPs: ["10.96.0.81"],
                             ports: [.init(name: "http", port: 80, targetPort: "8080", nodePort: 30080)]),
            Manifest.slice("np-1", service: "np", ports: ports, endpoints: all()),
            Manifest.service("lb", type: "LoadBalancer", clusterIPs: ["10.96.0.82"],
                             ports: [.init(name: "http", port: 80, targetPort: "8080", nodePort: 30082)],
                             loadBalancerIPs: ["192.0.2.10"], options: local),
            Manifest.slice("lb-1", service: "lb", ports: ports, endpoints: all()),
            Manifest.service("zonal", clusterIPs: ["10.96.0.83"], ports: http),
            Manifest.slice("zonal-1", service: "zonal", ports: ports,
                           endpoints: on(["b1", "b2"]) { $0.hints = ["zone-a"] } + on(["b3", "b4"]) { $0.hints = ["zone-b"] }),
            Manifest.service("sticky", clusterIPs: ["10.96.0.84"], ports: http, options: .init(affinityTimeout: 600)),
            Manifest.slice("sticky-1", service: "sticky", ports: ports, endpoints: all()),
            Manifest.service("term", clusterIPs: ["10.96.0.85"], ports: http),
            Manifest.slice("term-1", service: "term", ports: ports, endpoints:
                on(["b1", "b2", "b4"]) { $0.ready = false; $0.serving = true; $0.terminating = true }
                + on(["b3"]) { $0.ready = false; $0.serving = false }),
            Manifest.service("empty", clusterIPs: ["10.96.0.86"], ports: http),
            Manifest.service("fw", type: "LoadBalancer", clusterIPs: ["10.96.0.87"],
                             ports: [.init(name: "http", port: 80, targetPort: "8080", nodePort: 30087)],
                             loadBalancerIPs: ["192.0.2.20"], options: .init(loadBalancerSourceRanges: ["198.51.100.0/24"])),
            Manifest.slice("fw-1", service: "fw", ports: ports, endpoints: all()),
            Manifest.service("lonely", type: "LoadBalancer", clusterIPs: ["10.96.0.88"],
                             ports: [.init(name: "http", port: 80, targetPort: "8080", nodePort: 30088)],
                             loadBalancerIPs: ["192.0.2.30"], options: local),
            Manifest.slice("lonely-1", service: "lonely", ports: ports, endpoints: on(["b3"])),
        ]
    }

    /// One group of flows: from `host` to `address:port`, one flow per source port.
    struct Group {
        var host: String
        var family: IPFamily = .v4
        var address: String
        var port: Int = 80
        var sourcePorts: [Int]
        /// The verdict every flow of the group must get (a group is one kind of case).
        var verdict: Explanation.VerdictKind
        var timeout: Duration = Traffic.defaultTimeout
    }

    @Test("for 200+ flows the endpoint explain names is the one that answers; REJECT is refused, DROP times out")
    func predictionsMatchPackets() async throws {
        try await withTopology(Self.builder) { net in
            for name in ["b1", "b2", "b3", "b4"] { try await net.startServer(on: name, proto: .tcp, port: 8080) }
            let documents = manifests(net)
            try await SB.apply(net, documents)
            let file = try manifestFile(documents)
            defer { try? FileManager.default.removeItem(at: file) }

            func ports(_ n: Int, _ base: Int) -> [Int] { (0..<n).map { base + $0 } }
            let groups: [Group] = [
                Group(host: "c1", address: "10.96.0.80", sourcePorts: ports(25, 42000), verdict: .dnat),
                Group(host: "c2", address: "10.96.0.80", sourcePorts: ports(20, 42100), verdict: .dnat),
                Group(host: "c1", family: .v6, address: "fd00:96::80", sourcePorts: ports(25, 42200), verdict: .dnat),
                Group(host: "b1", address: "10.96.0.80", sourcePorts: ports(20, 42300), verdict: .dnat),
                Group(host: "c1", address: net.node("n1").ipv4, port: 30080, sourcePorts: ports(25, 42400), verdict: .dnat),
                Group(host: "c2", address: "192.0.2.10", sourcePorts: ports(20, 42500), verdict: .dnat),
                Group(host: "b2", address: "192.0.2.10", sourcePorts: ports(20, 42550), verdict: .dnat),
                Group(host: "c1", address: "10.96.0.83", sourcePorts: ports(20, 42600), verdict: .dnat),
                Group(host: "c2", address: "10.96.0.85", sourcePorts: ports(20, 42700), verdict: .dnat),
                Group(host: "c1", address: "10.96.0.84", sourcePorts: [42800], verdict: .dnat),
                Group(host: "c1", address: "10.96.0.86", sourcePorts: ports(5, 42900), verdict: .reject),
                Group(host: "c2", address: "10.96.0.80", port: 81, sourcePorts: ports(3, 42950), verdict: .reject),
                Group(host: "c1", address: "192.0.2.20", sourcePorts: ports(3, 43000), verdict: .drop, timeout: .seconds(1)),
                Group(host: "c1", address: "192.0.2.30", sourcePorts: ports(3, 43050), verdict: .drop, timeout: .seconds(1)),
            ]
            var flows = 0
            /// Per group (`host -> address`), the backends that answered.
            var answeredBy: [String: Set<String>] = [:]
            for group in groups {
                let label = "\(group.host) -> \(group.address)"
                let source = net.host(group.host).address(group.family)
                var predicted: [Explanation] = []
                for sport in group.sourcePorts {
                    let src = group.family == .v4 ? "\(source):\(sport)" : "[\(source)]:\(sport)"
                    let dst = group.family == .v4 ? "\(group.address):\(group.port)" : "[\(group.address)]:\(group.port)"
                    predicted.append(try await explain(net, file, [src, dst, "-o", "json"]))
                }
                let results = try await net.requests(
                    from: group.host, to: group.address, port: group.port, proto: .tcp,
                    sourcePorts: group.sourcePorts, timeout: group.timeout)
                for (explanation, result) in zip(predicted, results) {
                    flows += 1
                    let flow = "\(group.host):\(explanation.flow.sourcePort ?? 0) -> \(group.address):\(group.port)"
                    #expect(explanation.verdict.kind == group.verdict, "\(flow): \(explanation.text)")
                    switch explanation.verdict.kind {
                    case .dnat:
                        let expected = try #require(explanation.verdict.endpoint.flatMap { backendName(net, $0) }, "\(flow)")
                        #expect(result.reply?.trimmingCharacters(in: .whitespacesAndNewlines) == expected, "\(flow): \(result) \(explanation.text)")
                        #expect(explanation.maglev?.compiled.map { explanation.maglev!.element!.hasSuffix(": \($0)") } == true)
                        answeredBy[label, default: []].insert(expected)
                    case .reject: #expect(result == .failure(.refused), "\(flow): \(result)")
                    case .drop: #expect(result == .failure(.timeout), "\(flow): \(result)")
                    case .untouched: Issue.record("\(flow): not a service: \(explanation.text)")
                    }
                }
            }
            #expect(flows >= 200)
            print("explain end to end: \(flows) flows predicted and sent; answered by \(answeredBy.sorted { $0.key < $1.key })")
            // The cases are what they claim: several endpoints in use, the policies' sets respected.
            #expect(answeredBy["c1 -> 10.96.0.80"]!.count >= 3, "\(answeredBy)")
            #expect(answeredBy["c2 -> 192.0.2.10"]! == ["b1", "b2"], "external clients of an ETP Local LB IP reach n1's endpoints")
            #expect(!answeredBy["b2 -> 192.0.2.10"]!.isDisjoint(with: ["b3", "b4"]), "pods reach every endpoint: \(answeredBy)")
            #expect(answeredBy["c1 -> 10.96.0.83"]! == ["b1", "b2"], "topology hints for zone-a")
            #expect(answeredBy["c2 -> 10.96.0.85"]!.isSubset(of: ["b1", "b2", "b4"]), "serving terminating fallback")

            // Session affinity: the first connection went by Maglev; every later one from the same client,
            // whatever its port, goes to the endpoint the kernel recorded, which `explain --live` reads.
            let client = net.client("c1").ipv4
            let first = try #require(answeredBy["c1 -> 10.96.0.84"]?.first)
            for sport in ports(8, 42810) {
                let live = try await explain(net, file, ["\(client):\(sport)", "10.96.0.84:80", "-o", "json", "--live"])
                #expect(live.affinity?.live?.endpoint.flatMap { backendName(net, $0) } == first, "\(live.text)")
                #expect(live.verdict.endpoint.flatMap { backendName(net, $0) } == first)
                #expect(live.live?.agrees == true, "\(live.text)")
                let reply = try await net.requests(from: "c1", to: "10.96.0.84", port: 80, proto: .tcp, sourcePorts: [sport]).replies()
                #expect(reply == [first])
            }
        }
    }

    @Test("--live reports drift when the kernel's slot differs from the compiled one, and exits 1")
    func liveDrift() async throws {
        try await withTopology(Self.builder) { net in
            let documents = manifests(net)
            try await SB.apply(net, documents)
            let file = try manifestFile(documents)
            defer { try? FileManager.default.removeItem(at: file) }
            let args = ["\(net.client("c1").ipv4):40000", "10.96.0.80:80", "--live"]
            let agreed = try await run(net, file, args)
            #expect(agreed.status.code == 0, "\(agreed.stdout)\(agreed.stderr)")
            #expect(agreed.stdout.contains("the kernel agrees"), "\(agreed.stdout)")
            // Rewrite that one slot behind the agent's back.
            let explained = try await explain(net, file, args + ["-o", "json"])
            let key = try #require(explained.live?.element)
            let other = net.backend(explained.verdict.endpoint == "\(net.backend("b1").ipv4):8080" ? "b2" : "b1").ipv4
            let table = "ip \(NodeContext.defaultTableName)"
            let rewrite = try await Shell.run(
                ["nft", "delete element \(table) backends { \(key) }; add element \(table) backends { \(key) : \(other) . 8080 }"],
                in: net.node("n1").namespace)
            #expect(rewrite.status.code == 0, "\(rewrite.stderr)")
            let drifted = try await run(net, file, args)
            #expect(drifted.status.code == 1, "\(drifted.stdout)\(drifted.stderr)")
            #expect(drifted.stdout.contains("DRIFT: the kernel differs: backends { \(key) : \(other) . 8080 }"), "\(drifted.stdout)")
        }
    }

    /// The manifests as one scratch file, for `explain -f` (the caller removes it).
    private func manifestFile(_ documents: [String]) throws -> URL {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sbt-explain-\(UUID().uuidString.prefix(8)).yaml")
        try Manifest.stream(documents).write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    private func run(_ net: Topology, _ file: URL, _ args: [String]) async throws -> ShellResult {
        try await Shell.run(
            [SwitchboardBinary.path!, "explain", "-f", file.path, "--hostname-override", "n1", "--cluster-cidr", SB.clusterCIDRs] + args,
            in: net.node("n1").namespace, timeout: .seconds(60))
    }

    private func explain(_ net: Topology, _ file: URL, _ args: [String]) async throws -> Explanation {
        let result = try await run(net, file, args)
        #expect(result.status.code == 0, "explain \(args): \(result.stderr)")
        return try JSONDecoder().decode(Explanation.self, from: Data(result.stdout.utf8))
    }

    /// The backend whose address an endpoint (`10.244.1.2:8080`, `[fd00:...]:8080`) names.
    private func backendName(_ net: Topology, _ endpoint: String) -> String? {
        let address = endpoint.hasPrefix("[")
            ? String(endpoint.dropFirst().prefix { $0 != "]" }) : String(endpoint.prefix { $0 != ":" })
        return ["b1", "b2", "b3", "b4"].first { net.backend($0).ipv4 == address || net.backend($0).ipv6 == address }
    }
}

/// `explain --kubeconfig`: the same answer from the live cluster as from files, through the real API
/// server with the node's own (read-only, `system:node-proxier`) credentials.
@Suite(
    "End to end: explain against a real kube-apiserver",
    .serialized,
    .enabled(if: SB.available && ControlPlane.unavailableReason == nil,
             "needs root, `ip netns`, the binary and ../shared/k8s (SWITCHBOARD_K8S_UP); reason printed as SKIP"),
    .exclusive
)
struct ExplainClusterTests {
    @Test("explain --kubeconfig names the endpoint that answers, and sees a Service lose its endpoints")
    func fromTheCluster() async throws {
        let builder = Topology.Builder().node("n1").client("c1", attachedTo: "n1").backend("b1", on: "n1").backend("b2", on: "n1")
        try await withControlPlane(in: builder) { net, plane in
            for name in ["b1", "b2"] { try await net.startServer(on: name, proto: .tcp, port: 8080) }
            let service = Manifest.service("web", clusterIPs: ["10.96.0.10"], ports: [.init(name: "http", port: 80, targetPort: "8080")])
            let slice = Manifest.slice(
                "web-1", service: "web", apiVersion: "discovery.k8s.io/v1beta1", ports: [("http", "TCP", 8080)],
                endpoints: ["b1", "b2"].map { .init(address: net.backend($0).ipv4) })
            try await plane.apply([SB.nodeManifest(net), service, slice])
            let client = net.client("c1").ipv4
            let explain = [SwitchboardBinary.path!, "explain", "--kubeconfig", plane.nodeKubeconfig, "--hostname-override", "n1",
                           "--cluster-cidr", SB.clusterCIDRs, "-o", "json"]
            // The rules come from `apply` of the same objects as files; the prediction from the cluster.
            try await SB.apply(net, [SB.nodeManifest(net), service, slice])
            var answered: Set<String> = []
            for sport in 44000..<44010 {
                let result = try await Shell.run(explain + ["\(client):\(sport)", "10.96.0.10:80"], in: net.node("n1").namespace)
                #expect(result.status.code == 0, "\(result.stderr)")
                let e = try JSONDecoder().decode(Explanation.self, from: Data(result.stdout.utf8))
                #expect(e.entry?.servicePort == "default/web:http")
                let endpoint = try #require(e.verdict.endpoint)
                let name = ["b1", "b2"].first { "\(net.backend($0).ipv4):8080" == endpoint }
                let reply = try await net.requests(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp, sourcePorts: [sport]).replies()
                #expect(reply == [name].compactMap { $0 }, "\(sport): predicted \(endpoint)")
                answered.formUnion(reply)
            }
            #expect(answered == ["b1", "b2"])
            try await plane.kubectl(["delete", "endpointslice", "web-1"])
            let result = try await Shell.run(explain + ["\(client):44000", "10.96.0.10:80"], in: net.node("n1").namespace)
            let e = try JSONDecoder().decode(Explanation.self, from: Data(result.stdout.utf8))
            #expect(e.verdict.kind == .reject, "\(e.text)")
        }
    }
}
