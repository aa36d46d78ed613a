import NFTModel

/// Thrown while rendering a JSON statement or value that this parser does not know exactly; the rule
/// or element then becomes placeholder text (see `JSONText.placeholderPrefix`).
struct JSONRenderFailure: Error {}

/// How nft prints the values that an expression is compared with or set to; JSON gives only the bare
/// number or symbol, nft's text output also depends on the expression's datatype.
enum ValueFormat: Equatable {
    /// As JSON has it: addresses, symbols (`tcp`, `established`), decimal numbers.
    case plain
    /// Flags (`ct state`, `tcp flags`): lists print as `a,b`, and an explicit `==` is kept.
    case bitmask
    /// Packet and conntrack marks: `0x%08x`.
    case mark
    /// Interface names and other strings nft prints in double quotes.
    case quoted
    /// Seconds, printed as nft prints times (`1h30m`).
    case duration
    /// One format per component of a concatenation.
    case concat([ValueFormat])

    /// The format of elements of a set declared `type name` (one component of a concatenation).
    init(setType name: Substring) {
        switch name {
        case "mark": self = .mark
        case "ifname": self = .quoted
        case "ct_state", "ct_status", "tcp_flag": self = .bitmask
        default: self = .plain
        }
    }

    /// The format for a set/map key or data declared as `a . b . c` (or a single type).
    init(setTypes names: [Substring]) {
        self = names.count == 1 ? ValueFormat(setType: names[0]) : .concat(names.map(ValueFormat.init(setType:)))
    }
}

/// Renders the statements and values of a JSON listing as the text `nft list` prints for them.
///
/// Every JSON object is checked for members this code does not know: an unknown member, expression
/// or statement throws `JSONRenderFailure` rather than being dropped, so that text is never produced
/// for something the kernel holds but the text does not say.
struct JSONText {
    /// Starts placeholder text; nft never prints a rule or element that starts with `#`.
    static let placeholderPrefix = "# unparsed: "

    let v: JSONView
    /// The table's family: `reject` and NAT print differently per family.
    let family: Family
    var out = TextBuffer()
    /// The comment of the last element of a set listing (`inListing`), which the IR keeps beside the key
    /// (`SetElements.comment`) rather than in its text; nil for none. Elsewhere comments stay in the text.
    var listedComment: String?

    init(_ v: JSONView, family: Family) {
        self.v = v
        self.family = family
    }

    typealias Failure = JSONRenderFailure

    // MARK: - Helpers

    /// Throws unless `obj` has exactly `found` members (those the caller looked up).
    @inline(__always) func require(_ obj: Int, members found: Int) throws(Failure) {
        guard v.count(obj) == found else { throw Failure() }
    }

    /// The single member of `{"key": value}`: (key node, value node).
    @inline(__always) func single(_ i: Int) -> (key: Int, value: Int)? {
        guard v.kind(i) == .object, v.count(i) == 1 else { return nil }
        return (i + 1, i + 2)
    }

    func int(_ i: Int?) throws(Failure) -> Int {
        guard let i, let n = v.int(i) else { throw Failure() }
        return n
    }

    mutating func appendString(_ i: Int) throws(Failure) {
        switch v.kind(i) {
        case .string: out.append(UnsafeBufferPointer(rebasing: v.bytes[v.nodes[i].start..<v.nodes[i].end]))
        case .escapedString: v.appendUnescaped(i, to: &out.bytes)
        default: throw Failure()
        }
    }

    mutating func appendQuoted(_ i: Int) throws(Failure) {
        out.bytes.append(UInt8(ascii: "\""))
        try appendString(i)
        out.bytes.append(UInt8(ascii: "\""))
    }

    mutating func appendNumber(_ i: Int) throws(Failure) {
        guard v.kind(i) == .number else { throw Failure() }
        out.append(v.raw(i))
    }

    /// A member that is a string or an array of strings (nft abbreviates one-element flag lists),
    /// joined with `separator`.
    mutating func appendStringList(_ i: Int, separator: StaticString) throws(Failure) {
        if v.kind(i) == .array {
            guard v.count(i) > 0 else { throw Failure() }
            var first = true
            for e in v.elements(i) {
                if !first { out.append(separator) }
                first = false
                try appendString(e)
            }
        } else {
            try appendString(i)
        }
    }

