import SwitchboardCore

/// The synthetic cluster's objects as the v1.20 API takes them (`v1` Services, `discovery.k8s.io/v1beta1`
/// EndpointSlices), with the two adjustments that API server forces:
///
/// - cluster IPs move up by 256 (10.96.0.1 → 10.96.1.0, ...): 10.96.0.1 belongs to `default/kubernetes`;
/// - a NodePort or LoadBalancer Service whose synthetic node port is outside 30000-32767 (the server's
///   range) becomes a ClusterIP Service: at 10k Services there are more node ports than the range holds.
///   `serviceTypes` counts what was actually created.
///
/// LoadBalancer ingress IPs are status, which a create ignores: `loadBalancerStatus` is the patch for them.
enum KubeJSON {
    static let sliceAPIVersion = "discovery.k8s.io/v1beta1"
    static let nodePorts = 30000...32767

    /// The cluster IP the API server gets for a synthetic one.
    static func apiClusterIP(_ ip: String) -> String {
        let parts = ip.split(separator: ".").compactMap { UInt32($0) }
        guard parts.count == 4 else { return ip }
        let n = (parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]) &+ 256
        return "\(n >> 24).\((n >> 16) & 0xff).\((n >> 8) & 0xff).\(n & 0xff)"
    }

    /// The same change as the API shows it (cluster IPs moved).
    static func apiSignature(_ signature: ChurnChange.Signature) -> ChurnChange.Signature {
        signature.mappingClusterIP(apiClusterIP)
    }

    /// The type a Service gets in the API (see above).
    static func apiType(_ service: Service) -> ServiceType {
        guard service.type == .nodePort || service.type == .loadBalancer else { return service.type }
        return service.ports.allSatisfy({ $0.nodePort.map(nodePorts.contains) ?? true }) ? service.type : .clusterIP
    }

    static func object(_ object: KubeObject) -> [String: Any] {
        switch object {
        case .service(let s): service(s)
        case .endpointSlice(let e): slice(e)
        case .node(let n): node(n)
        }
    }

    static func service(_ s: Service) -> [String: Any] {
        let type = apiType(s)
        let ports: [[String: Any]] = s.ports.map { p in
            var port: [String: Any] = ["protocol": p.protocol.rawValue, "port": p.port]
            if !p.name.isEmpty { port["name"] = p.name }
            switch p.targetPort {
            case .number(let n): port["targetPort"] = n
            case .name(let n): port["targetPort"] = n
            }
            if type != .clusterIP, let nodePort = p.nodePort { port["nodePort"] = nodePort }
            return port
        }
        var spec: [String: Any] = ["type": type.rawValue, "ports": ports]
        if let ip = s.clusterIPs.first { spec["clusterIP"] = apiClusterIP(ip.description) }
        return [
            "apiVersion": "v1", "kind": "Service",
            "metadata": ["name": s.ref.name, "namespace": s.ref.namespace],
            "spec": spec,
        ]
    }

    /// The merge patch for `services/NAME/status`, or nil when the Service has no ingress in the API.
    static func loadBalancerStatus(_ s: Service) -> [String: Any]? {
        guard apiType(s) == .loadBalancer, !s.loadBalancerIngress.isEmpty else { return nil }
        let ingress: [[String: Any]] = s.loadBalancerIngress.compactMap { $0.ip.map { ["ip": $0.description] } }
        return ["status": ["loadBalancer": ["ingress": ingress]]]
    }

    static func slice(_ e: EndpointSlice) -> [String: Any] {
        var labels = e.labels
        if let name = e.serviceName { labels["kubernetes.io/service-name"] = name }
        return [
            "apiVersion": sliceAPIVersion, "kind": "EndpointSlice",
            "metadata": ["name": e.ref.name, "namespace": e.ref.namespace, "labels": labels],
            "addressType": "IPv4",
            "ports": e.ports.map { p -> [String: Any] in
                var port: [String: Any] = ["name": p.name, "protocol": p.protocol.rawValue]
                if let n = p.port { port["port"] = n }
                return port
            },
            "endpoints": endpoints(e),
        ]
    }

    /// The `endpoints` list of a slice (v1beta1: the node goes into `topology`).
    static func endpoints(_ e: EndpointSlice) -> [[String: Any]] {
        e.endpoints.map { ep in
            var out: [String: Any] = [
                "addresses": ep.addresses.map(\.description), "conditions": ["ready": ep.isReady],
            ]
            if let node = ep.nodeName { out["topology"] = ["kubernetes.io/hostname": node] }
            return out
        }
    }

    static func node(_ n: Node) -> [String: Any] {
        [
            "apiVersion": "v1", "kind": "Node", "metadata": ["name": n.name],
            "status": ["addresses": n.addresses.map { ["type": $0.type, "address": $0.address] }],
        ]
    }

    static func namespace(_ name: String) -> [String: Any] {
        ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": name]]
    }

    /// Where objects of this kind are created.
    static func collectionPath(of object: [String: Any]) -> String {
        let kind = object["kind"] as? String ?? ""
        let namespace = (object["metadata"] as? [String: Any])?["namespace"] as? String ?? ""
        switch kind {
        case "Service": return "/api/v1/namespaces/\(namespace)/services"
        case "EndpointSlice": return "/apis/\(sliceAPIVersion)/namespaces/\(namespace)/endpointslices"
        case "Node": return "/api/v1/nodes"
        case "Namespace": return "/api/v1/namespaces"
        default: preconditionFailure("KubeJSON: no path for kind \(kind)")
        }
    }

    /// One named object's path.
    static func path(of object: KubeObject) -> String {
        switch object {
        case .service(let s): "/api/v1/namespaces/\(s.ref.namespace)/services/\(s.ref.name)"
        case .endpointSlice(let e): "/apis/\(sliceAPIVersion)/namespaces/\(e.ref.namespace)/endpointslices/\(e.ref.name)"
        case .node(let n): "/api/v1/nodes/\(n.name)"
        }
    }
}

extension KubeWriter {
    /// Creates one synthetic Service the way the peer and API churn runs do: its EndpointSlice first, so the
    /// Service is complete the moment it exists, then the Service, then its load-balancer status.
    /// `beforeService` gets the instant just before the Service's POST is sent.
    func createService(
        _ objects: [KubeObject], beforeService: (ContinuousClock.Instant) -> Void = { _ in }
    ) async throws {
        for case .endpointSlice(let e) in objects { try await create(KubeJSON.slice(e)) }
        for case .service(let s) in objects {
            beforeService(.now)
            try await create(KubeJSON.service(s))
            if let status = KubeJSON.loadBalancerStatus(s) {
                try await request(
                    .PATCH, KubeJSON.path(of: .service(s)) + "/status", json: status,
                    contentType: "application/merge-patch+json")
            }
        }
    }

    /// Sends one churn change: creates, patches the slice's endpoints, or deletes (slice first).
    func send(_ change: ChurnChange) async throws {
        switch change.kind {
        case .addService:
            try await createService(change.upserts)
        case .addEndpoint, .removeEndpoint:
            for case .endpointSlice(let e) in change.upserts {
                try await request(
                    .PATCH, KubeJSON.path(of: .endpointSlice(e)), json: ["endpoints": KubeJSON.endpoints(e)],
                    contentType: "application/merge-patch+json")
            }
        case .removeService:
            for object in change.deletes { try await request(.DELETE, KubeJSON.path(of: object)) }
        }
    }
}
