import SwitchboardAgent
import SwitchboardCore

/// An in-memory `ClusterSource`: what tests `send` is what the controller receives, in order.
///
/// It has a single consumer (it is an `AsyncStream` underneath).
public struct FakeClusterSource: ClusterSource {
    public typealias AsyncIterator = AsyncStream<ClusterEvent>.Iterator

    private let stream: AsyncStream<ClusterEvent>
    private let continuation: AsyncStream<ClusterEvent>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: ClusterEvent.self)
    }

    public func makeAsyncIterator() -> AsyncIterator { stream.makeAsyncIterator() }

    /// Delivers an event to the consumer.
    public func send(_ event: ClusterEvent) {
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
