import BenchKit
import NetworkTypes
import SwitchboardCore
import SwitchboardTesting

/// A synthetic cluster: S Services with one TCP port each and E endpoints each, on one node.
///
/// Cluster IPs count up from 10.96.0.1, endpoint IPs from 10.128.0.1, load-balancer ingress IPs from
/// 172.16.0.1, all unique; every third Service is a NodePort (unique ports from 30000), every tenth a
/// LoadBalancer (which also gets a node port). Changes keep handing out fresh addresses, so an added
/// endpoint or Service never collides with an existing one.
///
/// Not SwitchboardTesting's `RandomCluster`, on purpose: that one seeks variety (every Service type, both
/// families, odd ports) for the property tests; this one is the same shape at every size, so that timings
/// compare across sizes and runs. They share the generator, `SplitMix64`.
struct SyntheticCluster {
    static let namespace = "bench"
    static let nodeName = "bench-node"
    static let nodeContext = NodeContext(nodeName: nodeName, clusterCIDRs: [CIDR("10.128.0.0/9")!])

    let endpointsPerService: Int
    private(set) var state = ClusterState()
    /// Live Service indices (for picking a random one), and each one's slice.
    private(set) var live: [Int] = []
    private var position: [Int: Int] = [:]
    private var slices: [Int: EndpointSlice] = [:]
    private var nextService = 0
    private var nextEndpoint = 0
    /// Services the state reported touched since the last `apply` (the agent's dirty set).
    private var touched: Set<ObjectRef> = []

    init(services: Int, endpointsPerService: Int) {
        self.endpointsPerService = endpointsPerService
        state.upsert(.node(Node(
            name: Self.nodeName, addresses: [NodeAddress(type: "InternalIP", address: "192.168.200.10")]
        )))
        for _ in 0..<services { _ = addService() }
        touched = []
    }

    var serviceCount: Int { live.count }

