import Foundation
import NFTModel
import SwitchboardCore
import SwitchboardTesting
import Testing

@testable import SwitchboardAgent
import SwitchboardTestTraits

@Suite(.exclusive) struct ControllerTests {
    @Test func nothingIsAppliedBeforeEveryKindIsListedThenOneFullSync() async throws {
        let h = ControllerHarness()
        try await h.run {
            h.source.send(.synced(.services, [Objects.web, Objects.api]))
            h.source.send(.synced(.endpointSlices, [Objects.webSlice, Objects.apiSlice]))
            h.source.send(.upsert(Objects.slice("web-2", service: "web", ["10.1.0.9"])))
            h.source.send(.delete(Objects.slice("web-2", service: "web", [])))
            h.source.send(.synced(.nodes, [Objects.node]))

            let first = try await h.nextReport()
            #expect(first.kind == .full && first.succeeded)
            // One apply, made after the node list: it already holds the node's NodePort address.
            #expect(await h.fake.applyCount == 1)
            #expect(await h.committed.count == 1)
            #expect(await h.ruleset == Objects.desired(Objects.initial))
            let nodePortAddresses = await h.ruleset[TableID(.ip, "switchboard")]?.sets[RulesetNames.nodePortAddresses]
            #expect(nodePortAddresses?.elements.keys.contains("10.200.0.1") == true)
            // A full sync replaces our tables whole.
            let commands = await h.committed[0].commands
            #expect(
                commands.prefix(2) == [
                    .addTable(TableID(.ip, "switchboard")), .deleteTable(TableID(.ip, "switchboard")),
                ])
        }
    }

    @Test func anEndpointSliceUpdateIsAPartialSyncOfThatServiceOnly() async throws {
        let h = ControllerHarness()
        try await h.run {
            try await h.start()
            let updated = Objects.slice("web-1", service: "web", ["10.1.0.1", "10.1.0.2", "10.1.0.3"])
            h.source.send(.upsert(updated))

            let report = try await h.nextReport()
            #expect(report.kind == .partial && report.succeeded)
            #expect(report.changedServices == 1)
            let state = Objects.initial.filter { $0 != Objects.webSlice } + [updated]
            #expect(await h.ruleset == Objects.desired(state))

            let transaction = try #require(await h.committed.last)
            // Element changes only: slots of web's Maglev table (10.96.0.10) and the new endpoint's
            // hairpin entry; nothing of api (10.96.0.20), no chain, set or table.
            #expect(transaction.commands.contains { if case .addElements = $0 { true } else { false } })
            for command in transaction.commands {
                let text = command.description
                switch command {
                case .addElements(_, let set, let elements):
                    for element in elements {
                        #expect(element.key.hasPrefix("10.96.0.10 . tcp . 80 . ") || element.key == "10.1.0.3 . 10.1.0.3",
                                "\(text)")
                    }
                    #expect(set == "backends" || set == "hairpin", "\(text)")
                case .deleteElements(_, let set, let keys):
                    #expect(set == "backends" && keys.allSatisfy { $0.hasPrefix("10.96.0.10 . tcp . 80 . ") }, "\(text)")
                default: Issue.record("unexpected \(text)")
                }
            }
            // Planned from the last applied ruleset: the kernel was never listed.
            #expect(h.backend.readCount == 0)
        }
    }

    @Test func sessionAffinityEntriesOfARemovedEndpointAreDeletedAfterTheSync() async throws {
        let h = ControllerHarness()
        let v4 = TableID(.ip, "switchboard")
        guard case .service(var sticky) = Objects.web else { return }
        sticky.sessionAffinity = .clientIP(timeoutSeconds: 60)
        try await h.run {
            try await h.start(with: Objects.initial.filter { $0 != Objects.web } + [.service(sticky)])
            // What the packet path would have recorded for two clients, one on each endpoint.
            await h.fake.edit { r in
                r.tables[v4]!.sets["affinity"]!.elements = [
                    "192.0.2.1 . 10.96.0.10 . tcp . 80": "10.1.0.1 . 8080",
                    "192.0.2.2 . 10.96.0.10 . tcp . 80": "10.1.0.2 . 8080",
                ]
            }
            h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.1"])))
            #expect(try await h.nextReport().succeeded)
            #expect(await h.ruleset[v4]!.sets["affinity"]!.elements == ["192.0.2.1 . 10.96.0.10 . tcp . 80": "10.1.0.1 . 8080"])
            // Affinity switched off: the remaining entry goes too (only if some Service still has affinity
            // is the map read; here api gets it).
            guard case .service(var api) = Objects.api else { return }
            api.sessionAffinity = .clientIP(timeoutSeconds: 30)
            h.source.send(.upsert(.service(api)))
            #expect(try await h.nextReport().succeeded)
            #expect(await h.ruleset[v4]!.sets["affinity"]!.elements.count == 1)
            h.source.send(.upsert(Objects.web))
            #expect(try await h.nextReport().succeeded)
            #expect(await h.ruleset[v4]!.sets["affinity"]!.elements.isEmpty)
        }
    }

    @Test func anUnchangedObjectCausesNoSync() async throws {
        let h = ControllerHarness()
        try await h.run {
            try await h.start()
            h.source.send(.upsert(Objects.webSlice))  // an informer resync: same object
            h.source.send(.delete(Objects.slice("nope", service: "web", [])))  // unknown object
            h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.1"])))
            let report = try await h.nextReport()
            #expect(report.kind == .partial)
            #expect(report.changedServices == 1)
            #expect(await h.fake.applyCount == 2)
        }
    }

    @Test func aDeletedServiceLosesItsRules() async throws {
        let h = ControllerHarness()
        try await h.run {
            try await h.start()
            h.source.send(.delete(Objects.web))
            let report = try await h.nextReport()
            #expect(report.kind == .partial && report.succeeded)
            let ruleset = await h.ruleset
            #expect(ruleset == Objects.desired(Objects.initial.filter { $0 != Objects.web }))
            let keys = ruleset.tables.values.flatMap { $0.sets.values.flatMap(\.elements.keys) }
            #expect(!keys.contains { $0.hasPrefix("10.96.0.10") })
            #expect(keys.contains { $0.hasPrefix("10.96.0.20 . tcp . 80 . ") })
        }
    }

    @Test func aCompleteListReplacesEverythingOfItsKind() async throws {
        let h = ControllerHarness()
        try await h.run {
            try await h.start()
            // A re-list after 410 Gone: api is gone, web is unchanged.
            h.source.send(.synced(.services, [Objects.web]))
            let report = try await h.nextReport()
            #expect(report.kind == .partial)
            #expect(await h.ruleset == Objects.desired(Objects.initial.filter { $0 != Objects.api }))
        }
    }

    @Test func aFailedApplyIsRetriedAsAFullSync() async throws {
        let h = ControllerHarness()
        try await h.run {
            try await h.start()
            await h.fake.failNextApply()
            let updated = Objects.slice("web-1", service: "web", ["10.1.0.7"])
            h.source.send(.upsert(updated))

            let failed = try await h.nextReport()
            #expect(failed.kind == .partial)
            #expect(!failed.succeeded)
            #expect(failed.error?.contains("Cannot allocate memory") == true)
            #expect(await h.ruleset == Objects.desired(Objects.initial))  // the kernel is untouched

            // The retry waits for its backoff (1 s when minSyncPeriod is 0), then replaces the tables.
            try await eventually("the retry timer") { h.clock.sleeperCount > 0 }
            h.clock.advance(by: .seconds(1))
            let retry = try await h.nextReport()
            #expect(retry.kind == .full && retry.succeeded)
            let state = Objects.initial.filter { $0 != Objects.webSlice } + [updated]
            #expect(await h.ruleset == Objects.desired(state))
            #expect(h.sample(#"switchboard_sync_total{type="partial",result="failure"}"#) == 1)
            #expect(h.sample(#"switchboard_sync_total{type="full",result="success"}"#) == 2)

            // Back to partial syncs, planned from what the retry applied.
            h.source.send(.delete(Objects.api))
            let next = try await h.nextReport()
            #expect(next.kind == .partial && next.succeeded)
            #expect(await h.ruleset == Objects.desired(state.filter { $0 != Objects.api }))
        }
    }

    /// The periodic sync checks each table's canary; intact tables are not rebuilt (at 10k Services that
    /// is two million elements), so an edit the canary cannot see waits for the hourly rebuild.
    @Test func thePeriodicSyncVerifiesAndTheHourlyOneRepairsDrift() async throws {
        let h = ControllerHarness(minSyncPeriod: .seconds(1), syncPeriod: .seconds(30), fullSyncPeriod: .seconds(90))
        try await h.run {
            try await h.start()
            let desired = Objects.desired(Objects.initial)
            let table = TableID(.ip, "switchboard")
            #expect(desired[table]?.sets["backends"]?.elements["10.96.0.10 . tcp . 80 . 0"] != nil)
            await h.fake.edit { ruleset in
                ruleset.tables[table]!.sets["backends"]!.elements["10.96.0.10 . tcp . 80 . 0"] = nil  // someone deleted a slot
                ruleset.tables[table]!.chains["maglev-m13"]!.rules.removeLast()  // and a rule
                ruleset.tables[table]!.sets[RulesetNames.clusterIPs]!.elements["10.9.9.9"] = ""  // and added junk
            }
            let drifted = await h.ruleset
            #expect(drifted != desired)

            for second in [30, 60] {
                try await eventually("the periodic timer") {
                    h.clock.nextDeadline == ManualClock.Instant(offset: .seconds(second))
                }
                h.clock.advance(by: .seconds(30))
                let report = try await h.nextReport()
                #expect(report.kind == .partial && report.verifiedIntact && report.commands == 0, "\(report)")
                #expect(await h.ruleset == drifted)
            }
            #expect(h.backend.setReadCount == 4, "one canary read per table and periodic sync")

            try await eventually("the periodic timer") { h.clock.nextDeadline == ManualClock.Instant(offset: .seconds(90)) }
            h.clock.advance(by: .seconds(30))
            let report = try await h.nextReport()
            #expect(report.kind == .full && report.succeeded && !report.verifiedIntact)
            #expect(await h.ruleset == desired)
            #expect(h.backend.readCount == 0)
        }
    }

    /// A flushed table has lost its canary: the next periodic sync rebuilds it at once.
    @Test func aFlushedTableIsRebuiltAtTheNextPeriodicSync() async throws {
        let h = ControllerHarness(minSyncPeriod: .seconds(1), syncPeriod: .seconds(30))
        try await h.run {
            try await h.start()
            let desired = Objects.desired(Objects.initial)
            await h.fake.edit { ruleset in
                for id in Array(ruleset.tables.keys) {
                    for name in Array(ruleset.tables[id]!.sets.keys) { ruleset.tables[id]!.sets[name]!.elements = [:] }
                    for name in Array(ruleset.tables[id]!.chains.keys) { ruleset.tables[id]!.chains[name]!.rules = [] }
                }
            }
            try await eventually("the periodic timer") { h.clock.nextDeadline == ManualClock.Instant(offset: .seconds(30)) }
            h.clock.advance(by: .seconds(30))
            let report = try await h.nextReport()
            #expect(report.kind == .full && report.succeeded && !report.verifiedIntact)
            #expect(await h.ruleset == desired)
        }
    }

    @Test func changesWithinTheMinimumPeriodAreSyncedTogether() async throws {
        let h = ControllerHarness(minSyncPeriod: .seconds(1))
        try await h.run {
            try await h.start()
            h.source.send(.delete(Objects.web))
            h.source.send(.delete(Objects.api))
            // Both changes wait for lastSync + 1 s.
            try await eventually("the min-period timer") {
                h.clock.nextDeadline == ManualClock.Instant(offset: .seconds(1))
            }
            #expect(await h.fake.applyCount == 1)
            h.clock.advance(by: .seconds(1))
            let report = try await h.nextReport()
            #expect(report.kind == .partial)
            #expect(report.changedServices == 2)
            #expect(await h.ruleset == Objects.desired([Objects.webSlice, Objects.apiSlice, Objects.node]))
            #expect(await h.fake.applyCount == 2)
        }
    }

    /// A large ruleset for tables the kernel does not hold (cold node) or that were flushed goes in bounded
    /// batches; an intact table is replaced in one batch.
    @Test func coldAndFlushedTablesAreWrittenInBatches() async throws {
        let h = ControllerHarness(minSyncPeriod: .seconds(1), syncPeriod: .seconds(30), coldStartBatchElements: 20)
        try await h.run {
            let first = try await h.start()
            let desired = Objects.desired(Objects.initial)
            #expect(desired.elementCount > 40)
            #expect(first.kind == .full && first.succeeded)
            #expect(await h.fake.applyCount > 3, "cold tables in several batches")
            #expect(await h.ruleset == desired)

            // Flushed: rebuilt in batches at the next periodic sync.
            await h.fake.edit { ruleset in
                for id in Array(ruleset.tables.keys) {
                    for name in Array(ruleset.tables[id]!.sets.keys) { ruleset.tables[id]!.sets[name]!.elements = [:] }
                }
            }
            let before = await h.fake.applyCount
            try await eventually("the periodic timer") { h.clock.nextDeadline == ManualClock.Instant(offset: .seconds(30)) }
            h.clock.advance(by: .seconds(30))
            let repaired = try await h.nextReport()
            #expect(repaired.kind == .full && repaired.succeeded)
            #expect(await h.fake.applyCount - before > 3)
            #expect(await h.ruleset == desired)
        }
    }

    /// The hourly rebuild of a large intact table goes out of place (`Ruleset.stagedRebuild`): Maglev maps
    /// and their chains under their other names, filled in batches, switched in by one batch; drift is
    /// repaired as by a whole replace, and later partial syncs are renamed for the kernel.
    @Test func theHourlyRebuildOfALargeTableIsStaged() async throws {
        let h = ControllerHarness(
            minSyncPeriod: .seconds(1), syncPeriod: .seconds(30), fullSyncPeriod: .seconds(60), coldStartBatchElements: 20)
        try await h.run {
            _ = try await h.start()
            let desired = Objects.desired(Objects.initial)
            let table = TableID(.ip, "switchboard")
            await h.fake.edit { ruleset in
                ruleset.tables[table]!.sets["backends"]!.elements["10.96.0.10 . tcp . 80 . 0"] = nil
                ruleset.tables[table]!.chains["maglev-m13"]!.rules.removeLast()
                ruleset.tables[table]!.sets[RulesetNames.clusterIPs]!.elements["10.9.9.9"] = ""
            }
            for expectation in [(kind: SyncKind.partial, at: 30), (.full, 60)] {
                try await eventually("the periodic timer") {
                    h.clock.nextDeadline == ManualClock.Instant(offset: .seconds(expectation.at))
                }
                h.clock.advance(by: .seconds(30))
                let report = try await h.nextReport()
                #expect(report.kind == expectation.kind && report.succeeded, "\(report)")
            }
            let held = await h.ruleset
            #expect(held[table]?.sets["backends-g2"] != nil && held[table]?.sets["backends"] == nil)
            #expect(held[table]?.chains["maglev-m13-g2"] != nil && held[table]?.chains["maglev-m13"] == nil)
            #expect(KernelNames.fromKernel(held).0 == desired)

            // A partial sync afterwards lands in the renamed maps.
            h.source.send(.delete(Objects.web))
            h.clock.advance(by: .seconds(1))
            let partial = try await h.nextReport()
            #expect(partial.kind == .partial && partial.succeeded, "\(partial)")
            let after = Objects.desired([Objects.webSlice, Objects.api, Objects.apiSlice, Objects.node])
            #expect(KernelNames.fromKernel(await h.ruleset).0 == after)
        }
    }

    /// kube-proxy's burst: after a quiet spell the first change is synced at once, without waiting for the
    /// min-period timer (the harness's clock does not move).
    @Test func aChangeAfterAQuietSpellIsSyncedAtOnce() async throws {
        let h = ControllerHarness(minSyncPeriod: .seconds(1), syncBurst: 2)
        try await h.run {
            try await h.start()
            h.source.send(.delete(Objects.web))
            let report = try await h.nextReport()
            #expect(report.kind == .partial && report.succeeded)
            #expect(await h.fake.applyCount == 2)
            #expect(h.clock.now == ManualClock.Instant(offset: .zero))
        }
    }

    @Test func networkProgrammingLatencyIsObservedOncePerChangedSlice() async throws {
        let wall = TestWallClock()
        let h = ControllerHarness(wall: wall)
        let start = wall.now
        try await h.run {
            // A trigger time from before the agent started is not ours to measure.
            let old = Objects.slice("web-1", service: "web", ["10.1.0.1"], triggeredAt: start.addingTimeInterval(-600))
            try await h.start(with: [Objects.web, old, Objects.api, Objects.apiSlice, Objects.node])
            #expect(h.sample("kubeproxy_network_programming_duration_seconds_count") == 0)

            wall.advance(seconds: 10)
            let changed = Objects.slice("web-1", service: "web", ["10.1.0.5"], triggeredAt: start.addingTimeInterval(7))
            h.source.send(.upsert(changed))
            _ = try await h.nextReport()
            #expect(h.sample("kubeproxy_network_programming_duration_seconds_count") == 1)
            #expect(h.sample("kubeproxy_network_programming_duration_seconds_sum") == 3)
            #expect(h.sample(#"kubeproxy_network_programming_duration_seconds_bucket{le="2.0"}"#) == 0)
            #expect(h.sample(#"kubeproxy_network_programming_duration_seconds_bucket{le="3.0"}"#) == 1)

            // The next sync (another Service) does not observe it again.
            h.source.send(.delete(Objects.api))
            _ = try await h.nextReport()
            #expect(h.sample("kubeproxy_network_programming_duration_seconds_count") == 1)
        }
    }

    @Test func latencyWaitsForTheCommitWhenTheFirstAttemptFails() async throws {
        let wall = TestWallClock()
        let h = ControllerHarness(wall: wall)
        let start = wall.now
        try await h.run {
            try await h.start()
            await h.fake.failNextApply()
            wall.advance(seconds: 2)
            h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.5"], triggeredAt: start)))
            #expect(try await h.nextReport().succeeded == false)
            #expect(h.sample("kubeproxy_network_programming_duration_seconds_count") == 0)
            wall.advance(seconds: 3)
            try await eventually("the retry timer") { h.clock.sleeperCount > 0 }
            h.clock.advance(by: .seconds(1))
            #expect(try await h.nextReport().succeeded)
            #expect(h.sample("kubeproxy_network_programming_duration_seconds_count") == 1)
            #expect(h.sample("kubeproxy_network_programming_duration_seconds_sum") == 5)
        }
    }

    @Test func invalidObjectsAreCountedAndNeverStopTheLoop() async throws {
        let h = ControllerHarness()
        try await h.run {
            // A decoder diagnostic, and a Service the compiler skips (no cluster IP).
            h.source.send(
                .diagnostics([
                    Diagnostic(.service(ObjectRef(namespace: "default", name: "bad")), field: "spec.ports[0].port", message: "not a port"),
                    Diagnostic(.input("document 3 of watch"), field: "", message: "not an object"),
                ]))
            let noIP = Objects.service("pending", ip: nil)
            try await h.start(with: Objects.initial + [noIP])
            #expect(h.sample(#"switchboard_invalid_objects_total{kind="Service"}"#) == 2)
            #expect(h.sample(#"switchboard_invalid_objects_total{kind="unknown"}"#) == 1)
            #expect(h.sample(#"switchboard_invalid_objects_total{kind="EndpointSlice"}"#) == 0)

            // The same compiler diagnostic at the next sync is not counted again.
            h.source.send(.delete(Objects.api))
            #expect(try await h.nextReport().succeeded)
            #expect(h.sample(#"switchboard_invalid_objects_total{kind="Service"}"#) == 2)
            #expect(await h.ruleset == Objects.desired(Objects.initial.filter { $0 != Objects.api } + [noIP]))
        }
    }

    @Test func syncMetricsAreRecorded() async throws {
        let wall = TestWallClock()
        let h = ControllerHarness(wall: wall)
        try await h.run {
            try await h.start()
            wall.advance(seconds: 5)
            h.source.send(.delete(Objects.api))
            _ = try await h.nextReport()
            #expect(h.sample(#"switchboard_sync_total{type="full",result="success"}"#) == 1)
            #expect(h.sample(#"switchboard_sync_total{type="partial",result="success"}"#) == 1)
            #expect(h.sample(#"switchboard_sync_total{type="partial",result="failure"}"#) == 0)
            #expect(h.sample("kubeproxy_sync_proxy_rules_duration_seconds_count") == 2)
            #expect(h.sample("kubeproxy_sync_full_proxy_rules_duration_seconds_count") == 1)
            #expect(h.sample("kubeproxy_sync_partial_proxy_rules_duration_seconds_count") == 1)
            #expect(h.sample("kubeproxy_sync_proxy_rules_last_timestamp_seconds") == wall.now.timeIntervalSince1970)
            #expect(
                h.sample("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds") == wall.now.timeIntervalSince1970)
            let applied = await h.ruleset
            #expect(h.sample("switchboard_ruleset_elements") == Double(applied.elementCount))
            #expect(h.sample("switchboard_ruleset_chains") == Double(applied.chainCount))
        }
    }

    @Test func theControllerStopsOnCancellationAndLeavesTheRules() async throws {
        let h = ControllerHarness()
        try await h.run { try await h.start() }
        #expect(await h.ruleset == Objects.desired(Objects.initial))
        #expect(await h.fake.applyCount == 1)
    }

    @Test func aFailingSourceStopsTheController() async throws {
        struct Broken: Error {}
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ClusterEvent.self)
        let h = ControllerHarness()
        let controller = Controller(
            source: stream, backend: h.backend, node: Objects.context, minSyncPeriod: .zero, clock: h.clock,
            metrics: h.metrics, health: h.health, logger: quietLogger())
        continuation.finish(throwing: Broken())
        await #expect(throws: Broken.self) {
            try await withDeadline("the controller to stop") { try await controller.run() }
        }
    }

    @Test func aFinishedSourceKeepsThePeriodicSync() async throws {
        let h = ControllerHarness()
        try await h.run {
            try await h.start()
            h.source.finish()
            try await eventually("the periodic timer") { h.clock.nextDeadline != nil }
            h.clock.advance(by: .seconds(30))
            let report = try await h.nextReport()
            #expect(report.succeeded && report.verifiedIntact, "the periodic check still runs: \(report)")
        }
    }
}

