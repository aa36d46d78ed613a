import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// kube-proxy's health server (`--healthz-bind-address`, default `0.0.0.0:10256`): `/healthz` and `/livez`
/// answer 200 while `HealthState` is healthy and 503 when it is not, with a JSON body
/// `{"lastUpdated": "<RFC 3339>", "currentTime": "<RFC 3339>"}`.
///
/// kube-proxy's `/healthz` also turns 503 when the node is being deleted (and says so in `nodeEligible`);
/// Switchboard does not model node deletion, so both paths answer the same and `nodeEligible` is left out.
public final class HealthzServer: ServiceLifecycle.Service {
    private let server: HTTPServer

    public init(
        bindAddress: BindAddress = .defaultHealthz, health: HealthState, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        server = HTTPServer(name: "healthz", bindAddress: bindAddress, logger: logger, eventLoopGroup: eventLoopGroup) {
            path in
            switch path {
            case "/healthz", "/livez": Self.response(health.status)
            default: .notFound
            }
        }
    }

    /// The port it listens on, once `run` has bound it.
    public func port() async throws -> Int { try await server.port() }

    public func run() async throws { try await server.run() }

    static func response(_ status: HealthState.Status) -> HTTPResponse {
        let lastUpdated = RFC3339.format(status.lastUpdated)
        let currentTime = RFC3339.format(status.currentTime)
        let body = #"{"lastUpdated": "\#(lastUpdated)", "currentTime": "\#(currentTime)"}"#
        return HTTPResponse(
            status: status.isHealthy ? .ok : .serviceUnavailable, contentType: "application/json", body: body + "\n")
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