    func isString(_ i: Int) -> Bool { v.kind(i) == .string || v.kind(i) == .escapedString }

    // MARK: - Formats

    /// The format of values compared with `i`, from the expression's datatype.
    func format(of i: Int) -> ValueFormat {
        guard let (k, value) = single(i) else { return .plain }
        if v.equals(k, "meta") {
            guard let key = v.member(value, "key") else { return .plain }
            if v.equals(key, "mark") { return .mark }
            // String-valued keys (a numeric interface group stays unquoted: numbers never get quotes).
            for name: StaticString in [
                "iifname", "oifname", "iif", "oif", "ibrname", "obrname", "ibriport", "obriport", "sdifname",
                "iifkind", "oifkind", "iifgroup", "oifgroup", "day", "hour", "time",
            ] where v.equals(key, name) {
                return .quoted
            }
            return .plain
        }
        if v.equals(k, "ct") {
            guard let key = v.member(value, "key") else { return .plain }
            if v.equals(key, "mark") { return .mark }
            if v.equals(key, "state") || v.equals(key, "status") || v.equals(key, "event") { return .bitmask }
            if v.equals(key, "helper") { return .quoted }
            if v.equals(key, "expiration") { return .duration }
            return .plain
        }
        if v.equals(k, "payload") {
            if let p = v.member(value, "protocol"), let f = v.member(value, "field"), v.equals(p, "tcp"),
                v.equals(f, "flags")
            {
                return .bitmask
            }
            return .plain
        }
        if v.equals(k, "concat") {
            return .concat(v.elements(value).map(format(of:)))
        }
        if isBinop(k) {
            guard v.kind(value) == .array, v.count(value) == 2 else { return .plain }
            return format(of: value + 1)
        }
        return .plain
    }

    func isBinop(_ k: Int) -> Bool {
        v.equals(k, "&") || v.equals(k, "|") || v.equals(k, "^") || v.equals(k, "<<") || v.equals(k, ">>")
    }

    // MARK: - Values and expressions

    /// Renders a value or expression; `format` says how bare numbers and symbols print.
    mutating func value(_ i: Int, _ format: ValueFormat, inListing: Bool = false) throws(Failure) {
        switch v.kind(i) {
        case .string, .escapedString:
            if v.hasPrefix(i, UInt8(ascii: "@")) {
                try appendString(i)  // a set reference
            } else if format == .quoted {
                try appendQuoted(i)
            } else {
                try appendString(i)
            }
        case .number:
            if format == .mark {
                guard let n = v.int(i), n >= 0 else { throw Failure() }
                out.appendHex(UInt64(n), minDigits: 8)
            } else if format == .duration {
                guard let n = v.int(i), n >= 0 else { throw Failure() }
                out.appendDuration(seconds: n)
            } else {
                try appendNumber(i)
            }
        case .true: out.append("exists")
        case .false: out.append("missing")
        case .null: throw Failure()
        case .array:
            // A list of flags of a bitmask type.
            guard v.count(i) > 0 else { throw Failure() }
            var first = true
            for e in v.elements(i) {
                if !first { out.append(",") }
                first = false
                try value(e, format)
            }
        case .object:
            guard let (k, body) = single(i) else { throw Failure() }
            try objectValue(key: k, body: body, format, inListing: inListing)
        }
    }

