import NetworkTypes
import NFTModel
import SwitchboardTesting
import Testing

@testable import SwitchboardCore

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }

private let node = NodeContext(nodeName: "n1")
private let nodeObject = KubeObject.node(
    Node(name: "n1", addresses: [NodeAddress(type: "InternalIP", address: "10.200.0.1"),
                                 NodeAddress(type: "InternalIP", address: "fd00:200::1")]))

private func svc(
    _ name: String = "web", type: ServiceType = .clusterIP, ips: [String] = ["10.96.0.10"],
    ports: [ServicePort] = [ServicePort(name: "http", port: 80)], externalIPs: [String] = [],
    ingress: [LoadBalancerIngress] = [], sourceRanges: [String] = [], local: Bool = false,
    labels: [String: String] = [:], headless: Bool = false, externalName: Bool = false
) -> KubeObject {
    .service(
        name, type: externalName ? .externalName : type, ips: ips, ports: ports, externalIPs: externalIPs,
        ingress: ingress, sourceRanges: sourceRanges, externalPolicy: local ? .local : .cluster, labels: labels,
        headless: headless)
}

/// The non-empty sets, as `name: sorted entries`.
private func export(_ objects: [KubeObject], node context: NodeContext = node) -> [String: [String]] {
    var out: [String: [String]] = [:]
    for set in exportedIPSets(ClusterState([nodeObject] + objects), for: context) where !set.entries.isEmpty {
        out[set.name] = set.entries.sorted()
    }
    return out
}

@Suite("IPSetExport: kube-proxy's IPVS-mode sets from the cluster state")
struct IPSetExportTests {
    @Test("Every set of both families exists, with kube-proxy's names, types and families")
    func allSetsExist() {
        let sets = exportedIPSets(ClusterState(), for: node)
        #expect(sets.count == 30)
        #expect(sets.allSatisfy { $0.entries.isEmpty && $0.name.utf8.count <= 31 })
        let byName = Dictionary(uniqueKeysWithValues: sets.map { ($0.name, $0) })
        #expect(byName["KUBE-CLUSTER-IP"]?.header == IPSetHeader(typeName: "hash:ip,port", family: .inet))
        #expect(byName["KUBE-6-CLUSTER-IP"]?.header == IPSetHeader(typeName: "hash:ip,port", family: .inet6))
        #expect(byName["KUBE-NODE-PORT-TCP"]?.header == IPSetHeader(typeName: "bitmap:port", family: nil))
        #expect(byName["KUBE-LOOP-BACK"]?.type == .hashIPPortIP)
        #expect(byName["KUBE-LOAD-BALANCER-SOURCE-CIDR"]?.type == .hashIPPortNet)
        // kube-proxy's IPv6 names: KUBE-6-, cut to 31 characters.
        #expect(byName["KUBE-6-LOAD-BALANCER-SOURCE-CID"] != nil)
        #expect(byName["KUBE-6-NODE-PORT-LOCAL-SCTP-HAS"] != nil)
    }

