/// The names under which the kernel holds our sets and chains when they differ from the ruleset's own.
///
/// nftables cannot rename a set, and an intact table at scale cannot be replaced in one batch without
/// holding the whole cluster as text (libnftables' parse costs ~2 KB per element). So large sets are
/// rebuilt out of place: filled in bounded batches under their other name, `<name>-g2` (or back under
/// `<name>`), which no rule refers to yet, then switched in by one small batch (`Ruleset.stagedRebuild`).
/// The chains whose rules look up a Maglev map move with it: libnftables 1.0.6 refuses to add a rule
/// naming a map that is already in the kernel when the map's data is declared `typeof ip daddr . th
/// dport` ("conflicting protocols specified: ip vs. th"), so such rules are only ever added in the batch
/// that creates their map, in a chain of the new name.
///
/// Everything above the kernel edge keeps the ruleset's names: transactions are renamed on the way in
/// (`toKernel`) and listings on the way out (`fromKernel`), so `render`, `diff` and plans never show
/// the difference.
public struct KernelNames: Hashable, Sendable {
    /// Per table, the sets held under their alternate name.
    public private(set) var sets: [TableID: Set<String>]
    /// Per table, the chains held under their alternate name.
    public private(set) var chains: [TableID: Set<String>]

    public init(sets: [TableID: Set<String>] = [:], chains: [TableID: Set<String>] = [:]) {
        self.sets = sets.filter { !$0.value.isEmpty }
        self.chains = chains.filter { !$0.value.isEmpty }
    }

    /// Everything under its own name.
    public static let identity = KernelNames()

    public var isIdentity: Bool { sets.isEmpty && chains.isEmpty }

    /// The alternate name: `backends` ↔ `backends-g2`.
    public static func alternate(of name: String) -> String {
        name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name + suffix
    }

    static let suffix = "-g2"

    public func kernelSet(_ name: String, in table: TableID) -> String {
        sets[table]?.contains(name) == true ? Self.alternate(of: name) : name
    }

    public func kernelChain(_ name: String, in table: TableID) -> String {
        chains[table]?.contains(name) == true ? Self.alternate(of: name) : name
    }

    /// The same with `table`'s sets and chains held as given (each name: held under its alternate).
    public func with(_ table: TableID, sets: Set<String>, chains: Set<String>) -> KernelNames {
        var copy = self
        copy.sets[table] = sets.isEmpty ? nil : sets
        copy.chains[table] = chains.isEmpty ? nil : chains
        return copy
    }

    /// Everything of `table` under its own name (the table was created afresh).
    public func resetting(_ table: TableID) -> KernelNames { with(table, sets: [], chains: []) }

    /// The transaction with every set and chain named as the kernel holds it: in commands, and in rules
    /// and verdict-map data that refer to them (`@set`, `jump chain`, `goto chain`).
    public func toKernel(_ transaction: Transaction) -> Transaction {
        guard !isIdentity else { return transaction }
        return Transaction(transaction.commands.map { command in
            switch command {
            case .addSet(let id, var set):
                set.name = kernelSet(set.name, in: id)
                return .addSet(id, set)
            case .deleteSet(let id, let name, let isMap):
                return .deleteSet(id, name: kernelSet(name, in: id), isMap: isMap)
            case .flushSet(let id, let name, let isMap):
                return .flushSet(id, name: kernelSet(name, in: id), isMap: isMap)
            case .addElements(let id, let set, let elements):
                let renamed = chains[id] == nil ? elements : elements.map {
                    Command.Element(key: $0.key, data: renamingReferences($0.data, in: id), comment: $0.comment)
                }
                return .addElements(id, set: kernelSet(set, in: id), renamed)
            case .deleteElements(let id, let set, let keys):
                return .deleteElements(id, set: kernelSet(set, in: id), keys: keys)
            case .addChain(let id, var chain):
                chain.name = kernelChain(chain.name, in: id)
                return .addChain(id, chain)
            case .flushChain(let id, let name):
                return .flushChain(id, kernelChain(name, in: id))
            case .deleteChain(let id, let name):
                return .deleteChain(id, kernelChain(name, in: id))
            case .addRule(let id, let chain, let rule):
                return .addRule(id, chain: kernelChain(chain, in: id), Rule(renamingReferences(rule.text, in: id)))
            case .addTable, .deleteTable:
                return command
            }
        })
    }

    /// A rule's (or verdict's) text with the kernel's names for the sets and chains it refers to.
    public func renamingReferences(_ text: String, in table: TableID) -> String {
        Self.renaming(text, sets: sets[table] ?? [], chains: chains[table] ?? [])
    }

