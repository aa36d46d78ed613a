/// Everything the compiler needs from the cluster: a plain value.
///
/// Each change reports which Service keys it touched, so the agent can mark exactly those dirty.
public struct ClusterState: Hashable, Sendable {
    public private(set) var services: [ObjectRef: Service] = [:]
    /// Slices by their own namespace/name.
    public private(set) var slices: [ObjectRef: EndpointSlice] = [:]
    /// Slice keys per owning Service key (label `kubernetes.io/service-name`).
    private var slicesByService: [ObjectRef: Set<ObjectRef>] = [:]
    /// Nodes by name (the agent watches only its own; files may hold several).
    public private(set) var nodes: [String: Node] = [:]

    public init() {}

    public init(_ objects: some Sequence<KubeObject>) {
        for object in objects { upsert(object) }
    }

    /// Adds or replaces an object; returns the Service keys whose rules may change.
    @discardableResult
    public mutating func upsert(_ object: KubeObject) -> Set<ObjectRef> {
        switch object {
        case .service(let service):
            services[service.ref] = service
            return [service.ref]
        case .endpointSlice(let slice):
            var touched = removeSlice(slice.ref)
            slices[slice.ref] = slice
            if let owner = slice.serviceRef {
                slicesByService[owner, default: []].insert(slice.ref)
                touched.insert(owner)
            }
            return touched
        case .node(let node):
            let old = nodes.updateValue(node, forKey: node.name)
            // A node change (addresses, zone) can affect every Service; its taints or deletion affect none.
            return old?.forRules == node.forRules ? [] : Set(services.keys)
        }
    }

    /// Removes an object (only its identity matters); returns the Service keys whose rules may change.
    @discardableResult
    public mutating func remove(_ object: KubeObject) -> Set<ObjectRef> {
        switch object {
        case .service(let service):
            return services.removeValue(forKey: service.ref) == nil ? [] : [service.ref]
        case .endpointSlice(let slice):
            return removeSlice(slice.ref)
        case .node(let node):
            return nodes.removeValue(forKey: node.name) == nil ? [] : Set(services.keys)
        }
    }

    private mutating func removeSlice(_ ref: ObjectRef) -> Set<ObjectRef> {
        guard let old = slices.removeValue(forKey: ref) else { return [] }
        guard let owner = old.serviceRef else { return [] }
        slicesByService[owner]?.remove(ref)
        if slicesByService[owner]?.isEmpty == true { slicesByService[owner] = nil }
        return [owner]
    }

    /// The slices that belong to a Service, in a deterministic order.
    public func endpointSlices(for service: ObjectRef) -> [EndpointSlice] {
        (slicesByService[service] ?? []).sorted().compactMap { slices[$0] }
    }
}
