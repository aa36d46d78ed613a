import SwitchboardCore

/// The kinds of object the agent watches; each has its own informer and its own first complete list.
public enum ObjectKind: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case services = "Service"
    case endpointSlices = "EndpointSlice"
    case nodes = "Node"

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

/// One thing the cluster told us.
public enum SourceEvent: Hashable, Sendable {
    /// A complete list of one kind (an informer's initial list, or a re-list after `410 Gone`): replaces
    /// everything of that kind. Objects of another kind in the list are ignored.
    case synced(ObjectKind, [KubeObject])
    /// An object was added or modified.
    case upsert(KubeObject)
    /// An object was deleted (only its identity matters).
    case delete(KubeObject)
    /// Objects that could not be decoded, and why: logged and counted, never fatal.
    case diagnostics([Diagnostic])
}

/// The I/O edge for Kubernetes: a stream of `SourceEvent`s, normally for as long as the agent runs.
///
/// The KubeAPI informers are one implementation; `FakeClusterSource` is the in-memory one for tests. An
/// `AsyncStream<SourceEvent>` (or a throwing one) is a `ClusterSource` too, so a producer running as its own
/// `Service` can feed the controller through a stream.
///
/// Contract: a `.synced` list for each of the three kinds comes before the agent applies anything. If the
/// sequence ends, the controller keeps the rules it has and goes on with periodic syncs; if it throws,
/// the controller stops with that error (the rules stay in place).
public protocol ClusterSource: AsyncSequence, Sendable where Element == SourceEvent {}

extension AsyncStream: ClusterSource where Element == SourceEvent {}
extension AsyncThrowingStream: ClusterSource where Element == SourceEvent {}

/// An in-memory `ClusterSource`: what tests `send` is what the controller receives, in order.
///
/// It has a single consumer (it is an `AsyncStream` underneath).
public struct FakeClusterSource: ClusterSource {
    public typealias AsyncIterator = AsyncStream<SourceEvent>.Iterator

    private let stream: AsyncStream<SourceEvent>
    private let continuation: AsyncStream<SourceEvent>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: SourceEvent.self)
    }

    public func makeAsyncIterator() -> AsyncIterator { stream.makeAsyncIterator() }

    /// Delivers an event to the consumer.
    public func send(_ event: SourceEvent) {
        continuation.yield(event)
    }

    /// Delivers the first complete list of every kind at once: what three informers do at start.
    public func sendInitialLists(_ objects: [KubeObject]) {
        for kind in ObjectKind.allCases {
            send(.synced(kind, objects.filter { $0.kind == kind }))
        }
    }

    /// Ends the sequence (the controller keeps running on its timers).
    public func finish() {
        continuation.finish()
    }
}
