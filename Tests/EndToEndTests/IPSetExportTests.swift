import Foundation
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// `--ipset-export` in a node namespace: kube-proxy's IPVS-mode sets as `ipset list` shows them, their
/// build-then-swap updates, and an iptables firewall written against them carrying real traffic.
@Suite(
    "End to end: ipset export",
    .serialized,
    .enabled(if: SB.available && Shell.which("ipset") != nil && Shell.which("iptables") != nil,
             "needs root, `ip netns`, the switchboard binary, ipset and iptables"),
    .exclusive
)
struct IPSetExportTests {
    static let topology = Topology.Builder().node("n1").backend("b1", on: "n1").client("c1", attachedTo: "n1")

    /// A dual-stack LoadBalancer with source ranges, externalTrafficPolicy Local, an external IP, and
    /// TCP / UDP / SCTP node ports, plus a local endpoint.
    static func everything(_ net: Topology) -> [String] {
        [
            SB.nodeManifest(net),
            """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec:
              type: LoadBalancer
              clusterIP: "10.96.0.10"
              clusterIPs: ["10.96.0.10", "fd00:10:96::a"]
              externalTrafficPolicy: Local
              loadBalancerSourceRanges: ["10.200.0.0/24", "192.0.2.0/24"]
              externalIPs: ["10.202.0.10"]
              ports:
              - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
              - {name: dns, protocol: UDP, port: 53, targetPort: 5353, nodePort: 30053}
              - {name: sig, protocol: SCTP, port: 9000, targetPort: 9000, nodePort: 30900}
            status:
              loadBalancer:
                ingress: [{ip: "10.201.0.10"}, {ip: "10.201.0.99", ipMode: Proxy}]
            """,
            """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            ports: [{name: http, protocol: TCP, port: 8080}]
            endpoints:
            - addresses: ["\(net.backend("b1").ipv4)"]
              nodeName: n1
            """,
        ]
    }

    static func clusterIPService(_ name: String, _ ip: String, _ net: Topology) -> [String] {
        [
            Manifest.service(name, clusterIPs: [ip], ports: [.init(name: "http", port: 80, targetPort: "8080")]),
            Manifest.slice("\(name)-1", service: name, ports: [("http", "TCP", 8080)],
                           endpoints: [.init(address: net.backend("b1").ipv4, nodeName: "n1")]),
        ]
    }

    static func export(_ net: Topology, _ manifests: [String]) async throws {
        let result = try await SB.run("apply", net, manifests: manifests, extra: ["--ipset-export"])
        #expect(result.status.code == 0, "apply --ipset-export failed: \(result.stderr)")
    }

    /// `ipset list NAME` in the node: the members, sorted.
    static func members(_ net: Topology, _ set: String) async throws -> [String] {
        let out = try await Shell.run(["ipset", "list", set], in: net.node("n1").namespace).checked().stdout
        guard let start = out.range(of: "Members:\n") else { return [] }
        return out[start.upperBound...].split(separator: "\n").map(String.init).sorted()
    }

    /// A header field of `ipset list -t NAME` (`Header`, `References`, ...).
    static func header(_ net: Topology, _ set: String, _ field: String) async throws -> String {
        let out = try await Shell.run(["ipset", "list", "-t", set], in: net.node("n1").namespace).checked().stdout
        return out.split(separator: "\n").first { $0.hasPrefix("\(field): ") }.map { String($0.dropFirst(field.count + 2)) } ?? ""
    }

