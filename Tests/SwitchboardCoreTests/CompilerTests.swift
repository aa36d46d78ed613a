import Foundation
import NetworkTypes
import NFTModel
import SwitchboardTesting
import Testing

@testable import SwitchboardCore

private let v4 = TableID(.ip, "switchboard")
private let v6 = TableID(.ip6, "switchboard")

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func cidr(_ s: String) -> CIDR { CIDR(s)! }

private let node = KubeObject.node(Node(name: "n1", addresses: [
    NodeAddress(type: "InternalIP", address: "10.200.0.1"), NodeAddress(type: "InternalIP", address: "fd00:200::1"),
    NodeAddress(type: "Hostname", address: "n1"),
]))

private let context = NodeContext(nodeName: "n1", clusterCIDRs: [cidr("10.244.0.0/16"), cidr("fd00:10:244::/56")])

private func compiled(_ objects: [KubeObject], _ ctx: NodeContext = context) -> CompileResult {
    compile(ClusterState(objects), for: ctx)
}

/// Which dispatch set holds a VIP port (`service-ips-mM` or `no-endpoint-services`), if any.
private func dispatch(_ r: Ruleset, _ table: TableID = v4, vip: String) -> String? {
    r[table]?.sets.values.first { ($0.name.hasPrefix("service-ips-m") || $0.name == "no-endpoint-services")
        && $0.elements[vip] != nil }?.name
}

/// The same for a node port (`service-nodeports-mM` or `no-endpoint-nodeports`).
private func nodePortDispatch(_ r: Ruleset, _ key: String, _ table: TableID = v4) -> String? {
    r[table]?.sets.values.first { ($0.name.hasPrefix("service-nodeports-m") || $0.name == "no-endpoint-nodeports")
        && $0.elements[key] != nil }?.name
}

/// The Maglev table of an entry point, as endpoint (`addr . port`) → slot count.
private func backends(_ r: Ruleset, _ table: TableID = v4, map: String = "backends", entry: String) -> [String: Int] {
    var out: [String: Int] = [:]
    for (key, data) in r[table]!.sets[map]!.elements where key.hasPrefix(entry + " . ") { out[data, default: 0] += 1 }
    return out
}