    private mutating func objectValue(key k: Int, body: Int, _ format: ValueFormat, inListing: Bool) throws(Failure) {
        if v.equals(k, "prefix") {
            guard let addr = v.member(body, "addr"), let len = v.member(body, "len") else { throw Failure() }
            try require(body, members: 2)
            try value(addr, format)
            out.append("/")
            try appendNumber(len)
        } else if v.equals(k, "range") {
            guard v.kind(body) == .array, v.count(body) == 2 else { throw Failure() }
            try value(body + 1, format)
            out.append("-")
            try value(v.next(body + 1), format)
        } else if v.equals(k, "concat") {
            guard v.kind(body) == .array, v.count(body) > 0 else { throw Failure() }
            var formats: [ValueFormat] = []
            if case .concat(let f) = format, f.count == v.count(body) { formats = f }
            var j = body + 1
            for n in 0..<v.count(body) {
                if n > 0 { out.append(" . ") }
                try value(j, formats.isEmpty ? .plain : formats[n], inListing: inListing)
                j = v.next(j)
            }
        } else if v.equals(k, "set") {
            try anonymousSet(body, keyFormat: format, dataFormat: .plain)
        } else if v.equals(k, "elem") {
            try element(body, format, inListing: inListing)
        } else if try verdict(key: k, body: body) {
            return
        } else if isBinop(k) {
            try binop(key: k, body: body, format)
        } else if v.equals(k, "map") {
            try map(body, dataFormat: format)
        } else {
            try expression(key: k, body: body)
        }
    }

    /// `{ a, b }` or `{ k : v, ... }`.
    mutating func anonymousSet(_ body: Int, keyFormat: ValueFormat, dataFormat: ValueFormat) throws(Failure) {
        guard v.kind(body) == .array, v.count(body) > 0 else { throw Failure() }
        out.append("{ ")
        var first = true
        for e in v.elements(body) {
            if !first { out.append(", ") }
            first = false
            if v.kind(e) == .array {
                guard v.count(e) == 2 else { throw Failure() }
                try value(e + 1, keyFormat)
                out.append(" : ")
                try value(v.next(e + 1), dataFormat)
            } else {
                try value(e, keyFormat)
            }
        }
        out.append(" }")
    }

    /// `{"elem": {"val": ..., "timeout": s, "expires": s, "comment": "..."}}`. In a set listing only
    /// the key and comment are kept: timeouts and expiry are the datapath's business and change; the
    /// comment goes to `listedComment`.
    mutating func element(_ body: Int, _ format: ValueFormat, inListing: Bool) throws(Failure) {
        guard let val = v.member(body, "val") else { throw Failure() }
        var found = 1
        try value(val, format)
        if let t = v.member(body, "timeout") {
            found += 1
            let seconds = try int(t)
            if !inListing {
                out.append(" timeout ")
                out.appendDuration(seconds: seconds)
            }
        }
        if let e = v.member(body, "expires") {
            found += 1
            let seconds = try int(e)
            if !inListing {
                out.append(" expires ")
                out.appendDuration(seconds: seconds)
            }
        }
        if inListing, v.member(body, "counter") != nil { found += 1 }
        if let c = v.member(body, "comment") {
            found += 1
            if inListing {
                guard let comment = v.string(c) else { throw Failure() }
                listedComment = nftCommentText(comment)
            } else {
                out.append(" comment ")
                try appendQuoted(c)
            }
        }
        try require(body, members: found)
    }

    /// Verdicts; false if `k` is not one.
    mutating func verdict(key k: Int, body: Int) throws(Failure) -> Bool {
        // Spelled out rather than looped over an array literal: this runs once per element of a
        // verdict map.
        let bare: StaticString? =
            v.equals(k, "accept")
            ? "accept"
            : v.equals(k, "drop")
                ? "drop"
                : v.equals(k, "continue") ? "continue" : v.equals(k, "return") ? "return" : nil
        if let bare {
            guard v.kind(body) == .null else { throw Failure() }
            out.append(bare)
            return true
        }
        let chain: StaticString? = v.equals(k, "goto") ? "goto " : v.equals(k, "jump") ? "jump " : nil
        guard let chain else { return false }
        guard let target = v.member(body, "target") else { throw Failure() }
        try require(body, members: 1)
        out.append(chain)
        try appendString(target)
        return true
    }

    mutating func binop(key k: Int, body: Int, _ outer: ValueFormat) throws(Failure) {
        guard v.kind(body) == .array, v.count(body) == 2 else { throw Failure() }
        let left = body + 1
        let right = v.next(left)
        let inner = format(of: left)
        let f = inner == .plain ? outer : inner
        try value(left, f)
        out.append(" ")
        try appendString(k)
        out.append(" ")
        // A shift's right operand is a bit count, not a value of the left's type.
        try value(right, v.equals(k, "<<") || v.equals(k, ">>") ? .plain : f)
    }

