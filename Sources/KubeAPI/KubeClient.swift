import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardCore

/// The Kubernetes API, read-only, as a node proxy needs it: discovery, paginated lists, watches and
/// informers, over one shared `HTTPClient` (one connection pool of HTTP/1.1 connections: each watch has its own,
/// so a silent one is closed alone; see `Options.readTimeout`).
///
/// ```swift
/// try await KubeClient.withClient(config: .load(kubeconfigPath: path)) { client in
///     let version = try await client.endpointSliceVersion()          // .v1, or .v1beta1 before 1.21
///     try await withThrowingDiscardingTaskGroup { group in
///         group.addTask { for try await event in client.informer(for: .services) { ... } }
///         group.addTask { for try await event in client.informer(for: .endpointSlices(version)) { ... } }
///         group.addTask { for try await event in client.informer(for: .node(named: nodeName)) { ... } }
///     }
/// }
/// ```
///
/// Owning a client directly is fine too, but then `shutdown()` must be awaited before it is released (the
/// connection pool is not torn down implicitly). Requests authenticate with the config's token (re-reading a
/// token file every minute and after a 401, retrying once) and/or client certificate, verify TLS against the
/// config's CA, and never follow redirects (the token must not travel to another host). One-shot calls throw
/// `KubeAPIError` (or `CancellationError`).
public final class KubeClient: ListWatcher {
    public let config: KubeConfig
    public let options: Options
    private let http: HTTPClient
    private let tokens: BearerTokenSource?

    public struct Options: Hashable, Sendable {
        /// How long a request may take until the response head arrives.
        public var requestTimeout: Duration
        /// How long a response may stay silent before its connection counts as dead and is closed: what notices
        /// a watch that stopped delivering (a connection that died without a FIN or RST, a peer or middlebox
        /// that stopped forwarding, a response that never ends). Watches are asked to end within two thirds
        /// of it (`watch(_:from:timeoutSeconds:)`), so a quiet but healthy watch ends normally first: a server
        /// before 1.27 sends nothing on a quiet watch but a bookmark just before its end.
        public var readTimeout: Duration
        /// The largest non-streamed response accepted (one LIST page, discovery): a body that never ends
        /// fails here instead of growing without bound.
        public var maximumResponseBytes: Int
        /// The largest single watch event accepted: the same bound for a watch stream.
        public var maximumEventBytes: Int
        public var userAgent: String
        /// Whether a connection that fails is retried (AsyncHTTPClient's quick backoff) until the request's
        /// deadline, which then fails with the last connection error. On for the agent: after an API server
        /// restart its watches reconnect within a second, where failing each attempt would grow the
        /// informers' backoff (13.5 s instead of 0.5-0.7 s in `AgentTests`). Off for one-shot commands, so
        /// that a refused server certificate is reported at once.
        public var retryConnections: Bool
        /// The deadline of discovery requests (`/apis/discovery.k8s.io`, `/version`): small answers, so a
        /// connection that keeps failing (a refused certificate, with `retryConnections`) is reported sooner
        /// than `requestTimeout`, which must allow for a large list.
        public var discoveryTimeout: Duration

        /// The defaults notice a dead watch within 90 s (client-go's HTTP/2 health check: 30 s idle + 15 s
        /// ping timeout, for the connection its watches share).
        public init(
            requestTimeout: Duration = .seconds(60), readTimeout: Duration = .seconds(90),
            maximumResponseBytes: Int = 256 << 20, maximumEventBytes: Int = 64 << 20,
            userAgent: String = "switchboard", retryConnections: Bool = true,
            discoveryTimeout: Duration = .seconds(10)
        ) {
            self.retryConnections = retryConnections
            self.discoveryTimeout = discoveryTimeout
            self.requestTimeout = requestTimeout
            self.readTimeout = readTimeout
            self.maximumResponseBytes = maximumResponseBytes
            self.maximumEventBytes = maximumEventBytes
            self.userAgent = userAgent
        }

        /// The longest watch to ask the server for: two thirds of `readTimeout` (60 s by default).
        public var longestWatchSeconds: Int {
            max(1, Int(readTimeout.components.seconds) * 2 / 3)
        }
    }

