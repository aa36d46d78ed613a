import BenchKit
import Foundation
import KubeAPI
import Logging
import NFTModel
import Netfilter
import SwitchboardAgent
import SwitchboardCore
import SwitchboardTesting

/// Churn through the real `Controller`, in process: the synthetic cluster goes to the controller (from
/// memory, or through the API server), the controller applies through `KernelNFTables` in a scratch
/// namespace, and every change is timed from the moment it is made to the commit of the first transaction
/// that holds it (`ChurnTracker`).
struct ChurnRun {
    var options: Options
    var log: @Sendable (String) -> Void

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private var churn: ChurnOptions { options.churn }

    func run() async throws -> ChurnResult {
        let n = churn.services
        log("churn: \(n) Services x \(options.endpointsPerService) endpoints, \(churn.rate) changes/s for "
            + "\(churn.seconds) s, min-sync-period \(churn.minSyncPeriod.goText), sync-period \(churn.syncPeriod.goText)"
            + (churn.apiserver ? ", through the API server" : ", in memory"))
        var cluster = SyntheticCluster(services: n, endpointsPerService: options.endpointsPerService)
        let ns = try ScratchNamespace.create(purpose: "bench-churn")
        defer { ns.delete() }
        let tracker = ChurnTracker()
        let backend = RecordingBackend(inner: try KernelNFTables(networkNamespace: ns.name), tracker: tracker)

        guard churn.apiserver else {
            let source = FakeClusterSource()
            source.sendInitialLists(cluster.allObjects)
            return try await drive(
                source: source, extraService: nil, cluster: &cluster, backend: backend, tracker: tracker,
                send: { change in
                    for object in change.deletes { source.send(.delete(object)) }
                    for object in change.upserts { source.send(.upsert(object)) }
                    return nil
                }, mapSignature: { $0 }, api: nil)
        }

        guard let up = churn.upScript().path else { throw Failure(description: churn.upScript().reason) }
        let plane = try await BenchControlPlane.start(upScript: up, log: log)
        do {
            let result = try await withPlane(plane, cluster: &cluster, backend: backend, tracker: tracker)
            await plane.stop()
            return result
        } catch {
            await plane.stop()
            throw error
        }
    }

