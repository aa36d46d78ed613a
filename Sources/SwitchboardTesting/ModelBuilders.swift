import NetworkTypes
import SwitchboardCore

// Kubernetes objects for tests, written as short literals where a `KubeObject` is expected:
//
//     compile(ClusterState([.service("web"), .slice("web-1", service: "web", endpoints: [.at("10.1.0.1")])]), ...)
//
// One builder per kind, with every field a test varies as a parameter. The defaults are a plain ClusterIP
// Service `default/<name>` at 10.96.0.10 with one TCP port `http` 80, and its slice's port `http` 8080.
// These are model values; tests that talk to a real API server write JSON or YAML text instead (KubeAPITests'
// `Canned`, EndToEndTests' `Manifests`): there the text is what is under test.

extension KubeObject {
    /// A Service (the enum case `.service(Service)` takes a built one).
    public static func service(
        _ name: String, namespace: String = "default", type: ServiceType = .clusterIP,
        ips: [String] = ["10.96.0.10"], ports: [ServicePort] = [ServicePort(name: "http", port: 80)],
        externalIPs: [String] = [], ingress: [LoadBalancerIngress] = [], sourceRanges: [String] = [],
        externalPolicy: TrafficPolicy = .cluster, internalPolicy: TrafficPolicy = .cluster,
        healthCheckNodePort: Int? = nil, affinity: SessionAffinity = .none, labels: [String: String] = [:],
        headless: Bool = false
    ) -> KubeObject {
        .service(
            Service(
                ref: ObjectRef(namespace: namespace, name: name), type: type, clusterIPs: ips.map(IPAddress.parsing),
                isHeadless: headless, ports: ports, externalIPs: externalIPs.map(IPAddress.parsing),
                loadBalancerIngress: ingress, loadBalancerSourceRanges: sourceRanges.map(CIDR.parsing),
                externalTrafficPolicy: externalPolicy, internalTrafficPolicy: internalPolicy,
                healthCheckNodePort: healthCheckNodePort, sessionAffinity: affinity, labels: labels))
    }

    /// An EndpointSlice of the Service `service`, in the same namespace.
    public static func slice(
        _ name: String, service: String?, namespace: String = "default", family: EndpointAddressType = .ipv4,
        ports: [EndpointPort] = [EndpointPort(name: "http", port: 8080)], endpoints: [Endpoint],
        annotations: [String: String] = [:]
    ) -> KubeObject {
        .endpointSlice(
            EndpointSlice(
                ref: ObjectRef(namespace: namespace, name: name), serviceName: service, addressType: family,
                ports: ports, endpoints: endpoints, annotations: annotations))
    }
}

extension Endpoint {
    /// An endpoint with one address, ready unless told otherwise (`nil`: the API left the condition out).
    public static func at(
        _ address: String, ready: Bool? = true, serving: Bool? = nil, terminating: Bool? = nil, node: String? = nil
    ) -> Endpoint {
        Endpoint(
            addresses: [IPAddress.parsing(address)], ready: ready, serving: serving, terminating: terminating,
            nodeName: node)
    }
}

extension IPAddress {
    /// An address literal of a test; it must parse.
    public static func parsing(_ text: String) -> IPAddress {
        guard let address = IPAddress(text) else { preconditionFailure("not an IP address: \(text)") }
        return address
    }
}

extension CIDR {
    /// A prefix literal of a test; it must parse.
    public static func parsing(_ text: String) -> CIDR {
        guard let prefix = CIDR(text) else { preconditionFailure("not a prefix: \(text)") }
        return prefix
    }
}
