extension Ruleset {
    /// Rebuilds table `id`, which the kernel holds intact (`kernel`: the names of its chains and sets, and
    /// which sets are maps, as `readDeclarations` lists them; rules are not needed), into
    /// `self[id]` without any batch holding the large sets whole, and without packets ever seeing a
    /// half-built state:
    ///
    /// 1. the sets in `staging`, and every Maglev map (declared `typeof`, see `KernelNames`), are created
    ///    empty under the names the kernel does not use for them now; so are the chains whose rules look
    ///    up such a map, with those rules (libnftables can add them only in the batch that creates the map).
    ///    Nothing refers to any of them yet;
    /// 2. the staged sets are filled in batches of at most `maxElements` elements;
    /// 3. one batch switches: every other chain is flushed and refilled (its rules name the new sets and
    ///    chains), every other set is flushed and refilled (sets filled from the packet path,
    ///    session affinity, keep their elements), and what the kernel holds beyond `self[id]` (the old
    ///    staged sets and chains, anything no longer wanted) is deleted.
    ///
    /// The batches are in the kernel's names (apply them as they are); `names` is what the kernel holds
    /// after the last one. Should a batch fail (an upgrade changed a declaration, say), the kernel keeps
    /// the old state in use: replace the table whole instead.
    public func stagedRebuild(
        _ id: TableID, kernel: Table, names: KernelNames, staging: Set<String>, maxElements: Int
    ) -> StagedRebuild {
        StagedRebuild(desired: self[id] ?? Table(id: id), kernel: kernel, before: names, staging: staging,
                      maxElements: max(1, maxElements))
    }
}

/// The batches of `Ruleset.stagedRebuild`, made one at a time.
public struct StagedRebuild: Sequence, Sendable {
    let desired: Table
    let kernel: Table
    let before: KernelNames
    /// Sets filled out of place, and chains created afresh under their other name, in order.
    let stagedSets: [String]
    let stagedChains: [String]
    let maxElements: Int
    /// What the kernel holds after the last batch.
    public let names: KernelNames

    init(desired: Table, kernel: Table, before: KernelNames, staging: Set<String>, maxElements: Int) {
        let id = desired.id
        self.desired = desired
        self.kernel = kernel
        self.before = before
        // Never a set filled from the packet path (its elements are the kernel's); always a Maglev map.
        let sets = desired.sets.filter { name, set in
            !set.isFilledFromPacketPath && (staging.contains(name) || set.declarationLines.first?.hasPrefix("typeof") == true)
        }.keys
        stagedSets = sets.sorted(by: canonicalOrder)
        let maps = Set(sets.filter { desired.sets[$0]!.isMap })
        stagedChains = desired.chains.filter { _, chain in
            chain.rules.contains { !maps.isDisjoint(with: NFTReferences($0.text).sets) }
        }.keys.sorted(by: canonicalOrder)
        self.maxElements = maxElements
        // Staged names flip; everything else stays as the kernel holds it.
        func flipped(_ held: Set<String>, _ staged: [String]) -> Set<String> {
            held.symmetricDifference(staged)
        }
        let keptSets = (before.sets[id] ?? []).filter { desired.sets[$0] != nil }
        let keptChains = (before.chains[id] ?? []).filter { desired.chains[$0] != nil }
        names = before.with(id, sets: flipped(keptSets, stagedSets), chains: flipped(keptChains, stagedChains))
    }

    public var stagedSetsForTests: [String] { stagedSets }
    public var stagedChainsForTests: [String] { stagedChains }

    public func makeIterator() -> AnyIterator<Transaction> {
        let id = desired.id
        var stage = 0
        var setIndex = 0
        var elements: AnyIterator<(key: String, value: String)>?
        return AnyIterator {
            switch stage {
            case 0:
                stage = 1
                return staging()
            case 1:
                var commands: [Command] = []
                var count = 0
                while count < maxElements && setIndex < stagedSets.count {
                    let name = stagedSets[setIndex]
                    let set = desired.sets[name]!.elements
                    if elements == nil { elements = set.sortedIterator() }
                    var chunk: [Command.Element] = []
                    while count < maxElements, let (key, data) = elements!.next() {
                        chunk.append(
                            Command.Element(
                                key: key, data: names.renamingReferences(data, in: id), comment: set.comment(key)))
                        count += 1
                    }
                    if !chunk.isEmpty { commands.append(.addElements(id, set: names.kernelSet(name, in: id), chunk)) }
                    if count < maxElements {
                        elements = nil
                        setIndex += 1
                    }
                }
                if setIndex >= stagedSets.count { stage = 2 }
                if !commands.isEmpty { return Transaction(commands) }
                fallthrough
            case 2:
                stage = 3
                return switchover()
            default:
                return nil
            }
        }
    }

