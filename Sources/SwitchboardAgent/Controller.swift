import Foundation
import Logging
import NFTModel
import ServiceLifecycle
import SwitchboardCore

/// What one sync did: handed to the `onSync` observer after every attempt (tests, debugging).
public struct SyncReport: Hashable, Sendable {
    public var kind: SyncKind
    /// The backend's error text when the sync failed (nft's message, verbatim); nil on success.
    public var error: String?
    /// Wall-clock time at which the sync finished.
    public var finishedAt: Date
    /// How long compile, plan and apply took.
    public var duration: Duration
    /// The number of nft commands in the transaction (0: nothing to change, nothing was applied).
    public var commands: Int
    /// Services whose rules may have changed since the previous successful sync.
    public var changedServices: Int
    /// A periodic full sync found our tables intact (their canary present) and did a partial one instead.
    public var verifiedIntact: Bool = false

    public var succeeded: Bool { error == nil }
}

/// Work that follows every successful sync, on the controller's task, in order: session-affinity
/// cleanup (always, first), the per-Service health-check servers, conntrack cleanup, the ipset export.
/// Each gets the cluster state whose rules are now in the kernel, the Services that may have changed
/// since its previous call (nil: any of them, e.g. after a full sync) and the ruleset now applied. A
/// follower keeps whatever it needs of the previous state itself.
public protocol SyncFollower: Sendable {
    func synced(_ state: ClusterState, changed: Set<ObjectRef>?) async
    /// The same, with the ruleset the sync applied. By default, `synced(_:changed:)`.
    func synced(_ state: ClusterState, changed: Set<ObjectRef>?, applied: Ruleset) async
}

extension SyncFollower {
    public func synced(_ state: ClusterState, changed: Set<ObjectRef>?, applied: Ruleset) async {
        await synced(state, changed: changed)
    }
}

/// The node agent's control loop: keeps our nftables tables equal to what the cluster asks for.
///
/// Events from the `ClusterSource` update a `ClusterState` and mark Services dirty; a `SyncScheduler`
/// decides when to sync. A sync recompiles the dirty Services (`IncrementalCompiler`) and applies either
/// a partial transaction, planned over just what that changed since the last applied ruleset (the kernel
/// is never listed per sync), or a full one that replaces our tables whole and so also repairs drift
/// (someone flushed or edited them). Nothing is applied until the first complete list of Services,
/// EndpointSlices and Nodes arrived. A failed transaction leaves the kernel as it was (batches are
/// atomic): it is logged with nft's error and retried as a full sync. Stopping leaves the rules in
/// place, so traffic keeps flowing while the agent restarts. Whether this node should receive load-balancer
/// traffic (`NodeEligibility`, for `/healthz`) follows its Node object as each event arrives, ahead of any
/// sync in progress.
///
/// All of the loop's state lives in `run`; the class itself holds only its immutable collaborators.
public final class Controller<Source: ClusterSource, C: Clock>: ServiceLifecycle.Service where C.Duration == Duration {
    public let node: NodeContext
    public let minSyncPeriod: Duration
    public let syncPeriod: Duration
    /// How often the tables are rebuilt whole even when they look intact (kube-proxy's nftables mode: 1 h).
    public let fullSyncPeriod: Duration
    /// Syncs that may run back to back after a quiet spell (kube-proxy's `burstSyncs`: 2).
    public let syncBurst: Int
    /// A full sync of a table the kernel does not hold intact is written in batches of about this many
    /// elements (`IncrementalCompiler.coldStartBatches`); a ruleset no larger goes in one batch.
    public let coldStartBatchElements: Int

    private let source: Source
    private let backend: any NFTablesBackend
    private let clock: C
    private let metrics: AgentMetrics
    private let health: HealthState
    private let logger: Logger
    private let wallClock: @Sendable () -> Date
    private let onSync: (@Sendable (SyncReport) -> Void)?
    private let followers: [any SyncFollower]

