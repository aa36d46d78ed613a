import NFTModel

extension Ruleset {
    /// Reads the kernel's JSON listing (`nft -j list ruleset`, `nft -j list table ip switchboard`;
    /// libnftables 1.0.6, JSON schema 1) back into the IR.
    ///
    /// Rules and elements come out as the exact text `nft list` prints for them, so comparing the
    /// result with a compiled `Ruleset` is comparing strings:
    /// - statements nft's text prints differently from its JSON are rendered as the text does (marks as
    ///   `0x%08x`, `reject` without its default `with icmp port-unreachable`, `dnat to [fd00::5]:80`);
    /// - counters read `counter packets 0 bytes 0` whatever they have counted, so that a rule with a
    ///   counter compares equal to itself over time;
    /// - elements keep their key, data and comment (`10.96.0.1 . tcp . 80 comment "ns/svc:http"`, the
    ///   key text `nft list` prints and `delete element` accepts), not their `timeout` or `expires`,
    ///   which dynamic sets change from the packet path;
    /// - a rule or element this parser does not understand exactly becomes text that starts with
    ///   `# unparsed: ` followed by its JSON: it never equals a rule the compiler wants, so a planner
    ///   rewrites it instead of trusting it.
    ///
    /// Tables of families the IR has no case for (`bridge`, `arp`, `netdev`) are skipped; a listing
    /// holds other programs' tables too (see `restricted(to:)`). Invalid JSON, or JSON that is not an
    /// nft listing, throws.
    ///
    /// Known limits of what the kernel's JSON says (libnftables 1.0.6): set flag `dynamic` is never
    /// listed (nft adds it by itself to a set that a rule in the same batch updates); chain comments
    /// are not listed; the sub-second part of rule timeouts is lost.
    public init(nftJSON: String) throws(NFTJSONError) {
        var text = nftJSON
        let result = text.withUTF8 { bytes in
            Result { () throws(NFTJSONError) in try Ruleset(nftJSON: bytes) }
        }
        self = try result.get()
    }

    /// The same from raw bytes, e.g. libnftables' output buffer.
    public init(nftJSON bytes: [UInt8]) throws(NFTJSONError) {
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(NFTJSONError) in try Ruleset(nftJSON: buffer) }
        }
        self = try result.get()
    }

    /// The same from raw bytes, e.g. libnftables' output buffer.
    public init(nftJSON bytes: UnsafeRawBufferPointer) throws(NFTJSONError) {
        try self.init(nftJSON: bytes.assumingMemoryBound(to: UInt8.self))
    }

    /// The same from raw bytes; the other initialisers end here. The bytes need only live for the call.
    public init(nftJSON bytes: UnsafeBufferPointer<UInt8>) throws(NFTJSONError) {
        var decoder = NFTListingDecoder(bytes)
        self = try decoder.decode()
    }
}

/// Walks `{"nftables": [ {"table": ...}, {"chain": ...}, ... ]}` one object at a time.
struct NFTListingDecoder {
    var scanner: JSONScanner
    var tape = JSONTape()
    var tables: [TableID: Table] = [:]

    init(_ bytes: UnsafeBufferPointer<UInt8>) { scanner = JSONScanner(bytes) }

    /// A set or map whose declaration is read and whose elements are still to be streamed.
    struct PendingElements {
        var table: TableID
        var set: NFTSet
        var offset: Int
        var count: Int
        var keyFormat: ValueFormat
        var dataFormat: ValueFormat
    }

    mutating func decode() throws(NFTJSONError) -> Ruleset {
        guard scanner.peek() != nil else { throw scanner.error("empty input; expected {\"nftables\": [...]}") }
        try scanner.expect(UInt8(ascii: "{"), "'{' starting the listing")
        var sawListing = false
        if scanner.peek() == UInt8(ascii: "}") {
            scanner.pos += 1
        } else {
            repeat {
                guard scanner.peek() == UInt8(ascii: "\"") else {
                    throw scanner.error("expected a string as object key")
                }
                tape.reset()
                try scanner.parse(into: &tape)
                let isListing = tape.nodes.withUnsafeBufferPointer { nodes in
                    JSONView(bytes: scanner.bytes, nodes: nodes).equals(0, "nftables")
                }
                try scanner.expect(UInt8(ascii: ":"), "':' after object key")
                if isListing {
                    sawListing = true
                    try decodeObjects()
                } else {
                    try scanner.skipValue()
                }
            } while try scanner.commaOrEnd(UInt8(ascii: "}"))
        }
        if scanner.peek() != nil { throw scanner.error("unexpected data after the listing") }
        guard sawListing else { throw scanner.error("no \"nftables\" array in the listing", at: 0) }
        return Ruleset(tables: Array(tables.values))
    }