    /// `key map @m` / `key map { k : v }`.
    mutating func map(_ body: Int, dataFormat: ValueFormat) throws(Failure) {
        guard let key = v.member(body, "key"), let data = v.member(body, "data") else { throw Failure() }
        try require(body, members: 2)
        try value(key, .plain)
        out.append(" map ")
        if let (dk, dbody) = single(data), v.equals(dk, "set") {
            try anonymousSet(dbody, keyFormat: format(of: key), dataFormat: dataFormat)
        } else {
            guard v.hasPrefix(data, UInt8(ascii: "@")) else { throw Failure() }
            try appendString(data)
        }
    }

    /// Expressions that produce a value from the packet or its context.
    mutating func expression(key k: Int, body: Int) throws(Failure) {
        if v.equals(k, "payload") {
            if let p = v.member(body, "protocol"), let f = v.member(body, "field") {
                try require(body, members: 2)
                try appendString(p)
                out.append(" ")
                try appendString(f)
            } else if let base = v.member(body, "base"), let offset = v.member(body, "offset"),
                let len = v.member(body, "len")
            {
                try require(body, members: 3)
                out.append("@")
                try appendString(base)
                out.append(",")
                try appendNumber(offset)
                out.append(",")
                try appendNumber(len)
            } else {
                throw Failure()
            }
        } else if v.equals(k, "meta") {
            guard let key = v.member(body, "key") else { throw Failure() }
            try require(body, members: 1)
            // nft prints these few keys without the `meta` keyword.
            var unqualified = false
            for name: StaticString in ["iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"]
            where v.equals(key, name) {
                unqualified = true
            }
            if !unqualified { out.append("meta ") }
            try appendString(key)
        } else if v.equals(k, "ct") {
            guard let key = v.member(body, "key") else { throw Failure() }
            var found = 1
            out.append("ct ")
            if let dir = v.member(body, "dir") {
                found += 1
                try appendString(dir)
                out.append(" ")
            }
            if let family = v.member(body, "family") {
                found += 1
                try appendString(family)
                out.append(" ")
            }
            try require(body, members: found)
            try appendString(key)
        } else if v.equals(k, "fib") {
            guard let result = v.member(body, "result"), let flags = v.member(body, "flags") else { throw Failure() }
            try require(body, members: 2)
            out.append("fib ")
            try appendStringList(flags, separator: " . ")
            out.append(" ")
            try appendString(result)
        } else if v.equals(k, "numgen") {
            guard let mode = v.member(body, "mode"), let mod = v.member(body, "mod") else { throw Failure() }
            var found = 2
            out.append("numgen ")
            try appendString(mode)
            out.append(" mod ")
            try appendNumber(mod)
            if let offset = v.member(body, "offset") {
                found += 1
                let n = try int(offset)
                if n != 0 {
                    out.append(" offset ")
                    out.appendDecimal(n)
                }
            }
            try require(body, members: found)
        } else if v.equals(k, "jhash") || v.equals(k, "symhash") {
            guard let mod = v.member(body, "mod") else { throw Failure() }
            var found = 1
            if v.equals(k, "jhash") {
                guard let expr = v.member(body, "expr") else { throw Failure() }
                found += 1
                out.append("jhash ")
                try value(expr, .plain)
            } else {
                out.append("symhash")
            }
            out.append(" mod ")
            try appendNumber(mod)
            if let seed = v.member(body, "seed") {
                found += 1
                let n = try int(seed)
                guard n >= 0 else { throw Failure() }
                out.append(" seed ")
                out.appendHex(UInt64(n), minDigits: 1)
            }
            if let offset = v.member(body, "offset") {
                found += 1
                let n = try int(offset)
                if n != 0 {
                    out.append(" offset ")
                    out.appendDecimal(n)
                }
            }
            try require(body, members: found)
        } else {
            throw Failure()
        }
    }
}