    static func v4(_ base: UInt32, plus offset: Int) -> IPAddress {
        let n = base &+ UInt32(offset)
        return IPAddress(
            family: .v4, bytes: [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
        )
    }

    private mutating func freshEndpoint() -> Endpoint {
        defer { nextEndpoint += 1 }
        // 10.128.0.1 upwards; 10.128.0.0/9 holds 8M addresses.
        let address = Self.v4(0x0a80_0001, plus: nextEndpoint)
        return Endpoint(addresses: [address], ready: true, nodeName: "node-\(nextEndpoint % 50)")
    }

    /// Adds a Service with its slice of E endpoints; returns the change as the objects upserted.
    mutating func addService() -> [KubeObject] {
        let i = nextService
        nextService += 1
        let name = "svc-\(i)"
        let isLB = i % 10 == 0
        let isNodePort = !isLB && i % 3 == 0
        let nodePort: Int? = (isLB || isNodePort) ? 30000 + i / 3 + i / 10 : nil
        let service = Service(
            ref: ObjectRef(namespace: Self.namespace, name: name),
            type: isLB ? .loadBalancer : isNodePort ? .nodePort : .clusterIP,
            clusterIPs: [Self.v4(0x0a60_0001, plus: i)],  // 10.96.0.1 upwards; /12 holds 1M
            ports: [ServicePort(protocol: .tcp, port: 80, targetPort: .number(8080), nodePort: nodePort)],
            loadBalancerIngress: isLB ? [LoadBalancerIngress(ip: Self.v4(0xac10_0001, plus: i / 10))] : []
        )
        var endpoints: [Endpoint] = []
        for _ in 0..<endpointsPerService { endpoints.append(freshEndpoint()) }
        let slice = EndpointSlice(
            ref: ObjectRef(namespace: Self.namespace, name: "\(name)-bench"),
            serviceName: name,
            ports: [EndpointPort(protocol: .tcp, port: 8080)],
            endpoints: endpoints
        )
        position[i] = live.count
        live.append(i)
        slices[i] = slice
        let objects: [KubeObject] = [.service(service), .endpointSlice(slice)]
        for o in objects { touched.formUnion(state.upsert(o)) }
        return objects
    }

    mutating func removeService(_ i: Int) {
        guard let at = position.removeValue(forKey: i), let slice = slices.removeValue(forKey: i) else { return }
        let last = live.removeLast()
        if last != i {
            live[at] = last
            position[last] = at
        }
        touched.formUnion(state.remove(.endpointSlice(slice)))
        touched.formUnion(state.remove(.service(Service(ref: ObjectRef(namespace: Self.namespace, name: "svc-\(i)")))))
    }

    mutating func addEndpoint(to i: Int) {
        guard var slice = slices[i] else { return }
        slice.endpoints.append(freshEndpoint())
        slices[i] = slice
        touched.formUnion(state.upsert(.endpointSlice(slice)))
    }

    /// Removes the first endpoint of Service `i`'s slice; returns false when it has none.
    @discardableResult
    mutating func removeEndpoint(from i: Int) -> Bool {
        guard var slice = slices[i], !slice.endpoints.isEmpty else { return false }
        slice.endpoints.removeFirst()
        slices[i] = slice
        touched.formUnion(state.upsert(.endpointSlice(slice)))
        return true
    }

    func endpointCount(of i: Int) -> Int { slices[i]?.endpoints.count ?? 0 }

    /// Adds the Service the data-plane measurement connects to: a ClusterIP outside the synthetic range whose
    /// endpoints are real, listening pods. Not among `live`, so random changes never touch it.
    mutating func addProbeService(clusterIP: IPAddress, port: Int, targetPort: Int, endpoints: [IPAddress]) {
        let objects = Self.podService(
            name: "probe", clusterIP: clusterIP, port: port, targetPort: targetPort, endpoints: endpoints)
        for object in objects { state.upsert(object) }
    }

    /// A ClusterIP Service with one TCP port whose EndpointSlice lists `endpoints` (real pods) on this node:
    /// the Service and its slice.
    static func podService(
        name: String, clusterIP: IPAddress, port: Int, targetPort: Int, endpoints: [IPAddress]
    ) -> [KubeObject] {
        [
            .service(Service(
                ref: ObjectRef(namespace: namespace, name: name), type: .clusterIP, clusterIPs: [clusterIP],
                ports: [ServicePort(protocol: .tcp, port: port, targetPort: .number(targetPort))]
            )),
            .endpointSlice(EndpointSlice(
                ref: ObjectRef(namespace: namespace, name: "\(name)-bench"), serviceName: name,
                ports: [EndpointPort(protocol: .tcp, port: targetPort)],
                endpoints: endpoints.map { Endpoint(addresses: [$0], ready: true, nodeName: nodeName) }
            )),
        ]
    }
}

extension SyntheticCluster {
    /// Makes one change of `kind` to the cluster state, on a random Service where it needs one; returns
    /// the Services whose rules may have changed.
    @discardableResult
    mutating func apply(_ kind: ChangeKind, using rng: inout SplitMix64) -> Set<ObjectRef> {
        defer { touched = [] }
        change(kind, using: &rng)
        return touched
    }

    private mutating func change(_ kind: ChangeKind, using rng: inout SplitMix64) {
        switch kind {
        case .addEndpoint:
            if let i = live.randomElement(using: &rng) { addEndpoint(to: i) }
        case .removeEndpoint:
            // Prefer a Service that keeps at least one endpoint, so the change stays an element delete.
            for _ in 0..<8 {
                if let i = live.randomElement(using: &rng), endpointCount(of: i) > 1 {
                    removeEndpoint(from: i)
                    return
                }
            }
            if let i = live.randomElement(using: &rng) { removeEndpoint(from: i) }
        case .addService:
            _ = addService()
        case .removeService:
            if let i = live.randomElement(using: &rng) { removeService(i) }
        }
    }
}
