import ArgumentParser
import Foundation
import KubeAPI
import Logging
import NFTModel
import Netfilter
import SwitchboardAgent
import SwitchboardCore

/// `switchboard run`: the node agent, in place of kube-proxy, with kube-proxy's flags.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the node agent: watch the API server and keep this node's rules in sync.",
        discussion: """
            Lists and watches Services, EndpointSlices and this node's Node, and applies every change as
            one atomic nftables transaction (no more often than --min-sync-period, and a full sync that
            repairs drift at least every --sync-period). Rules stay in place when the agent stops.
            Without --kubeconfig the in-cluster service account is used. At start it raises the conntrack
            table's limit, sets its timeouts and lowers its own OOM score, as kube-proxy does; a setting the
            kernel refuses is logged and skipped.
            """)

    @Option(name: .customLong("kubeconfig"), help: "Path to a kubeconfig (default: in-cluster service account).")
    var kubeconfig: String?

    @OptionGroup var node: NodeOptions

    @OptionGroup(title: "Kernel settings written at start") var tuning: TuningOptions

    @Option(name: .customLong("min-sync-period"), help: "Minimum interval between syncs (Go duration, default 1s).")
    var minSyncPeriod: String?

    @Option(name: .customLong("sync-period"), help: "Maximum interval between full syncs (Go duration, default 30s).")
    var syncPeriod: String?

    @Option(name: .customLong("full-rebuild-period"), help: "Switchboard's own: rewrite the intact ruleset whole (staged, atomic for packets) this often (Go duration, default 1h).")
    var fullRebuildPeriod: String?

    @Option(name: .customLong("healthz-bind-address"), help: "Address of /healthz and /livez (default 0.0.0.0:10256; \"\" to disable).")
    var healthzBindAddress: String?

    @Option(name: .customLong("metrics-bind-address"), help: "Address of /metrics and /proxyMode (default 127.0.0.1:10249; \"\" to disable).")
    var metricsBindAddress: String?

    @Option(name: .customLong("proxy-mode"), help: "Accepted for compatibility; only \"nftables\" is valid.")
    var proxyMode: String?

    @Option(name: [.customShort("v"), .customLong("v")], help: "Log verbosity, as kube-proxy's -v (0-10).")
    var verbosity: Int?

    /// Not a kube-proxy flag, and hidden: tests use it to see a stalled watch noticed in seconds.
    @Option(
        name: .customLong("api-read-timeout"),
        help: ArgumentHelp(
            "How long an API response may stay silent before its connection counts as dead (Go duration, default 90s).",
            visibility: .hidden))
    var apiReadTimeout: String?

    @Flag(name: .customLong("ipset-export"), help: "Keep kube-proxy's IPVS-mode ipsets (KUBE-CLUSTER-IP, ...) up to date, for iptables firewalls.")
    var ipsetExport = false

    func validate() throws {
        let flags = try runFlags()
        try flags.checkModeAsFlag()
        // Checked again with the config file's values in `run()`; here for flag errors before anything starts.
        _ = try agentConfiguration(flags)
        _ = try clientOptions()
    }

    /// `run`'s own flags as settings (nil where not given).
    func runFlags() throws -> ProxySettings {
        func duration(_ text: String?, _ flag: String) throws -> Duration? {
            guard let text else { return nil }
            guard let d = GoDuration.parse(text) else { throw ValidationError("\(flag): invalid duration \"\(text)\"") }
            return d
        }
        let tuned = try tuning.flagSettings()
        return ProxySettings(
            mode: proxyMode, syncPeriod: try duration(syncPeriod, "--sync-period"),
            minSyncPeriod: try duration(minSyncPeriod, "--min-sync-period"), healthzBindAddress: healthzBindAddress,
            metricsBindAddress: metricsBindAddress, kubeconfig: kubeconfig, verbosity: verbosity,
            ipsetExport: ipsetExport ? true : nil, conntrack: tuned.conntrack, oomScoreAdj: tuned.oomScoreAdj)
    }

    /// `--full-rebuild-period`, default 1h. Not a kube-proxy setting, so not read from its config file.
    func fullRebuild() throws -> Duration {
        guard let text = fullRebuildPeriod else { return .seconds(3600) }
        guard let period = GoDuration.parse(text) else {
            throw ValidationError("--full-rebuild-period: invalid duration \"\(text)\"")
        }
        return period
    }

    /// The agent's configuration from merged settings, with kube-proxy's defaults for what none gives.
    func agentConfiguration(_ settings: ProxySettings) throws -> AgentConfiguration {
        func address(_ text: String?, _ standard: BindAddress, _ flag: String) throws -> BindAddress? {
            guard let text else { return standard }
            if text.isEmpty { return nil }
            guard let a = BindAddress(text, defaultPort: standard.port) else {
                throw ValidationError("\(flag): invalid address \"\(text)\"")
            }
            return a
        }
        let configuration = AgentConfiguration(
            minSyncPeriod: settings.minSyncPeriod ?? .seconds(1), syncPeriod: settings.syncPeriod ?? .seconds(30),
            healthzBindAddress: try address(settings.healthzBindAddress, .defaultHealthz, "--healthz-bind-address"),
            metricsBindAddress: try address(settings.metricsBindAddress, .defaultMetrics, "--metrics-bind-address"),
            fullRebuildPeriod: try fullRebuild())
        if let problem = configuration.problem { throw ValidationError(problem) }
        return configuration
    }

    /// The API client's timeouts: `--api-read-timeout` also bounds the wait for a response head.
    func clientOptions() throws -> KubeClient.Options {
        var options = KubeClient.Options()
        if let text = apiReadTimeout {
            guard let timeout = GoDuration.parse(text), timeout >= .seconds(1) else {
                throw ValidationError("--api-read-timeout: invalid duration \"\(text)\" (at least 1s)")
            }
            options.readTimeout = timeout
            options.requestTimeout = min(options.requestTimeout, timeout)
        }
        return options
    }

    func run() async throws {
        let settings = try node.settings(extra: runFlags())
        let context = try node.nodeContext(settings)
        let configuration: AgentConfiguration
        do {
            configuration = try agentConfiguration(settings)
        } catch {
            throw CLIError("\(error)")
        }
        let verbosity = settings.verbosity ?? 0
        let level: Logger.Level = verbosity >= 4 ? .debug : verbosity >= 2 ? .info : .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "switchboard")
        // Before anything else, as kube-proxy does: conntrack sysctls and the OOM score. A setting the kernel
        // refuses is logged and skipped; the node still needs its Services.
        NodeTuner.apply(NodeTuning(settings, initOnly: tuning.initOnly), backend: KernelTunables(), logger: logger)
        if tuning.initOnly {
            logger.notice("--init-only: kernel settings done; exiting")
            return
        }
        let client: KubeClient
        let source: KubeClusterSource
        let backend: KernelNFTables
        let ipsets: KernelIPSets?
        do {
            let config = try settings.kubeconfig.map { path throws(KubeAPIError) in try KubeConfig.load(kubeconfigPath: path) }
                ?? KubeConfig.inCluster()
            if let warning = config.insecureWarning { logger.warning("\(warning)") }
            client = try KubeClient(config: config, options: try clientOptions())
        } catch {
            throw CLIError("starting: \(error)")
        }
        do {
            source = try await KubeClusterSource(client: client, nodeName: context.nodeName, logger: logger)
            backend = try KernelNFTables()
            ipsets = settings.ipsetExport == true ? try KernelIPSets() : nil
        } catch {
            // An HTTPClient must be shut down before it is released (debug builds trap otherwise).
            try? await client.shutdown()
            throw CLIError("starting: \(error)")
        }
        logger.notice("switchboard \(Switchboard.version) starting", metadata: [
            "node": "\(context.nodeName)", "healthz": "\(configuration.healthzBindAddress.map(\.description) ?? "off")",
            "metrics": "\(configuration.metricsBindAddress.map(\.description) ?? "off")",
        ])
        // Stale UDP/SCTP flows are cleaned after every sync, as kube-proxy does; without ctnetlink the agent
        // still runs (the rules are what matters), and says so.
        var conntrack: Conntrack?
        do {
            conntrack = try Conntrack()
        } catch {
            logger.error("conntrack unavailable; stale UDP/SCTP flows will not be cleaned up", metadata: ["error": "\(error)"])
        }
        let metrics = AgentMetrics()
        let followers: [any SyncFollower] = ipsets.map {
            [IPSetExporter(backend: $0, node: context, logger: logger, metrics: metrics)]
        } ?? []
        let agent = Agent(
            source: source.events, backend: backend, node: context, configuration: configuration, logger: logger,
            metrics: metrics, conntrack: conntrack, followers: followers)
        do {
            try await agent.run(with: [source])
        } catch {
            try? await client.shutdown()
            throw CLIError("agent stopped: \(error)")
        }
        try? await client.shutdown()
        logger.notice("switchboard stopped; rules left in place")
    }
}

extension ProxySettings {
    /// `--proxy-mode` alone, before the config file is read: the flag's own error.
    fileprivate func checkModeAsFlag() throws {
        if let mode, !mode.isEmpty, mode != "nftables" {
            throw ValidationError("--proxy-mode \(mode): Switchboard only implements \"nftables\"")
        }
    }
}
