import SwitchboardCore

/// What an informer tells its consumer: the cluster's changes, and the state of the connection they come
/// through, which only the informer's owner sees (the agent logs it; its controller gets the changes alone).
public enum InformerEvent: Hashable, Sendable {
    /// A change to the objects: `.synced` with the complete set after the first list and after every re-list,
    /// then `.upsert`, `.delete` and `.diagnostics` as the watch reports them.
    case cluster(ClusterEvent)
    /// The list or watch failed and is retried after `retryIn`. For logs and metrics; no action needed.
    /// (`error.isGone` is routine: the informer re-lists and a `.cluster(.synced)` follows.)
    case interrupted(KubeAPIError, retryIn: Duration)
    /// After `.interrupted`: a list or watch request succeeded again. Lets a consumer that reported a lasting
    /// failure (a forbidden watch) clear it even when nothing changes.
    case recovered
}

/// Tuning of an informer; the defaults suit an agent.
public struct InformerOptions: Hashable, Sendable {
    /// Objects per LIST request (`limit`); the API server pages from etcd, bounding each response.
    public var pageSize: Int
    /// The informer's first list is answered from the API server's watch cache (`resourceVersion=0`), as
    /// client-go's is: several times faster at scale, and nothing seen yet that it could be older than.
    /// Re-lists (after `410 Gone`) always read etcd, so they never go back in time.
    public var firstListFromCache: Bool
    /// Each watch asks the server to end it after a random time in this range (seconds), so that watches
    /// spread over API servers as they come and go, as client-go's do. 40 to 60 s rather than client-go's 5 to
    /// 10 minutes: a watch must not stay quiet longer than the client's read timeout (90 s), which is what
    /// notices a dead one (`KubeClient.Options.readTimeout`; longer values are capped there). Resuming from a
    /// resourceVersion is answered from the API server's watch cache, so this costs a cheap request a minute.
    public var watchTimeoutSeconds: ClosedRange<Int>
    /// Delay between failed attempts.
    public var backoff: Backoff
    /// A watch that stays up this long counts as healthy and resets `backoff`.
    public var healthyWatchDuration: Duration

    public init(
        pageSize: Int = 500, watchTimeoutSeconds: ClosedRange<Int> = 40...60, backoff: Backoff = Backoff(),
        healthyWatchDuration: Duration = .seconds(30), firstListFromCache: Bool = true
    ) {
        precondition(pageSize >= 0 && watchTimeoutSeconds.lowerBound > 0, "InformerOptions: invalid values")
        self.pageSize = pageSize
        self.watchTimeoutSeconds = watchTimeoutSeconds
        self.backoff = backoff
        self.healthyWatchDuration = healthyWatchDuration
        self.firstListFromCache = firstListFromCache
    }
}

/// One resource's objects as a stream of changes: list, then watch, forever, surviving dropped connections,
/// API server restarts and `410 Gone`.
///
/// ```swift
/// for try await event in client.informer(for: .services) {
///     switch event {
///     case .cluster(.synced(_, let all)): state.replaceServices(all)
///     case .cluster(.upsert(let object)): state.apply(object)
///     case .cluster(.delete(let object)): state.remove(object)
///     case .cluster(.diagnostics(let diagnostics)): log(diagnostics); metrics.invalid += diagnostics.count
///     case .interrupted(let error, let delay): log(error, delay)
///     case .recovered: log("back")
///     }
/// }
/// ```
///
/// It is driven by its consumer: each `next()` performs the requests and waits it needs, in the caller's
/// task. No task runs in the background, so cancelling the consuming task ends it promptly (the pending
/// request or backoff sleep is cancelled and `next()` throws `CancellationError`); it never ends otherwise
/// and throws nothing else: every failure is reported as `.interrupted` and retried (see `Reflector`).
/// Iterate it once; a new iterator starts over with a list.
public struct Informer: AsyncSequence, Sendable {
    public typealias Element = InformerEvent

    public let resource: KubeResource
    public let options: InformerOptions
    private let source: any ListWatcher