    @Test("apply --ipset-export writes kube-proxy's sets, both families, as ipset lists them")
    func exportsSets() async throws {
        try await withTopology(Self.topology) { net in
            try await Self.export(net, Self.everything(net))
            let names = try await Shell.run(["ipset", "list", "-n"], in: net.node("n1").namespace).checked().stdout
            #expect(names.split(separator: "\n").count == 30, "\(names)")
            let expected: [String: [String]] = [
                "KUBE-CLUSTER-IP": ["10.96.0.10,sctp:9000", "10.96.0.10,tcp:80", "10.96.0.10,udp:53"],
                "KUBE-6-CLUSTER-IP": ["fd00:10:96::a,sctp:9000", "fd00:10:96::a,tcp:80", "fd00:10:96::a,udp:53"],
                "KUBE-EXTERNAL-IP": [],
                "KUBE-EXTERNAL-IP-LOCAL": ["10.202.0.10,sctp:9000", "10.202.0.10,tcp:80", "10.202.0.10,udp:53"],
                "KUBE-LOAD-BALANCER": ["10.201.0.10,sctp:9000", "10.201.0.10,tcp:80", "10.201.0.10,udp:53"],
                "KUBE-LOAD-BALANCER-LOCAL": ["10.201.0.10,sctp:9000", "10.201.0.10,tcp:80", "10.201.0.10,udp:53"],
                "KUBE-LOAD-BALANCER-FW": ["10.201.0.10,sctp:9000", "10.201.0.10,tcp:80", "10.201.0.10,udp:53"],
                "KUBE-LOAD-BALANCER-SOURCE-CIDR": [
                    "10.201.0.10,sctp:9000,10.200.0.0/24", "10.201.0.10,sctp:9000,192.0.2.0/24",
                    "10.201.0.10,tcp:80,10.200.0.0/24", "10.201.0.10,tcp:80,192.0.2.0/24",
                    "10.201.0.10,udp:53,10.200.0.0/24", "10.201.0.10,udp:53,192.0.2.0/24",
                ],
                "KUBE-LOAD-BALANCER-SOURCE-IP": [
                    "10.201.0.10,sctp:9000,10.201.0.10", "10.201.0.10,tcp:80,10.201.0.10", "10.201.0.10,udp:53,10.201.0.10",
                ],
                "KUBE-NODE-PORT-TCP": ["30080"], "KUBE-NODE-PORT-LOCAL-TCP": ["30080"],
                "KUBE-NODE-PORT-UDP": ["30053"], "KUBE-NODE-PORT-LOCAL-UDP": ["30053"],
                "KUBE-NODE-PORT-SCTP-HASH": ["10.200.0.1,sctp:30900"],
                "KUBE-NODE-PORT-LOCAL-SCTP-HASH": ["10.200.0.1,sctp:30900"],
                "KUBE-6-NODE-PORT-TCP": ["30080"], "KUBE-6-NODE-PORT-SCTP-HASH": ["fd00:200::1,sctp:30900"],
                "KUBE-6-LOAD-BALANCER": [], "KUBE-6-LOAD-BALANCER-SOURCE-CID": [],
                "KUBE-LOOP-BACK": ["10.244.1.2,tcp:8080,10.244.1.2"],
            ]
            for (set, entries) in expected.sorted(by: { $0.key < $1.key }) {
                #expect(try await Self.members(net, set) == entries, "\(set)")
            }
            #expect(try await Self.header(net, "KUBE-6-CLUSTER-IP", "Header").hasPrefix("family inet6 hashsize 1024 maxelem 65536"))
            #expect(try await Self.header(net, "KUBE-NODE-PORT-TCP", "Header") == "range 0-65535")
            // Run again: nothing differs, nothing is rebuilt.
            let again = try await SB.run("apply", net, manifests: Self.everything(net), extra: ["--ipset-export"])
            #expect(again.stdout.contains("ipsets unchanged"), "\(again.stdout)")
        }
    }