    private mutating func decodeObjects() throws(NFTJSONError) {
        try scanner.expect(UInt8(ascii: "["), "'[' starting the \"nftables\" array")
        if scanner.peek() == UInt8(ascii: "]") {
            scanner.pos += 1
            return
        }
        repeat {
            let start = scanner.pos
            tape.reset()
            try scanner.parse(into: &tape, skippingElem: true)
            let elemOffset = scanner.skippedElem
            let pending = try tape.nodes.withUnsafeBufferPointer { (nodes) throws(NFTJSONError) in
                try decodeObject(JSONView(bytes: scanner.bytes, nodes: nodes), at: start, elemOffset: elemOffset)
            }
            if let pending { try decodeElements(pending) }
        } while try scanner.commaOrEnd(UInt8(ascii: "]"))
    }

    /// One `{"kind": {...}}` of the listing. Returns the elements still to read for a set or map.
    private mutating func decodeObject(
        _ v: JSONView,
        at start: Int,
        elemOffset: (offset: Int, count: Int)?
    )
        throws(NFTJSONError)
        -> PendingElements?
    {
        func fail(_ message: String) -> NFTJSONError { scanner.error(message, at: start) }
        guard v.kind(0) == .object, v.count(0) == 1 else {
            throw fail("expected an object with one member, such as {\"rule\": {...}}")
        }
        let kind = 1
        let body = 2
        let isSet = v.equals(kind, "set")
        let isMap = v.equals(kind, "map")
        guard v.equals(kind, "table") || v.equals(kind, "chain") || v.equals(kind, "rule") || isSet || isMap else {
            return nil  // metainfo, and objects the IR does not model (counters, quotas, flowtables, ...)
        }
        let what = v.string(kind) ?? "object"
        guard v.kind(body) == .object else { throw fail("\"\(what)\" is not an object") }
        func string(_ key: StaticString) throws(NFTJSONError) -> String {
            guard let i = v.member(body, key), let s = v.string(i) else {
                throw fail("\"\(what)\" has no string member \"\(key)\"")
            }
            return s
        }
        guard let family = Family(rawValue: try string("family")) else { return nil }

        if v.equals(kind, "table") {
            let id = TableID(family, try string("name"))
            if tables[id] == nil { tables[id] = Table(id: id) }
            return nil
        }
        let id = TableID(family, try string("table"))
        if tables[id] == nil { tables[id] = Table(id: id) }

        if v.equals(kind, "chain") {
            let name = try string("name")
            var chain = tables[id]!.chains[name] ?? Chain(name: name)
            if v.member(body, "hook") != nil || v.member(body, "type") != nil {
                if let base = baseChain(v, body) {
                    chain.base = base
                } else {
                    // A hook the IR cannot hold (e.g. `ingress`): make the chain differ from any wanted one.
                    chain.rules.insert(Rule(JSONText.placeholderPrefix + v.compact(body)), at: 0)
                }
            }
            tables[id]!.chains[name] = chain
            return nil
        }

        if v.equals(kind, "rule") {
            let chainName = try string("chain")
            guard let expr = v.member(body, "expr") else { throw fail("\"rule\" has no member \"expr\"") }
            var text = JSONText(v, family: family)
            let rule: Rule
            do {
                try text.rule(expr: expr, comment: v.member(body, "comment"))
                rule = Rule(text.out.string)
            } catch {
                rule = Rule(JSONText.placeholderPrefix + v.compact(expr))
            }
            tables[id]!.chains[chainName, default: Chain(name: chainName)].rules.append(rule)
            return nil
        }

        // A set or a map.
        let name = try string("name")
        guard let typeNode = v.member(body, "type") else { throw fail("\"\(what)\" has no member \"type\"") }
        let keyType: NFTSet.KeyType
        var keyTypes: [String]
        if v.kind(typeNode) == .array {
            keyTypes = v.elements(typeNode).compactMap(v.string)
            guard keyTypes.count == v.count(typeNode), !keyTypes.isEmpty else {
                throw fail("\"\(what)\" \(name): \"type\" is not a list of names")
            }
        } else {
            guard let t = v.string(typeNode) else { throw fail("\"\(what)\" \(name): \"type\" is not a name") }
            keyTypes = [t]
        }
        // What a map declared `typeof numgen inc mod M` (or `typeof jhash ...`) lists as.
        if keyTypes == ["integer"] {
            keyType = .hashSlot
        } else {
            keyType = .types(keyTypes)
        }
        var dataType: String?
        if let m = v.member(body, "map") {
            if v.kind(m) == .array {
                let parts = v.elements(m).compactMap(v.string)
                guard parts.count == v.count(m), !parts.isEmpty else { throw fail("map \(name): bad \"map\" type") }
                dataType = parts.joined(separator: " . ")
            } else {
                guard let s = v.string(m) else { throw fail("map \(name): bad \"map\" type") }
                dataType = s
            }
        } else if isMap {
            throw fail("map \(name) has no member \"map\"")
        }
        var flags: [String] = []
        if let f = v.member(body, "flags") {
            flags = v.kind(f) == .array ? v.elements(f).compactMap(v.string) : v.string(f).map { [$0] } ?? []
        }
        let set = NFTSet(
            name: name,
            keyType: keyType,
            dataType: dataType,
            flags: flags,
            size: v.member(body, "size").flatMap(v.int),
            timeout: v.member(body, "timeout").flatMap(v.int),
            comment: v.member(body, "comment").flatMap(v.string)
        )
        tables[id]!.sets[name] = set
        guard let elemOffset else { return nil }
        let keyFormat: ValueFormat =
            keyType == .hashSlot ? .plain : ValueFormat(setTypes: keyTypes.map { Substring($0) })
        let dataFormat =
            dataType.map { ValueFormat(setTypes: $0.split(separator: " . ", omittingEmptySubsequences: false)) }
            ?? .plain
        return PendingElements(
            table: id,
            set: set,
            offset: elemOffset.offset,
            count: elemOffset.count,
            keyFormat: keyFormat,
            dataFormat: dataFormat
        )
    }