@Suite struct CompilerTests {
    @Test func clusterIPWithTwoEndpoints() {
        let r = compiled([node, .service("web"), .slice("web-1", service: "web", endpoints: [.at("10.244.1.2"), .at("10.244.1.3")])]).ruleset
        let m = MaglevTable.size(forBackendCount: 2)
        #expect(dispatch(r, vip: "10.96.0.10 . tcp . 80") == "service-ips-m\(m)")
        let rules = r[v4]!.chains["maglev-m\(m)"]!.rules.map(\.text)
        #expect(rules == [
            "dnat ip to ip daddr . meta l4proto . th dport . jhash ip saddr . th sport mod \(m) seed 0x5b1e0c1d map @backends",
        ])
        #expect(r[v4]!.chains["services"]!.rules.contains("ip daddr @cluster-ips ip saddr != @pod-cidrs jump mark-for-masquerade"))
        #expect(r[v4]!.chains["services"]!.rules.contains("ip daddr . meta l4proto . th dport @service-ips-m\(m) goto maglev-m\(m)"))
        #expect(r[v4]!.sets["pod-cidrs"]!.elements == ["10.244.0.0/16": ""])
        let b = backends(r, entry: "10.96.0.10 . tcp . 80")
        #expect(Set(b.keys) == ["10.244.1.2 . 8080", "10.244.1.3 . 8080"])
        #expect(b.values.reduce(0, +) == m)
        // The slots are the Maglev table's, slot by slot.
        let table = MaglevTable(backends: ["10.244.1.2:8080", "10.244.1.3:8080"], size: m)
        for slot in 0..<m {
            let want = table.backends[table.slots[slot]].replacingOccurrences(of: ":", with: " . ")
            #expect(r[v4]!.sets["backends"]!.elements["10.96.0.10 . tcp . 80 . \(slot)"] == want)
        }
        #expect(r[v4]!.sets["external-ips"]!.elements.isEmpty)
        #expect(r[v4]!.sets["no-endpoint-services"]!.elements.isEmpty)
        #expect(r[v4]!.sets["cluster-ips"]!.elements == ["10.96.0.10": ""])
        #expect(r[v4]!.chains["endpoints-check"]!.rules.last == "ip daddr @cluster-ips reject")
        // The IPv4-only Service leaves the IPv6 table with its skeleton only.
        #expect(r[v6]!.sets["backends"]!.elements.isEmpty)
        #expect(r[v6] == compiled([node]).ruleset[v6])
    }

    @Test func everyEndpointIsInTheHairpinSetOnce() {
        let r = compiled([
            node, .service("web"), .slice("web-1", service: "web", endpoints: [.at("10.244.1.2")]),
            .service("web2", ips: ["10.96.0.11"]), .slice("web2-1", service: "web2", endpoints: [.at("10.244.1.2"), .at("10.244.1.3")]),
        ]).ruleset
        #expect(r[v4]!.sets["hairpin"]!.elements == ["10.244.1.2 . 10.244.1.2": "", "10.244.1.3 . 10.244.1.3": ""])
        #expect(r[v4]!.chains["nat-postrouting"]!.rules.first == "ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade")
    }

    @Test func namedTargetPortResolvesPerSlice() {
        let r = compiled([
            node, .service("web", ports: [ServicePort(name: "http", port: 80, targetPort: .name("web"))]),
            .slice("web-a", service: "web", ports: [EndpointPort(name: "http", port: 8080)], endpoints: [.at("10.244.1.2")]),
            .slice("web-b", service: "web", ports: [EndpointPort(name: "http", port: 9090)], endpoints: [.at("10.244.1.3")]),
        ]).ruleset
        #expect(Set(backends(r, entry: "10.96.0.10 . tcp . 80").keys) == ["10.244.1.2 . 8080", "10.244.1.3 . 9090"])
    }

    @Test func multiPortServiceMatchesSlicePortsByName() {
        let r = compiled([
            node,
            .service("multi", ports: [ServicePort(name: "http", port: 80), ServicePort(name: "dns", protocol: .udp, port: 53)]),
            .slice("multi-1", service: "multi", ports: [EndpointPort(name: "http", port: 8080),
                                                       EndpointPort(name: "dns", protocol: .udp, port: 5353)],
                  endpoints: [.at("10.244.1.2")]),
        ]).ruleset
        #expect(Set(backends(r, entry: "10.96.0.10 . tcp . 80").keys) == ["10.244.1.2 . 8080"])
        #expect(Set(backends(r, entry: "10.96.0.10 . udp . 53").keys) == ["10.244.1.2 . 5353"])
    }

    @Test func noEndpointsRejects() {
        let r = compiled([node, .service("empty"), .slice("e-1", service: "empty", endpoints: [.at("10.244.1.9", ready: false)])]).ruleset
        #expect(r[v4]!.sets["backends"]!.elements.isEmpty)
        #expect(
            r[v4]!.sets["no-endpoint-services"]!.elements
                == SetElements(
                    ["10.96.0.10 . tcp . 80": ""], comments: ["10.96.0.10 . tcp . 80": "default/empty:http"]))
        #expect(r[v4]!.chains["endpoints-check"]!.rules.first == "ip daddr . meta l4proto . th dport @no-endpoint-services reject")
    }

    @Test(arguments: [(Bool?.none, true), (true, true), (false, false)])
    func readiness(ready: Bool?, eligible: Bool) {
        let r = compiled([node, .service("web"), .slice("w", service: "web", endpoints: [.at("10.244.1.2", ready: ready)])]).ruleset
        #expect(dispatch(r, vip: "10.96.0.10 . tcp . 80") == (eligible ? "service-ips-m13" : "no-endpoint-services"))
    }

    @Test func nodePortOnInternalIPs() {
        let r = compiled([
            node, .service("np", type: .nodePort, ports: [ServicePort(name: "http", port: 80, nodePort: 30080)]),
            .slice("np-1", service: "np", endpoints: [.at("10.244.1.2")]),
        ]).ruleset
        #expect(nodePortDispatch(r, "tcp . 30080") == "service-nodeports-m13")
        #expect(backends(r, map: "nodeport-backends", entry: "tcp . 30080") == ["10.244.1.2 . 8080": 13])
        #expect(r[v4]!.sets["external-nodeports"]!.elements.keys.sorted() == ["tcp . 30080"])
        #expect(r[v4]!.chains["nodeport-maglev-m13"]!.rules == [
            "dnat ip to meta l4proto . th dport . jhash ip saddr . th sport mod 13 seed 0x5b1e0c1d map @nodeport-backends",
        ])
        #expect(r[v4]!.sets["nodeport-addresses"]!.elements == ["10.200.0.1": ""])
        #expect(r[v6]!.sets["nodeport-addresses"]!.elements == ["fd00:200::1": ""])
    }

    @Test func nodePortAddressesFlag() {
        var ctx = context
        ctx.nodePortAddresses = [cidr("10.200.0.0/24"), cidr("192.168.7.7/32")]
        let r = compiled([node], ctx).ruleset
        #expect(r[v4]!.sets["nodeport-addresses"]!.elements == ["10.200.0.0/24": "", "192.168.7.7": ""])
        #expect(r[v6]!.sets["nodeport-addresses"]!.elements.isEmpty)
    }

    @Test func loadBalancerAndExternalIPs() {
        let r = compiled([
            node,
            .service("lb", type: .loadBalancer, ports: [ServicePort(name: "http", port: 80, nodePort: 31000)],
                    externalIPs: ["192.0.2.10"],
                    ingress: [LoadBalancerIngress(ip: ip("203.0.113.5")),
                              LoadBalancerIngress(ip: ip("203.0.113.6"), ipMode: .vip),
                              LoadBalancerIngress(ip: ip("203.0.113.7"), ipMode: .proxy),
                              LoadBalancerIngress(hostname: "lb.example.com")]),
            .slice("lb-1", service: "lb", endpoints: [.at("10.244.1.2")]),
        ]).ruleset
        let elements = r[v4]!.sets["service-ips-m13"]!.elements
        #expect(Set(elements.keys) == ["10.96.0.10 . tcp . 80", "192.0.2.10 . tcp . 80", "203.0.113.5 . tcp . 80",
                                      "203.0.113.6 . tcp . 80"])
        // External and LB VIPs are marked for masquerade; the cluster IP is not.
        #expect(Set(r[v4]!.sets["external-ips"]!.elements.keys) == ["192.0.2.10 . tcp . 80", "203.0.113.5 . tcp . 80",
                                                                   "203.0.113.6 . tcp . 80"])
        for vip in elements.keys { #expect(backends(r, entry: vip) == ["10.244.1.2 . 8080": 13]) }
        #expect(r[v4]!.sets["service-nodeports-m13"]!.elements.keys.sorted() == ["tcp . 31000"])
    }

    @Test func ipv6AndDualStack() {
        let r = compiled([
            node, .service("dual", ips: ["10.96.0.10", "fd00:10:96::a"]),
            .slice("dual-4", service: "dual", endpoints: [.at("10.244.1.2")]),
            .slice("dual-6", service: "dual", family: .ipv6, endpoints: [.at("fd00:10:244:1::2")]),
        ]).ruleset
        #expect(dispatch(r, v6, vip: "fd00:10:96::a . tcp . 80") == "service-ips-m13")
        #expect(Set(backends(r, v6, entry: "fd00:10:96::a . tcp . 80").keys) == ["fd00:10:244:1::2 . 8080"])
        #expect(r[v6]!.chains["services"]!.rules.contains("ip6 daddr @cluster-ips ip6 saddr != @pod-cidrs jump mark-for-masquerade"))
        #expect(r[v6]!.chains["maglev-m13"]!.rules == [
            "dnat ip6 to ip6 daddr . meta l4proto . th dport . jhash ip6 saddr . th sport mod 13 seed 0x5b1e0c1d map @backends",
        ])
        #expect(r[v6]!.sets["pod-cidrs"]!.elements == ["fd00:10:244::/56": ""])
        #expect(dispatch(r, vip: "10.96.0.10 . tcp . 80") == "service-ips-m13")
    }

    @Test(arguments: [
        ("externalname", ServiceType.externalName, false, [String: String]()),
        ("headless", .clusterIP, true, [:]),
        ("other-proxy", .clusterIP, false, ["service.kubernetes.io/service-proxy-name": "foo"]),
        ("headless-label", .clusterIP, false, ["service.kubernetes.io/headless": ""]),
    ])
    func servicesThatProduceNothing(name: String, type: ServiceType, headless: Bool, labels: [String: String]) {
        let r = compiled([node, .service(name, type: type, labels: labels, headless: headless),
                          .slice("\(name)-1", service: name, endpoints: [.at("10.244.1.2")])]).ruleset
        #expect(r == compiled([node]).ruleset)
    }

    @Test func masqueradeAll() {
        var ctx = context
        ctx.masqueradeAll = true
        let r = compiled([node, .service("web"), .slice("w", service: "web", endpoints: [.at("10.244.1.2")])], ctx).ruleset
        #expect(r[v4]!.chains["services"]!.rules.contains("ip daddr @cluster-ips jump mark-for-masquerade"))
    }

    @Test func withoutClusterCIDRNoClusterIPMasquerade() {
        let ctx = NodeContext(nodeName: "n1")
        let r = compiled([node, .service("web"), .slice("w", service: "web", endpoints: [.at("10.244.1.2")])], ctx).ruleset
        #expect(r[v4]!.chains["maglev-m13"]!.rules.count == 1)
        #expect(!r[v4]!.chains["services"]!.rules.contains { $0.text.contains("@cluster-ips") })
    }

    @Test func conflictingNodePortIsReportedAndFirstServiceKeepsIt() {
        let result = compiled([
            node,
            .service("a", type: .nodePort, ips: ["10.96.0.1"], ports: [ServicePort(name: "p", port: 80, nodePort: 30001)]),
            .service("b", type: .nodePort, ips: ["10.96.0.2"], ports: [ServicePort(name: "p", port: 80, nodePort: 30001)]),
        ])
        #expect(result.ruleset[v4]!.sets["no-endpoint-nodeports"]!.elements.count == 1)
        #expect(result.diagnostics.contains { $0.object == "Service default/b" && $0.message.contains("default/a") })
    }

    @Test func deterministicWhateverTheInputOrder() {
        let objects = [
            node, .service("a", ips: ["10.96.0.1"]), .service("b", ips: ["10.96.0.2"]),
            .slice("a-1", service: "a", endpoints: [.at("10.244.1.2"), .at("10.244.1.3"), .at("10.244.1.4")]),
            .slice("a-2", service: "a", endpoints: [.at("10.244.2.2")]),
            .slice("b-1", service: "b", endpoints: [.at("10.244.1.9")]),
        ]
        let first = compiled(objects).ruleset
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            let again = compiled(objects.shuffled(using: &rng)).ruleset
            #expect(again == first)
            #expect(again.script == first.script)
        }
    }

    @Test func removingAPortRemovesOnlyItsRules() {
        let ports = [ServicePort(name: "a", port: 80), ServicePort(name: "b", port: 81)]
        let eps = KubeObject.slice(
            "m-1", service: "m", ports: [EndpointPort(name: "a", port: 8080), EndpointPort(name: "b", port: 8081)],
            endpoints: [.at("10.244.1.2")])
        let before = compiled([node, .service("m", ports: ports), eps]).ruleset
        let after = compiled([node, .service("m", ports: [ports[0]]), eps]).ruleset
        #expect(before[v4]!.sets["service-ips-m13"]!.elements.count == 2)
        #expect(after[v4]!.sets["service-ips-m13"]!.elements.keys.sorted() == ["10.96.0.10 . tcp . 80"])
        let tx = after.transaction(from: before)
        // Only elements change: the port's dispatch entry and its 13 slots.
        #expect(tx.commands.count == 2)
        #expect(tx.commands.allSatisfy {
            if case .deleteElements = $0 { return true } else { return false }
        })
        #expect(tx.elementChanges == 14)
    }

    /// Names from the API reach nft text only through the escaping functions.
    @Test func hostileNamesRenderHarmlessly() {
        let bad = #"x"; flush ruleset; ""#
        let r = compiled([node, .service(bad, namespace: "ns;drop"), .slice("s", service: bad, namespace: "ns;drop", endpoints: [.at("10.244.1.2")])]).ruleset
        for table in r.tables.values {
            for name in table.chains.keys { #expect(isValidNFTIdentifier(name), "\(name)") }
            for name in table.sets.keys { #expect(isValidNFTIdentifier(name), "\(name)") }
        }
        #expect(!r.script.contains("; flush ruleset; \""))
        #expect(!r.script.contains(#"x""#))
    }

    @Test(arguments: [L4Protocol.tcp, .udp, .sctp])
    func protocols(proto: L4Protocol) {
        let r = compiled([node, .service("p", ports: [ServicePort(name: "x", protocol: proto, port: 99)]),
                          .slice("p-1", service: "p", ports: [EndpointPort(name: "x", protocol: proto, port: 9999)],
                                endpoints: [.at("10.244.1.2")])]).ruleset
        #expect(dispatch(r, vip: "10.96.0.10 . \(proto.nftName) . 99") == "service-ips-m13")
        #expect(backends(r, entry: "10.96.0.10 . \(proto.nftName) . 99") == ["10.244.1.2 . 9999": 13])
    }

    @Test func singleStackServiceHasNoRulesInTheOtherFamily() {
        let r = compiled([
            node, .service("np", type: .nodePort, ports: [ServicePort(name: "http", port: 80, nodePort: 30080)],
                          externalIPs: ["2001:db8::5"]),
        ]).ruleset
        #expect(r[v6] == compiled([node]).ruleset[v6], "only the skeleton in the IPv6 table")
        #expect(r[v4]!.sets["no-endpoint-nodeports"]!.elements.keys.sorted() == ["tcp . 30080"])
    }

    @Test func serviceWithoutClusterIPIsSkipped() {
        let result = compiled([node, .service("pending", ips: [])])
        #expect(result.ruleset == compiled([node]).ruleset)
        #expect(result.diagnostics.contains { $0.object == "Service default/pending" && $0.field == "spec.clusterIPs" })
    }

    /// Overlapping prefixes cannot share a named interval set; adjacent ones must stay apart (an
    /// anonymous set would merge them and list back differently).
    @Test func clusterAndNodePortCIDRsAreNormalised() {
        var ctx = context
        ctx.clusterCIDRs = [cidr("10.244.0.0/16"), cidr("10.245.0.0/16"), cidr("10.244.3.0/24"), cidr("10.244.0.0/16")]
        ctx.nodePortAddresses = [cidr("10.200.0.0/16"), cidr("10.200.0.1/32")]
        let r = compiled([node], ctx).ruleset
        #expect(r[v4]!.sets["pod-cidrs"]!.elements == ["10.244.0.0/16": "", "10.245.0.0/16": ""])
        #expect(r[v4]!.sets["nodeport-addresses"]!.elements == ["10.200.0.0/16": ""])
    }

    @Test func duplicateInternalIPsDoNotCrash() {
        let twice = KubeObject.node(Node(name: "n1", addresses: [
            NodeAddress(type: "InternalIP", address: "10.200.0.1"), NodeAddress(type: "InternalIP", address: "10.200.0.1"),
            NodeAddress(type: "InternalIP", address: "fd00:200::1"), NodeAddress(type: "InternalIP", address: "fd00:200:0::1"),
        ]))
        let r = compiled([twice]).ruleset
        #expect(r[v4]!.sets["nodeport-addresses"]!.elements == ["10.200.0.1": ""])
        #expect(r[v6]!.sets["nodeport-addresses"]!.elements == ["fd00:200::1": ""])
    }

    /// The chains and sets are the same whatever the cluster: Services are elements only.
    @Test func theShapeIsFixed() {
        let empty = compiled([node]).ruleset
        let full = compiled([
            node, .service("a", type: .loadBalancer, ips: ["10.96.0.1"], ports: [ServicePort(name: "p", port: 80, nodePort: 30001)],
                          ingress: [LoadBalancerIngress(ip: ip("203.0.113.5"))]),
            .slice("a-1", service: "a", ports: [EndpointPort(name: "p", port: 8080)],
                  endpoints: (2...40).map { .at("10.244.1.\($0)") }),
            .service("b", ips: ["10.96.0.2", "fd00:10:96::2"]),
        ]).ruleset
        for id in [v4, v6] {
            #expect(Set(full[id]!.chains.keys) == Set(empty[id]!.chains.keys))
            #expect(full[id]!.chains == empty[id]!.chains)
            #expect(Set(full[id]!.sets.keys) == Set(empty[id]!.sets.keys))
            for (name, set) in full[id]!.sets { #expect(set.declarationOnly == empty[id]!.sets[name]!.declarationOnly) }
        }
        #expect(dispatch(full, vip: "10.96.0.1 . tcp . 80") == "service-ips-m\(MaglevTable.size(forBackendCount: 39))")
    }
}
