/// The kinds of object a node proxy watches; each has its own informer and its own first complete list.
public enum ObjectKind: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case services = "Service"
    case endpointSlices = "EndpointSlice"
    case nodes = "Node"

    /// The API's `kind`: `Service`, `EndpointSlice`, `Node`.
    public var description: String { rawValue }
}

extension KubeObject {
    /// The kind of this object.
    public var kind: ObjectKind {
        switch self {
        case .service: .services
        case .endpointSlice: .endpointSlices
        case .node: .nodes
        }
    }
}

/// One thing the cluster told us, from the watch to the `ClusterState`: what an informer delivers (KubeAPI's
/// `InformerEvent.cluster`) and what the agent's controller consumes. The connection's own state (a failed
/// watch, its recovery) is not among these: the informer reports it beside them, and it never reaches the
/// controller.
public enum ClusterEvent: Hashable, Sendable {
    /// A complete list of one kind (an informer's initial list, or a re-list after `410 Gone`): replaces
    /// everything of that kind (objects missing here were deleted while the watch was down). Objects of
    /// another kind in the list are ignored.
    case synced(ObjectKind, [KubeObject])
    /// An object was added or modified.
    case upsert(KubeObject)
    /// An object was deleted (only its identity matters), or changed into something that no longer decodes
    /// (then `.diagnostics` follows).
    case delete(KubeObject)
    /// Objects that could not be decoded, or were decoded in part, and why: logged and counted, never fatal.
    case diagnostics([Diagnostic])
}
