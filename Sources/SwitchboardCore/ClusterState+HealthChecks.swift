/// What the health-check server of one `externalTrafficPolicy: Local` Service answers on this node.
public struct ServiceHealthCheck: Hashable, Sendable {
    /// `spec.healthCheckNodePort`.
    public var port: Int
    /// This node's ready endpoints of the Service (`ClusterState.localReadyEndpoints`).
    public var localEndpoints: Int

    public init(port: Int, localEndpoints: Int) {
        self.port = port
        self.localEndpoints = localEndpoints
    }
}

extension ClusterState {
    /// The number of ready endpoints of `service` on node `nodeName`: distinct addresses of endpoints whose
    /// `nodeName` is this node and whose `ready` condition holds (nil counts as ready; serving but
    /// terminating endpoints are not ready, so they do not count). As kube-proxy's
    /// `EndpointsMap.LocalReadyEndpoints`: an endpoint is its first address, only slices that carry a
    /// usable port contribute (kube-proxy builds its endpoints per slice port), and IPv4 and IPv6
    /// slices both count. FQDN slices are not proxied and do not count.
    public func localReadyEndpoints(of service: ObjectRef, onNode nodeName: String) -> Int {
        var addresses: Set<IPAddress> = []
        for slice in endpointSlices(for: service) where slice.addressType != .fqdn {
            guard slice.ports.contains(where: { $0.port != nil }) else { continue }
            for endpoint in slice.endpoints where endpoint.isReady && endpoint.nodeName == nodeName {
                if let address = endpoint.addresses.first { addresses.insert(address) }
            }
        }
        return addresses.count
    }

    /// The health checks this node serves: one per Service that kube-proxy gives one (type LoadBalancer,
    /// `externalTrafficPolicy: Local`, a `healthCheckNodePort`), keyed by Service. Services another proxy
    /// owns (`service.kubernetes.io/service-proxy-name`) or labelled headless are not ours and get none.
    public func healthChecks(onNode nodeName: String) -> [ObjectRef: ServiceHealthCheck] {
        var out: [ObjectRef: ServiceHealthCheck] = [:]
        for ref in services.keys {
            if let check = healthCheck(for: ref, onNode: nodeName) { out[ref] = check }
        }
        return out
    }

    /// The health check of one Service (nil: it has none, or does not exist); see `healthChecks(onNode:)`.
    public func healthCheck(for ref: ObjectRef, onNode nodeName: String) -> ServiceHealthCheck? {
        guard let service = services[ref], service.type == .loadBalancer, service.externalTrafficPolicy == .local,
            let port = service.healthCheckNodePort, port > 0,
            service.isProxied
        else { return nil }
        return ServiceHealthCheck(port: port, localEndpoints: localReadyEndpoints(of: ref, onNode: nodeName))
    }
}
