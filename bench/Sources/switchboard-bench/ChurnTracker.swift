import BenchKit
import Foundation
import NFTModel
import SwitchboardAgent

/// Matches churn changes to the transactions that committed them.
///
/// A change is registered (with the instant it was made) before it is sent. `RecordingBackend` reports every
/// transaction the kernel accepted, with the instant its batch returned; the tracker replays it into a
/// `KernelPresence` and every pending change whose signature now holds was committed by that transaction.
/// This is exact where timestamps alone are not: a sync that starts just after a change was pushed may
/// not have received it yet (certainly not through the API, whose watch delivers it milliseconds later).
final class ChurnTracker: @unchecked Sendable {
    // `@unchecked Sendable`: every field is guarded by `lock`.
    private let lock = NSLock()
    private var presence = KernelPresence()
    private var pending: [Int: (change: ChurnChange, at: ContinuousClock.Instant)] = [:]
    /// Pending changes to a Service whose removal was registered after them, by the removal's id: if they
    /// were not committed before the removal was, they never will be (their Service is gone).
    private var supersededBy: [Int: Int] = [:]
    private var superseded: [ChangeKind: Int] = [:]
    private var nextID = 0
    private var latencies: [(kind: ChangeKind, ms: Double)] = []
    private var syncs: [SyncReport] = []
    private var firstSuccess = false

    /// Registers a change made at `at`; call before sending it.
    func register(_ change: ChurnChange, at: ContinuousClock.Instant) {
        lock.withLock {
            if change.kind == .removeService {
                for (id, entry) in pending where entry.change.service == change.service { supersededBy[id] = nextID }
            }
            pending[nextID] = (change, at)
            nextID += 1
        }
    }

    /// A transaction the kernel committed at `at` (the batch returned).
    func committed(_ transaction: Transaction, at: ContinuousClock.Instant) {
        lock.withLock {
            presence.apply(transaction)
            for (id, entry) in pending where presence.holds(entry.change.signature) {
                latencies.append((entry.change.kind, (at - entry.at).milliseconds))
                pending[id] = nil
                supersededBy[id] = nil
            }
            for (id, removal) in supersededBy where pending[removal] == nil {
                if let entry = pending.removeValue(forKey: id) { superseded[entry.change.kind, default: 0] += 1 }
                supersededBy[id] = nil
            }
        }
    }

    /// The controller's report of every sync attempt.
    func synced(_ report: SyncReport) {
        lock.withLock {
            syncs.append(report)
            if report.succeeded { firstSuccess = true }
        }
    }

    /// Returns once the first sync succeeded; throws when cancelled or after `limit`.
    func firstSync(within limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        while !lock.withLock({ firstSuccess }) {
            guard ContinuousClock.now < deadline else {
                throw ChurnRun.Failure(description: "no successful sync within \(limit); syncs so far: \(reports)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    var pendingCount: Int { lock.withLock { pending.count } }
    /// Changes that were never committed because their Service was removed first, by kind.
    var supersededKinds: [String: Int] {
        lock.withLock { Dictionary(uniqueKeysWithValues: superseded.map { ($0.key.rawValue, $0.value) }) }
    }
    var pendingDescriptions: [String] {
        lock.withLock { pending.values.map { "\($0.change.kind.rawValue) \($0.change.service) \($0.change.signature)" } }
    }
    var pendingKinds: [String: Int] {
        lock.withLock { pending.values.reduce(into: [:]) { $0[$1.change.kind.rawValue, default: 0] += 1 } }
    }
    var reports: [SyncReport] { lock.withLock { syncs } }
    var committedLatencies: [(kind: ChangeKind, ms: Double)] { lock.withLock { latencies } }
}

/// The real kernel backend, reporting each committed transaction to a `ChurnTracker`. The commit instant is
/// taken as soon as the batch returns, before the tracker's bookkeeping, so that bookkeeping is not timed.
struct RecordingBackend: NFTablesBackend {
    let inner: any NFTablesBackend
    let tracker: ChurnTracker

    func apply(_ transaction: Transaction) async throws {
        try await inner.apply(transaction)
        let at = ContinuousClock.now
        tracker.committed(transaction, at: at)
    }

    func read(_ tables: Set<TableID>) async throws -> Ruleset {
        try await inner.read(tables)
    }

    func readSet(_ table: TableID, _ name: String) async throws -> NFTSet? {
        try await inner.readSet(table, name)
    }
}