@Suite struct ClusterTrackerTests {
    @Test func initializedOnlyAfterEveryKind() {
        var tracker = ClusterTracker(ignoreTriggersBefore: .distantPast)
        let services = tracker.apply(.synced(.services, [Objects.web]))
        #expect(services)
        #expect(!tracker.isInitialized)
        let slices = tracker.apply(.synced(.endpointSlices, []))
        #expect(!slices)
        let nodes = tracker.apply(.synced(.nodes, [Objects.node]))
        #expect(nodes)
        #expect(tracker.isInitialized)
        #expect(tracker.dirty == [ObjectRef(namespace: "default", name: "web")])
    }

    @Test func objectsOfAnotherKindInAListAreIgnored() {
        var tracker = ClusterTracker(ignoreTriggersBefore: .distantPast)
        _ = tracker.apply(.synced(.services, [Objects.web, Objects.webSlice]))
        #expect(tracker.state.slices.isEmpty)
    }

    @Test func aSliceWithoutAServiceChangesNothing() {
        var tracker = ClusterTracker(ignoreTriggersBefore: .distantPast)
        let orphan = KubeObject.endpointSlice(
            EndpointSlice(ref: ObjectRef(namespace: "default", name: "x"), serviceName: nil))
        let upserted = tracker.apply(.upsert(orphan))
        let deleted = tracker.apply(.delete(orphan))
        #expect(!upserted && !deleted)
    }

