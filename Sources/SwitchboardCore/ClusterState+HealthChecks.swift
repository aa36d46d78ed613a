/// What the health-check server of one `externalTrafficPolicy: Local` Service answers on this node.
public struct ServiceHealthCheck: Hashable, Sendable {
    /// `spec.healthCheckNodePort`.
    public var port: Int
    /// This node's ready endpoints of the Service (`ClusterState.localReadyEndpoints`, in ServiceView.swift).
    public var localEndpoints: Int

    public init(port: Int, localEndpoints: Int) {
        self.port = port
        self.localEndpoints = localEndpoints
    }
}

extension ClusterState {
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