    /// Validates the TLS material (throws a `.config` error for bad PEM) and starts the connection pool.
    public init(config: KubeConfig, options: Options = Options()) throws(KubeAPIError) {
        guard config.server.hasPrefix("https://") || config.server.hasPrefix("http://") else {
            throw KubeAPIError.config("server \(config.server) is not an http(s) URL", config.source)
        }
        var configuration = HTTPClient.Configuration()
        if config.server.hasPrefix("https://") {
            configuration.tlsConfiguration = try config.tlsConfiguration()
        }
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.retryConnectionEstablishment = options.retryConnections
        // HTTP/1.1, one connection per request: a read timeout closes exactly the connection that went silent,
        // and the retry gets a fresh one. Over HTTP/2 every watch shares one connection, and a timed-out stream
        // leaves that connection in the pool, so a blackholed connection would take every retry with it
        // (client-go pings it; AsyncHTTPClient has no HTTP/2 health check). A node needs 3 to 4 connections.
        configuration.httpVersion = .http1Only
        configuration.timeout = .init(connect: .seconds(10), read: .nanoseconds(options.readTimeout.nanoseconds))
        self.config = config
        self.options = options
        self.tokens = BearerTokenSource(config.credentials, source: config.source)
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Creates a client, runs `body` with it and shuts it down, whether `body` returns or throws.
    public static func withClient<Result>(
        config: KubeConfig, options: Options = Options(), _ body: (KubeClient) async throws -> Result
    ) async throws -> Result {
        let client = try KubeClient(config: config, options: options)
        let result: Result
        do {
            result = try await body(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return result
    }

    /// Closes the connection pool; in-flight requests fail. Call once, after every informer has ended.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// An informer for `resource`: list, then watch, forever (see `Informer`).
    public func informer(for resource: KubeResource, options: InformerOptions = InformerOptions()) -> Informer {
        Informer(source: self, resource: resource, options: options)
    }

    // MARK: - Discovery

    /// The EndpointSlice version to read: `v1` where the server serves it (1.21+), else `v1beta1`.
    /// Throws `isNotFound` on servers without the `discovery.k8s.io` group (before 1.17).
    public func endpointSliceVersion() async throws -> EndpointSliceVersion {
        let path = "/apis/discovery.k8s.io"
        let group = try await getJSON(path, timeout: options.discoveryTimeout)
        guard case .array(let versions) = group["versions"] ?? .null else {
            throw KubeAPIError(
                kind: .invalidResponse, message: "APIGroup without versions: \(group)",
                context: "GET \(path)")
        }
        let served = Set(versions.compactMap { $0["version"]?.stringValue })
        for candidate in EndpointSliceVersion.allCases where served.contains(candidate.rawValue) {
            return candidate
        }
        throw KubeAPIError(
            kind: .invalidResponse,
            message: "discovery.k8s.io serves \(served.sorted()), none of which Switchboard reads",
            context: "GET \(path)")
    }

    /// The server's `gitVersion`, e.g. `v1.20.2`, for logs.
    public func serverVersion() async throws -> String {
        let info = try await getJSON("/version", timeout: options.discoveryTimeout)
        guard let version = info["gitVersion"]?.stringValue else {
            throw KubeAPIError(kind: .invalidResponse, message: "no gitVersion in \(info)", context: "GET /version")
        }
        return version
    }

    /// GET any API path (with its query) and parse the JSON answer.
    public func get(_ pathAndQuery: String) async throws -> JSONValue {
        try await getJSON(pathAndQuery)
    }

    // MARK: - List and watch

    /// Every object of `resource`, `pageSize` per request (`limit`/`continue`; 0 = unpaged), with the
    /// list's resourceVersion. Malformed objects come back as items with diagnostics, not as errors.
    ///
    /// With `fromCache`, the first request asks for `resourceVersion=0`, which the API server answers from
    /// its watch cache, as client-go's reflectors do for their first list: at 10k Services that takes a
    /// fraction of paging through etcd, though servers before 1.27 then ignore `limit`. Without it the list
    /// is read from etcd and current. If a continue token expires mid-way (a very slow list), it starts
    /// over unpaged. Each page is decoded item by item as it is read, so a page never exists as one tree.
    public func list(_ resource: KubeResource, pageSize: Int = 500, fromCache: Bool = false) async throws -> ListResult {
        var items: [DecodedObject] = []
        var pages = 0
        var limit = pageSize
        var token: String?
        var restarted = false
        let source = "list \(resource.path)"
        while true {
            var query = selectorQuery(resource)
            if limit > 0 { query.append(("limit", String(limit))) }
            // A continue token carries its own version; the server refuses both together.
            if let token { query.append(("continue", token)) } else if fromCache { query.append(("resourceVersion", "0")) }
            let path = resource.path + QueryString.make(query)
            let body: ByteBuffer
            do {
                body = try await getBody(path, needs: resource.permission("list"))
            } catch let error as KubeAPIError where error.isGone && token != nil && !restarted {
                items = []
                pages = 0
                limit = 0
                token = nil
                restarted = true
                continue
            }
            pages += 1
            let metadata = try body.withUnsafeReadableBytes { bytes in
                try ListResult.decodePage(bytes, resource: resource, source: source, context: "GET \(path)") {
                    items.append($0)
                }
            }
            if let next = metadata["continue"]?.stringValue, !next.isEmpty {
                token = next
                continue
            }
            guard let version = metadata["resourceVersion"]?.stringValue, !version.isEmpty else {
                throw KubeAPIError(
                    kind: .invalidResponse, message: "list without metadata.resourceVersion",
                    context: "GET \(path)")
            }
            return ListResult(items: items, resourceVersion: version, pageCount: pages)
        }
    }

    /// Opens a watch of `resource` from `resourceVersion`, with bookmarks; the server ends it after
    /// `timeoutSeconds`, capped at `options.longestWatchSeconds` (a watch that stays quiet longer than
    /// `options.readTimeout` is cut as dead). Returns once the server has accepted it; the events stream in as
    /// the caller iterates.
    public func watch(
        _ resource: KubeResource, from resourceVersion: String, timeoutSeconds: Int = 60
    )
        async throws -> WatchEventStream
    {
        var query = selectorQuery(resource)
        query += [
            ("watch", "1"), ("allowWatchBookmarks", "true"), ("resourceVersion", resourceVersion),
            ("timeoutSeconds", String(min(max(timeoutSeconds, 1), options.longestWatchSeconds))),
        ]
        let path = resource.path + QueryString.make(query)
        let response = try await send(path, needs: resource.permission("watch"))
        let chunks = response.body.map { Array($0.readableBytesView) }
        return WatchEventStream(
            resource: resource, source: "watch \(resource.path)", chunks: chunks,
            maximumEventBytes: options.maximumEventBytes, readTimeout: options.readTimeout)
    }

    private func selectorQuery(_ resource: KubeResource) -> [(String, String)] {
        var query: [(String, String)] = []
        if let selector = resource.labelSelector, !selector.isEmpty { query.append(("labelSelector", selector)) }
        if let selector = resource.fieldSelector, !selector.isEmpty { query.append(("fieldSelector", selector)) }
        return query
    }

    // MARK: - HTTP

    private func getJSON(_ pathAndQuery: String, timeout: Duration? = nil) async throws -> JSONValue {
        let body = try await getBody(pathAndQuery, timeout: timeout)
        do {
            return try body.withUnsafeReadableBytes { try JSONValue(jsonBytes: $0) }
        } catch {
            throw KubeAPIError(
                kind: .invalidResponse, message: "response is not JSON: \(error)", context: "GET \(pathAndQuery)")
        }
    }

    /// The whole body of a 2xx answer to GET `pathAndQuery` (at most `options.maximumResponseBytes`).
    private func getBody(
        _ pathAndQuery: String, needs permission: Permission? = nil, timeout: Duration? = nil
    ) async throws -> ByteBuffer {
        let response = try await send(pathAndQuery, needs: permission, timeout: timeout)
        do {
            return try await response.body.collect(upTo: options.maximumResponseBytes)
        } catch is NIOTooManyBytesError {
            throw KubeAPIError(
                kind: .invalidResponse, message: "the response is larger than \(options.maximumResponseBytes) bytes",
                context: "GET \(pathAndQuery)")
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw KubeAPIError.transport(error, context: "GET \(pathAndQuery)", readTimeout: options.readTimeout)
        }
    }

    /// GETs `pathAndQuery`, returning the response of a 2xx answer with its body still to read, and throwing
    /// the server's `Status` for anything else. A 401 with a token file re-reads the file and retries once:
    /// the kubelet may have rotated the token since it was last read. A 403 names `permission`.
    ///
    /// The only request this client makes: it never writes to the API (`ReadOnlyClientTests`).
    private func send(
        _ pathAndQuery: String, needs permission: Permission? = nil, timeout: Duration? = nil
    ) async throws -> HTTPClientResponse {
        let context = "GET \(pathAndQuery)"
        var attempt = 0
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: config.server + pathAndQuery)
            request.method = .GET
            request.headers.add(name: "Accept", value: "application/json")
            request.headers.add(name: "User-Agent", value: options.userAgent)
            if let tokens {
                request.headers.add(name: "Authorization", value: "Bearer \(try tokens.token())")
            }
            let response: HTTPClientResponse
            do {
                let limit = TimeAmount.nanoseconds((timeout ?? options.requestTimeout).nanoseconds)
                response = try await http.execute(request, deadline: .now() + limit)
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw KubeAPIError.transport(error, context: context, readTimeout: options.readTimeout)
            }
            let status = Int(response.status.code)
            if (200..<300).contains(status) { return response }
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { [UInt8]($0.readableBytesView) } ?? []
            var error = KubeAPIError.fromResponse(status: status, body: body, context: context)
            if error.isForbidden { error.denied = permission }
            if error.isUnauthorized, let tokens {
                tokens.refused()
                if tokens.canRefresh && attempt == 1 { continue }
            }
            throw error
        }
    }
}

extension Duration {
    /// Whole nanoseconds, saturating (for NIO's `TimeAmount`).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product + attoseconds / 1_000_000_000
    }
}
