import Foundation
import NetworkTypes
import SwitchboardCore
import Testing

/// `Explainer` on small clusters written as manifests: each step's decision and its reason. That the
/// predictions match real packets is `ExplainTrafficTests` (EndToEndTests).
@Suite("Explain: one flow's way through the rules")
struct ExplainTests {
    static let manifests = """
        apiVersion: v1
        kind: Node
        metadata: {name: n1, labels: {topology.kubernetes.io/zone: a}}
        spec: {podCIDRs: ["10.244.1.0/24"]}
        status: {addresses: [{type: InternalIP, address: "10.200.0.1"}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: internal, namespace: ns}
        spec:
          clusterIP: 10.96.0.1
          clusterIPs: [10.96.0.1]
          internalTrafficPolicy: Local
          ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: internal-1, namespace: ns, labels: {kubernetes.io/service-name: internal}}
        addressType: IPv4
        ports: [{name: http, port: 8080, protocol: TCP}]
        endpoints:
        - {addresses: ["10.244.2.5"], nodeName: n2}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: a-first, namespace: ns}
        spec:
          clusterIP: 10.96.0.2
          clusterIPs: [10.96.0.2]
          externalIPs: [192.0.2.7]
          ports: [{port: 80, protocol: TCP, targetPort: 8080}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: a-first-1, namespace: ns, labels: {kubernetes.io/service-name: a-first}}
        addressType: IPv4
        ports: [{name: "", port: 8080, protocol: TCP}]
        endpoints:
        - {addresses: ["10.244.1.5"], nodeName: n1, zone: a, hints: {forZones: [{name: a}]}}
        - {addresses: ["10.244.2.5"], nodeName: n2, zone: b, hints: {forZones: [{name: b}]}}
        - {addresses: ["10.244.1.6"], nodeName: n1, conditions: {ready: false}}
        - {addresses: ["10.244.1.7"], nodeName: n1, conditions: {ready: false, serving: true, terminating: true}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: b-second, namespace: ns}
        spec:
          clusterIP: 10.96.0.3
          clusterIPs: [10.96.0.3]
          externalIPs: [192.0.2.7]
          ports: [{port: 80, protocol: TCP, targetPort: 8080}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: b-second-1, namespace: ns, labels: {kubernetes.io/service-name: b-second}}
        addressType: IPv4
        ports: [{name: "", port: 8080, protocol: TCP}]
        endpoints:
        - {addresses: ["10.244.3.9"], nodeName: n3}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: fw, namespace: ns}
        spec:
          type: LoadBalancer
          clusterIP: 10.96.0.4
          clusterIPs: [10.96.0.4]
          loadBalancerSourceRanges: [198.51.100.0/24]
          ports: [{name: web, port: 443, protocol: TCP, targetPort: 8443, nodePort: 30443}]
        status: {loadBalancer: {ingress: [{ip: 192.0.2.40}]}}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: fw-1, namespace: ns, labels: {kubernetes.io/service-name: fw}}
        addressType: IPv4
        ports: [{name: web, port: 8443, protocol: TCP}]
        endpoints:
        - {addresses: ["10.244.1.5"], nodeName: n1}
        """

    static func explainer(_ node: NodeContext = NodeContext(nodeName: "n1", clusterCIDRs: [CIDR("10.244.0.0/16")!])) -> Explainer {
        let decoded = ManifestDecoder.decode(manifests, source: "explain.yaml")
        #expect(decoded.diagnostics.isEmpty, "\(decoded.diagnostics)")
        return Explainer(state: ClusterState(decoded.objects), node: node)
    }

    static func flow(_ source: String, _ destination: String) throws -> Flow {
        try Flow(source: source, destination: destination)
    }