    /// Taints and deletion decide `/healthz`, not a rule: they change the state but need no sync.
    @Test func aNodesTaintsAndDeletionNeedNoSync() {
        var tracker = ClusterTracker(ignoreTriggersBefore: .distantPast)
        _ = tracker.apply(.synced(.nodes, [Objects.node]))
        guard case .node(var node) = Objects.node else { return }
        node.taints = [Taint(key: Node.toBeDeletedTaint, effect: "NoSchedule")]
        node.deletionTimestamp = "2025-01-02T03:04:05Z"
        let tainted = tracker.apply(.upsert(.node(node)))
        #expect(!tainted)
        #expect(tracker.state.nodes["n1"] == node)
        node.labels["topology.kubernetes.io/zone"] = "z1"
        let zoned = tracker.apply(.upsert(.node(node)))
        let deleted = tracker.apply(.delete(.node(node)))
        #expect(zoned && deleted)
    }

    @Test func theEarliestPendingTriggerTimeIsKept() {
        let t0 = Date(timeIntervalSince1970: 1_000)
        var tracker = ClusterTracker(ignoreTriggersBefore: t0)
        _ = tracker.apply(.upsert(Objects.slice("s", service: "web", ["10.0.0.1"], triggeredAt: t0 + 5)))
        _ = tracker.apply(.upsert(Objects.slice("s", service: "web", ["10.0.0.2"], triggeredAt: t0 + 9)))
        _ = tracker.apply(.upsert(Objects.slice("old", service: "web", ["10.0.0.3"], triggeredAt: t0 - 1)))
        let first = tracker.committed()
        let second = tracker.committed()
        #expect(first == [t0 + 5])
        #expect(second == [])
        #expect(tracker.dirty.isEmpty)
    }
}
