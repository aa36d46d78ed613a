/// The nftables address family of a table.
public enum Family: String, Hashable, Sendable, CaseIterable, Comparable, Codable {
    case ip, ip6, inet

    public static func < (a: Family, b: Family) -> Bool { a.rawValue < b.rawValue }
}

/// A table's identity: family and name.
public struct TableID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var family: Family
    public var name: String

    public init(_ family: Family, _ name: String) {
        self.family = family
        self.name = name
    }

    public var description: String { "\(family.rawValue) \(name)" }

    public static func < (a: TableID, b: TableID) -> Bool { (a.family, a.name) < (b.family, b.name) }
}

/// The hook information of a base chain. Type, hook and priority travel together, so a chain is
/// either a regular chain (`base == nil`) or a complete base chain; nothing in between can be written.
public struct BaseChain: Hashable, Sendable {
    public enum ChainType: String, Hashable, Sendable { case filter, nat, route }
    public enum Hook: String, Hashable, Sendable { case prerouting, input, forward, output, postrouting }
    public enum Policy: String, Hashable, Sendable { case accept, drop }

    public var type: ChainType
    public var hook: Hook
    public var priority: Int
    public var policy: Policy

    public init(type: ChainType, hook: Hook, priority: Int, policy: Policy = .accept) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
    }

    /// The declaration inside a chain block, e.g. `type nat hook prerouting priority -100; policy accept;`.
    public var declaration: String {
        "type \(type.rawValue) hook \(hook.rawValue) priority \(priority); policy \(policy.rawValue);"
    }
}

/// One rule, held as the canonical text that `nft list` prints for it.
///
/// The compiler writes rules in exactly the kernel's listing form and the JSON parser (NFTListing) turns the
/// kernel's listing back into the same form, so "is this chain what we want" is a string comparison.
public struct Rule: Hashable, Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public var text: String

    public init(_ text: String) { self.text = text }
    public init(stringLiteral value: String) { self.text = value }

    public var description: String { text }
}

/// A chain: regular or base, with its rules in order.
public struct Chain: Hashable, Sendable {
    public var name: String
    public var base: BaseChain?
    public var rules: [Rule]

    public init(name: String, base: BaseChain? = nil, rules: [Rule] = []) {
        self.name = name
        self.base = base
        self.rules = rules
    }

    /// The same chain without rules: what `add chain` declares.
    public var declarationOnly: Chain { Chain(name: name, base: base, rules: []) }
}

/// A named set or map (a map has a `dataType`; a verdict map has `dataType == "verdict"`).
public struct NFTSet: Hashable, Sendable {
    /// The key declaration.
    public enum KeyType: Hashable, Sendable {
        /// `type a . b . c` with nft's named types (`ipv4_addr`, `inet_proto`, `inet_service`, ...).
        case types([String])
        /// A plain 32-bit integer key, as a `jhash ... mod M` expression produces. nft has no named
        /// type for it and libnftables 1.0.6 crashes listing a map declared `typeof jhash ...`, so the
        /// declaration borrows numgen's typeof (`typeof numgen inc mod <size>`); the kernel's JSON
        /// listing reports such a key as `integer`.
        case hashSlot
    }

    public var name: String
    public var keyType: KeyType
    /// nil for a set; `"verdict"` or a type list such as `"ipv4_addr . inet_service"` for a map.
    public var dataType: String?
    /// Set flags, e.g. `interval`, `timeout`; kept sorted.
    public var flags: [String]
    public var size: Int?
    /// Seconds; sets with `flags timeout`.
    public var timeout: Int?
    /// As the kernel keeps it (`nftCommentText`: sanitised, at most 127 bytes).
    public var comment: String?
    /// Canonical element text, key → data (`""` for a set), e.g. `"10.96.0.1 . tcp . 80": "goto svc-…"`;
    /// Maglev tables held compactly (`SetElements.setSlots`); comments beside (`SetElements.comment`).
    public var elements: SetElements

    public init(
        name: String, keyType: KeyType, dataType: String? = nil, flags: [String] = [], size: Int? = nil,
        timeout: Int? = nil, comment: String? = nil, elements: [String: String] = [:],
        elementComments: [String: String] = [:]
    ) {
        self.name = name
        self.keyType = keyType
        self.dataType = dataType
        self.flags = flags.sorted()
        self.size = size
        self.timeout = timeout
        self.comment = comment.map(nftCommentText)
        self.elements = SetElements(elements, comments: elementComments)
    }

    public var isMap: Bool { dataType != nil }
    /// A set with timeouts is filled from the packet path (`update @s { ... timeout 10s }`, e.g. session
    /// affinity): its elements are the kernel's, not the compiler's, so plans and diffs leave them alone.
    public var isFilledFromPacketPath: Bool { flags.contains("timeout") }
    public var keyword: String { isMap ? "map" : "set" }

    /// The same set without elements: what `add set`/`add map` declares.
    public var declarationOnly: NFTSet {
        var copy = self
        copy.elements = [:]
        return copy
    }

