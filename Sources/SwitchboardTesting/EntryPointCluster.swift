import NetworkTypes
import NFTModel
import SwitchboardCore

/// A small IPv4 cluster that puts an element in every set an entry point is an element of, for tests of
/// what those elements carry (their comments) through the compiler, the planner and both kernel writers.
///
/// Node `node-a` (InternalIP 10.200.0.1). `entryPointSets` names, per set, the Service port whose comment
/// each of its elements must carry; `contested` is a VIP port that two Services claim.
public enum EntryPointCluster {
    public static let node = NodeContext(nodeName: "node-a", clusterCIDRs: [CIDR("10.244.0.0/16")!])
    public static let table = node.tableID(.v4)

    /// The cluster IP port `a/first` and `b/second` both have; `a/first` holds it (first in name order).
    public static let contested = "10.96.0.50 . tcp . 80"

    /// Set → the comment on every element of it (each is an entry point of that one Service port).
    public static let entryPointSets: [String: Set<String>] = [
        "service-ips-m31": ["default/web:http", "default/lb", "a/first:http"],
        "service-nodeports-m31": ["default/lb"],
        "affinity-services": ["default/web:http", "default/lb"],
        "service-ips-m13": ["default/ext:dns"],
        "service-nodeports-m13": ["default/ext:dns"],
        "local-ips-m13": ["default/lb"],
        "local-nodeports-m13": ["default/lb"],
        "external-local-ips": ["default/lb"],
        "external-local-nodeports": ["default/lb"],
        "firewall-ips": ["default/lb"],
        "affinity-nodeports": ["default/lb"],
        "external-ips": ["default/ext:dns"],
        "external-nodeports": ["default/ext:dns"],
        "no-endpoint-services": ["default/empty:http"],
        "no-endpoint-nodeports": ["default/empty:http"],
        "no-local-endpoint-services": ["default/local:http"],
    ]

    /// Every kind of entry point: affinity, a load balancer with source ranges and a Local policy (an unnamed
    /// port), external IPs on a NodePort, a port without endpoints, an internal Local policy without a local
    /// endpoint, and a cluster IP port claimed twice.
    public static var state: ClusterState {
        ClusterState([
            .node(
                Node(
                    name: "node-a", addresses: [NodeAddress(type: "InternalIP", address: "10.200.0.1")])),
            service(
                "default", "web", ip: "10.96.0.10", ports: [ServicePort(name: "http", port: 80)],
                affinity: .clientIP(timeoutSeconds: 600)),
            slice("default", "web", ["10.244.1.1", "10.244.1.2", "10.244.1.3"], port: "http"),
            .service(
                Service(
                    ref: ObjectRef(namespace: "default", name: "lb"), type: .loadBalancer,
                    clusterIPs: [IPAddress("10.96.0.20")!], ports: [ServicePort(port: 443, nodePort: 30443)],
                    loadBalancerIngress: [LoadBalancerIngress(ip: IPAddress("172.16.0.1")!)],
                    loadBalancerSourceRanges: [CIDR("10.0.0.0/8")!], externalTrafficPolicy: .local,
                    healthCheckNodePort: 32000, sessionAffinity: .clientIP(timeoutSeconds: 600))),
            .endpointSlice(
                EndpointSlice(
                    ref: ObjectRef(namespace: "default", name: "lb-1"), serviceName: "lb",
                    ports: [EndpointPort(port: 8443)],
                    endpoints: [
                        Endpoint(addresses: [IPAddress("10.244.2.1")!], ready: true, nodeName: "node-a"),
                        Endpoint(addresses: [IPAddress("10.244.2.2")!], ready: true, nodeName: "node-b"),
                    ])),
            .service(
                Service(
                    ref: ObjectRef(namespace: "default", name: "ext"), type: .nodePort,
                    clusterIPs: [IPAddress("10.96.0.30")!],
                    ports: [ServicePort(name: "dns", protocol: .udp, port: 53, nodePort: 30053)],
                    externalIPs: [IPAddress("192.0.2.1")!])),
            slice("default", "ext", ["10.244.3.1"], port: "dns", proto: .udp),
            .service(
                Service(
                    ref: ObjectRef(namespace: "default", name: "empty"), type: .nodePort,
                    clusterIPs: [IPAddress("10.96.0.40")!],
                    ports: [ServicePort(name: "http", port: 80, nodePort: 30080)])),
            .service(
                Service(
                    ref: ObjectRef(namespace: "default", name: "local"), clusterIPs: [IPAddress("10.96.0.60")!],
                    ports: [ServicePort(name: "http", port: 80)], internalTrafficPolicy: .local)),
            .endpointSlice(
                EndpointSlice(
                    ref: ObjectRef(namespace: "default", name: "local-1"), serviceName: "local",
                    ports: [EndpointPort(name: "http", port: 8080)],
                    endpoints: [Endpoint(addresses: [IPAddress("10.244.4.1")!], ready: true, nodeName: "node-b")])),
            service("a", "first", ip: "10.96.0.50", ports: [ServicePort(name: "http", port: 80)]),
            slice("a", "first", ["10.244.5.1", "10.244.5.2"], port: "http"),
            service("b", "second", ip: "10.96.0.50", ports: [ServicePort(name: "http", port: 80)]),
            slice("b", "second", ["10.244.6.1", "10.244.6.2", "10.244.6.3"], port: "http"),
        ])
    }

    /// A ClusterIP Service.
    public static func service(
        _ namespace: String, _ name: String, ip: String, ports: [ServicePort], affinity: SessionAffinity = .none
    ) -> KubeObject {
        .service(
            Service(
                ref: ObjectRef(namespace: namespace, name: name), clusterIPs: [IPAddress(ip)!], ports: ports,
                sessionAffinity: affinity))
    }

    /// One ready slice of a Service, its endpoints on `node-b`, port 8080 named `port`.
    public static func slice(
        _ namespace: String, _ service: String, _ addresses: [String], port: String, proto: L4Protocol = .tcp
    ) -> KubeObject {
        .endpointSlice(
            EndpointSlice(
                ref: ObjectRef(namespace: namespace, name: service + "-1"), serviceName: service,
                ports: [EndpointPort(name: port, protocol: proto, port: 8080)],
                endpoints: addresses.map { Endpoint(addresses: [IPAddress($0)!], ready: true, nodeName: "node-b") }))
    }
}
