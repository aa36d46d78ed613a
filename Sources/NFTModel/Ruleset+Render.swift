extension Ruleset {
    /// The whole ruleset as an nft script in block form, tables and their contents sorted, the way
    /// `nft list ruleset` lays it out. Loading it with `nft -f` into an empty kernel creates exactly
    /// this ruleset (it does not remove anything first; see `Transaction.replacing`).
    public var script: String {
        tables.keys.sorted().map { tables[$0]!.script }.joined(separator: "\n")
    }
}

extension Table {
    public var script: String {
        var out = "table \(id) {\n"
        var blocks: [String] = []
        for name in sets.keys.sorted(by: canonicalOrder) {
            let set = sets[name]!
            var block = "\t\(set.keyword) \(name) {\n"
            for line in set.declarationLines { block += "\t\t\(line)\n" }
            let elements = set.elementTexts
            if !elements.isEmpty {
                block += "\t\telements = { " + elements.joined(separator: ",\n\t\t\t     ") + " }\n"
            }
            block += "\t}\n"
            blocks.append(block)
        }
        for name in chains.keys.sorted(by: canonicalOrder) {
            let chain = chains[name]!
            var block = "\tchain \(name) {\n"
            if let base = chain.base { block += "\t\t\(base.declaration)\n" }
            for rule in chain.rules { block += "\t\t\(rule.text)\n" }
            block += "\t}\n"
            blocks.append(block)
        }
        out += blocks.joined(separator: "\n")
        out += "}\n"
        return out
    }
}
