import SwitchboardCore

/// The bookkeeping of one list-and-watch loop, without any I/O: which request comes next, what each answer
/// means for the consumer, and how long to wait after a failure. `Informer` performs the requests and the
/// waiting; this decides. Tested by feeding it answers, without a server or a clock.
///
/// Rules, as client-go's reflector has them:
/// - Watch from the last resourceVersion seen (events and bookmarks advance it); list only when there is none
///   yet or the server said `410 Gone` — a list is expensive for the server, a resumed watch is cheap.
/// - Every list yields `.synced` with the complete set, so a consumer replaces its view and notices deletions
///   that happened while the watch was down.
/// - Every failure waits `backoff`; a watch that stayed up `healthyAfter` resets it first, and one that the
///   server closed normally (after its timeout) is resumed at once.
struct Reflector: Sendable {
    enum Step: Hashable, Sendable {
        case list
        case watch(from: String)
    }

    /// The kind listed and watched: it names every `.synced` list.
    let kind: ObjectKind
    private(set) var resourceVersion: String?
    /// What the consumer currently holds, by `DecodedObject.key`: lets an update that no longer decodes (or a
    /// delete whose final state does not) remove the version the consumer has.
    private(set) var known: [String: KubeObject] = [:]
    private(set) var backoff: Backoff
    let healthyAfter: Duration

    init(
        kind: ObjectKind, backoff: Backoff = Backoff(), healthyAfter: Duration = .seconds(30),
        resourceVersion: String? = nil
    ) {
        self.kind = kind
        self.backoff = backoff
        self.healthyAfter = healthyAfter
        self.resourceVersion = resourceVersion
    }

    var nextStep: Step {
        resourceVersion.map { .watch(from: $0) } ?? .list
    }

    /// A list succeeded: the consumer's view is replaced wholesale.
    mutating func listed(_ result: ListResult) -> [ClusterEvent] {
        resourceVersion = result.resourceVersion
        known = [:]
        for item in result.items {
            if let object = item.object { known[item.key] = object }
        }
        let diagnostics = result.diagnostics
        return [.synced(kind, result.objects)] + (diagnostics.isEmpty ? [] : [.diagnostics(diagnostics)])
    }

    /// A watch event arrived. Returns what to tell the consumer, and the error that ends this watch, if any.
    mutating func received(_ event: WatchEvent) -> (events: [ClusterEvent], failure: KubeAPIError?) {
        switch event {
        case .added(let item), .modified(let item):
            advance(to: item.resourceVersion)
            var events: [ClusterEvent] = []
            if let object = item.object {
                known[item.key] = object
                events.append(.upsert(object))
            } else if let previous = known.removeValue(forKey: item.key) {
                // Skipping the bad update alone would leave the consumer serving the stale version.
                events.append(.delete(previous))
            }
            if !item.diagnostics.isEmpty { events.append(.diagnostics(item.diagnostics)) }
            return (events, nil)
        case .deleted(let item):
            advance(to: item.resourceVersion)
            let previous = known.removeValue(forKey: item.key)
            // No diagnostics for the last state of an object that is gone: nothing is lost by skipping it.
            guard let gone = item.object ?? previous else { return ([], nil) }
            return ([.delete(gone)], nil)
        case .bookmark(let version):
            advance(to: version)
            return ([], nil)
        case .error(let error):
            return ([], error)
        }
    }

    /// A list, or the request that opens a watch, failed. Returns the delay before the next step.
    mutating func requestFailed(
        _ error: KubeAPIError, using generator: inout some RandomNumberGenerator
    )
        -> Duration
    {
        if error.isGone { resourceVersion = nil }
        return backoff.fail(using: &generator, cap: Self.cap(for: error))
    }

    /// No answer at all (refused, reset, silent: the server is away or restarting) is retried within
    /// `unreachableRetryCap` however long it lasts, so changes made meanwhile are picked up within that
    /// (plus jitter's spread over the fleet) of its return: an attempt that reaches no server costs the
    /// server nothing. An answer that says no (5xx, 429, 403) backs off to the full `Backoff.maximum`.
    static let unreachableRetryCap: Duration = .seconds(2)

    static func cap(for error: KubeAPIError?) -> Duration? {
        error?.kind == .transport ? unreachableRetryCap : nil
    }

    /// An open watch ended after `openFor`: cleanly (`error` nil: the server closed it, normally at the
    /// `timeoutSeconds` it was asked for) or with an error. Returns the delay before the next step.
    mutating func watchEnded(
        openFor: Duration, requested timeout: Duration, error: KubeAPIError?,
        using generator: inout some RandomNumberGenerator
    ) -> Duration {
        // A server-side timeout shorter than `healthyAfter` (tests ask for seconds) is just as healthy.
        let healthy = openFor >= healthyAfter || (error == nil && openFor >= timeout * 0.9)
        if healthy { backoff.reset() }
        if let error, error.isGone { resourceVersion = nil }
        if error == nil && healthy { return .zero }
        // An error after a healthy watch still waits (a little: the backoff was just reset), so that a server
        // that accepts watches and drops them at once is never hammered.
        return backoff.fail(using: &generator, cap: Self.cap(for: error))
    }

    private mutating func advance(to version: String?) {
        if let version, !version.isEmpty { resourceVersion = version }
    }
}