    /// The statements inside the set's block, in the order `nft list` prints them.
    public var declarationLines: [String] {
        var lines: [String] = []
        switch keyType {
        case .types(let types) where types.contains("integer"):
            // `integer` has no size of its own: such a key (a Maglev slot in a concatenation) is declared
            // by `typeof` of expressions of the listed types, and so is the data.
            let key = "typeof " + Self.typeofExpressions(types)
            lines.append(dataType.map { "\(key) : " + Self.typeofExpressions($0.split(separator: " . ").map(String.init)) } ?? key)
        case .types(let types):
            let key = "type " + types.joined(separator: " . ")
            lines.append(dataType.map { "\(key) : \($0)" } ?? key)
        case .hashSlot:
            let key = "typeof numgen inc mod \(size ?? 2)"
            lines.append(dataType.map { "\(key) : \($0)" } ?? key)
        }
        if let size { lines.append("size \(size)") }
        if !flags.isEmpty { lines.append("flags " + flags.joined(separator: ",")) }
        if let timeout { lines.append("timeout \(timeout)s") }
        if let comment { lines.append("comment " + nftQuoted(comment)) }
        return lines
    }

    /// An expression of each named type, for a `typeof` declaration. The kernel keeps only the types
    /// (its JSON listing says `integer` for the slot), so any expression of the right type will do.
    static func typeofExpressions(_ types: [String]) -> String {
        types.map { type in
            switch type {
            case "ipv4_addr": "ip daddr"
            case "ipv6_addr": "ip6 daddr"
            case "inet_proto": "meta l4proto"
            case "inet_service": "th dport"
            case "mark": "meta mark"
            case "integer": "numgen inc mod 2"
            default: type
            }
        }.joined(separator: " . ")
    }

    /// Elements as `key : data` (or `key`) text, with `comment "..."` after the key where there is one,
    /// sorted for deterministic output.
    public var elementTexts: [String] {
        var texts: [String] = []
        texts.reserveCapacity(elements.count)
        elements.forEachSorted { key, data in
            if let comment = elements.comment(key) {
                texts.append(Command.Element(key: key, data: data, comment: comment).text)
            } else {
                texts.append(data.isEmpty ? key : "\(key) : \(data)")
            }
        }
        return texts
    }
}

/// One table with its chains and sets, by name.
public struct Table: Hashable, Sendable {
    public var id: TableID
    public var chains: [String: Chain]
    public var sets: [String: NFTSet]

    public init(id: TableID, chains: [String: Chain] = [:], sets: [String: NFTSet] = [:]) {
        self.id = id
        self.chains = chains
        self.sets = sets
    }

    public mutating func add(_ chain: Chain) { chains[chain.name] = chain }
    public mutating func add(_ set: NFTSet) { sets[set.name] = set }

    /// The total number of set and map elements: what the kernel pays for per element.
    public var elementCount: Int { sets.values.reduce(0) { $0 + $1.elements.count } }
}

/// The whole desired or current state: the tables Switchboard owns.
public struct Ruleset: Hashable, Sendable {
    public var tables: [TableID: Table]

    public init(tables: [Table] = []) {
        self.tables = Dictionary(uniqueKeysWithValues: tables.map { ($0.id, $0) })
    }

    public static let empty = Ruleset()

    public subscript(id: TableID) -> Table? {
        get { tables[id] }
        set { tables[id] = newValue }
    }

    /// Keeps only the given tables (a kernel listing holds other people's tables too).
    public func restricted(to ids: Set<TableID>) -> Ruleset {
        Ruleset(tables: tables.values.filter { ids.contains($0.id) })
    }

    /// The same without the elements of sets filled from the packet path (see
    /// `NFTSet.isFilledFromPacketPath`): what a kernel listing is compared as.
    public func withoutPacketPathElements() -> Ruleset {
        var copy = self
        for (id, table) in tables {
            for (name, set) in table.sets where set.isFilledFromPacketPath && !set.elements.isEmpty {
                copy.tables[id]!.sets[name]!.elements = [:]
            }
        }
        return copy
    }

    public var elementCount: Int { tables.values.reduce(0) { $0 + $1.elementCount } }
    public var chainCount: Int { tables.values.reduce(0) { $0 + $1.chains.count } }
    public var ruleCount: Int { tables.values.reduce(0) { $0 + $1.chains.values.reduce(0) { $0 + $1.rules.count } } }
}

/// Orders strings so that embedded numbers compare by value ("2" before "10"), making element and
/// chain listings read naturally. Total and deterministic. Works on the UTF-8 bytes without allocating
/// (UTF-8 byte order is code point order), so sorting a million elements stays cheap.
public func canonicalOrder(_ a: String, _ b: String) -> Bool {
    var a = a
    var b = b
    return a.withUTF8 { x in b.withUTF8 { y in canonicalLess(x, y) } }
}

private func canonicalLess(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }
    var i = 0
    var j = 0
    while i < x.count && j < y.count {
        let cx = x[i], cy = y[j]
        if isDigit(cx) && isDigit(cy) {
            var ei = i, ej = j
            while ei < x.count && isDigit(x[ei]) { ei += 1 }
            while ej < y.count && isDigit(y[ej]) { ej += 1 }
            var si = i, sj = j
            while si < ei && x[si] == 48 { si += 1 }
            while sj < ej && y[sj] == 48 { sj += 1 }
            // Fewer significant digits: smaller; then digit by digit; then fewer leading zeros first.
            if ei - si != ej - sj { return ei - si < ej - sj }
            var k = 0
            while si + k < ei {
                if x[si + k] != y[sj + k] { return x[si + k] < y[sj + k] }
                k += 1
            }
            if ei - i != ej - j { return ei - i < ej - j }
            i = ei
            j = ej
            continue
        }
        if cx != cy { return cx < cy }
        i += 1
        j += 1
    }
    return i == x.count && j < y.count
}
