import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A response of the agent's small HTTP servers: everything they serve is a short text.
struct HTTPResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String
    var extraHeaders: [(String, String)] = []

    static func text(_ body: String, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }

    static let notFound = text("404 page not found\n", status: .notFound)
    static let methodNotAllowed = text("405 method not allowed\n", status: .methodNotAllowed)
}

/// A minimal HTTP/1.1 server on NIO: routes GET and HEAD by path to a synchronous handler.
///
/// Shared by `HealthzServer` and `MetricsServer`. It binds when `run` starts, publishes the bound port
/// (`port()`), and stops on graceful shutdown: the listener closes and open connections are cancelled.
final class HTTPServer: Sendable {
    typealias Handler = @Sendable (_ path: Substring) -> HTTPResponse

    let bindAddress: BindAddress
    let name: String
    private let logger: Logger
    private let handler: Handler
    private let eventLoopGroup: any EventLoopGroup
    private let bound = AsyncValue<Int>()

    init(
        name: String, bindAddress: BindAddress, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, handler: @escaping Handler
    ) {
        self.name = name
        self.bindAddress = bindAddress
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.handler = handler
    }

    /// The port the server listens on, once bound (the kernel's choice when bound to port 0). Throws
    /// if binding failed.
    func port() async throws -> Int {
        try await bound.value
    }

    func run() async throws {
        typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: bindAddress.host, port: bindAddress.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            logger.error(
                "cannot listen", metadata: ["server": "\(name)", "address": "\(bindAddress)", "error": "\(error)"])
            bound.fail(error)
            throw error
        }
        let port = server.channel.localAddress?.port ?? bindAddress.port
        bound.set(port)
        logger.info("listening", metadata: ["server": "\(name)", "address": "\(bindAddress.host)", "port": "\(port)"])

        do {
            try await cancelWhenGracefulShutdown {
                try await server.executeThenClose { connections in
                    // Stopping closes the listener rather than cancelling the accept loop: a cancelled
                    // iterator drops the connections NIO has already accepted and buffered, and a dropped
                    // NIOAsyncChannel traps ("Deinited NIOAsyncWriter without calling finish()"). Closed,
                    // the stream still hands over what it buffered, then ends; each connection is then
                    // closed through `executeThenClose`. Hence the loop runs in a task of its own that is
                    // never cancelled, and this task only waits for it.
                    let acceptLoop = Task {
                        await withDiscardingTaskGroup { group in
                            do {
                                for try await connection in connections {
                                    group.addTask { await self.serve(connection) }
                                }
                            } catch {
                                // The listener failed or was closed; either way, stop accepting.
                            }
                            group.cancelAll()
                        }
                    }
                    await withTaskCancellationHandler {
                        await acceptLoop.value
                    } onCancel: {
                        server.channel.close(promise: nil)
                    }
                }
            }
        } catch is CancellationError {
            // Shutting down.
        }
        logger.info("stopped", metadata: ["server": "\(name)"])
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var request: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let head):
                        request = head
                    case .body:
                        break  // no endpoint takes a body
                    case .end:
                        guard let head = request else { continue }
                        request = nil
                        try await respond(to: head, outbound)
                        if !head.isKeepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["server": "\(name)", "error": "\(error)"])
        }
    }

    private func respond(
        to request: HTTPRequestHead, _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let response: HTTPResponse =
            switch request.method {
            case .GET, .HEAD: handler(path)
            default: .methodNotAllowed
            }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.utf8.count))
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
        for (name, value) in response.extraHeaders { headers.add(name: name, value: value) }
        try await outbound.write(
            .head(HTTPResponseHead(version: request.version, status: response.status, headers: headers)))
        if request.method != .HEAD {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
        }
        try await outbound.write(.end(nil))
    }
}

/// A value set once that any number of tasks can wait for.
final class AsyncValue<Value: Sendable>: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Value, any Error>])
        case done(Result<Value, any Error>)
    }

    private let state = Mutex(State.waiting([]))

    var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let result: Result<Value, any Error>? = state.withLock { state in
                    switch state {
                    case .waiting(var waiters):
                        waiters.append(continuation)
                        state = .waiting(waiters)
                        return nil
                    case .done(let result):
                        return result
                    }
                }
                if let result { continuation.resume(with: result) }
            }
        }
    }

    func set(_ value: Value) { complete(.success(value)) }
    func fail(_ error: any Error) { complete(.failure(error)) }

    private func complete(_ result: Result<Value, any Error>) {
        let waiters: [CheckedContinuation<Value, any Error>] = state.withLock { state in
            guard case .waiting(let waiters) = state else { return [] }
            state = .done(result)
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}