    @Test(
        "Entries per kind of Service",
        arguments: [
            (
                "ClusterIP, TCP and UDP",
                [svc(ports: [ServicePort(name: "a", port: 80), ServicePort(name: "b", protocol: .udp, port: 53)])],
                ["KUBE-CLUSTER-IP": ["10.96.0.10,tcp:80", "10.96.0.10,udp:53"]]
            ),
            (
                "NodePort TCP / UDP in bitmaps, SCTP per node IP",
                [svc(type: .nodePort, ports: [
                    ServicePort(name: "a", port: 80, nodePort: 30080),
                    ServicePort(name: "b", protocol: .udp, port: 53, nodePort: 30053),
                    ServicePort(name: "c", protocol: .sctp, port: 9, nodePort: 30009),
                ])],
                [
                    "KUBE-CLUSTER-IP": ["10.96.0.10,sctp:9", "10.96.0.10,tcp:80", "10.96.0.10,udp:53"],
                    "KUBE-NODE-PORT-TCP": ["30080"], "KUBE-NODE-PORT-UDP": ["30053"],
                    "KUBE-NODE-PORT-SCTP-HASH": ["10.200.0.1,sctp:30009"],
                ]
            ),
            (
                "externalTrafficPolicy Local: external IP only in -LOCAL, node port in both",
                [svc(type: .nodePort, ports: [ServicePort(name: "a", port: 80, nodePort: 30080)],
                     externalIPs: ["10.202.0.10"], local: true)],
                [
                    "KUBE-CLUSTER-IP": ["10.96.0.10,tcp:80"], "KUBE-EXTERNAL-IP-LOCAL": ["10.202.0.10,tcp:80"],
                    "KUBE-NODE-PORT-TCP": ["30080"], "KUBE-NODE-PORT-LOCAL-TCP": ["30080"],
                ]
            ),
            (
                "LoadBalancer with source ranges; the node's IP in a range adds SOURCE-IP; Proxy ingress skipped",
                [svc(type: .loadBalancer, ports: [ServicePort(name: "a", port: 80, nodePort: 30080)],
                     ingress: [LoadBalancerIngress(ip: ip("10.201.0.10")),
                               LoadBalancerIngress(ip: ip("10.201.0.99"), ipMode: .proxy)],
                     sourceRanges: ["10.200.0.0/24", "192.0.2.0/24"])],
                [
                    "KUBE-CLUSTER-IP": ["10.96.0.10,tcp:80"], "KUBE-LOAD-BALANCER": ["10.201.0.10,tcp:80"],
                    "KUBE-LOAD-BALANCER-FW": ["10.201.0.10,tcp:80"],
                    "KUBE-LOAD-BALANCER-SOURCE-CIDR": ["10.201.0.10,tcp:80,10.200.0.0/24", "10.201.0.10,tcp:80,192.0.2.0/24"],
                    "KUBE-LOAD-BALANCER-SOURCE-IP": ["10.201.0.10,tcp:80,10.201.0.10"],
                    "KUBE-NODE-PORT-TCP": ["30080"],
                ]
            ),
            (
                "A source range 0.0.0.0/0 is written as two halves (and holds the node IP)",
                [svc(type: .loadBalancer, ports: [ServicePort(name: "a", port: 80)],
                     ingress: [LoadBalancerIngress(ip: ip("10.201.0.10"))], sourceRanges: ["0.0.0.0/0"], local: true)],
                [
                    "KUBE-CLUSTER-IP": ["10.96.0.10,tcp:80"], "KUBE-LOAD-BALANCER": ["10.201.0.10,tcp:80"],
                    "KUBE-LOAD-BALANCER-LOCAL": ["10.201.0.10,tcp:80"], "KUBE-LOAD-BALANCER-FW": ["10.201.0.10,tcp:80"],
                    "KUBE-LOAD-BALANCER-SOURCE-CIDR": ["10.201.0.10,tcp:80,0.0.0.0/1", "10.201.0.10,tcp:80,128.0.0.0/1"],
                    "KUBE-LOAD-BALANCER-SOURCE-IP": ["10.201.0.10,tcp:80,10.201.0.10"],
                ]
            ),
            (
                "Dual-stack: each family gets its own cluster IP and node port sets",
                [svc(type: .nodePort, ips: ["10.96.0.10", "fd00:10:96::a"],
                     ports: [ServicePort(name: "a", port: 80, nodePort: 30080)], externalIPs: ["10.202.0.10", "fd00:202::10"])],
                [
                    "KUBE-CLUSTER-IP": ["10.96.0.10,tcp:80"], "KUBE-6-CLUSTER-IP": ["fd00:10:96::a,tcp:80"],
                    "KUBE-EXTERNAL-IP": ["10.202.0.10,tcp:80"], "KUBE-6-EXTERNAL-IP": ["fd00:202::10,tcp:80"],
                    "KUBE-NODE-PORT-TCP": ["30080"], "KUBE-6-NODE-PORT-TCP": ["30080"],
                ]
            ),
            (
                "Single-stack IPv4: an IPv6 external IP is not served, so not exported",
                [svc(externalIPs: ["fd00:202::10"])],
                ["KUBE-CLUSTER-IP": ["10.96.0.10,tcp:80"]]
            ),
            ("ExternalName: nothing", [svc(externalName: true)], [:]),
            ("Headless: nothing", [svc(ips: [], headless: true)], [:]),
            ("Labelled for another proxy: nothing",
             [svc(labels: ["service.kubernetes.io/service-proxy-name": "other"])], [:]),
            ("No cluster IP yet: nothing", [svc(ips: [])], [:]),
        ] as [(String, [KubeObject], [String: [String]])])
    func entries(_ name: String, objects: [KubeObject], expected: [String: [String]]) {
        #expect(export(objects) == expected, "\(name)")
    }

    @Test("KUBE-LOOP-BACK holds this node's ready endpoints with their resolved target port")
    func loopBack() {
        let slice = KubeObject.endpointSlice(EndpointSlice(
            ref: ObjectRef(namespace: "default", name: "web-1"), serviceName: "web",
            ports: [EndpointPort(name: "http", port: 8080)],
            endpoints: [
                Endpoint(addresses: [ip("10.244.1.2")], nodeName: "n1"),
                Endpoint(addresses: [ip("10.244.1.3")], ready: false, nodeName: "n1"),
                Endpoint(addresses: [ip("10.244.2.2")], nodeName: "n2"),
            ]))
        #expect(export([svc(), slice])["KUBE-LOOP-BACK"] == ["10.244.1.2,tcp:8080,10.244.1.2"])
    }

    @Test("--nodeport-addresses limits the SCTP node port entries to node IPs inside them")
    func nodePortAddresses() {
        let objects = [svc(type: .nodePort, ports: [ServicePort(name: "c", protocol: .sctp, port: 9, nodePort: 30009)])]
        let limited = NodeContext(nodeName: "n1", nodePortAddresses: [CIDR("192.0.2.0/24")!])
        #expect(export(objects, node: limited)["KUBE-NODE-PORT-SCTP-HASH"] == nil)
        #expect(export(objects)["KUBE-NODE-PORT-SCTP-HASH"] == ["10.200.0.1,sctp:30009"])
    }

    @Test("Incremental updates: the changed sets are reported, and the result equals a fresh export")
    func incremental() {
        var state = ClusterState([nodeObject, svc("a"), svc("b", ips: ["10.96.0.11"])])
        var export = IPSetExport(node: node)
        export.update(state, changed: nil)
        // Two Services with the same entry: removing one keeps it.
        state.upsert(svc("c", ips: ["10.96.0.11"]))
        #expect(export.update(state, changed: [ObjectRef(namespace: "default", name: "c")]).isEmpty)
        state.remove(svc("b"))
        #expect(export.update(state, changed: [ObjectRef(namespace: "default", name: "b")]).isEmpty)
        state.upsert(svc("a", type: .nodePort, ports: [ServicePort(name: "http", port: 80, nodePort: 30080)]))
        #expect(export.update(state, changed: [ObjectRef(namespace: "default", name: "a")]) == ["KUBE-NODE-PORT-TCP"])
        state.remove(svc("c"))
        #expect(export.update(state, changed: [ObjectRef(namespace: "default", name: "c")]) == ["KUBE-CLUSTER-IP"])
        #expect(export.sets == exportedIPSets(state, for: node))
    }
}
