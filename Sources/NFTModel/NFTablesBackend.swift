/// The kernel edge: something that applies transactions atomically and reports what it holds.
///
/// `KernelNFTables` (in Netfilter) is the real one; `FakeNFTables` (in SwitchboardTesting) applies to an
/// in-memory copy and commits only if every command succeeds. One contract test suite runs against both.
public protocol NFTablesBackend: Sendable {
    /// Applies the whole transaction as one batch: all of it, or (on error) nothing.
    func apply(_ transaction: Transaction) async throws
    /// The current contents of the given tables (absent tables are simply not in the result).
    func read(_ tables: Set<TableID>) async throws -> Ruleset
    /// One set or map with its elements; nil if it (or its table) does not exist. Cheap for a small set
    /// even when the table holds millions of elements elsewhere (which `read` must all fetch).
    func readSet(_ table: TableID, _ name: String) async throws -> NFTSet?
    /// One table's chains and sets, declarations only (the kernel backend lists no rules and only the sets'
    /// names and map-ness; see `KernelNFTables.readDeclarations`); nil if it does not exist. Cheap whatever
    /// the sets hold.
    func readDeclarations(_ table: TableID) async throws -> Table?
    /// See the extension: bulk element writes.
    func applyElements(_ transaction: Transaction, declarations: [TableID: [String: NFTSet]]) async throws
}

extension NFTablesBackend {
    /// Applies a batch that only adds elements, with the declarations of the sets it names (by the names
    /// in its commands), atomically. The default is `apply`; the kernel backend writes such batches one
    /// level down, as netlink messages, when it can encode every set's elements.
    public func applyElements(_ transaction: Transaction, declarations: [TableID: [String: NFTSet]]) async throws {
        try await apply(transaction)
    }

    /// Applies one batch of a bounded full sync (a cold start or a staged rebuild): a batch that only adds
    /// elements goes through `applyElements`, anything else through `apply`. `declarations` as made by
    /// `Ruleset.setDeclarations`.
    public func applyBatch(_ batch: Transaction, declarations: [TableID: [String: NFTSet]]) async throws {
        let onlyElements = batch.commands.allSatisfy { if case .addElements = $0 { true } else { false } }
        if onlyElements {
            try await applyElements(batch, declarations: declarations)
        } else {
            try await apply(batch)
        }
    }

    /// Reads the whole table and drops the elements (fine for an in-memory backend).
    public func readDeclarations(_ table: TableID) async throws -> Table? {
        guard var held = try await read([table])[table] else { return nil }
        for name in Array(held.sets.keys) { held.sets[name]!.elements = [:] }
        return held
    }
}

