import NetworkTypes

/// The Kubernetes objects Switchboard reads, reduced to the fields that decide packet handling.
/// Decoding (JSON/YAML, v1 and v1beta1) lives in `Decoding/`; everything here is a plain value.

/// `namespace/name` of a namespaced object.
public struct ObjectRef: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public var description: String { "\(namespace)/\(name)" }

    /// kube-proxy's `ServicePortName` of this Service's port `port`: `namespace/name:port`, or
    /// `namespace/name` for an unnamed port.
    public func servicePortName(_ port: String) -> String { port.isEmpty ? description : "\(description):\(port)" }

    public static func < (a: ObjectRef, b: ObjectRef) -> Bool { (a.namespace, a.name) < (b.namespace, b.name) }
}

/// A Service's `targetPort`: a number, or a name resolved per endpoint through the slice's ports.
public enum TargetPort: Hashable, Sendable {
    case number(Int)
    case name(String)
}

public struct ServicePort: Hashable, Sendable {
    /// The port's name; `""` when the Service has a single unnamed port.
    public var name: String
    public var `protocol`: L4Protocol
    public var port: Int
    public var targetPort: TargetPort
    public var nodePort: Int?

    public init(name: String = "", protocol: L4Protocol = .tcp, port: Int, targetPort: TargetPort? = nil, nodePort: Int? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort ?? .number(port)
        self.nodePort = nodePort
    }
}

public enum ServiceType: String, Hashable, Sendable {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
    case externalName = "ExternalName"
}

public enum TrafficPolicy: String, Hashable, Sendable {
    case cluster = "Cluster"
    case local = "Local"
}

public enum SessionAffinity: Hashable, Sendable {
    case none
    /// `sessionAffinity: ClientIP` with `sessionAffinityConfig.clientIP.timeoutSeconds` (default 10800).
    case clientIP(timeoutSeconds: Int)
}

/// One `status.loadBalancer.ingress[]` entry.
public struct LoadBalancerIngress: Hashable, Sendable {
    public enum IPMode: String, Hashable, Sendable {
        case vip = "VIP"
        case proxy = "Proxy"
    }

    public var ip: IPAddress?
    public var hostname: String?
    /// nil when unset (which means VIP).
    public var ipMode: IPMode?

    public init(ip: IPAddress? = nil, hostname: String? = nil, ipMode: IPMode? = nil) {
        self.ip = ip
        self.hostname = hostname
        self.ipMode = ipMode
    }
}

public struct Service: Hashable, Sendable {
    public var ref: ObjectRef
    public var type: ServiceType
    /// `spec.clusterIPs` (or `spec.clusterIP` on objects that lack the list); empty when none.
    public var clusterIPs: [IPAddress]
    /// `clusterIP: None`.
    public var isHeadless: Bool
    public var ports: [ServicePort]
    public var externalIPs: [IPAddress]
    public var loadBalancerIngress: [LoadBalancerIngress]
    public var loadBalancerSourceRanges: [CIDR]
    public var externalTrafficPolicy: TrafficPolicy
    public var internalTrafficPolicy: TrafficPolicy
    public var healthCheckNodePort: Int?
    public var sessionAffinity: SessionAffinity
    public var labels: [String: String]

    public init(
        ref: ObjectRef, type: ServiceType = .clusterIP, clusterIPs: [IPAddress] = [], isHeadless: Bool = false,
        ports: [ServicePort] = [], externalIPs: [IPAddress] = [], loadBalancerIngress: [LoadBalancerIngress] = [],
        loadBalancerSourceRanges: [CIDR] = [], externalTrafficPolicy: TrafficPolicy = .cluster,
        internalTrafficPolicy: TrafficPolicy = .cluster, healthCheckNodePort: Int? = nil,
        sessionAffinity: SessionAffinity = .none, labels: [String: String] = [:]
    ) {
        self.ref = ref
        self.type = type
        self.clusterIPs = clusterIPs
        self.isHeadless = isHeadless
        self.ports = ports
        self.externalIPs = externalIPs
        self.loadBalancerIngress = loadBalancerIngress
        self.loadBalancerSourceRanges = loadBalancerSourceRanges
        self.externalTrafficPolicy = externalTrafficPolicy
        self.internalTrafficPolicy = internalTrafficPolicy
        self.healthCheckNodePort = healthCheckNodePort
        self.sessionAffinity = sessionAffinity
        self.labels = labels
    }
}

extension Service {
    /// Whether Switchboard (as kube-proxy) serves this Service at all: ExternalName and headless
    /// Services, those another proxy owns (`service.kubernetes.io/service-proxy-name`) and those labelled
    /// `service.kubernetes.io/headless` get nothing: no rules, ipsets, conntrack cleanup or health check.
    public var isProxied: Bool {
        !(type == .externalName || isHeadless || labels["service.kubernetes.io/service-proxy-name"] != nil
            || labels["service.kubernetes.io/headless"] != nil)
    }
}

