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
