import Foundation
import SwitchboardCore

/// The controller's view of the cluster between syncs, as a plain value: the `ClusterState`, which kinds
/// have been listed, which Services changed since the last successful sync, and the EndpointSlice trigger
/// times waiting to be observed as network programming latency.
struct ClusterTracker: Sendable {
    /// The annotation the EndpointSlice controller sets to when the change that caused the update happened.
    static let triggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time"

    private(set) var state = ClusterState()
    /// Kinds whose first complete list arrived.
    private(set) var listed: Set<ObjectKind> = []
    /// Services whose rules may have changed since the last successful sync.
    private(set) var dirty: Set<ObjectRef> = []
    /// Per changed EndpointSlice, the trigger time of its oldest change not yet committed.
    private(set) var triggerTimes: [ObjectRef: Date] = [:]
    /// Trigger times before this are ignored (kube-proxy's `trackerStartTime`): they belong to changes made
    /// before the agent started, which the initial list reports as if they were new.
    let ignoreTriggersBefore: Date

    init(ignoreTriggersBefore: Date) {
        self.ignoreTriggersBefore = ignoreTriggersBefore
    }

    /// Every kind has been listed once: syncing may start.
    var isInitialized: Bool { listed.count == ObjectKind.allCases.count }

    /// Applies one event; true if the ruleset may have changed. Diagnostics change nothing.
    mutating func apply(_ event: SourceEvent) -> Bool {
        switch event {
        case .synced(let kind, let objects):
            return replaceAll(kind, with: objects)
        case .upsert(let object):
            return upsert(object)
        case .delete(let object):
            return remove(object)
        case .diagnostics:
            return false
        }
    }

    /// The rules of a successful sync are committed: returns the trigger times it made true and forgets
    /// them and the dirty set.
    mutating func committed() -> [Date] {
        let times = triggerTimes.keys.sorted().map { triggerTimes[$0]! }
        triggerTimes = [:]
        dirty = []
        return times
    }

    private mutating func replaceAll(_ kind: ObjectKind, with objects: [KubeObject]) -> Bool {
        listed.insert(kind)
        var changed = false
        var keep = Set<ObjectKey>()
        for object in objects where object.kind == kind {
            keep.insert(ObjectKey(object))
            if upsert(object) { changed = true }
        }
        let gone: [KubeObject] =
            switch kind {
            case .services: state.services.values.filter { !keep.contains(.service($0.ref)) }.map { .service($0) }
            case .endpointSlices:
                state.slices.values.filter { !keep.contains(.endpointSlice($0.ref)) }.map { .endpointSlice($0) }
            case .nodes: state.nodes.values.filter { !keep.contains(.node($0.name)) }.map { .node($0) }
            }
        for object in gone where remove(object) { changed = true }
        return changed
    }

    private mutating func upsert(_ object: KubeObject) -> Bool {
        // Informers resend unchanged objects (resyncs, re-lists): they change nothing.
        switch object {
        case .service(let service): if state.services[service.ref] == service { return false }
        case .endpointSlice(let slice): if state.slices[slice.ref] == slice { return false }
        case .node(let node): if state.nodes[node.name] == node { return false }
        }
        var nodeBefore: Node?
        if case .node(let node) = object { nodeBefore = state.nodes[node.name] }
        let touched = state.upsert(object)
        dirty.formUnion(touched)
        if case .endpointSlice(let slice) = object, !touched.isEmpty, let time = triggerTime(slice),
            time >= ignoreTriggersBefore
        {
            triggerTimes[slice.ref] = min(triggerTimes[slice.ref] ?? time, time)
        }
        // The node shapes the skeleton (NodePort addresses) even without any Service; its taints and deletion
        // shape no rule (they decide `/healthz`, which the controller updates apart from syncs).
        if case .node(let node) = object { return nodeBefore?.forRules != node.forRules }
        return !touched.isEmpty
    }

    private mutating func remove(_ object: KubeObject) -> Bool {
        let existed: Bool =
            switch object {
            case .service(let service): state.services[service.ref] != nil
            case .endpointSlice(let slice): state.slices[slice.ref] != nil
            case .node(let node): state.nodes[node.name] != nil
            }
        guard existed else { return false }
        let touched = state.remove(object)
        dirty.formUnion(touched)
        if case .endpointSlice(let slice) = object { triggerTimes[slice.ref] = nil }
        if case .node = object { return true }
        return !touched.isEmpty
    }

    private func triggerTime(_ slice: EndpointSlice) -> Date? {
        slice.annotations[Self.triggerTimeAnnotation].flatMap(RFC3339.parse)
    }
}

/// An object's identity within its kind.
private enum ObjectKey: Hashable {
    case service(ObjectRef)
    case endpointSlice(ObjectRef)
    case node(String)

    init(_ object: KubeObject) {
        switch object {
        case .service(let service): self = .service(service.ref)
        case .endpointSlice(let slice): self = .endpointSlice(slice.ref)
        case .node(let node): self = .node(node.name)
        }
    }
}