    @Test("A changed set is rebuilt and swapped in; unchanged sets are not recreated; cleanup removes them")
    func swapsChangedSets() async throws {
        try await withTopology(Self.topology) { net in
            let before = Self.everything(net)
            try await Self.export(net, before)
            let clusterIPBefore = try await Self.members(net, "KUBE-CLUSTER-IP")
            // A hash set gets a random initval when created: a rebuilt set shows a new one.
            let clusterHeader = try await Self.header(net, "KUBE-CLUSTER-IP", "Header")
            let lbHeader = try await Self.header(net, "KUBE-LOAD-BALANCER", "Header")
            let result = try await SB.run(
                "apply", net, manifests: before + Self.clusterIPService("api", "10.96.0.20", net), extra: ["--ipset-export"])
            #expect(result.status.code == 0, "\(result.stderr)")
            #expect(result.stdout.contains("ipsets rebuilt: KUBE-CLUSTER-IP\n"), "\(result.stdout)")
            let clusterIPAfter = try await Self.members(net, "KUBE-CLUSTER-IP")
            #expect(clusterIPBefore == ["10.96.0.10,sctp:9000", "10.96.0.10,tcp:80", "10.96.0.10,udp:53"])
            #expect(clusterIPAfter == ["10.96.0.10,sctp:9000", "10.96.0.10,tcp:80", "10.96.0.10,udp:53", "10.96.0.20,tcp:80"])
            #expect(try await Self.header(net, "KUBE-CLUSTER-IP", "Header") != clusterHeader, "rebuilt and swapped")
            #expect(try await Self.header(net, "KUBE-LOAD-BALANCER", "Header") == lbHeader, "not touched")
            let names = try await Shell.run(["ipset", "list", "-n"], in: net.node("n1").namespace).checked().stdout
            #expect(!names.contains("-tmp"), "no temporary left: \(names)")

            let cleanup = try await Shell.run([SwitchboardBinary.path!, "cleanup"], in: net.node("n1").namespace)
            #expect(cleanup.status.code == 0, "\(cleanup.stderr)")
            let left = try await Shell.run(["ipset", "list", "-n"], in: net.node("n1").namespace).checked().stdout
            #expect(left.isEmpty, "\(left)")
        }
    }

    /// A firewall written for IPVS mode: new packets from the LAN to the service range pass only when they
    /// are in KUBE-CLUSTER-IP (matched before Switchboard's DNAT, in mangle PREROUTING).
    @Test("An iptables firewall matching KUBE-CLUSTER-IP passes service ports, drops others, follows new Services")
    func firewallCarriesTraffic() async throws {
        try await withTopology(Self.topology) { net in
            let ns = net.node("n1").namespace
            try await net.startServer(on: "b1", proto: .tcp, port: 8080)
            let web = [SB.nodeManifest(net)] + Self.clusterIPService("web", "10.96.0.10", net)
            try await Self.export(net, web)
            // Without the firewall, a cluster IP's unknown port is rejected by Switchboard.
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 81, proto: .tcp) == .failure(.refused))

            for rule in [
                ["-A", "PREROUTING", "-i", "eth0", "-m", "set", "--match-set", "KUBE-CLUSTER-IP", "dst,dst", "-j", "ACCEPT"],
                ["-A", "PREROUTING", "-i", "eth0", "-d", "10.96.0.0/16", "-j", "DROP"],
            ] {
                try await Shell.run(["iptables", "-t", "mangle"] + rule, in: ns).checked()
            }
            #expect(try await Self.header(net, "KUBE-CLUSTER-IP", "References") == "1")

            let timeout = Duration.milliseconds(700)
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp) == .success("b1"))
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 81, proto: .tcp, timeout: timeout)
                == .failure(.timeout), "a non-service port is dropped by the firewall")
            #expect(try await net.request(from: "c1", to: "10.96.0.11", port: 80, proto: .tcp, timeout: timeout)
                == .failure(.timeout), "not a Service yet")

            try await Self.export(net, web + Self.clusterIPService("api", "10.96.0.11", net))
            #expect(try await net.request(from: "c1", to: "10.96.0.11", port: 80, proto: .tcp) == .success("b1"))
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp) == .success("b1"))
            #expect(try await net.request(from: "c1", to: "10.96.0.10", port: 81, proto: .tcp, timeout: timeout)
                == .failure(.timeout))
            // The firewall rule follows the swapped set: it still references the live name.
            #expect(try await Self.header(net, "KUBE-CLUSTER-IP", "References") == "1")
        }
    }
}
