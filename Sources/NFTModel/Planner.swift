extension Ruleset {
    /// The smallest transaction that turns `current` into `self`, for the tables of either.
    ///
    /// Order matters to the kernel, which checks references command by command inside the batch:
    /// 1. new tables, then new chain and set declarations (so rules and elements can refer to them);
    /// 2. changed chains are flushed and refilled, new chains filled; chains about to go are flushed;
    /// 3. elements are deleted (gone or changed), then added (new or changed). An element whose comment
    ///    changed is changed: the kernel cannot change an element in place, and `add element` of a key it
    ///    holds keeps the old comment without a word, so it is deleted and added again in this batch;
    /// 4. sets that go are deleted (their rules are gone by now), then chains (no element or rule
    ///    refers to them any more), then tables.
    /// A table whose set or base-chain declarations differ is replaced whole (delete + re-add in the
    /// same batch): nft cannot change a declaration in place, and such changes only come with an
    /// upgrade of the ruleset layout.
    /// With a `scope`, only the chains, sets and set elements it names are compared; everything else is
    /// taken to be equal in both (the caller knows it did not change). Without one, everything is.
    public func transaction(from current: Ruleset, scope: RulesetScope? = nil) -> Transaction {
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
            case (.some, nil):
                tableDeletes.append(.deleteTable(id))
            case (nil, let new?):
                early.append(.addTable(id))
                Self.create(new, declarations: &early, fill: &fill, elements: &elementAdds)
            case (let old?, let new?):
                let tableScope: RulesetScope.TableScope? = scope.map { $0.tables[id] ?? .init() }
                if Self.declarationsConflict(old, new, within: tableScope) {
                    // Replace whole: delete and create within this batch.
                    early.append(.deleteTable(id))
                    early.append(.addTable(id))
                    Self.create(new, declarations: &early, fill: &fill, elements: &elementAdds)
                    continue
                }
                // Sets: compared whole where in scope, by the named keys where only elements are.
                let wholeSets = tableScope.map { $0.sets } ?? Set(new.sets.keys).union(old.sets.keys)
                var keyed: [String: ElementScope] = [:]
                for (name, keys) in tableScope?.elements ?? [:] where !wholeSets.contains(name) {
                    keyed[name, default: ElementScope()].keys = keys
                }
                for (name, prefixes) in tableScope?.slotTables ?? [:] where !wholeSets.contains(name) {
                    keyed[name, default: ElementScope()].slotTables = prefixes
                }
                for name in wholeSets.union(keyed.keys).sorted(by: canonicalOrder) {
                    guard let set = new.sets[name] else { continue }
                    guard let oldSet = old.sets[name] else {
                        early.append(.addSet(id, set.declarationOnly))
                        if !set.elements.isEmpty {
                            elementAdds.append(.addElements(id, set: name, Self.elements(set.elements)))
                        }
                        continue
                    }
                    // Elements the packet path adds are not ours to compare (nor to delete).
                    if set.isFilledFromPacketPath { continue }
                    let (gone, added) = Self.elementChanges(from: oldSet.elements, to: set.elements, keys: keyed[name])
                    if !gone.isEmpty {
                        elementDeletes.append(.deleteElements(id, set: name, keys: gone.sorted(by: canonicalOrder)))
                    }
                    if !added.isEmpty {
                        elementAdds.append(.addElements(id, set: name, Self.elements(added, comments: set.elements)))
                    }
                }
                for name in wholeSets.union(keyed.keys).sorted(by: canonicalOrder) where new.sets[name] == nil {
                    guard let oldSet = old.sets[name] else { continue }
                    setDeletes.append(.deleteSet(id, name: name, isMap: oldSet.isMap))
                }
                // Chains.
                let chainNames = (tableScope.map { $0.chains } ?? Set(new.chains.keys).union(old.chains.keys))
                    .sorted(by: canonicalOrder)
                for name in chainNames {
                    guard let chain = new.chains[name] else { continue }
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
                for name in chainNames where new.chains[name] == nil {
                    guard let oldChain = old.chains[name] else { continue }
                    if !oldChain.rules.isEmpty { fill.append(.flushChain(id, name)) }
                    chainDeletes.append(.deleteChain(id, name))
                }
            }
        }
        return Transaction(early + fill + elementDeletes + elementAdds + setDeletes + chainDeletes + tableDeletes)
    }

    /// The elements of one set that a scope names: single keys, and Maglev tables by entry prefix.
    struct ElementScope {
        var keys: Set<String> = []
        var slotTables: Set<String> = []
    }

    /// Element keys to delete (gone or changed, comments included) and elements to add (new or changed;
    /// their comments are the new side's), over `scope` only when given. Maglev tables held as `SlotTable`s
    /// on both sides are compared slot by slot, so only the slots that changed are ever turned into text.
    private static func elementChanges(
        from old: SetElements, to new: SetElements, keys scope: ElementScope?
    ) -> (gone: [String], added: [String: String]) {
        var gone: [String] = []
        var added: [String: String] = [:]
        let comments = !old.comments.isEmpty || !new.comments.isEmpty
        func compare(_ key: String) {
            switch (old[key], new[key]) {
            case (let was?, let now?) where was != now || (comments && old.comment(key) != new.comment(key)):
                gone.append(key)
                added[key] = now
            case (.some, nil): gone.append(key)
            case (nil, let now?): added[key] = now
            default: break
            }
        }
        func compareTables(_ prefix: String, _ was: SlotTable?, _ now: SlotTable?) {
            switch (was, now) {
            case (let was?, let now?):
                for slot in now.changedSlots(from: was) { compare(SlotTable.key(prefix, slot: slot)) }
            case (let was?, nil):
                for slot in 0..<was.count { compare(SlotTable.key(prefix, slot: slot)) }
            case (nil, let now?):
                for slot in 0..<now.count { compare(SlotTable.key(prefix, slot: slot)) }
                // Elements of this entry held one by one on the old side, beyond the new table.
                if !old.plain.isEmpty {
                    var slot = now.count
                    while old[SlotTable.key(prefix, slot: slot)] != nil {
                        compare(SlotTable.key(prefix, slot: slot))
                        slot += 1
                    }
                }
            case (nil, nil): break
            }
        }
        if let scope {
            for key in scope.keys { compare(key) }
            for prefix in scope.slotTables { compareTables(prefix, old.slots(prefix), new.slots(prefix)) }
        } else if old.plain.isEmpty && new.plain.isEmpty {
            // Both held as slot tables only (the agent's rulesets): table by table.
            for (prefix, table) in old.slotTables { compareTables(prefix, table, new.slots(prefix)) }
            for (prefix, table) in new.slotTables where old.slots(prefix) == nil { compareTables(prefix, nil, table) }
        } else if old.slotTables.isEmpty && new.slotTables.isEmpty {
            for (key, _) in old.plain { compare(key) }
            for (key, data) in new.plain where old.plain[key] == nil { added[key] = data }
        } else {
            // Held differently (a kernel listing against a compiled ruleset): element by element.
            for (key, _) in old { compare(key) }
            for (key, data) in new where old[key] == nil { added[key] = data }
        }
        return (gone, added)
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

    private static func elements(_ dict: [String: String], comments: SetElements) -> [Command.Element] {
        dict.keys.sorted(by: canonicalOrder).map {
            Command.Element(key: $0, data: dict[$0]!, comment: comments.comment($0))
        }
    }

    private static func elements(_ elements: SetElements) -> [Command.Element] {
        var out: [Command.Element] = []
        out.reserveCapacity(elements.count)
        elements.forEachSorted { out.append(Command.Element(key: $0, data: $1, comment: elements.comment($0))) }
        return out
    }

    private static func declarationsConflict(_ old: Table, _ new: Table, within scope: RulesetScope.TableScope?) -> Bool {
        for name in scope.map({ Array($0.sets) }) ?? Array(new.sets.keys) {
            if let set = new.sets[name], let o = old.sets[name], o.declarationOnly != set.declarationOnly { return true }
        }
        for name in scope.map({ Array($0.chains) }) ?? Array(new.chains.keys) {
            if let chain = new.chains[name], let o = old.chains[name], o.base != chain.base { return true }
        }
        return false
    }
}