    /// - Parameters:
    ///   - clock: schedules syncs (a manual clock in tests).
    ///   - wallClock: Unix time for timestamps and network programming latency (fixed in tests).
    ///   - onSync: called after every sync attempt, on the controller's task; keep it short.
    public init(
        source: Source, backend: any NFTablesBackend, node: NodeContext,
        minSyncPeriod: Duration = .seconds(1), syncPeriod: Duration = .seconds(30),
        fullSyncPeriod: Duration = .seconds(3600), syncBurst: Int = SyncScheduler<C>.defaultBurst,
        coldStartBatchElements: Int = 50_000,
        clock: C, metrics: AgentMetrics, health: HealthState, logger: Logger,
        wallClock: @escaping @Sendable () -> Date = { Date() },
        followers: [any SyncFollower] = [],
        onSync: (@Sendable (SyncReport) -> Void)? = nil
    ) {
        self.followers = [AffinityCleaner(backend: backend, metrics: metrics, logger: logger)] + followers
        self.source = source
        self.backend = backend
        self.node = node
        self.minSyncPeriod = minSyncPeriod
        self.syncPeriod = syncPeriod
        self.fullSyncPeriod = fullSyncPeriod
        self.syncBurst = syncBurst
        self.coldStartBatchElements = coldStartBatchElements
        self.clock = clock
        self.metrics = metrics
        self.health = health
        self.logger = logger
        self.wallClock = wallClock
        self.onSync = onSync
    }

