import Logging
import NetworkTypes
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwitchboardCore
import Synchronization

/// kube-proxy's per-Service health checks (`pkg/proxy/healthcheck/service_health.go`): for every
/// LoadBalancer Service with `externalTrafficPolicy: Local` and a `healthCheckNodePort`, an HTTP server on
/// that port of this node tells the cloud load balancer whether to send this node traffic. Any path
/// answers `Content-Type: application/json`, `X-Content-Type-Options: nosniff` and kube-proxy's body
/// (`{"service": {"namespace", "name"}, "localEndpoints": N, "serviceProxyHealthy": BOOL}`, tab-indented
/// as kube-proxy prints it); 200 when N > 0 and the agent is healthy (`HealthState`, as `/healthz`),
/// else 503.
///
/// As a `SyncFollower` it learns after every successful sync which Services need a server (so a server
/// opens only once the Service's rules are in the kernel); servers open for new Services and close when a
/// Service goes, loses its port or policy, or changes port. A port that cannot be bound is logged and
/// counted (`switchboard_service_health_check_listen_errors_total`), never fatal; kube-proxy retries
/// only when the port changes, and so does this. As a `Service` it runs the servers (one child task
/// each) until graceful shutdown.
///
/// Servers listen on this node's addresses inside `--nodeport-addresses`, or on all addresses (`::`,
/// dual-stack; `0.0.0.0` where the node has no IPv6 address) when it is unset, as kube-proxy does.
/// Only GET and HEAD are answered (kube-proxy answers any method; load balancers send GET).
public final class ServiceHealthServers: SyncFollower, ServiceLifecycle.Service {
    private struct Entry {
        var check: ServiceHealthCheck
        var servers: [HTTPServer]
        var stop: AsyncStream<Void>.Continuation
    }

    private enum Command: Sendable {
        case serve(ObjectRef, [HTTPServer], AsyncStream<Void>)
    }

    public let nodeName: String
    private let nodePortAddresses: [CIDR]
    private let bindHosts: [String]?
    private let health: HealthState
    private let metrics: AgentMetrics
    private let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let entries = Mutex<[ObjectRef: Entry]>([:])
    private let commands: AsyncStream<Command>
    private let commandSink: AsyncStream<Command>.Continuation

    /// - Parameters:
    ///   - nodePortAddresses: `--nodeport-addresses`; empty: listen on all addresses.
    ///   - bindHosts: overrides where servers listen (tests: `["127.0.0.1"]`).
    public init(
        nodeName: String, nodePortAddresses: [CIDR] = [], bindHosts: [String]? = nil, health: HealthState,
        metrics: AgentMetrics, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.nodeName = nodeName
        self.nodePortAddresses = nodePortAddresses
        self.bindHosts = bindHosts
        self.health = health
        self.metrics = metrics
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        (commands, commandSink) = AsyncStream.makeStream()
    }

    public func synced(_ state: ClusterState, changed: Set<ObjectRef>?) async {
        guard let changed else {
            update(state.healthChecks(onNode: nodeName), replacingAll: true)
            return
        }
        var desired: [ObjectRef: ServiceHealthCheck] = [:]
        var removing: Set<ObjectRef> = []
        for ref in changed {
            if let check = state.healthCheck(for: ref, onNode: nodeName) {
                desired[ref] = check
            } else {
                removing.insert(ref)
            }
        }
        update(desired, removing: removing)
    }

    /// What the servers answer now: port and local endpoints by Service.
    public var checks: [ObjectRef: ServiceHealthCheck] { entries.withLock { $0.mapValues(\.check) } }

    /// The ports `ref`'s servers listen on, once they all did; throws if one could not listen.
    public func listeningPorts(_ ref: ObjectRef) async throws -> [Int] {
        let servers = entries.withLock { $0[ref]?.servers ?? [] }
        var ports: [Int] = []
        for server in servers { ports.append(try await server.port()) }
        return ports
    }

