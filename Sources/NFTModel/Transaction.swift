/// One nftables command of a transaction.
public enum Command: Hashable, Sendable {
    case addTable(TableID)
    case deleteTable(TableID)
    /// Declares a chain (with its hook if it is a base chain); rules follow as `addRule`.
    case addChain(TableID, Chain)
    case flushChain(TableID, String)
    case deleteChain(TableID, String)
    case addRule(TableID, chain: String, Rule)
    /// Declares a set or map; elements follow as `addElements`.
    case addSet(TableID, NFTSet)
    case deleteSet(TableID, name: String, isMap: Bool)
    /// Removes every element of a set or map; its declaration and the rules that use it stay.
    case flushSet(TableID, name: String, isMap: Bool)
    /// Elements as `(key, data)` canonical text (`data` is `""` for a set), with their comments.
    case addElements(TableID, set: String, [Element])
    case deleteElements(TableID, set: String, keys: [String])

    public struct Element: Hashable, Sendable {
        public var key: String
        public var data: String
        /// The element's comment (`SetElements.comment`), e.g. the Service port of an entry point.
        public var comment: String?
        public init(key: String, data: String, comment: String? = nil) {
            self.key = key
            self.data = data
            self.comment = comment
        }
        /// As nft takes and lists it: the comment belongs to the key, before a map's data
        /// (`10.96.0.10 . tcp . 53 comment "kube-system/kube-dns:dns" : goto maglev-m13`).
        public var text: String {
            let key = comment.map { "\(self.key) comment \(nftQuoted($0))" } ?? key
            return data.isEmpty ? key : "\(key) : \(data)"
        }
    }
}

extension Command: CustomStringConvertible {
    /// The exact line `nft -f` (and libnftables) is given.
    public var description: String {
        switch self {
        case .addTable(let t): return "add table \(t)"
        case .deleteTable(let t): return "delete table \(t)"
        case .addChain(let t, let chain):
            if let base = chain.base { return "add chain \(t) \(chain.name) { \(base.declaration) }" }
            return "add chain \(t) \(chain.name)"
        case .flushChain(let t, let name): return "flush chain \(t) \(name)"
        case .deleteChain(let t, let name): return "delete chain \(t) \(name)"
        case .addRule(let t, let chain, let rule): return "add rule \(t) \(chain) \(rule.text)"
        case .addSet(let t, let set):
            return "add \(set.keyword) \(t) \(set.name) { " + set.declarationLines.map { $0 + "; " }.joined() + "}"
        case .deleteSet(let t, let name, let isMap): return "delete \(isMap ? "map" : "set") \(t) \(name)"
        case .flushSet(let t, let name, let isMap): return "flush \(isMap ? "map" : "set") \(t) \(name)"
        case .addElements(let t, let set, let elements):
            return "add element \(t) \(set) { " + elements.map(\.text).joined(separator: ", ") + " }"
        case .deleteElements(let t, let set, let keys):
            return "delete element \(t) \(set) { " + keys.joined(separator: ", ") + " }"
        }
    }
}

/// An ordered list of commands that the kernel applies as one atomic batch.
///
/// `description` is the exact script the kernel gets, so `switchboard diff --transaction`, golden tests
/// and the agent all show the same text.
public struct Transaction: Hashable, Sendable, CustomStringConvertible {
    public var commands: [Command]

    public init(_ commands: [Command] = []) { self.commands = commands }

    public var isEmpty: Bool { commands.isEmpty }

    public var description: String { commands.map { $0.description + "\n" }.joined() }

    /// How many set/map elements the transaction adds or deletes.
    public var elementChanges: Int {
        commands.reduce(0) { n, c in
            switch c {
            case .addElements(_, _, let e): return n + e.count
            case .deleteElements(_, _, let k): return n + k.count
            default: return n
            }
        }
    }
}