extension Service {
    /// The load-balancer IPs Switchboard serves: `status.loadBalancer.ingress[].ip` of one family, ipMode
    /// `VIP` or unset (`Proxy` and hostname-only entries are the load balancer's own business), only for
    /// type LoadBalancer; deduplicated, in order.
    public func loadBalancerIPs(_ family: IPFamily) -> [IPAddress] {
        guard type == .loadBalancer else { return [] }
        return deduplicated(loadBalancerIngress.compactMap { ingress in
            guard let ip = ingress.ip, ip.family == family, ingress.ipMode != .proxy else { return nil }
            return ip
        })
    }

    /// Every external entry address of one family: `externalIPs`, then `loadBalancerIPs`; deduplicated.
    public func externalAddresses(_ family: IPFamily) -> [IPAddress] {
        deduplicated(externalIPs.filter { $0.family == family } + loadBalancerIPs(family))
    }
}

/// The addresses in their first order, each once.
func deduplicated(_ addresses: [IPAddress]) -> [IPAddress] {
    var seen = Set<IPAddress>()
    return addresses.filter { seen.insert($0).inserted }
}

extension ServicePort {
    /// One address of an endpoint, with this port resolved through its slice.
    public struct ResolvedEndpoint: Hashable, Sendable {
        public var endpoint: Endpoint
        public var address: IPAddress
        public var port: Int
    }

    /// Every endpoint address of `slices` for this port: the slice port with this port's name and
    /// protocol carries the (possibly named, hence per-pod) target port number; slices without one, and
    /// addresses not of the slice's family (FQDN slices have none), contribute nothing.
    public func resolve(_ slices: [EndpointSlice]) -> [ResolvedEndpoint] {
        var out: [ResolvedEndpoint] = []
        for slice in slices {
            guard let slicePort = slice.ports.first(where: { $0.name == name && $0.protocol == self.protocol }),
                let number = slicePort.port
            else { continue }
            for endpoint in slice.endpoints {
                for address in endpoint.addresses where address.family == slice.addressType.ipFamily {
                    out.append(ResolvedEndpoint(endpoint: endpoint, address: address, port: number))
                }
            }
        }
        return out
    }
}

public enum EndpointAddressType: String, Hashable, Sendable {
    case ipv4 = "IPv4"
    case ipv6 = "IPv6"
    case fqdn = "FQDN"
}

public struct EndpointPort: Hashable, Sendable {
    /// `""` when unnamed (matches a Service port with name `""`).
    public var name: String
    public var `protocol`: L4Protocol
    /// nil means "all ports" in the API; such a port resolves nothing.
    public var port: Int?

    public init(name: String = "", protocol: L4Protocol = .tcp, port: Int?) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
    }
}

public struct Endpoint: Hashable, Sendable {
    public var addresses: [IPAddress]
    /// Conditions as the API gives them; nil = unknown. `isReady` applies the API's defaults.
    public var ready: Bool?
    public var serving: Bool?
    public var terminating: Bool?
    /// `nodeName` (v1) or the `kubernetes.io/hostname` topology label (v1beta1).
    public var nodeName: String?
    /// `zone` (v1) or the `topology.kubernetes.io/zone` topology label (v1beta1).
    public var zone: String?
    /// `hints.forZones[].name`; nil when the endpoint carries no hints.
    public var zoneHints: [String]?
    /// `hints.forNodes[].name` (`trafficDistribution: PreferSameNode`, discovery.k8s.io/v1 only); nil when
    /// the endpoint carries no node hints.
    public var nodeHints: [String]?

    public init(
        addresses: [IPAddress], ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil,
        nodeName: String? = nil, zone: String? = nil, zoneHints: [String]? = nil, nodeHints: [String]? = nil
    ) {
        self.addresses = addresses
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
        self.nodeName = nodeName
        self.zone = zone
        self.zoneHints = zoneHints
        self.nodeHints = nodeHints
    }

    /// nil `ready` means ready (API semantics).
    public var isReady: Bool { ready ?? true }
    /// nil `serving` defaults to the value of `ready`.
    public var isServing: Bool { serving ?? isReady }
    /// nil `terminating` means not terminating.
    public var isTerminating: Bool { terminating ?? false }
}

public struct EndpointSlice: Hashable, Sendable {
    /// The slice's own namespace/name.
    public var ref: ObjectRef
    /// The `kubernetes.io/service-name` label; a slice without it belongs to no Service.
    public var serviceName: String?
    public var addressType: EndpointAddressType
    public var ports: [EndpointPort]
    public var endpoints: [Endpoint]
    public var labels: [String: String]
    public var annotations: [String: String]

    public init(
        ref: ObjectRef, serviceName: String?, addressType: EndpointAddressType = .ipv4, ports: [EndpointPort] = [],
        endpoints: [Endpoint] = [], labels: [String: String] = [:], annotations: [String: String] = [:]
    ) {
        self.ref = ref
        self.serviceName = serviceName
        self.addressType = addressType
        self.ports = ports
        self.endpoints = endpoints
        self.labels = labels
        self.annotations = annotations
    }

