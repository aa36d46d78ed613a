import Logging
import NFTModel
import SwitchboardCore

/// Deletes session-affinity entries that point where the rules no longer would (an endpoint removed, or
/// the Service's affinity or the Service itself gone), after a sync: see `Table.staleAffinityKeys`.
/// Reads only the `affinity` map of each table (a `list map`, which fetches nothing else), and only for
/// tables where some Service has affinity.
public enum AffinityCleanup {
    /// Returns how many entries were deleted. An entry that expires between the read and the delete
    /// fails the batch (nothing is deleted); the next sync tries again.
    @discardableResult
    public static func run(desired: Ruleset, backend: any NFTablesBackend) async throws -> Int {
        var commands: [Command] = []
        for id in desired.tables.keys.sorted() {
            guard let table = desired[id], table.hasSessionAffinity,
                let kernel = try await backend.readSet(id, RulesetNames.affinity), !kernel.elements.isEmpty
            else { continue }
            let stale = table.staleAffinityKeys(kernel)
            if !stale.isEmpty { commands.append(.deleteElements(id, set: RulesetNames.affinity, keys: stale)) }
        }
        guard !commands.isEmpty else { return 0 }
        try await backend.apply(Transaction(commands))
        return commands.reduce(0) { total, command in
            if case .deleteElements(_, _, let keys) = command { return total + keys.count }
            return total
        }
    }
}

/// Runs `AffinityCleanup` after every successful sync, against the ruleset the sync applied, when some
/// entry point has session affinity. The controller always follows with it, ahead of the other followers.
/// A failure is logged and counted (`kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total`); the
/// next sync tries again.
struct AffinityCleaner: SyncFollower {
    let backend: any NFTablesBackend
    let metrics: AgentMetrics
    let logger: Logger

    func synced(_ state: ClusterState, changed: Set<ObjectRef>?) async {}

    func synced(_ state: ClusterState, changed: Set<ObjectRef>?, applied: Ruleset) async {
        guard applied.tables.values.contains(where: \.hasSessionAffinity) else { return }
        do {
            let deleted = try await AffinityCleanup.run(desired: applied, backend: backend)
            if deleted > 0 { logger.debug("deleted stale session-affinity entries", metadata: ["count": "\(deleted)"]) }
        } catch {
            metrics.countNFTablesCleanupFailure()
            logger.debug("session-affinity cleanup failed; retried after the next sync", metadata: ["error": "\(error)"])
        }
    }
}
