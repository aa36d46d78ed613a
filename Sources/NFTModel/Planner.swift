extension Ruleset {
    /// The smallest transaction that turns `current` into `self`, for the tables of either.
    ///
    /// Order matters to the kernel, which checks references command by command inside the batch:
    /// 1. new tables, then new chain and set declarations (so rules and elements can refer to them);
    /// 2. changed chains are flushed and refilled, new chains filled; chains about to go are flushed;
    /// 3. elements are deleted (gone or changed), then added (new or changed);
    /// 4. sets that go are deleted (their rules are gone by now), then chains (no element or rule
    ///    refers to them any more), then tables.
    /// A table whose set or base-chain declarations differ is replaced whole (delete + re-add in the
    /// same batch): nft cannot change a declaration in place, and such changes only come with an
    /// upgrade of the ruleset layout.
    public func transaction(from current: Ruleset) -> Transaction {
        var early: [Command] = []  // declarations
        var fill: [Command] = []  // flush + rules
        var elementDeletes: [Command] = []
        var elementAdds: [Command] = []
        var setDeletes: [Command] = []
        var chainDeletes: [Command] = []
        var tableDeletes: [Command] = []

        let ids = Set(tables.keys).union(current.tables.keys).sorted()
        for id in ids {
            switch (current.tables[id], tables[id]) {
            case (nil, nil):
                continue
            case (let old?, nil):
                _ = old
                tableDeletes.append(.deleteTable(id))
            case (nil, let new?):
                early.append(.addTable(id))
                Self.create(new, declarations: &early, fill: &fill, elements: &elementAdds)
            case (let old?, let new?):
                if Self.declarationsConflict(old, new) {
                    // Replace whole: delete and create within this batch.
                    early.append(.deleteTable(id))
                    early.append(.addTable(id))
                    Self.create(new, declarations: &early, fill: &fill, elements: &elementAdds)
                    continue
                }
                for name in new.sets.keys.sorted(by: canonicalOrder) {
                    let set = new.sets[name]!
                    guard let oldSet = old.sets[name] else {
                        early.append(.addSet(id, set.declarationOnly))
                        if !set.elements.isEmpty {
                            elementAdds.append(.addElements(id, set: name, Self.elements(set.elements)))
                        }
                        continue
                    }
                    var gone: [String] = []
                    var added: [String: String] = [:]
                    for (key, data) in oldSet.elements {
                        if let newData = set.elements[key] {
                            if newData != data {
                                gone.append(key)
                                added[key] = newData
                            }
                        } else {
                            gone.append(key)
                        }
                    }
                    for (key, data) in set.elements where oldSet.elements[key] == nil { added[key] = data }
                    if !gone.isEmpty {
                        elementDeletes.append(.deleteElements(id, set: name, keys: gone.sorted(by: canonicalOrder)))
                    }
                    if !added.isEmpty { elementAdds.append(.addElements(id, set: name, Self.elements(added))) }
                }
                for name in old.sets.keys.sorted(by: canonicalOrder) where new.sets[name] == nil {
                    setDeletes.append(.deleteSet(id, name: name, isMap: old.sets[name]!.isMap))
                }
                for name in new.chains.keys.sorted(by: canonicalOrder) {
                    let chain = new.chains[name]!
                    if let oldChain = old.chains[name] {
                        if oldChain.rules != chain.rules {
                            fill.append(.flushChain(id, name))
                            fill.append(contentsOf: chain.rules.map { .addRule(id, chain: name, $0) })
                        }
                    } else {
                        early.append(.addChain(id, chain.declarationOnly))
                        fill.append(contentsOf: chain.rules.map { .addRule(id, chain: name, $0) })
                    }
                }
                for name in old.chains.keys.sorted(by: canonicalOrder) where new.chains[name] == nil {
                    if !old.chains[name]!.rules.isEmpty { fill.append(.flushChain(id, name)) }
                    chainDeletes.append(.deleteChain(id, name))
                }
            }
        }
        return Transaction(early + fill + elementDeletes + elementAdds + setDeletes + chainDeletes + tableDeletes)
    }

    /// A full sync: whatever the kernel holds in our tables (even things we do not know about), it
    /// ends up holding exactly `self`. Each table is added (so that deleting it cannot fail), deleted
    /// and created again, all in one batch, so packets never see a missing or half-built table.
    public func replacing(_ ids: Set<TableID>) -> Transaction {
        var early: [Command] = []
        var fill: [Command] = []
        var elements: [Command] = []
        for id in ids.union(tables.keys).sorted() {
            early.append(.addTable(id))
            early.append(.deleteTable(id))
            guard let table = tables[id] else { continue }
            early.append(.addTable(id))
            Self.create(table, declarations: &early, fill: &fill, elements: &elements)
        }
        return Transaction(early + fill + elements)
    }

    private static func create(
        _ table: Table, declarations: inout [Command], fill: inout [Command], elements: inout [Command]
    ) {
        for name in table.sets.keys.sorted(by: canonicalOrder) {
            let set = table.sets[name]!
            declarations.append(.addSet(table.id, set.declarationOnly))
            if !set.elements.isEmpty { elements.append(.addElements(table.id, set: name, Self.elements(set.elements))) }
        }
        for name in table.chains.keys.sorted(by: canonicalOrder) {
            let chain = table.chains[name]!
            declarations.append(.addChain(table.id, chain.declarationOnly))
            fill.append(contentsOf: chain.rules.map { .addRule(table.id, chain: name, $0) })
        }
    }

    private static func elements(_ dict: [String: String]) -> [Command.Element] {
        dict.keys.sorted(by: canonicalOrder).map { Command.Element(key: $0, data: dict[$0]!) }
    }

    private static func declarationsConflict(_ old: Table, _ new: Table) -> Bool {
        for (name, set) in new.sets {
            if let o = old.sets[name], o.declarationOnly != set.declarationOnly { return true }
        }
        for (name, chain) in new.chains {
            if let o = old.chains[name], o.base != chain.base { return true }
        }
        return false
    }
}