    /// A kernel listing with our names: sets and chains found under an alternate name, in use (named by
    /// a rule) or alone, are renamed back, with the references to them; also returns the names the kernel
    /// holds, for `toKernel`. A leftover of an unfinished rebuild (not in use, beside the one in use) is
    /// dropped from the view.
    public static func fromKernel(_ ruleset: Ruleset) -> (Ruleset, KernelNames) {
        var out = ruleset
        var setNames: [TableID: Set<String>] = [:]
        var chainNames: [TableID: Set<String>] = [:]
        for (id, table) in ruleset.tables {
            var usedSets: Set<String> = []
            var usedChains: Set<String> = []
            for chain in table.chains.values {
                for rule in chain.rules {
                    let refs = NFTReferences(rule.text)
                    usedSets.formUnion(refs.sets)
                    usedChains.formUnion(refs.chains)
                }
            }
            for name in table.sets.keys where name.hasSuffix(suffix) {
                let own = alternate(of: name)
                if table.sets[own] == nil || (usedSets.contains(name) && !usedSets.contains(own)) {
                    setNames[id, default: []].insert(own)
                }
            }
            for name in table.chains.keys where name.hasSuffix(suffix) {
                let own = alternate(of: name)
                if table.chains[own] == nil || (usedChains.contains(name) && !usedChains.contains(own)) {
                    chainNames[id, default: []].insert(own)
                }
            }
            let aliasedSets = setNames[id] ?? []
            let aliasedChains = chainNames[id] ?? []
            guard !aliasedSets.isEmpty || !aliasedChains.isEmpty else { continue }
            // References in the kernel's names → ours: the kernel's names are the alternates of the aliased.
            let kernelSets = Set(aliasedSets.map(alternate(of:)))
            let kernelChains = Set(aliasedChains.map(alternate(of:)))
            var result = Table(id: id)
            for (name, var set) in table.sets {
                if aliasedSets.contains(name) { continue }  // a leftover beside the one in use
                if kernelSets.contains(name) { set.name = alternate(of: name) }
                if set.isMap && !kernelChains.isEmpty {
                    var elements = SetElements()
                    for (key, data) in set.elements {
                        let renamed = renaming(data, sets: [], chains: kernelChains)
                        elements.set(key, renamed, comment: set.elements.comment(key))
                    }
                    set.elements = elements
                }
                result.sets[set.name] = set
            }
            for (name, var chain) in table.chains {
                if aliasedChains.contains(name) { continue }
                if kernelChains.contains(name) { chain.name = alternate(of: name) }
                chain.rules = chain.rules.map { Rule(renaming($0.text, sets: kernelSets, chains: kernelChains)) }
                result.chains[chain.name] = chain
            }
            out.tables[id] = result
        }
        return (out, KernelNames(sets: setNames, chains: chainNames))
    }

    /// `@name` → `@<alternate>` for names in `sets`, `jump name` / `goto name` → the alternate for names in
    /// `chains`. Words are compared whole; quoted text is left alone.
    static func renaming(_ text: String, sets: Set<String>, chains: Set<String>) -> String {
        guard !sets.isEmpty || !chains.isEmpty else { return text }
        guard text.contains("@") || text.contains("jump ") || text.contains("goto ") else { return text }
        var words: [Substring] = []
        var inQuotes = false
        var previous: Substring = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            let quotes = word.filter { $0 == "\"" }.count
            defer {
                if quotes % 2 == 1 { inQuotes.toggle() }
                previous = word
            }
            if !inQuotes, word.hasPrefix("@") {
                let name = word.dropFirst().prefix { $0 != "," && $0 != "}" }
                if sets.contains(String(name)) {
                    words.append("@" + alternate(of: String(name)) + word.dropFirst(1 + name.count))
                    continue
                }
            }
            if !inQuotes, previous == "jump" || previous == "goto", chains.contains(String(word)) {
                words.append(Substring(alternate(of: String(word))))
                continue
            }
            words.append(word)
        }
        return words.joined(separator: " ")
    }
}

extension Ruleset {
    /// Every set's declaration (no elements) under both its names, as `NFTablesBackend.applyBatch` wants
    /// them: a staged rebuild fills a set under its alternate name.
    public var setDeclarations: [TableID: [String: NFTSet]] {
        var out: [TableID: [String: NFTSet]] = [:]
        for (id, table) in tables {
            for (name, set) in table.sets {
                var declaration = set.declarationOnly
                out[id, default: [:]][name] = declaration
                declaration.name = KernelNames.alternate(of: name)
                out[id, default: [:]][declaration.name] = declaration
            }
        }
        return out
    }
}