    private func baseChain(_ v: JSONView, _ body: Int) -> BaseChain? {
        guard let t = v.member(body, "type").flatMap(v.string), let type = BaseChain.ChainType(rawValue: t),
            let h = v.member(body, "hook").flatMap(v.string), let hook = BaseChain.Hook(rawValue: h),
            let prio = v.member(body, "prio").flatMap(v.int)
        else { return nil }
        var policy = BaseChain.Policy.accept
        if let p = v.member(body, "policy") {
            guard let s = v.string(p), let parsed = BaseChain.Policy(rawValue: s) else { return nil }
            policy = parsed
        }
        // Members the IR cannot hold (`dev` of a netdev-style hook) make the chain a placeholder.
        if v.member(body, "dev") != nil { return nil }
        return BaseChain(type: type, hook: hook, priority: prio, policy: policy)
    }

    /// Streams the `"elem"` array of a set or map one element at a time (a listing can hold millions).
    private mutating func decodeElements(_ pending: PendingElements) throws(NFTJSONError) {
        let resume = scanner.pos
        scanner.pos = pending.offset
        var elements: [String: String] = [:]
        var comments: [String: String] = [:]
        elements.reserveCapacity(pending.count)
        let isMap = pending.set.isMap
        var keyText = TextBuffer()
        var interner = StringInterner()
        try scanner.expect(UInt8(ascii: "["), "'[' starting \"elem\"")
        if scanner.peek() == UInt8(ascii: "]") {
            scanner.pos += 1
        } else {
            repeat {
                tape.reset()
                try scanner.parse(into: &tape)
                let (key, data, comment) = tape.nodes.withUnsafeBufferPointer { nodes in
                    let v = JSONView(bytes: scanner.bytes, nodes: nodes)
                    var text = JSONText(v, family: pending.table.family)
                    swap(&text.out, &keyText)
                    defer { swap(&text.out, &keyText) }
                    do {
                        var keyNode = 0
                        if isMap {
                            guard v.kind(0) == .array, v.count(0) == 2 else { throw JSONRenderFailure() }
                            keyNode = 1
                        }
                        text.out.reset()
                        try text.value(keyNode, pending.keyFormat, inListing: true)
                        let key = text.out.string
                        let comment = text.listedComment
                        guard isMap else { return (key, "", comment) }
                        text.out.reset()
                        try text.value(v.next(keyNode), pending.dataFormat, inListing: true)
                        return (key, interner.intern(text.out.bytes), comment)
                    } catch {
                        return (JSONText.placeholderPrefix + v.compact(0), "", nil)
                    }
                }
                elements[key] = data
                comments[key] = comment
            } while try scanner.commaOrEnd(UInt8(ascii: "]"))
        }
        tables[pending.table]!.sets[pending.set.name]!.elements = SetElements(elements, comments: comments)
        scanner.pos = resume
    }
}

/// Shares one `String` among equal map data: a Maglev map holds a million elements that point to a
/// handful of chains, and one allocation per element would cost time and tens of megabytes.
struct StringInterner {
    private var slots = [String?](repeating: nil, count: 256)

    mutating func intern(_ bytes: [UInt8]) -> String {
        var hash: UInt32 = 2_166_136_261  // FNV-1a, only to pick a slot
        for b in bytes { hash = (hash ^ UInt32(b)) &* 16_777_619 }
        let slot = Int(hash & 255)
        if let s = slots[slot], s.utf8.count == bytes.count,
            s.utf8.withContiguousStorageIfAvailable({ a in
                bytes.withUnsafeBufferPointer { b in
                    for i in 0..<b.count where a[i] != b[i] { return false }
                    return true
                }
            }) == true
        {
            return s
        }
        let s = String(decoding: bytes, as: UTF8.self)
        slots[slot] = s
        return s
    }
}
