import AsyncHTTPClient

/// The events of one watch request, parsed incrementally from the response body as it streams in.
///
/// Single-pass, like the HTTP body under it, and driven by its consumer: nothing runs in the background, and
/// cancelling the consuming task cancels the request. Ends (returns nil) when the server closes the watch,
/// normally after `timeoutSeconds`; throws `KubeAPIError` when the connection breaks or the stream is not a
/// watch stream. An `ERROR` event is delivered as `.error`, not thrown: the informer decides what it means.
public struct WatchEventStream: AsyncSequence {
    public typealias Element = WatchEvent

    public let resource: KubeResource
    /// The request, for messages (`watch /api/v1/services`).
    public let source: String
    private let chunks: ChunkSource
    /// The largest single event accepted: bytes that never close an event fail the stream here.
    public let maximumEventBytes: Int
    /// The client's read timeout, named when the connection goes silent for that long.
    let readTimeout: Duration?

    /// A stream over any source of body chunks: the HTTP response, or canned bytes in tests.
    public init<Chunks: AsyncSequence>(
        resource: KubeResource, source: String, chunks: Chunks, maximumEventBytes: Int = 64 << 20,
        readTimeout: Duration? = nil
    )
    where Chunks.Element == [UInt8] {
        self.resource = resource
        self.source = source
        self.chunks = ChunkSource(chunks)
        self.maximumEventBytes = maximumEventBytes
        self.readTimeout = readTimeout
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        private let stream: WatchEventStream
        private var splitter: JSONFrameSplitter
        private var ready: [WatchEvent] = []
        private var readyIndex = 0
        private var finished = false

        fileprivate init(stream: WatchEventStream) {
            self.stream = stream
            self.splitter = JSONFrameSplitter(maximumFrameBytes: stream.maximumEventBytes)
        }

        public mutating func next() async throws -> WatchEvent? {
            while true {
                if readyIndex < ready.count {
                    defer { readyIndex += 1 }
                    return ready[readyIndex]
                }
                ready.removeAll(keepingCapacity: true)
                readyIndex = 0
                if finished { return nil }
                let chunk: [UInt8]?
                do {
                    chunk = try await stream.chunks.next()
                } catch {
                    finished = true
                    if Task.isCancelled { throw CancellationError() }
                    throw KubeAPIError.transport(error, context: stream.source, readTimeout: stream.readTimeout)
                }
                guard let chunk else {
                    finished = true
                    if splitter.isInsideFrame {
                        throw KubeAPIError(
                            kind: .transport, message: "the watch ended in the middle of an event",
                            context: stream.source)
                    }
                    return nil
                }
                do {
                    for frame in try splitter.append(chunk) {
                        ready.append(try WatchEvent.parse(frame, resource: stream.resource, source: stream.source))
                    }
                } catch {
                    finished = true
                    throw error
                }
            }
        }
    }
}

/// A type-erased, single-consumer iterator over body chunks. A class so that copies of the stream share
/// one position, as copies of an HTTP body do.
private final class ChunkSource {
    private let nextChunk: () async throws -> [UInt8]?

    init<Chunks: AsyncSequence>(_ chunks: Chunks) where Chunks.Element == [UInt8] {
        var iterator = chunks.makeAsyncIterator()
        nextChunk = { try await iterator.next() }
    }

    func next() async throws -> [UInt8]? {
        try await nextChunk()
    }
}
