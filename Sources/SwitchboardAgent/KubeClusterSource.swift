import KubeAPI
import Logging
import ServiceLifecycle
import SwitchboardCore

/// The Kubernetes API as a `ClusterSource`: three informers (Services and EndpointSlices cluster-wide,
/// with the selector that leaves out Services of other proxies and headless ones, and this node's Node)
/// feeding one stream. Run it as a service of the agent's group; the controller reads `events`.
public struct KubeClusterSource: ServiceLifecycle.Service {
    public let events: AsyncStream<ClusterEvent>
    private let continuation: AsyncStream<ClusterEvent>.Continuation
    private let client: KubeClient
    private let resources: [(ObjectKind, KubeResource)]
    private let logger: Logger

    /// Discovers which EndpointSlice version the server serves (`discovery.k8s.io/v1`, else `v1beta1`), for up
    /// to `patience` while the server cannot be reached (a node may boot before its API server answers).
    /// A refused certificate or token, or a config error, is thrown at once: no wait can fix it.
    public init(
        client: KubeClient, nodeName: String, logger: Logger, patience: Duration = .seconds(60)
    ) async throws {
        let version = try await Self.discover(client, patience: patience, logger: logger)
        self.client = client
        self.logger = logger
        resources = [
            (.services, .services), (.endpointSlices, .endpointSlices(version)), (.nodes, .node(named: nodeName)),
        ]
        (events, continuation) = AsyncStream.makeStream(of: ClusterEvent.self)
        logger.info("watching the API", metadata: ["server": "\(client.config.server)", "endpointslices": "\(version)"])
    }

    private static func discover(_ client: KubeClient, patience: Duration, logger: Logger) async throws
        -> EndpointSliceVersion
    {
        let start = ContinuousClock.now
        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5))
        var random = SystemRandomNumberGenerator()
        while true {
            do {
                return try await client.endpointSliceVersion()
            } catch let error as KubeAPIError where !error.isPermanent && ContinuousClock.now - start < patience {
                let delay = backoff.fail(using: &random)
                logger.warning("API server not answering yet; retrying", metadata: [
                    "error": "\(error)", "retryIn": "\(delay)",
                ])
                try await Task.sleep(for: delay)
            }
        }
    }

    /// Feeds the informers' events to `events`. A failed list or watch is retried for ever (the rules stay as
    /// they are meanwhile). A permission RBAC denies twice in a row is logged once as an error naming it
    /// (`missing permission: cannot watch services at cluster scope`), repeats at debug level, and its
    /// return once (`permission granted: ...`).
    public func run() async throws {
        defer { continuation.finish() }
        try await withThrowingDiscardingTaskGroup { group in
            for (kind, resource) in resources {
                group.addTask {
                    /// The permission denied by the last failure, and how many failures in a row it was.
                    var denied: (permission: Permission, times: Int)?
                    for try await event in client.informer(for: resource).cancelOnGracefulShutdown() {
                        switch event {
                        case .cluster(let change): continuation.yield(change)
                        case .interrupted(let error, let retryIn) where error.isGone:
                            // Routine after an API server restart or a long disconnection: the informer lists
                            // again and the controller replaces its view (deletions meanwhile included).
                            logger.notice("\(kind): resourceVersion expired (410 Gone); re-listing", metadata: [
                                "error": "\(error)", "retryIn": "\(retryIn)",
                            ])
                        case .interrupted(let error, let retryIn):
                            if let permission = error.denied {
                                let times = denied?.permission == permission ? denied!.times + 1 : 1
                                denied = (permission, times)
                                // A restarted API server answers 403 for a moment, until its RBAC cache is
                                // filled: a denial is reported as missing when it happens twice in a row.
                                let metadata: Logger.Metadata = ["error": "\(error)", "retryIn": "\(retryIn)"]
                                let message = Logger.Message(
                                    stringLiteral: "missing permission: cannot \(permission): grant it to this "
                                        + "agent's ServiceAccount (deploy/switchboard.yaml's ClusterRole has it); "
                                        + "retrying")
                                switch times {
                                case 1:
                                    logger.warning("\(kind) watch interrupted: forbidden; retrying", metadata: metadata)
                                case 2: logger.error(message, metadata: metadata)
                                default: logger.debug(message, metadata: metadata)
                                }
                            } else {
                                logger.warning("\(kind) watch interrupted; retrying", metadata: [
                                    "error": "\(error)", "retryIn": "\(retryIn)",
                                ])
                            }
                        case .recovered:
                            if case let (permission, times)? = denied, times >= 2 {
                                logger.notice("permission granted: \(permission)")
                            }
                            denied = nil
                        }
                    }
                }
            }
        }
    }
}

extension KubeClient {
    /// Lists Services, EndpointSlices and this node's Node once: what `switchboard diff --kubeconfig`
    /// compares with the kernel.
    public func snapshot(nodeName: String) async throws -> (objects: [KubeObject], diagnostics: [Diagnostic]) {
        let version = try await endpointSliceVersion()
        var objects: [KubeObject] = []
        var diagnostics: [Diagnostic] = []
        for resource in [KubeResource.services, .endpointSlices(version), .node(named: nodeName)] {
            let list = try await list(resource)
            for item in list.items {
                if let object = item.object { objects.append(object) }
                diagnostics += item.diagnostics
            }
        }
        return (objects, diagnostics)
    }
}