    /// Opens, closes and updates servers so that exactly the Services in `desired` (plus, unless
    /// `replacingAll`, those not mentioned in `removing`) have one.
    func update(
        _ desired: [ObjectRef: ServiceHealthCheck], replacingAll: Bool = false, removing: Set<ObjectRef> = []
    ) {
        var toStart: [(ObjectRef, Int)] = []
        let stopped: [(ObjectRef, Int)] = entries.withLock { entries in
            var stopped: [(ObjectRef, Int)] = []
            for (ref, entry) in entries {
                let gone = replacingAll ? desired[ref] == nil : removing.contains(ref)
                if gone || (desired[ref].map { $0.port != entry.check.port } ?? false) {
                    entry.stop.finish()
                    entries[ref] = nil
                    stopped.append((ref, entry.check.port))
                }
            }
            for (ref, check) in desired {
                if entries[ref] != nil {
                    entries[ref]?.check = check
                } else {
                    toStart.append((ref, check.port))
                    let (stream, stop) = AsyncStream<Void>.makeStream()
                    let servers = hosts().map { host in
                        HTTPServer(
                            name: "health-check \(ref)", bindAddress: BindAddress(host: host, port: check.port),
                            logger: logger, eventLoopGroup: eventLoopGroup
                        ) { [weak self] _ in self?.response(ref) ?? .notFound }
                    }
                    entries[ref] = Entry(check: check, servers: servers, stop: stop)
                    commandSink.yield(.serve(ref, servers, stream))
                }
            }
            return stopped
        }
        for (ref, port) in stopped {
            logger.info("closing health check", metadata: ["service": "\(ref)", "port": "\(port)"])
        }
        for (ref, port) in toStart {
            logger.info("opening health check", metadata: ["service": "\(ref)", "port": "\(port)"])
        }
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for await command in commands.cancelOnGracefulShutdown() {
                switch command {
                case .serve(let ref, let servers, let stop):
                    group.addTask { await self.serve(ref, servers, until: stop) }
                }
            }
            group.cancelAll()
        }
        entries.withLock { entries in
            for entry in entries.values { entry.stop.finish() }
            entries = [:]
        }
    }

    /// Runs one Service's servers until `stop` finishes or the task is cancelled.
    private func serve(_ ref: ObjectRef, _ servers: [HTTPServer], until stop: AsyncStream<Void>) async {
        await withDiscardingTaskGroup { group in
            for server in servers {
                group.addTask {
                    do {
                        try await server.run()
                    } catch {
                        self.metrics.countHealthCheckListenError()
                        self.logger.error(
                            "health check cannot listen; the load balancer will see this node as down",
                            metadata: [
                                "service": "\(ref)", "address": "\(server.bindAddress)", "error": "\(error)",
                            ])
                    }
                }
            }
            for await _ in stop {}
            group.cancelAll()
        }
    }

    /// Where a new server listens: the overrides, this node's addresses in `--nodeport-addresses`, or all.
    private func hosts() -> [String] {
        if let bindHosts { return bindHosts }
        let devices = (try? System.enumerateDevices()) ?? []
        let local = devices.compactMap { $0.address?.ipAddress }.compactMap { IPAddress($0) }
        if nodePortAddresses.isEmpty {
            return local.contains { $0.family == .v6 } ? ["::"] : ["0.0.0.0"]
        }
        let matching = Set(local.filter { ip in nodePortAddresses.contains { $0.contains(ip) } })
        return matching.map(\.description).sorted()
    }

    private func response(_ ref: ObjectRef) -> HTTPResponse {
        guard let check = entries.withLock({ $0[ref]?.check }) else { return .notFound }
        return Self.response(ref, localEndpoints: check.localEndpoints, healthy: health.status.isHealthy)
    }

    /// kube-proxy's answer, byte for byte: its handler prints this JSON, tab-indented, without a final newline.
    static func response(_ ref: ObjectRef, localEndpoints: Int, healthy: Bool) -> HTTPResponse {
        let body = """
            {
            \t"service": {
            \t\t"namespace": \(quoted(ref.namespace)),
            \t\t"name": \(quoted(ref.name))
            \t},
            \t"localEndpoints": \(localEndpoints),
            \t"serviceProxyHealthy": \(healthy)
            }
            """
        return HTTPResponse(
            status: localEndpoints > 0 && healthy ? .ok : .serviceUnavailable, contentType: "application/json",
            body: body)
    }

    /// A JSON string (namespaces and names are DNS labels, so this only matters for hostile input).
    private static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{0}"..."\u{1f}":
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
