import NetworkTypes
import NFTModel
import SwitchboardTesting
import Testing

@testable import SwitchboardCore

// This file's cases are all about one UDP DNS Service: the shared builders with its defaults.
private func service(
    _ name: String = "dns", type: ServiceType = .clusterIP, ips: [String] = ["10.96.0.10"],
    ports: [ServicePort] = [ServicePort(name: "dns", protocol: .udp, port: 53, nodePort: 30053)],
    externalIPs: [String] = [], ingress: [String] = []
) -> KubeObject {
    .service(
        name, type: type, ips: ips, ports: ports, externalIPs: externalIPs,
        ingress: ingress.map { LoadBalancerIngress(ip: .parsing($0)) })
}

private func slice(
    name: String = "dns-1", service: String = "dns", family: EndpointAddressType = .ipv4,
    proto: L4Protocol = .udp, port: Int = 5353, _ endpoints: [Endpoint]
) -> KubeObject {
    .slice(name, service: service, family: family, ports: [EndpointPort(name: "dns", protocol: proto, port: port)],
           endpoints: endpoints)
}

private func ep(_ addr: String, ready: Bool = true, serving: Bool? = nil, terminating: Bool? = nil) -> Endpoint {
    .at(addr, ready: ready, serving: serving, terminating: terminating)
}

private let tcp = [ServicePort(name: "dns", protocol: .tcp, port: 53)]
private let sctp = [ServicePort(name: "dns", protocol: .sctp, port: 53)]

/// One sync: the cluster before and after, and the deletions kube-proxy would make (as `conntrack` options).
struct ConntrackCase: CustomTestStringConvertible, Sendable {
    var name: String
    var old: [KubeObject]
    var new: [KubeObject]
    var filters: [String]
    /// Whether the compiled rulesets say the same (the compiler does not yet fall back to terminating
    /// endpoints, so the rules hold none where the cleanup still counts them usable).
    var compiledAlike = true
    var testDescription: String { name }
}