    /// Runs until graceful shutdown or cancellation (returns normally), or until the source throws
    /// (rethrows its error). Never removes our tables.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.loop() }
        } catch is CancellationError {
            // Shutting down.
        }
        logger.info("controller stopped; rules left in place")
    }

    private enum Input: Sendable {
        case event(ClusterEvent)
        case sourceEnded((any Error)?)
        case tick
    }

    private func loop() async throws {
        let mailbox = Mailbox<Input>()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                var eligibility = NodeEligibility(nodeName: self.node.nodeName)
                do {
                    for try await event in self.source.cancelOnGracefulShutdown() {
                        // Straight to /healthz: a node being drained must not wait for a sync in progress.
                        if let eligible = eligibility.apply(event) { self.nodeEligibilityChanged(eligible) }
                        mailbox.send(.event(event))
                    }
                    mailbox.send(.sourceEnded(nil))
                } catch {
                    mailbox.send(.sourceEnded(error))
                }
            }
            var run = LoopState(
                scheduler: SyncScheduler(
                    minSyncPeriod: minSyncPeriod, syncPeriod: syncPeriod, burst: syncBurst, rebuildPeriod: fullSyncPeriod),
                tracker: ClusterTracker(ignoreTriggersBefore: wallClock()),
                compiler: IncrementalCompiler(node: node))
            while !Task.isCancelled {
                let deadline: C.Instant?
                switch run.scheduler.next(at: clock.now) {
                case .verify:
                    _ = run.scheduler.verified(intact: await tablesIntact(), at: clock.now)
                    continue
                case .syncNow(let kind):
                    let done = await sync(kind, verified: run.scheduler.verdict == .intact, &run)
                    _ = run.scheduler.syncFinished(kind, succeeded: done.succeeded, at: clock.now, wrote: done.wrote)
                    continue
                case .syncAt(let instant):
                    deadline = instant
                case .wait:
                    deadline = nil
                }
                for input in await inputs(from: mailbox, until: deadline) {
                    switch input {
                    case .event(let event):
                        handle(event, &run)
                    case .sourceEnded(let error?):
                        if Task.isCancelled { break }
                        logger.error("cluster source failed; stopping", metadata: ["error": "\(error)"])
                        throw error
                    case .sourceEnded(nil):
                        if !Task.isCancelled {
                            logger.info("cluster source ended; keeping the rules in sync on the periodic timer")
                        }
                    case .tick:
                        break  // the loop asks the scheduler again
                    }
                }
            }
            group.cancelAll()
        }
    }

    /// The next inputs: at least one, unless `deadline` passed first (then `.tick`) or the task is
    /// cancelled (then none). When the timer and an event race, both are returned; nothing is dropped.
    private func inputs(from mailbox: Mailbox<Input>, until deadline: C.Instant?) async -> [Input] {
        if let input = mailbox.tryNext() { return [input] }
        guard let deadline else { return await mailbox.next().map { [$0] } ?? [] }
        return await withTaskGroup(of: Input?.self) { group in
            group.addTask { await mailbox.next() }
            group.addTask { [clock] in
                do {
                    try await clock.sleep(until: deadline, tolerance: nil)
                    return .tick
                } catch {
                    return nil
                }
            }
            var inputs: [Input] = []
            if case .some(.some(let first)) = await group.next() { inputs.append(first) }
            group.cancelAll()
            for await input in group { if let input { inputs.append(input) } }
            return inputs
        }
    }

    /// The loop's state: everything that changes between events.
    private struct LoopState {
        var scheduler: SyncScheduler<C>
        var tracker: ClusterTracker
        /// The desired ruleset, kept up to date Service by Service.
        var compiler: IncrementalCompiler
        /// The compiler's diagnostics at the last sync: only new ones are logged and counted.
        var compilerDiagnostics: Set<Diagnostic> = []
        /// The names under which the kernel holds our sets (after a staged rebuild, some large ones under
        /// their alternate name); every transaction is renamed with it on its way to the kernel.
        var names = KernelNames.identity
    }

    private func handle(_ event: ClusterEvent, _ run: inout LoopState) {
        if case .diagnostics(let diagnostics) = event {
            for diagnostic in diagnostics { report(diagnostic, from: "decoder") }
            return
        }
        let wasInitialized = run.tracker.isInitialized
        let changed = run.tracker.apply(event)
        recordChanges(&run.tracker)
        if !wasInitialized {
            if run.tracker.isInitialized {
                logger.info(
                    "initial lists received",
                    metadata: [
                        "services": "\(run.tracker.state.services.count)",
                        "endpointSlices": "\(run.tracker.state.slices.count)",
                    ])
                _ = run.scheduler.initialSyncDone(at: clock.now)
            }
            return
        }
        guard changed else { return }
        // As kube-proxy: only changes after the initial lists count as queued updates.
        health.queuedUpdate()
        metrics.recordQueued(at: wallClock())
        _ = run.scheduler.changed(at: clock.now)
    }

    /// One sync of the kind the scheduler asked for; returns whether it succeeded and wrote anything.
    /// `verified`: a periodic sync whose canary check found the tables intact (`SyncScheduler.verify`), so
    /// it runs as a partial one. Edits the canary cannot see are repaired at the next rebuild, or as soon
    /// as a partial batch trips over them (a failed batch is retried as a full sync).
    ///
    /// A partial sync plans from the compiler's last change alone: the scheduler asks for one only after
    /// a success, so the kernel holds what the compiler held before its update.
    private func sync(_ kind: SyncKind, verified: Bool, _ run: inout LoopState) async -> (succeeded: Bool, wrote: Bool) {
        let started = ContinuousClock.now
        // A partial sync recompiles the dirty Services only; a full one checks every Service (one whose
        // inputs did not change is still not recompiled), so a missed dirty mark is repaired by it too.
        let change = run.compiler.update(run.tracker.state, changed: kind == .full ? nil : run.tracker.dirty)
        let diagnostics = Set(run.compiler.diagnostics)
        for diagnostic in diagnostics.subtracting(run.compilerDiagnostics).sorted(by: { $0.description < $1.description }) {
            report(diagnostic, from: "compiler")
        }
        run.compilerDiagnostics = diagnostics

        var transaction = Transaction()
        var batches = 0
        var coldCommands = 0
        var failure: (any Error)?
        do {
            switch kind {
            case .partial:
                transaction = run.compiler.ruleset.transaction(from: change.before, scope: change.scope)
                if !transaction.isEmpty { try await backend.apply(run.names.toKernel(transaction)) }
            case .full:
                // Large tables are never written in one batch: a table the kernel does not hold intact (a
                // cold node, a deleted or flushed table) in batches of whole entry points; an intact one by
                // a staged rebuild of its large sets. Packets see no half-built entry point either way.
                var coldTables: Set<TableID> = []
                var stagedTables: [Table] = []
                if run.compiler.ruleset.elementCount > coldStartBatchElements {
                    for id in node.tableIDs.sorted() where run.compiler.ruleset[id] != nil {
                        if await tableIntact(id), let declared = try? await backend.readDeclarations(id) {
                            stagedTables.append(declared)
                        } else {
                            coldTables.insert(id)
                        }
                    }
                }
                var whole = node.tableIDs.subtracting(coldTables)
                for declared in stagedTables {
                    if await stagedRebuild(declared, &run, batches: &batches, commands: &coldCommands) {
                        whole.remove(declared.id)
                    }
                }
                transaction = run.compiler.ruleset.restricted(to: whole).replacing(whole)
                if !transaction.isEmpty { try await backend.apply(transaction) }
                for id in whole { run.names = run.names.resetting(id) }
                if !coldTables.isEmpty {
                    let declarations = run.compiler.ruleset.setDeclarations
                    for batch in run.compiler.coldStartBatches(coldTables, maxElements: coldStartBatchElements) {
                        try await backend.applyBatch(batch, declarations: declarations)
                        batches += 1
                        coldCommands += batch.commands.count
                    }
                    for id in coldTables { run.names = run.names.resetting(id) }
                }
            }
        } catch {
            failure = error
        }
        let commandCount = transaction.commands.count + coldCommands
        let duration = started.duration(to: .now)
        let finishedAt = wallClock()
        let changedServices = run.tracker.dirty.count

        var metadata: Logger.Metadata = [
            "type": "\(kind)", "duration": "\(duration)", "commands": "\(commandCount)",
            "changedServices": "\(changedServices)",
        ]
        if batches > 0 { metadata["batches"] = "\(batches)" }  // cold-start or staged-rebuild batches
        if let failure {
            metrics.recordSync(kind, succeeded: false, duration: duration, finishedAt: finishedAt, applied: nil)
            metadata["error"] = "\(failure)"
            if Task.isCancelled {
                logger.debug("sync interrupted by shutdown", metadata: metadata)
            } else {
                logger.error("sync failed; retrying as a full sync", metadata: metadata)
            }
        } else {
            metrics.recordSync(
                kind, succeeded: true, duration: duration, finishedAt: finishedAt, applied: run.compiler.ruleset)
            let followed: Set<ObjectRef>? = kind == .full ? nil : run.tracker.dirty
            for follower in followers {
                await follower.synced(run.tracker.state, changed: followed, applied: run.compiler.ruleset)
            }
            for triggered in run.tracker.committed() {
                metrics.observeNetworkProgramming(seconds: finishedAt.timeIntervalSince(triggered))
            }
            recordChanges(&run.tracker)
            metrics.setNoLocalEndpoints(run.compiler.noLocalEndpoints)
            health.updated()
            if kind == .full { FreeMemory.returnToSystem() }
            metadata["elements"] = "\(run.compiler.ruleset.elementCount)"
            metadata["chains"] = "\(run.compiler.ruleset.chainCount)"
            if verified { metadata["verified"] = "tables intact" }
            if kind == .full {
                logger.info("synced", metadata: metadata)
            } else {
                logger.debug("synced", metadata: metadata)
            }
        }
        onSync?(
            SyncReport(
                kind: kind, error: failure.map { "\($0)" }, finishedAt: finishedAt, duration: duration,
                commands: commandCount, changedServices: changedServices, verifiedIntact: verified))
        return (failure == nil, commandCount > 0)
    }

    /// Rebuilds an intact table's large sets out of place and switches them in
    /// (`Ruleset.stagedRebuild`). False when it could not: the caller then replaces the table whole, in
    /// one batch (after an upgrade that changed a declaration, say).
    private func stagedRebuild(_ declared: Table, _ run: inout LoopState, batches: inout Int, commands: inout Int) async -> Bool {
        let id = declared.id
        let (_, held) = KernelNames.fromKernel(Ruleset(tables: [declared]))
        let desired = run.compiler.ruleset
        let large = Set(desired[id]!.sets.filter { $0.value.elements.count > coldStartBatchElements / 10 }.keys)
        let rebuild = desired.stagedRebuild(
            id, kernel: declared, names: held, staging: large, maxElements: coldStartBatchElements)
        let declarations = desired.setDeclarations
        do {
            for batch in rebuild {
                try await backend.applyBatch(batch, declarations: declarations)
                batches += 1
                commands += batch.commands.count
            }
        } catch {
            logger.warning(
                "staged rebuild failed; replacing the table in one batch", metadata: ["table": "\(id)", "error": "\(error)"])
            return false
        }
        run.names = run.names.with(id, sets: rebuild.names.sets[id] ?? [], chains: rebuild.names.chains[id] ?? [])
        return true
    }

    /// Every table of ours still holds its canary element. Any error counts as "not intact".
    private func tablesIntact() async -> Bool {
        for id in node.tableIDs.sorted() {
            guard await tableIntact(id) else { return false }
        }
        return true
    }

    private func tableIntact(_ id: TableID) async -> Bool {
        guard let set = try? await backend.readSet(id, RulesetNames.canary) else { return false }
        return set.elements[RulesetNames.canaryElement] != nil
    }

    /// kube-proxy's change metrics: events seen since the last call, and what is pending now.
    private func recordChanges(_ tracker: inout ClusterTracker) {
        let events = tracker.takeEventCounts()
        metrics.countChanges(services: events.services, endpointSlices: events.endpointSlices)
        metrics.setPendingChanges(
            services: tracker.pendingServices.count, endpointSlices: tracker.pendingEndpointSliceChanges)
    }

    /// This node's Node object says it should (no longer) receive load-balancer traffic.
    private func nodeEligibilityChanged(_ eligible: Bool) {
        health.setNodeEligible(eligible)
        let metadata: Logger.Metadata = ["node": "\(node.nodeName)"]
        if eligible {
            logger.notice("node eligible for load-balancer traffic again", metadata: metadata)
        } else {
            // Deleted, being deleted, or tainted by the cluster autoscaler (`Node.isEligibleForTraffic`).
            logger.notice(
                "node is going away; /healthz answers 503 so that load balancers drain it", metadata: metadata)
        }
    }

    /// Logs one diagnostic (one line) and counts it by the object's kind (`unknown` when its identity could
    /// not be read).
    private func report(_ diagnostic: Diagnostic, from origin: String) {
        var metadata: Logger.Metadata = [
            "object": "\(diagnostic.object)", "field": "\(diagnostic.field)", "severity": "\(diagnostic.severity)",
            "origin": "\(origin)",
        ]
        if case .service(let ref) = diagnostic.subject { metadata["service"] = "\(ref)" }
        logger.warning("\(diagnostic.message)", metadata: metadata)
        metrics.countInvalidObject(kind: diagnostic.subject.kind ?? "unknown")
    }
}

extension Controller where C == ContinuousClock {
    /// A controller on the real clock.
    public convenience init(
        source: Source, backend: any NFTablesBackend, node: NodeContext,
        minSyncPeriod: Duration = .seconds(1), syncPeriod: Duration = .seconds(30),
        fullSyncPeriod: Duration = .seconds(3600),
        metrics: AgentMetrics, health: HealthState, logger: Logger,
        followers: [any SyncFollower] = [],
        onSync: (@Sendable (SyncReport) -> Void)? = nil
    ) {
        self.init(
            source: source, backend: backend, node: node, minSyncPeriod: minSyncPeriod, syncPeriod: syncPeriod,
            fullSyncPeriod: fullSyncPeriod, clock: ContinuousClock(), metrics: metrics, health: health,
            logger: logger, followers: followers, onSync: onSync)
    }
}
