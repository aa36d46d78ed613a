import NetworkTypes
import SwitchboardCore
import SwitchboardTesting
import Testing

/// Which Services get a health-check server on a node, and how many local endpoints it reports.
@Suite struct HealthCheckTests {
    static let web = ObjectRef(namespace: "default", name: "web")

    static func service(
        _ name: String = "web", type: ServiceType = .loadBalancer, policy: TrafficPolicy = .local, port: Int? = 32000,
        labels: [String: String] = [:]
    ) -> KubeObject {
        .service(
            name, type: type, ports: [ServicePort(port: 80, nodePort: 31000)], externalPolicy: policy,
            healthCheckNodePort: port, labels: labels)
    }

    static func slice(
        _ name: String, service: String = "web", type: EndpointAddressType = .ipv4, ports: [EndpointPort] = [EndpointPort(port: 8080)],
        _ endpoints: [Endpoint]
    ) -> KubeObject {
        .slice(name, service: service, family: type, ports: ports, endpoints: endpoints)
    }

    static func ep(_ ip: String, node: String? = "n1", ready: Bool? = true, serving: Bool? = nil, terminating: Bool? = nil) -> Endpoint {
        .at(ip, ready: ready, serving: serving, terminating: terminating, node: node)
    }

    @Test("local ready endpoints: this node's, ready (nil counts), distinct addresses, any family, not FQDN", arguments: [
        ([slice("a", [ep("10.0.0.1"), ep("10.0.0.2")])], 2),
        ([slice("a", [ep("10.0.0.1"), ep("10.0.0.2", node: "n2"), ep("10.0.0.3", node: nil)])], 1),
        ([slice("a", [ep("10.0.0.1", ready: nil), ep("10.0.0.2", ready: false)])], 1),
        // Serving but terminating is not ready: it does not count.
        ([slice("a", [ep("10.0.0.1", ready: false, serving: true, terminating: true)])], 0),
        // The same address in two slices (e.g. during a slice split) counts once.
        ([slice("a", [ep("10.0.0.1")]), slice("b", [ep("10.0.0.1")])], 1),
        ([slice("a", [ep("10.0.0.1")]), slice("b", type: .ipv6, [ep("fd00::1")])], 2),
        ([slice("a", ports: [], [ep("10.0.0.1")])], 0),
        ([slice("a", service: "other", [ep("10.0.0.1")])], 0),
        ([KubeObject](), 0),
    ])
    func localReadyEndpoints(slices: [KubeObject], expected: Int) {
        let state = ClusterState([Self.service()] + slices)
        #expect(state.localReadyEndpoints(of: Self.web, onNode: "n1") == expected)
        #expect(state.healthChecks(onNode: "n1") == [Self.web: ServiceHealthCheck(port: 32000, localEndpoints: expected)])
    }

    @Test("only LoadBalancer Services with externalTrafficPolicy Local and a healthCheckNodePort, that are ours", arguments: [
        (service(), true),
        (service(type: .nodePort), false),
        (service(policy: .cluster), false),
        (service(port: nil), false),
        (service(labels: ["service.kubernetes.io/service-proxy-name": "other"]), false),
        (service(labels: ["service.kubernetes.io/headless": ""]), false),
    ])
    func whichServices(service: KubeObject, has: Bool) {
        let state = ClusterState([service, Self.slice("a", [Self.ep("10.0.0.1")])])
        #expect((state.healthCheck(for: Self.web, onNode: "n1") != nil) == has)
        #expect(state.healthChecks(onNode: "n1").count == (has ? 1 : 0))
    }
}