    private func withPlane(
        _ plane: BenchControlPlane, cluster: inout SyntheticCluster, backend: RecordingBackend, tracker: ChurnTracker
    ) async throws -> ChurnResult {
        let writer = plane.writer!
        let created = try await Populate.cluster(cluster, with: writer, concurrency: churn.apiConcurrency, log: log)
        let caPEM = try Data(contentsOf: plane.directory.appendingPathComponent("pki/ca.crt"))
        let config = KubeConfig(
            server: writer.server, certificateAuthorityPEM: [UInt8](caPEM), credentials: .token(plane.nodeToken),
            source: "bench")
        let client = try KubeClient(config: config)
        do {
            let source = try await KubeClusterSource(
                client: client, nodeName: SyntheticCluster.nodeName, logger: Self.logger)
            let result = try await drive(
                source: source.events, extraService: source, cluster: &cluster, backend: backend, tracker: tracker,
                send: { change in
                    let start = ContinuousClock.now
                    try await writer.send(change)
                    return (ContinuousClock.now - start).milliseconds
                }, mapSignature: KubeJSON.apiSignature, api: created)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "switchboard-bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        return logger
    }()

    /// Runs the controller on `source` until the churn is over and every change is committed (or the drain
    /// timeout passed). `send` delivers one change and returns its API write time, if any.
    private func drive<S: ClusterSource>(
        source: S, extraService: KubeClusterSource?, cluster: inout SyntheticCluster, backend: RecordingBackend,
        tracker: ChurnTracker, send: @escaping @Sendable (ChurnChange) async throws -> Double?,
        mapSignature: (ChurnChange.Signature) -> ChurnChange.Signature, api: Populate.Created?
    ) async throws -> ChurnResult {
        let controller = Controller(
            source: source, backend: backend, node: SyntheticCluster.nodeContext,
            minSyncPeriod: churn.minSyncPeriod, syncPeriod: churn.syncPeriod, metrics: AgentMetrics(),
            health: HealthState(healthzTimeout: churn.syncPeriod * 2), logger: Self.logger,
            onSync: { tracker.synced($0) })
        let total = churn.rate * churn.seconds
        var writes: [Double] = []
        var lagMs = 0.0
        var initialMs = 0.0
        var pushed = 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            let started = ContinuousClock.now
            if let extraService { group.addTask { try await extraService.run() } }
            group.addTask { try await controller.run() }
            try await tracker.firstSync(within: .seconds(1800))
            initialMs = (ContinuousClock.now - started).milliseconds
            log("  initial sync done after \(fixed(initialMs, 0)) ms; churning")

            var rng = SplitMix64(seed: options.seed ^ UInt64(churn.services) ^ 0xc4)
            let start = ContinuousClock.now
            let interval = Duration.seconds(1) / churn.rate
            var lastLog = start
            var inflight: [ObjectRef: Task<Double?, any Error>] = [:]
            var sends: [Task<Double?, any Error>] = []
            for k in 0..<total {
                let due = start + interval * k
                if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) }
                lagMs = (ContinuousClock.now - due).milliseconds
                let kind = ChangeKind.allCases[k % ChangeKind.allCases.count]
                guard var change = cluster.churnChange(kind, using: &rng) else { continue }
                change.signature = mapSignature(change.signature)
                pushed += 1
                if api == nil {
                    tracker.register(change, at: .now)
                    _ = try await send(change)
                } else {
                    // Through the API, requests take longer than the interval: send concurrently, but one
                    // Service's changes in order (a patch must not overtake the create, nor a delete the patch).
                    let previous = inflight[change.service]
                    let sending = Task { @Sendable [send, tracker, change] in
                        _ = try? await previous?.value
                        tracker.register(change, at: .now)
                        return try await send(change)
                    }
                    inflight[change.service] = sending
                    sends.append(sending)
                }
                if ContinuousClock.now - lastLog >= .seconds(10) {
                    lastLog = .now
                    log("  \(pushed)/\(total) changes pushed, \(tracker.committedLatencies.count) committed, "
                        + "\(tracker.pendingCount) pending")
                }
            }
            for sending in sends {
                if let ms = try await sending.value { writes.append(ms) }
            }
            // Drain: long enough for a full sync on the way (the periodic one may just have started; the
            // initial sync says how long one takes).
            let drainLimit = ContinuousClock.now + churn.syncPeriod * 2 + .seconds(60) + .milliseconds(3 * initialMs)
            while tracker.pendingCount > 0 && ContinuousClock.now < drainLimit {
                try await Task.sleep(for: .milliseconds(50))
            }
            log("  churn over: \(tracker.committedLatencies.count)/\(pushed) committed, \(tracker.pendingCount) pending, "
                + "superseded \(tracker.supersededKinds)")
            for line in tracker.pendingDescriptions.prefix(10) { log("    never committed: \(line)") }
            group.cancelAll()
            // The controller returns normally on cancellation; the source may end with a CancellationError.
            while let next = await group.nextResult() {
                if case .failure(let error) = next, !(error is CancellationError), !Task.isCancelled {
                    log("  note: after cancellation: \(error)")
                }
            }
        }

        let latencies = tracker.committedLatencies
        var byKind: [String: Summary] = [:]
        for kind in ChangeKind.allCases {
            byKind[kind.rawValue] = Summary(latencies.filter { $0.kind == kind }.map(\.ms))
        }
        let reports = tracker.reports
        let succeeded = reports.filter(\.succeeded)
        func ms(_ r: [SyncReport]) -> Summary { Summary(r.map { $0.duration.milliseconds }) }
        let result = ChurnResult(
            source: churn.apiserver ? "apiserver" : "in-memory", services: churn.services,
            endpointsPerService: options.endpointsPerService, rate: churn.rate, seconds: churn.seconds,
            minSyncPeriod: churn.minSyncPeriod.goText, syncPeriod: churn.syncPeriod.goText,
            apiCreateSeconds: api?.seconds, apiServiceTypes: api?.types, initialSyncMs: initialMs,
            pushed: pushed, committed: latencies.count, notCommitted: tracker.pendingKinds,
            superseded: tracker.supersededKinds,
            latency: Summary(latencies.map(\.ms)), latencyByKind: byKind,
            apiWrite: churn.apiserver ? Summary(writes) : nil, scheduleLagMs: lagMs,
            syncs: reports.count, fullSyncs: reports.filter { $0.kind == .full }.count,
            failedSyncs: reports.count - succeeded.count, syncDuration: ms(succeeded),
            partialSyncDuration: ms(succeeded.filter { $0.kind == .partial }),
            fullSyncDuration: ms(succeeded.filter { $0.kind == .full }))
        log("  latency p50 \(fixed(result.latency.p50, 0)) p90 \(fixed(result.latency.p90, 0)) "
            + "p99 \(fixed(result.latency.p99, 0)) max \(fixed(result.latency.max, 0)) ms; "
            + "\(result.syncs) syncs (\(result.fullSyncs) full), sync p50 \(fixed(result.syncDuration.p50, 1)) ms")
        return result
    }
}

/// Creating the synthetic cluster through the API: the namespace, the Node, then every Service with its
/// EndpointSlice (and load-balancer status), `concurrency` Services at a time.
enum Populate {
    struct Created: Sendable {
        var seconds: Double
        var types: [String: Int]
        var perService: Summary
    }

    static func cluster(
        _ cluster: SyntheticCluster, with writer: KubeWriter, concurrency: Int, log: @escaping @Sendable (String) -> Void
    ) async throws -> Created {
        try await writer.create(KubeJSON.namespace(SyntheticCluster.namespace))
        for case .node(let node) in cluster.allObjects { try await writer.create(KubeJSON.node(node)) }
        var groups: [[KubeObject]] = []
        var types: [String: Int] = [:]
        for service in cluster.state.services.values.sorted(by: { $0.ref < $1.ref }) {
            let slices = cluster.state.endpointSlices(for: service.ref).map { KubeObject.endpointSlice($0) }
            groups.append(slices + [.service(service)])
            types[KubeJSON.apiType(service).rawValue, default: 0] += 1
        }
        let start = ContinuousClock.now
        var perService: [Double] = []
        try await withThrowingTaskGroup(of: Double.self) { group in
            var next = 0
            func add() {
                let objects = groups[next]
                next += 1
                group.addTask {
                    let t = ContinuousClock.now
                    try await writer.createService(objects)
                    return (ContinuousClock.now - t).milliseconds
                }
            }
            while next < min(concurrency, groups.count) { add() }
            var lastLog = start
            while let ms = try await group.next() {
                perService.append(ms)
                if next < groups.count { add() }
                if ContinuousClock.now - lastLog >= .seconds(10) {
                    lastLog = .now
                    log("  created \(perService.count)/\(groups.count) Services through the API")
                }
            }
        }
        let seconds = (ContinuousClock.now - start).milliseconds / 1000
        log("  created \(groups.count) Services + EndpointSlices through the API in \(fixed(seconds, 1)) s "
            + "(\(concurrency) at a time; types \(types.sorted { $0.key < $1.key }))")
        return Created(seconds: seconds, types: types, perService: Summary(perService))
    }
}
