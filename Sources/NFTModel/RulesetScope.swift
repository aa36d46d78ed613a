/// The parts of a ruleset that may differ between two versions of it: whole chains, whole sets, and
/// single elements of sets that are otherwise unchanged. The planner compares only these, so the cost
/// of planning follows the size of a change rather than the size of the ruleset.
public struct RulesetScope: Hashable, Sendable {
    public struct TableScope: Hashable, Sendable {
        /// Chains compared whole (rules, and whether they exist).
        public var chains: Set<String> = []
        /// Sets compared whole (declaration, elements, and whether they exist).
        public var sets: Set<String> = []
        /// Per set that exists on both sides with the same declaration: the element keys to compare.
        public var elements: [String: Set<String>] = [:]
        /// Per set, likewise: the Maglev tables (by entry prefix, `SetElements.setSlots`) to compare slot by slot.
        public var slotTables: [String: Set<String>] = [:]

        public init() {}
    }

    public var tables: [TableID: TableScope] = [:]

    public init() {}

    public mutating func insertChain(_ name: String, in table: TableID) { tables[table, default: .init()].chains.insert(name) }
    public mutating func insertSet(_ name: String, in table: TableID) { tables[table, default: .init()].sets.insert(name) }
    public mutating func insertElement(_ key: String, of set: String, in table: TableID) {
        tables[table, default: .init()].elements[set, default: []].insert(key)
    }
    public mutating func insertSlotTable(_ prefix: String, of set: String, in table: TableID) {
        tables[table, default: .init()].slotTables[set, default: []].insert(prefix)
    }
}