private let cases: [ConntrackCase] = [
    .init(name: "nothing changed", old: [service(), slice([ep("10.244.1.2")])],
          new: [service(), slice([ep("10.244.1.2")])], filters: []),
    .init(name: "endpoint removed", old: [service(), slice([ep("10.244.1.2"), ep("10.244.1.3")])],
          new: [service(), slice([ep("10.244.1.2")])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.3"]),
    .init(name: "endpoint replaced", old: [service(), slice([ep("10.244.1.2")])],
          new: [service(), slice([ep("10.244.1.3")])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2"]),
    .init(name: "endpoint's target port changed", old: [service(), slice(port: 5353, [ep("10.244.1.2")])],
          new: [service(), slice(port: 5354, [ep("10.244.1.2")])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2"]),
    .init(name: "endpoint no longer ready", old: [service(), slice([ep("10.244.1.2"), ep("10.244.1.3")])],
          new: [service(), slice([ep("10.244.1.2"), ep("10.244.1.3", ready: false)])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.3"]),
    .init(name: "no endpoint ready: serving and terminating ones stay usable (KEP-1669)",
          old: [service(), slice([ep("10.244.1.2")])],
          new: [service(), slice([ep("10.244.1.2", ready: false, serving: true, terminating: true)])], filters: [],
          compiledAlike: false),
    .init(name: "none → some", old: [service(), slice([])], new: [service(), slice([ep("10.244.1.2")])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53"]),
    .init(name: "new Service with endpoints", old: [], new: [service(), slice([ep("10.244.1.2")])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53"]),
    .init(name: "some → none", old: [service(), slice([ep("10.244.1.2")])], new: [service(), slice([])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2"]),
    .init(name: "Service deleted", old: [service(), slice([ep("10.244.1.2")])], new: [],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2"]),
    .init(name: "TCP is never touched", old: [service(ports: tcp), slice(proto: .tcp, [ep("10.244.1.2")])],
          new: [service(ports: tcp), slice(proto: .tcp, [ep("10.244.1.3")])], filters: []),
    .init(name: "TCP none → some is not touched either", old: [service(ports: tcp)],
          new: [service(ports: tcp), slice(proto: .tcp, [ep("10.244.1.3")])], filters: []),
    .init(name: "SCTP", old: [service(ports: sctp), slice(proto: .sctp, [ep("10.244.1.2")])],
          new: [service(ports: sctp), slice(proto: .sctp, [ep("10.244.1.3")])],
          filters: ["-f ipv4 -p sctp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2"]),
    .init(name: "node port: endpoint replaced", old: [service(type: .nodePort), slice([ep("10.244.1.2")])],
          new: [service(type: .nodePort), slice([ep("10.244.1.3")])],
          filters: ["-f ipv4 -p udp --dport 30053 --reply-src 10.244.1.2",
                    "-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2"]),
    .init(name: "node port: none → some", old: [service(type: .nodePort), slice([])],
          new: [service(type: .nodePort), slice([ep("10.244.1.2")])],
          filters: ["-f ipv4 -p udp --dport 30053", "-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53"]),
    .init(name: "a ClusterIP Service's nodePort field opens no node port",
          old: [service(type: .clusterIP), slice([])], new: [service(type: .clusterIP), slice([ep("10.244.1.2")])],
          filters: ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53"]),
    .init(name: "external IP and load-balancer IP", old: [
            service(type: .loadBalancer, externalIPs: ["192.0.2.10"], ingress: ["198.51.100.7"]),
            slice([ep("10.244.1.2")]),
          ], new: [
            service(type: .loadBalancer, externalIPs: ["192.0.2.10"], ingress: ["198.51.100.7"]),
            slice([ep("10.244.1.3")]),
          ], filters: [
            "-f ipv4 -p udp --dport 30053 --reply-src 10.244.1.2",
            "-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2",
            "-f ipv4 -p udp --orig-dst 192.0.2.10 --dport 53 --reply-src 10.244.1.2",
            "-f ipv4 -p udp --orig-dst 198.51.100.7 --dport 53 --reply-src 10.244.1.2",
          ]),
    .init(name: "dual-stack: only the IPv6 endpoint changed", old: [
            service(ips: ["10.96.0.10", "fd00:10:96::10"]), slice([ep("10.244.1.2")]),
            slice(name: "dns-6", family: .ipv6, [ep("fd00:10:244:1::2")]),
          ], new: [
            service(ips: ["10.96.0.10", "fd00:10:96::10"]), slice([ep("10.244.1.2")]),
            slice(name: "dns-6", family: .ipv6, [ep("fd00:10:244:1::3")]),
          ], filters: ["-f ipv6 -p udp --orig-dst fd00:10:96::10 --dport 53 --reply-src fd00:10:244:1::2"]),
    .init(name: "dual-stack: IPv6 none → some", old: [
            service(ips: ["10.96.0.10", "fd00:10:96::10"]), slice([ep("10.244.1.2")]),
          ], new: [
            service(ips: ["10.96.0.10", "fd00:10:96::10"]), slice([ep("10.244.1.2")]),
            slice(name: "dns-6", family: .ipv6, [ep("fd00:10:244:1::3")]),
          ], filters: ["-f ipv6 -p udp --orig-dst fd00:10:96::10 --dport 53"]),
]

@Suite struct ConntrackSummaryTests {
    @Test(arguments: cases)
    func staleFilters(_ c: ConntrackCase) {
        let old = ConntrackSummary(ClusterState(c.old))
        let new = ConntrackSummary(ClusterState(c.new))
        #expect(ConntrackSummary.staleFilters(from: old, to: new).map(\.description) == c.filters)
    }

    /// `switchboard apply` has the kernel's ruleset, not the previous cluster: summaries of the compiled
    /// rulesets give the same deletions.
    @Test(arguments: cases.filter(\.compiledAlike))
    func staleFiltersFromCompiledRulesets(_ c: ConntrackCase) {
        let node = NodeContext(nodeName: "n1")
        let old = ConntrackSummary(ruleset: compile(ClusterState(c.old), for: node).ruleset, node: node)
        let new = ConntrackSummary(ruleset: compile(ClusterState(c.new), for: node).ruleset, node: node)
        #expect(ConntrackSummary.staleFilters(from: old, to: new).map(\.description) == c.filters)
    }

    /// The agent passes the changed Services only: the rest of the summary is kept, untouched.
    @Test func restrictedAndReplacedByService() {
        let dns = ObjectRef(namespace: "default", name: "dns")
        let other = ObjectRef(namespace: "default", name: "other")
        let before = ClusterState([service(), slice([ep("10.244.1.2")]),
                                   service("other", ips: ["10.96.0.11"]), slice(name: "other-1", service: "other", [ep("10.244.1.9")])])
        var summary = ConntrackSummary(before)
        let after = ClusterState([service(), slice([ep("10.244.1.3")]),
                                  service("other", ips: ["10.96.0.11"]), slice(name: "other-1", service: "other", [])])
        let fresh = ConntrackSummary(after, services: [dns])
        let filters = ConntrackSummary.staleFilters(from: summary.restricted(to: [dns]), to: fresh)
        #expect(filters.map(\.description) == ["-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.1.2"])
        summary.replace([dns], with: fresh)
        #expect(summary == ConntrackSummary(ClusterState([service(), slice([ep("10.244.1.3")]),
                                                          service("other", ips: ["10.96.0.11"]),
                                                          slice(name: "other-1", service: "other", [ep("10.244.1.9")])])))
        #expect(summary.ports.keys.contains { $0.service == other })
    }
}