    /// The Service this slice belongs to.
    public var serviceRef: ObjectRef? { serviceName.map { ObjectRef(namespace: ref.namespace, name: $0) } }
}

public struct NodeAddress: Hashable, Sendable {
    public var type: String
    public var address: String

    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}

/// One `spec.taints[]` entry of a Node.
public struct Taint: Hashable, Sendable {
    public var key: String
    /// nil when unset (Go's `omitempty`: `""` and absent are the same).
    public var value: String?
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`, as the API wrote it.
    public var effect: String

    public init(key: String, value: String? = nil, effect: String) {
        self.key = key
        self.value = value
        self.effect = effect
    }
}

public struct Node: Hashable, Sendable {
    public var name: String
    /// `status.addresses` (InternalIP, ExternalIP, Hostname, ...), in order.
    public var addresses: [NodeAddress]
    public var labels: [String: String]
    public var podCIDRs: [CIDR]
    /// `spec.taints`, in order. No rule depends on them; they decide `isEligibleForTraffic`.
    public var taints: [Taint]
    /// `metadata.deletionTimestamp` as the API wrote it (RFC 3339): set once the Node is being deleted (its
    /// finalizers still run). Only whether it is set matters.
    public var deletionTimestamp: String?

    public init(
        name: String, addresses: [NodeAddress] = [], labels: [String: String] = [:], podCIDRs: [CIDR] = [],
        taints: [Taint] = [], deletionTimestamp: String? = nil
    ) {
        self.name = name
        self.addresses = addresses
        self.labels = labels
        self.podCIDRs = podCIDRs
        self.taints = taints
        self.deletionTimestamp = deletionTimestamp
    }

    /// The node's `InternalIP` addresses that parse as IPs.
    public var internalIPs: [IPAddress] {
        addresses.filter { $0.type == "InternalIP" }.compactMap { IPAddress($0.address) }
    }

    public var zone: String? { labels["topology.kubernetes.io/zone"] }
}

extension Node {
    /// The taint the cluster autoscaler puts on a node it is about to remove (kube-proxy's
    /// `ToBeDeletedTaint`).
    public static let toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

    /// Whether load balancers should keep sending traffic to this node, as kube-proxy (1.31+) decides it for
    /// `/healthz` (`nodeEligible`): not while the Node is being deleted, nor once the cluster autoscaler has
    /// tainted it `ToBeDeletedByClusterAutoscaler` (with any value or effect). Cordoning and other taints do
    /// not count: pods already on the node still serve.
    public var isEligibleForTraffic: Bool {
        deletionTimestamp == nil && !taints.contains { $0.key == Self.toBeDeletedTaint }
    }

    /// This Node reduced to what the rules are compiled from (name, addresses, labels, pod CIDRs): two Nodes
    /// with equal `forRules` compile to the same rules. Taints and deletion are left out, so that the
    /// cluster's frequent taint changes (not-ready, unreachable, cordon, autoscaler) neither recompile every
    /// Service nor cause a sync.
    public var forRules: Node {
        Node(name: name, addresses: addresses, labels: labels, podCIDRs: podCIDRs)
    }
}

/// Any object Switchboard consumes.
public enum KubeObject: Hashable, Sendable {
    case service(Service)
    case endpointSlice(EndpointSlice)
    case node(Node)
}

/// Why something in the input was skipped or partly ignored. Names the object and the field.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Hashable, Sendable { case error, warning }

    /// What a diagnostic is about: an object whose identity was read, or else a place in the input.
    public enum Subject: Hashable, Sendable, CustomStringConvertible {
        case service(ObjectRef)
        case endpointSlice(ObjectRef)
        case node(String)
        /// An object whose name is not known (or not valid): `document 3 of a.yaml`.
        case input(String)

        /// The object's kind as the API spells it (`Service`); nil for `.input`.
        public var kind: String? {
            switch self {
            case .service: "Service"
            case .endpointSlice: "EndpointSlice"
            case .node: "Node"
            case .input: nil
            }
        }

        /// `default/web` for namespaced objects, the name for a Node, the place for `.input`.
        public var name: String {
            switch self {
            case .service(let ref), .endpointSlice(let ref): ref.description
            case .node(let name), .input(let name): name
            }
        }

        /// `Service default/web`, `Node n1`, `document 3 of a.yaml`.
        public var description: String { kind.map { "\($0) \(name)" } ?? name }
    }

    public var subject: Subject
    /// A JSON-path-like field, e.g. `spec.ports[1].port`; `""` for the whole object.
    public var field: String
    public var message: String
    public var severity: Severity

    public init(_ subject: Subject, field: String, message: String, severity: Severity = .error) {
        self.subject = subject
        self.field = field
        self.message = message
        self.severity = severity
    }

    /// The subject as text: `Service default/web`, `EndpointSlice default/web-abc12`, `document 3 of a.yaml`.
    public var object: String { subject.description }

    public var description: String {
        let at = field.isEmpty ? "" : " \(field)"
        return "\(severity.rawValue): \(object)\(at): \(message)"
    }
}