    /// An informer over any `ListWatcher`; `KubeClient.informer(for:options:)` is the usual way to make one.
    /// `resource` holds Services, EndpointSlices or Nodes (`resource.objectKind` is not nil): what decodes into
    /// a `KubeObject`.
    public init(source: some ListWatcher, resource: KubeResource, options: InformerOptions = InformerOptions()) {
        precondition(
            resource.objectKind != nil, "an informer watches Services, EndpointSlices or Nodes, not \(resource)")
        self.source = source
        self.resource = resource
        self.options = options
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(informer: self)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        private let informer: Informer
        private var reflector: Reflector
        private var pending: [InformerEvent] = []
        private var pendingIndex = 0
        private var delay: Duration = .zero
        private var watch: WatchEventStream.AsyncIterator?
        private var watchOpened = ContinuousClock.now
        private var watchTimeout: Duration = .zero
        private var listed = false
        /// A failure was reported and no request has succeeded since: the next success says `.recovered`.
        private var interrupted = false
        private var random = SystemRandomNumberGenerator()

        fileprivate init(informer: Informer) {
            self.informer = informer
            self.reflector = Reflector(
                kind: informer.resource.objectKind!,
                backoff: informer.options.backoff,
                healthyAfter: informer.options.healthyWatchDuration)
        }

        public mutating func next() async throws -> InformerEvent? {
            while true {
                if pendingIndex < pending.count {
                    defer { pendingIndex += 1 }
                    return pending[pendingIndex]
                }
                pending.removeAll(keepingCapacity: true)
                pendingIndex = 0
                try Task.checkCancellation()
                if delay > .zero {
                    let wait = delay
                    delay = .zero
                    try await Task.sleep(for: wait)
                }
                if watch != nil {
                    try await readWatch()
                    continue
                }
                switch reflector.nextStep {
                case .list:
                    do {
                        let result = try await informer.source.list(
                            informer.resource,
                            pageSize: informer.options.pageSize,
                            fromCache: !listed && informer.options.firstListFromCache)
                        listed = true
                        pending = recovered() + reflector.listed(result).map(InformerEvent.cluster)
                    } catch {
                        try requestFailed(error, context: "list \(informer.resource)")
                    }
                case .watch(let version):
                    let seconds = Int.random(in: informer.options.watchTimeoutSeconds, using: &random)
                    do {
                        let stream = try await informer.source.watch(
                            informer.resource, from: version,
                            timeoutSeconds: seconds)
                        watch = stream.makeAsyncIterator()
                        watchOpened = .now
                        watchTimeout = .seconds(seconds)
                        pending = recovered()
                    } catch {
                        try requestFailed(error, context: "watch \(informer.resource)")
                    }
                }
            }
        }

        /// Reads one event from the open watch and turns it into consumer events, or ends the watch.
        private mutating func readWatch() async throws {
            let event: WatchEvent?
            do {
                event = try await watch!.next()
            } catch {
                if Task.isCancelled || error is CancellationError { throw CancellationError() }
                watchEnded(KubeAPIError.transport(error, context: "watch \(informer.resource)"))
                return
            }
            guard let event else {
                // A body stream cancelled with its task ends quietly; don't mistake that for the server's end.
                if Task.isCancelled { throw CancellationError() }
                watchEnded(nil)
                return
            }
            let (events, failure) = reflector.received(event)
            pending = events.map(InformerEvent.cluster)
            if let failure { watchEnded(failure) }
        }

        private mutating func watchEnded(_ error: KubeAPIError?) {
            watch = nil
            delay = reflector.watchEnded(
                openFor: watchOpened.duration(to: .now), requested: watchTimeout,
                error: error, using: &random)
            if let error {
                pending.append(.interrupted(error, retryIn: delay))
                interrupted = true
            }
        }

        /// `[.recovered]` for the first success after a failure, else nothing.
        private mutating func recovered() -> [InformerEvent] {
            defer { interrupted = false }
            return interrupted ? [.recovered] : []
        }

        private mutating func requestFailed(_ error: any Error, context: String) throws {
            if Task.isCancelled || error is CancellationError { throw CancellationError() }
            let error = KubeAPIError.transport(error, context: context)
            delay = reflector.requestFailed(error, using: &random)
            pending.append(.interrupted(error, retryIn: delay))
            interrupted = true
        }
    }
}