    /// Stage 1: the staged sets, empty, and the staged chains with their rules, under their new names.
    /// A leftover of either from an unfinished rebuild is emptied and replaced.
    private func staging() -> Transaction {
        let id = desired.id
        var commands: [Command] = [.addTable(id)]
        for name in stagedChains {
            let chain = desired.chains[name]!
            let held = names.kernelChain(name, in: id)
            var declaration = chain.declarationOnly
            declaration.name = held
            commands += [.addChain(id, declaration), .flushChain(id, held)]
        }
        for name in stagedSets {
            var set = desired.sets[name]!.declarationOnly
            set.name = names.kernelSet(name, in: id)
            commands += [.addSet(id, set), .deleteSet(id, name: set.name, isMap: set.isMap), .addSet(id, set)]
        }
        for name in stagedChains {
            let held = names.kernelChain(name, in: id)
            commands += desired.chains[name]!.rules.map { .addRule(id, chain: held, Rule(names.renamingReferences($0.text, in: id))) }
        }
        return Transaction(commands)
    }

    /// Stage 3: chains refilled where their rules differ, other sets refilled, leftovers deleted.
    private func switchover() -> Transaction {
        let id = desired.id
        var sets: [Command] = [.addTable(id)]
        var chains: [Command] = []
        var rules: [Command] = []
        var elements: [Command] = []
        var keptSets: Set<String> = []
        var keptChains: Set<String> = []
        for name in desired.sets.keys.sorted(by: canonicalOrder) {
            let set = desired.sets[name]!
            let held = names.kernelSet(name, in: id)
            keptSets.insert(held)
            if stagedSets.contains(name) { continue }
            var declaration = set.declarationOnly
            declaration.name = held
            sets.append(.addSet(id, declaration))
            if set.isFilledFromPacketPath { continue }
            sets.append(.flushSet(id, name: held, isMap: set.isMap))
            if !set.elements.isEmpty {
                elements.append(.addElements(id, set: held, set.elements.sorted().map {
                    .init(
                        key: $0.key, data: names.renamingReferences($0.value, in: id),
                        comment: set.elements.comment($0.key))
                }))
            }
        }
        for name in desired.chains.keys.sorted(by: canonicalOrder) {
            let chain = desired.chains[name]!
            let held = names.kernelChain(name, in: id)
            keptChains.insert(held)
            if stagedChains.contains(name) { continue }
            // Every other chain is refilled: none of them looks up a Maglev map (those chains are staged),
            // which is the only kind of rule libnftables 1.0.6 cannot re-add next to a map already in the
            // kernel. So `kernel` needs no rules, and rules edited out of band are repaired too.
            let wanted = chain.rules.map { Rule(names.renamingReferences($0.text, in: id)) }
            var declaration = chain.declarationOnly
            declaration.name = held
            chains += [.addChain(id, declaration), .flushChain(id, held)]
            rules += wanted.map { .addRule(id, chain: held, $0) }
        }
        var cleanup: [Command] = []
        var chainDeletions: [Command] = []
        for name in kernel.chains.keys.sorted(by: canonicalOrder) where !keptChains.contains(name) {
            cleanup.append(.flushChain(id, name))
            chainDeletions.append(.deleteChain(id, name))
        }
        var setDeletions: [Command] = []
        for name in kernel.sets.keys.sorted(by: canonicalOrder) where !keptSets.contains(name) {
            setDeletions.append(.deleteSet(id, name: name, isMap: kernel.sets[name]!.isMap))
        }
        return Transaction(sets + chains + rules + elements + cleanup + setDeletions + chainDeletions)
    }
}
