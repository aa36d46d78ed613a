import Logging
import NetworkTypes
import NFTModel
import ServiceLifecycle
import SwitchboardCore
import UnixSignals

/// The agent's settings, with kube-proxy's flag names and defaults.
public struct AgentConfiguration: Hashable, Sendable {
    /// `--min-sync-period`: syncs start no more often than this (0 allowed).
    public var minSyncPeriod: Duration
    /// `--sync-period`: a full sync runs at least this often; twice this is the health timeout.
    public var syncPeriod: Duration
    /// `--healthz-bind-address`; nil disables the health server (kube-proxy: empty string).
    public var healthzBindAddress: BindAddress?
    /// `--metrics-bind-address`; nil disables the metrics server.
    public var metricsBindAddress: BindAddress?
    /// Where the per-Service health-check servers listen; nil: as kube-proxy (this node's addresses in
    /// `--nodeport-addresses`, or all). Tests that run in the host's namespace set `["127.0.0.1"]`.
    public var serviceHealthCheckHosts: [String]?
    /// `--full-rebuild-period` (Switchboard's own): an intact ruleset is rewritten whole (a staged rebuild)
    /// at the first periodic sync this long after the last one, repairing edits the canary cannot see.
    /// kube-proxy's nftables mode does the same hourly, with no flag.
    public var fullRebuildPeriod: Duration

    public init(
        minSyncPeriod: Duration = .seconds(1), syncPeriod: Duration = .seconds(30),
        healthzBindAddress: BindAddress? = .defaultHealthz, metricsBindAddress: BindAddress? = .defaultMetrics,
        serviceHealthCheckHosts: [String]? = nil, fullRebuildPeriod: Duration = .seconds(3600)
    ) {
        self.fullRebuildPeriod = fullRebuildPeriod
        self.minSyncPeriod = minSyncPeriod
        self.syncPeriod = syncPeriod
        self.healthzBindAddress = healthzBindAddress
        self.metricsBindAddress = metricsBindAddress
        self.serviceHealthCheckHosts = serviceHealthCheckHosts
    }

    /// kube-proxy's `healthzTimeout`: unhealthy when a change waits longer than this.
    public var healthzTimeout: Duration { syncPeriod * 2 }

    /// Why the configuration cannot run, or nil.
    public var problem: String? {
        if syncPeriod <= .zero { return "--sync-period must be positive" }
        if minSyncPeriod < .zero { return "--min-sync-period must not be negative" }
        if minSyncPeriod > syncPeriod { return "--min-sync-period must not exceed --sync-period" }
        if fullRebuildPeriod <= .zero { return "--full-rebuild-period must be positive" }
        return nil
    }
}

/// The node agent assembled: controller, health server and metrics server in one `ServiceGroup` that
/// shuts down gracefully on SIGTERM or SIGINT. This is what `switchboard run` calls.
///
/// Other long-running work (e.g. the informers feeding an `AsyncStream` source) joins the same group
/// through `run(with:)`, so that it starts and stops with the agent.
public struct Agent: Sendable {
    public let configuration: AgentConfiguration
    public let health: HealthState
    public let metrics: AgentMetrics
    public let controller: any ServiceLifecycle.Service
    public let healthzServer: HealthzServer?
    public let metricsServer: MetricsServer?
    /// The per-Service health checks of `externalTrafficPolicy: Local` Services (always on, as kube-proxy).
    public let serviceHealthServers: ServiceHealthServers
    private let logger: Logger

    /// - Parameters:
    ///   - conntrack: the node's conntrack table; with it, a `ConntrackCleaner` follows every sync ahead of
    ///     `followers` (`switchboard run` always passes it, as kube-proxy always cleans up).
    /// - Precondition: `configuration.problem == nil`.
    public init(
        source: some ClusterSource, backend: any NFTablesBackend, node: NodeContext,
        configuration: AgentConfiguration = AgentConfiguration(), logger: Logger,
        metrics: AgentMetrics = AgentMetrics(), conntrack: (any ConntrackBackend)? = nil,
        followers: [any SyncFollower] = []
    ) {
        precondition(configuration.problem == nil, configuration.problem ?? "")
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        let health = HealthState(healthzTimeout: configuration.healthzTimeout)
        self.health = health
        let serviceHealthServers = ServiceHealthServers(
            nodeName: node.nodeName, nodePortAddresses: node.nodePortAddresses,
            bindHosts: configuration.serviceHealthCheckHosts, health: health, metrics: metrics, logger: logger)
        self.serviceHealthServers = serviceHealthServers
        controller = Controller(
            source: source, backend: backend, node: node, minSyncPeriod: configuration.minSyncPeriod,
            syncPeriod: configuration.syncPeriod, fullSyncPeriod: configuration.fullRebuildPeriod, metrics: metrics,
            health: health, logger: logger,
            followers: [serviceHealthServers]
                + (conntrack.map { [ConntrackCleaner(backend: $0, metrics: metrics, logger: logger)] } ?? []) + followers)
        healthzServer = configuration.healthzBindAddress.map {
            HealthzServer(bindAddress: $0, health: health, metrics: metrics, logger: logger)
        }
        metricsServer = configuration.metricsBindAddress.map {
            MetricsServer(bindAddress: $0, metrics: metrics, logger: logger)
        }
    }

    /// The agent's own services: the controller, then the servers that are enabled.
    public var services: [any ServiceLifecycle.Service] {
        [controller, serviceHealthServers]
            + [healthzServer as (any ServiceLifecycle.Service)?, metricsServer].compactMap { $0 }
    }

    /// Runs until SIGTERM or SIGINT (graceful: the rules stay), or until one of the services ends.
    /// `additionalServices` run in the same group and stop with it.
    public func run(with additionalServices: [any ServiceLifecycle.Service] = []) async throws {
        try await makeServiceGroup(with: additionalServices).run()
    }

    /// The group `run` runs, for callers that trigger the shutdown themselves.
    public func makeServiceGroup(
        with additionalServices: [any ServiceLifecycle.Service] = [], signals: [UnixSignal] = [.sigterm, .sigint]
    ) -> ServiceGroup {
        ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: (additionalServices + services).map {
                    // Any service that ends, even cleanly, ends the agent: a node without its controller
                    // or its health server must not look alive.
                    ServiceGroupConfiguration.ServiceConfiguration(
                        service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup)
                },
                gracefulShutdownSignals: signals,
                logger: logger))
    }
}
