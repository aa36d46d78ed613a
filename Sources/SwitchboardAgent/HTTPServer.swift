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

    /// Serves until graceful shutdown (or cancellation), then closes the listener and every open
    /// connection.
    ///
    /// Connections are plain channel handlers (`HTTPConnectionHandler`), not `NIOAsyncChannel`s: a
    /// connection accepted while the listener closes is wrapped, dropped unserved, and an async
    /// channel dropped before its first use traps when the connection turns active ("Deinited
    /// NIOAsyncWriter without calling finish()", NIO 2.101): a SIGILL at SIGTERM under client load,
    /// reproduced by `HTTPServerTests.shutsDownCleanlyWhileClientsHammerIt`.
    func run() async throws {
        let connections = OpenConnections()
        let handler = self.handler
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    connections.insert(channel)
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionHandler(handler: handler))
                    }
                }
                .bind(host: bindAddress.host, port: bindAddress.port).get()
        } catch {
            logger.error(
                "cannot listen", metadata: ["server": "\(name)", "address": "\(bindAddress)", "error": "\(error)"])
            bound.fail(error)
            throw error
        }
        let port = server.localAddress?.port ?? bindAddress.port
        bound.set(port)
        logger.info("listening", metadata: ["server": "\(name)", "address": "\(bindAddress.host)", "port": "\(port)"])

        // Until graceful shutdown or cancellation (or the listener failing).
        // (A future's `get()` ignores cancellation: closing the listener is what ends the wait.)
        try? await cancelWhenGracefulShutdown {
            try await withTaskCancellationHandler {
                try await server.closeFuture.get()
            } onCancel: {
                server.close(promise: nil)
            }
        }
        try? await server.close()
        for connection in connections.closeAll() { connection.close(promise: nil) }
        logger.info("stopped", metadata: ["server": "\(name)"])
    }
}

/// The server's open connections, so stopping closes them too (a keep-alive connection to a health
/// check port must not outlive its Service).
private final class OpenConnections: Sendable {
    private let channels = Mutex<(open: [ObjectIdentifier: any Channel], closed: Bool)>(([:], false))

    /// Tracks `channel` until it closes; one that arrives after `closeAll` is closed at once.
    func insert(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let admitted = channels.withLock { state in
            if state.closed { return false }
            state.open[id] = channel
            return true
        }
        guard admitted else { return channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in _ = self.channels.withLock { $0.open.removeValue(forKey: id) } }
    }

    /// Stops admitting connections; returns the open ones.
    func closeAll() -> [any Channel] {
        channels.withLock { state in
            state.closed = true
            return Array(state.open.values)
        }
    }
}

/// One HTTP/1.1 connection: each complete GET or HEAD request gets the handler's response, in order.
private final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handler: HTTPServer.Handler
    private var request: HTTPRequestHead?

    init(handler: @escaping HTTPServer.Handler) { self.handler = handler }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break  // no endpoint takes a body
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context)
        }
    }

    private func respond(to request: HTTPRequestHead, _ context: ChannelHandlerContext) {
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
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: response.status, headers: headers))),
            promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
        }
        if request.isKeepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
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
