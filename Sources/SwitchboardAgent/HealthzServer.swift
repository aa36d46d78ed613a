import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// kube-proxy's health server (`--healthz-bind-address`, default `0.0.0.0:10256`), as in kube-proxy 1.31+:
///
/// - `/livez` answers 200 while the rules keep up (`HealthState.Status.isHealthy`), else 503, with
///   `{"lastUpdated": "<RFC 3339>", "currentTime": "<RFC 3339>"}`;
/// - `/healthz` answers the same, except that it is also 503 while this node is not eligible for
///   load-balancer traffic (its Node being deleted or gone, or tainted `ToBeDeletedByClusterAutoscaler`:
///   `NodeEligibility`), so that cloud load balancers drain the node before it goes; its JSON adds
///   `"nodeEligible": true|false`.
///
/// `lastUpdated` is `currentTime` whenever the answer is 200 (kube-proxy's compatibility rule), else the
/// last successful sync. Both send `X-Content-Type-Options: nosniff`, as kube-proxy's do. Every answer is
/// counted by path and code in `metrics` (`kubeproxy_proxy_healthz_total`, `kubeproxy_proxy_livez_total`).
/// Unlike kube-proxy, which prints Go's `time.Time` text, the times are RFC 3339.
public final class HealthzServer: ServiceLifecycle.Service {
    private let server: HTTPServer

    /// - Parameter metrics: where answers are counted; nil: not counted.
    public init(
        bindAddress: BindAddress = .defaultHealthz, health: HealthState, metrics: AgentMetrics? = nil, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        server = HTTPServer(name: "healthz", bindAddress: bindAddress, logger: logger, eventLoopGroup: eventLoopGroup) {
            path in
            switch path {
            case "/healthz":
                let response = Self.healthz(health.status)
                metrics?.countHealthz(code: response.status.code)
                return response
            case "/livez":
                let response = Self.livez(health.status)
                metrics?.countLivez(code: response.status.code)
                return response
            default:
                return .notFound
            }
        }
    }

    /// The port it listens on, once `run` has bound it.
    public func port() async throws -> Int { try await server.port() }

    public func run() async throws { try await server.run() }

    /// `/healthz`: 200 when the rules keep up and this node is eligible for load-balancer traffic.
    static func healthz(_ status: HealthState.Status) -> HTTPResponse {
        response(ok: status.isHealthzOK, status, extra: #", "nodeEligible": \#(status.nodeEligible)"#)
    }

    /// `/livez`: 200 when the rules keep up, whatever the Node says.
    static func livez(_ status: HealthState.Status) -> HTTPResponse {
        response(ok: status.isHealthy, status, extra: "")
    }

    private static func response(ok: Bool, _ status: HealthState.Status, extra: String) -> HTTPResponse {
        let lastUpdated = RFC3339.format(ok ? status.currentTime : status.lastSynced)
        let currentTime = RFC3339.format(status.currentTime)
        let body = #"{"lastUpdated": "\#(lastUpdated)", "currentTime": "\#(currentTime)"\#(extra)}"#
        return HTTPResponse(
            status: ok ? .ok : .serviceUnavailable, contentType: "application/json", body: body + "\n",
            extraHeaders: [("X-Content-Type-Options", "nosniff")])
    }
}

/// kube-proxy's metrics server (`--metrics-bind-address`, default `127.0.0.1:10249`): `/metrics` in the
/// Prometheus text format and `/proxyMode` (`nftables`).
public final class MetricsServer: ServiceLifecycle.Service {
    /// The Prometheus text exposition format's content type.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
    /// What `/proxyMode` answers: the rules are nftables rules, like kube-proxy's nftables mode.
    public static let proxyMode = "nftables"

    private let server: HTTPServer

    public init(
        bindAddress: BindAddress = .defaultMetrics, metrics: AgentMetrics, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        server = HTTPServer(name: "metrics", bindAddress: bindAddress, logger: logger, eventLoopGroup: eventLoopGroup) {
            path in
            switch path {
            case "/metrics": HTTPResponse(status: .ok, contentType: Self.contentType, body: metrics.exposition())
            case "/proxyMode": .text(Self.proxyMode)
            default: .notFound
            }
        }
    }

    /// The port it listens on, once `run` has bound it.
    public func port() async throws -> Int { try await server.port() }

    public func run() async throws { try await server.run() }
}
