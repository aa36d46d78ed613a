import NFTModel

/// A readable diff of two rulesets, for failure reports: their scripts, and where the scripts agree, the
/// objects that differ.
public func rulesetDiff(expected: Ruleset, actual: Ruleset) -> String {
    let diff = UnifiedDiff(old: expected.script, new: actual.script)
    if !diff.isEmpty { return diff.render(oldName: "planned", newName: "kernel", context: 2) }
    var lines = ["(the scripts are identical; the difference is in a field they do not show)"]
    for id in Set(expected.tables.keys).union(actual.tables.keys).sorted() {
        let e = expected[id], a = actual[id]
        guard let e, let a else {
            lines.append("table \(id): \(e == nil ? "not planned" : "missing in the kernel")")
            continue
        }
        for name in Set(e.sets.keys).union(a.sets.keys).sorted() where e.sets[name] != a.sets[name] {
            guard let x = e.sets[name], let y = a.sets[name] else {
                lines.append("set \(id) \(name): \(e.sets[name] == nil ? "not planned" : "missing in the kernel")")
                continue
            }
            var fields: [String] = []
            func field<T: Equatable>(_ label: String, _ p: T, _ k: T) {
                if p != k { fields.append("\(label): planned \(p), kernel \(k)") }
            }
            field("key", "\(x.keyType)", "\(y.keyType)")
            field("data", x.dataType ?? "-", y.dataType ?? "-")
            field("flags", x.flags, y.flags)
            field("size", x.size.map(String.init) ?? "-", y.size.map(String.init) ?? "-")
            field("timeout", x.timeout.map(String.init) ?? "-", y.timeout.map(String.init) ?? "-")
            field("comment", x.comment.map { "\"\($0)\" (\($0.utf8.count) bytes)" } ?? "-",
                  y.comment.map { "\"\($0)\" (\($0.utf8.count) bytes)" } ?? "-")
            if x.elements != y.elements { fields.append("elements differ") }
            lines.append("set \(id) \(name):\n    " + fields.joined(separator: "\n    "))
        }
        for name in Set(e.chains.keys).union(a.chains.keys).sorted() where e.chains[name] != a.chains[name] {
            let x = e.chains[name], y = a.chains[name]
            lines.append("chain \(id) \(name): planned base \(String(describing: x?.base)), "
                + "kernel base \(String(describing: y?.base))")
        }
    }
    return lines.joined(separator: "\n")
}

extension Transaction {
    /// The transaction's script with long lines (a whole map's elements) cut and at most 150 lines.
    public var excerpt: String {
        let lines = description.split(separator: "\n")
        var out = lines.prefix(150).map {
            $0.count > 300 ? "\($0.prefix(300))… (\($0.utf8.count) bytes)" : String($0)
        }
        if lines.count > 150 { out.append("… \(lines.count - 150) more lines") }
        return out.joined(separator: "\n")
    }
}
