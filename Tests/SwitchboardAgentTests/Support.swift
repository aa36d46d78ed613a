import Foundation
import Logging
import NetworkTypes
import NFTModel
import SwitchboardCore
import SwitchboardTesting
import Synchronization
import Testing

@testable import SwitchboardAgent

/// A wall clock that moves only when told.
final class TestWallClock: Sendable {
    private let time: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_700_000_000)) { time = Mutex(start) }

    var now: Date { time.withLock { $0 } }
    func advance(seconds: Double) { time.withLock { $0 += seconds } }
}

struct Timeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with `Timeout` after `seconds` of real time (a generous bound, not a timing assert).
func withDeadline<T: Sendable>(
    _ what: String, seconds: Double = 20, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try? await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard case .some(.some(let value)) = try await group.next() else { throw Timeout(what: what) }
        return value
    }
}

/// Polls `condition` until it holds (real time, generous bound).
func eventually(_ what: String, _ condition: @escaping @Sendable () async -> Bool) async throws {
    try await withDeadline(what) {
        while !(await condition()) { try await Task.sleep(for: .milliseconds(2)) }
    }
}

/// A backend that counts what the controller asks of it, forwarding to a `FakeNFTables`.
final class CountingBackend: NFTablesBackend {
    let fake: FakeNFTables
    private let reads = Mutex(0)
    private let setReads = Mutex(0)

    init(_ fake: FakeNFTables) { self.fake = fake }

    /// Whole-table reads (the controller never needs one).
    var readCount: Int { reads.withLock { $0 } }
    /// Single-set reads (the periodic canary check).
    var setReadCount: Int { setReads.withLock { $0 } }

    func readSet(_ table: TableID, _ name: String) async throws -> NFTSet? {
        setReads.withLock { $0 += 1 }
        return await fake.read([table])[table]?.sets[name]
    }

    private let refusal = Mutex<(@Sendable (Transaction) -> Bool)?>(nil)

    /// From now on, transactions for which `refused` holds fail without reaching the fake.
    func refuse(where refused: @escaping @Sendable (Transaction) -> Bool) { refusal.withLock { $0 = refused } }

    func apply(_ transaction: Transaction) async throws {
        if refusal.withLock({ $0?(transaction) ?? false }) {
            throw FakeNFTablesError(
                code: .injected, message: "Error: Could not process rule: refused by the test", command: "")
        }
        try await fake.apply(transaction)
    }

    func read(_ tables: Set<TableID>) async throws -> Ruleset {
        reads.withLock { $0 += 1 }
        return await fake.read(tables)
    }
}

/// Objects for the tests: two Services with endpoints on node `n1`.
enum Objects {
    static let context = NodeContext(nodeName: "n1")

    static func service(_ name: String, ip: String?, port: Int = 80) -> KubeObject {
        .service(name, ips: ip.map { [$0] } ?? [], ports: [ServicePort(name: "http", port: port)])
    }

    static func slice(_ name: String, service: String, _ addresses: [String], triggeredAt: Date? = nil) -> KubeObject {
        var annotations: [String: String] = [:]
        if let triggeredAt { annotations[ClusterTracker.triggerTimeAnnotation] = RFC3339.format(triggeredAt) }
        return .slice(name, service: service, endpoints: addresses.map { .at($0) }, annotations: annotations)
    }

    static let node = KubeObject.node(
        Node(name: "n1", addresses: [NodeAddress(type: "InternalIP", address: "10.200.0.1")]))
    static let web = service("web", ip: "10.96.0.10")
    static let webSlice = slice("web-1", service: "web", ["10.1.0.1", "10.1.0.2"])
    static let api = service("api", ip: "10.96.0.20")
    static let apiSlice = slice("api-1", service: "api", ["10.2.0.1"])

    static let initial: [KubeObject] = [web, webSlice, api, apiSlice, node]

    static func desired(_ objects: [KubeObject]) -> Ruleset {
        compile(ClusterState(objects), for: context).ruleset
    }
}

/// A controller on a manual clock, fed by a `FakeClusterSource`, applying to a `FakeNFTables`.
final class ControllerHarness: Sendable {
    let source = FakeClusterSource()
    let fake: FakeNFTables
    let backend: CountingBackend
    let clock = ManualClock()
    let wall: TestWallClock
    let metrics = AgentMetrics()
    let health: HealthState
    let reports = Mailbox<SyncReport>()
    let controller: Controller<FakeClusterSource, ManualClock>

    init(
        minSyncPeriod: Duration = .zero, syncPeriod: Duration = .seconds(30), fullSyncPeriod: Duration = .seconds(3600),
        syncBurst: Int = 1, coldStartBatchElements: Int = 50_000, wall: TestWallClock = TestWallClock(), followers: (AgentMetrics) -> [any SyncFollower] = { _ in [] }
    ) {
        fake = FakeNFTables()
        backend = CountingBackend(fake)
        self.wall = wall
        health = HealthState(healthzTimeout: syncPeriod * 2, now: { wall.now })
        var logger = Logger(label: "test.controller")
        logger.logLevel = .critical
        controller = Controller(
            source: source, backend: backend, node: Objects.context, minSyncPeriod: minSyncPeriod,
            syncPeriod: syncPeriod, fullSyncPeriod: fullSyncPeriod, syncBurst: syncBurst,
            coldStartBatchElements: coldStartBatchElements, clock: clock, metrics: metrics, health: health, logger: logger,
            wallClock: { wall.now }, followers: followers(metrics), onSync: { [reports] in reports.send($0) })
    }

    /// The next sync report (waits for it).
    func nextReport() async throws -> SyncReport {
        try await withDeadline("a sync") { [reports] in
            guard let report = await reports.next() else { throw CancellationError() }
            return report
        }
    }

    /// Runs the controller while `body` runs, then stops it.
    func run(_ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.controller.run() }
            do {
                try await body()
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    /// Sends the initial lists and waits for the first (full) sync.
    @discardableResult
    func start(with objects: [KubeObject] = Objects.initial) async throws -> SyncReport {
        source.sendInitialLists(objects)
        let report = try await nextReport()
        #expect(report.kind == .full)
        #expect(report.succeeded)
        return report
    }

    var ruleset: Ruleset { get async { await fake.ruleset } }
    var committed: [Transaction] { get async { await fake.committed } }

    /// The value of one sample line of the exposition (`name{labels}` exactly as printed).
    func sample(_ series: String) -> Double? {
        metrics.exposition().split(separator: "\n").lazy
            .compactMap { line -> Double? in
                guard line.hasPrefix(series + " ") else { return nil }
                return Double(line.dropFirst(series.count + 1))
            }
            .first
    }
}
