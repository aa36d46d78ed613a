import Foundation
import SwitchboardCore

/// The controller's view of the cluster between syncs, as a plain value: the `ClusterState`, which kinds
/// have been listed, which Services changed since the last successful sync, and the EndpointSlice trigger
/// times waiting to be observed as network programming latency. It also counts changes the way kube-proxy's
/// change trackers do, for `kubeproxy_sync_proxy_rules_{service,endpoint}_changes_{total,pending}`.
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
    /// Services whose object differs from what it was at the last successful sync (kube-proxy's pending
    /// Service changes: a change undone before the sync is not pending).
    private(set) var pendingServices: Set<ObjectRef> = []
    /// Per Service changed since the last successful sync, its object then (nil: it did not exist).
    private var serviceBaseline: [ObjectRef: Service?] = [:]
    /// EndpointSlice events that changed a slice since the last successful sync, each counted (kube-proxy's
    /// pending Endpoint changes: three updates of one slice are three).
    private(set) var pendingEndpointSliceChanges = 0
    /// Events since the last `takeEventCounts()`, as kube-proxy counts them in its `_changes_total`
    /// counters: every add, update (a resend of an unchanged object too) and delete of a Service or of an
    /// EndpointSlice that names its Service; a complete list counts each object it lists or drops.
    private var eventCounts = (services: 0, endpointSlices: 0)

    init(ignoreTriggersBefore: Date) {
        self.ignoreTriggersBefore = ignoreTriggersBefore
    }

    /// Every kind has been listed once: syncing may start.
    var isInitialized: Bool { listed.count == ObjectKind.allCases.count }

    /// Applies one event; true if the ruleset may have changed. Diagnostics change nothing.
    mutating func apply(_ event: ClusterEvent) -> Bool {
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
        pendingServices = []
        serviceBaseline = [:]
        pendingEndpointSliceChanges = 0
        return times
    }

    /// The Service and EndpointSlice events since the last call (see `eventCounts`), and resets them.
    mutating func takeEventCounts() -> (services: Int, endpointSlices: Int) {
        defer { eventCounts = (0, 0) }
        return eventCounts
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
        countEvent(object)
        // Informers resend unchanged objects (resyncs, re-lists): they change nothing.
        switch object {
        case .service(let service): if state.services[service.ref] == service { return false }
        case .endpointSlice(let slice): if state.slices[slice.ref] == slice { return false }
        case .node(let node): if state.nodes[node.name] == node { return false }
        }
        changing(object)
        var nodeBefore: Node?
        if case .node(let node) = object { nodeBefore = state.nodes[node.name] }
        let touched = state.upsert(object)
        changed(object)
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
        countEvent(object)
        let existed: Bool =
            switch object {
            case .service(let service): state.services[service.ref] != nil
            case .endpointSlice(let slice): state.slices[slice.ref] != nil
            case .node(let node): state.nodes[node.name] != nil
            }
        guard existed else { return false }
        changing(object)
        let touched = state.remove(object)
        changed(object)
        dirty.formUnion(touched)
        if case .endpointSlice(let slice) = object { triggerTimes[slice.ref] = nil }
        if case .node = object { return true }
        return !touched.isEmpty
    }

    private mutating func countEvent(_ object: KubeObject) {
        switch object {
        case .service: eventCounts.services += 1
        case .endpointSlice(let slice) where slice.serviceRef != nil: eventCounts.endpointSlices += 1
        default: break
        }
    }

    /// Records what a change is about to change, for the pending counts; `changed` follows it.
    private mutating func changing(_ object: KubeObject) {
        switch object {
        case .service(let service):
            if serviceBaseline.index(forKey: service.ref) == nil {
                serviceBaseline[service.ref] = .some(state.services[service.ref])
            }
        case .endpointSlice(let slice) where slice.serviceRef != nil:
            pendingEndpointSliceChanges += 1
        default:
            break
        }
    }

    /// After a change is applied: a Service is pending unless it is back to what it was at the last sync.
    private mutating func changed(_ object: KubeObject) {
        guard case .service(let service) = object, let baseline = serviceBaseline[service.ref] else { return }
        if baseline == state.services[service.ref] {
            pendingServices.remove(service.ref)
        } else {
            pendingServices.insert(service.ref)
        }
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
