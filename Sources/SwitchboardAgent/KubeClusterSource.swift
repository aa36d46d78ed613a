import KubeAPI
import Logging
import ServiceLifecycle
import SwitchboardCore

/// The Kubernetes API as a `ClusterSource`: three informers (Services and EndpointSlices cluster-wide,
/// with the selector that leaves out Services of other proxies and headless ones, and this node's Node)
/// feeding one stream. Run it as a service of the agent's group; the controller reads `events`.
public struct KubeClusterSource: ServiceLifecycle.Service {
    public let events: AsyncStream<SourceEvent>
    private let continuation: AsyncStream<SourceEvent>.Continuation
    private let client: KubeClient
    private let resources: [(ObjectKind, KubeResource)]
    private let logger: Logger

    /// Discovers which EndpointSlice version the server serves (`discovery.k8s.io/v1`, else `v1beta1`).
    public init(client: KubeClient, nodeName: String, logger: Logger) async throws {
        let version = try await client.endpointSliceVersion()
        self.client = client
        self.logger = logger
        resources = [
            (.services, .services), (.endpointSlices, .endpointSlices(version)), (.nodes, .node(named: nodeName)),
        ]
        (events, continuation) = AsyncStream.makeStream(of: SourceEvent.self)
        logger.info("watching the API", metadata: ["server": "\(client.config.server)", "endpointslices": "\(version)"])
    }

    public func run() async throws {
        defer { continuation.finish() }
        try await withThrowingDiscardingTaskGroup { group in
            for (kind, resource) in resources {
                group.addTask {
                    for try await event in client.informer(for: resource).cancelOnGracefulShutdown() {
                        switch event {
                        case .synced(let objects): continuation.yield(.synced(kind, objects))
                        case .upsert(let object): continuation.yield(.upsert(object))
                        case .delete(let object): continuation.yield(.delete(object))
                        case .diagnostics(let diagnostics): continuation.yield(.diagnostics(diagnostics))
                        case .interrupted(let error, let retryIn) where error.isGone:
                            // Routine after an API server restart or a long disconnection: the informer lists
                            // again and the controller replaces its view (deletions meanwhile included).
                            logger.notice("\(kind): resourceVersion expired (410 Gone); re-listing", metadata: [
                                "error": "\(error)", "retryIn": "\(retryIn)",
                            ])
                        case .interrupted(let error, let retryIn):
                            logger.warning("\(kind) watch interrupted; retrying", metadata: [
                                "error": "\(error)", "retryIn": "\(retryIn)",
                            ])
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