    @Test("flow syntax", arguments: [
        ("10.0.0.1:40000", "10.96.0.1:80", "10.0.0.1", 40000, "10.96.0.1", 80, L4Protocol.tcp),
        ("10.0.0.1", "10.96.0.1:53/udp", "10.0.0.1", nil, "10.96.0.1", 53, .udp),
        ("[fd00::1]:9", "[fd00:96::1]:80/SCTP", "fd00::1", 9, "fd00:96::1", 80, .sctp),
        ("fd00::1", "[fd00:96::1]:443/tcp", "fd00::1", nil, "fd00:96::1", 443, .tcp),
    ] as [(String, String, String, Int?, String, Int, L4Protocol)])
    func parses(_ case: (String, String, String, Int?, String, Int, L4Protocol)) throws {
        let flow = try Flow(source: `case`.0, destination: `case`.1)
        #expect(flow == Flow(source: IPAddress(`case`.2)!, sourcePort: `case`.3, destination: IPAddress(`case`.4)!,
                             destinationPort: `case`.5, proto: `case`.6))
    }

    @Test("flow syntax errors name what is wrong", arguments: [
        ("10.0.0.1", "10.96.0.1", "a port is required"),
        ("10.0.0.1", "10.96.0.1:80/icmp", "not tcp, udp or sctp"),
        ("10.0.0.1:70000", "10.96.0.1:80", "not a number from 0 to 65535"),
        ("nowhere", "10.96.0.1:80", "is not an IP address"),
        ("[fd00::1", "10.96.0.1:80", "no closing ]"),
        ("fd00::1", "10.96.0.1:80", "different IP families"),
    ])
    func syntaxErrors(_ source: String, _ destination: String, _ message: String) {
        #expect(throws: Flow.SyntaxError.self) { try Flow(source: source, destination: destination) }
        do {
            _ = try Flow(source: source, destination: destination)
        } catch {
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test("internalTrafficPolicy Local without an endpoint on this node: DROP")
    func internalLocalDrop() throws {
        let e = Self.explainer().explain(try Self.flow("10.244.1.9:1000", "10.96.0.1:80"))
        #expect(e.entry?.servicePort == "ns/internal:http")
        #expect(e.entry?.kind == .clusterIP)
        #expect(e.verdict.kind == .drop)
        #expect(e.verdict.reason.contains("internalTrafficPolicy Local and no endpoint on node n1"))
        #expect(e.endpoints?.leftOut == [.init(endpoint: "10.244.2.5:8080", reason: "on node n2, not node n1")])
    }

    @Test("a contested external IP belongs to the first Service in name order; the other is named")
    func claims() throws {
        let e = Self.explainer().explain(try Self.flow("203.0.113.5:5555", "192.0.2.7:80"))
        #expect(e.entry?.service == "ns/a-first")
        #expect(e.entry?.servicePort == "ns/a-first")
        #expect(e.entry?.kind == .externalIP)
        #expect(e.entry?.ignoredClaims == ["ns/b-second"])
        #expect(e.masquerade == .init(applies: true, reason: "external traffic to an externalTrafficPolicy Cluster entry point"))
    }

    @Test("topology hints narrow the set; the others are left out with their reasons")
    func leftOut() throws {
        let e = Self.explainer().explain(try Self.flow("10.244.1.9:1000", "10.96.0.2:80"))
        #expect(e.source == .init(kind: .pod, reason: "in --cluster-cidr 10.244.0.0/16"))
        #expect(e.masquerade?.applies == false)
        #expect(e.endpoints?.endpoints == ["10.244.1.5:8080"])
        #expect(e.endpoints?.reason == "the ready endpoints hinted for zone a (topology hints)")
        #expect(e.endpoints?.leftOut == [
            .init(endpoint: "10.244.1.6:8080", reason: "not ready"),
            .init(endpoint: "10.244.1.7:8080", reason: "serving but terminating, and ready endpoints exist"),
            .init(endpoint: "10.244.2.5:8080", reason: "hinted for zone(s) b, not a"),
        ])
        #expect(e.verdict == .init(kind: .dnat, endpoint: "10.244.1.5:8080", reason: "Maglev slot \(e.maglev!.slot!) of 13"))
        #expect(e.maglev?.compiled == "10.244.1.5 . 8080")
        #expect(e.masquerade?.applies == false)
    }

    @Test("without a source port the slot is not named")
    func noSourcePort() throws {
        let e = Self.explainer().explain(try Self.flow("10.244.1.9", "10.96.0.2:80"))
        #expect(e.maglev?.slot == nil && e.maglev?.tableSize == 13)
        #expect(e.verdict.kind == .dnat && e.verdict.endpoint == nil)
        #expect(e.text.contains("the slot depends on the source port"))
    }

    @Test("loadBalancerSourceRanges: outside is DROP, the node itself passes")
    func sourceRanges() throws {
        let explainer = Self.explainer()
        let outside = explainer.explain(try Self.flow("203.0.113.5:5555", "192.0.2.40:443"))
        #expect(outside.verdict.kind == .drop)
        #expect(outside.sourceRange == .init(applies: false, reason: "outside loadBalancerSourceRanges 198.51.100.0/24"))
        let inside = explainer.explain(try Self.flow("198.51.100.7:5555", "192.0.2.40:443"))
        #expect(inside.sourceRange?.applies == true && inside.verdict.endpoint == "10.244.1.5:8443")
        let node = explainer.explain(try Self.flow("10.200.0.1:5555", "192.0.2.40:443"))
        #expect(node.source.kind == .node)
        #expect(node.sourceRange?.reason.contains("from the node itself") == true)
        #expect(node.verdict.kind == .dnat)
    }

    @Test("node ports answer on the node's addresses only")
    func nodePort() throws {
        let explainer = Self.explainer()
        let e = explainer.explain(try Self.flow("203.0.113.5:5555", "10.200.0.1:30443"))
        #expect(e.entry?.kind == .nodePort && e.entry?.servicePort == "ns/fw:web")
        #expect(e.maglev?.map == "nodeport-backends")
        #expect(e.maglev?.compiled == "10.244.1.5 . 8443")
        let elsewhere = explainer.explain(try Self.flow("203.0.113.5:5555", "10.200.0.99:30443"))
        #expect(elsewhere.verdict.kind == .untouched)
    }

    @Test("an interface detect-local mode cannot classify by address: external unless --from says otherwise")
    func interfaceMode() throws {
        let node = NodeContext(nodeName: "n1", localDetection: .interfaceNamePrefix("cali"))
        let explainer = Self.explainer(node)
        let guessed = explainer.explain(try Self.flow("10.244.1.9:1000", "10.96.0.2:80"))
        #expect(guessed.source.kind == .external && guessed.source.reason.contains("--from pod"))
        #expect(guessed.masquerade?.applies == true)
        let told = explainer.explain(try Self.flow("10.244.1.9:1000", "10.96.0.2:80"), from: .pod)
        #expect(told.source == .init(kind: .pod, reason: "given with --from"))
        #expect(told.masquerade?.applies == false)
    }

    @Test("REJECT for a cluster IP's unknown port; -o json round-trips")
    func rejectAndJSON() throws {
        let e = Self.explainer().explain(try Self.flow("10.244.1.9:1000", "10.96.0.2:81"))
        #expect(e.verdict.kind == .reject)
        #expect(e.verdict.reason == "10.96.0.2 is the cluster IP of Service ns/a-first, but 81/tcp is not one of its ports")
        let decoded = try JSONDecoder().decode(Explanation.self, from: JSONEncoder().encode(e))
        #expect(decoded == e)
    }
}
