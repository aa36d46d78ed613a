/// A malformed or unexpected `nft -j` listing: what was wrong and where.
///
/// `offset`, `line` and `column` point into the input (1-based line and column, counted in bytes);
/// a listing that is valid JSON but not an nft listing points at the object that broke the schema.
public struct NFTJSONError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// Byte offset into the input.
    public var offset: Int
    public var line: Int
    public var column: Int

    public init(message: String, offset: Int, line: Int, column: Int) {
        self.message = message
        self.offset = offset
        self.line = line
        self.column = column
    }

    /// Locates `offset` in `bytes` (only on the error path, so the scan costs nothing otherwise).
    init(_ message: String, at offset: Int, in bytes: UnsafeBufferPointer<UInt8>) {
        let end = min(max(offset, 0), bytes.count)
        var line = 1
        var lineStart = 0
        for i in 0..<end where bytes[i] == UInt8(ascii: "\n") {
            line += 1
            lineStart = i + 1
        }
        self.init(message: message, offset: end, line: line, column: end - lineStart + 1)
    }

    public var description: String {
        "invalid nft JSON listing at line \(line), column \(column) (byte \(offset)): \(message)"
    }
}

/// One JSON value laid out flat ("tape", as in simdjson): a node per value in document order, each
/// container followed by its children, scalars pointing back into the input bytes.
///
/// Why not `JSONDecoder` or a tree of enums: a listing of a 1M-element map is ~100 MB, and one
/// allocation per value would dominate. The tape is reused for each top-level object and each set
/// element, so parsing allocates (almost) only the strings that end up in the `Ruleset`.
struct JSONTape {
    enum Kind: UInt8 {
        case null, `false`, `true`, number, string, escapedString, array, object
    }

    struct Node {
        var kind: Kind
        /// Members of an object, elements of an array; 0 for scalars.
        var count: Int32
        /// Index of the node after this value's subtree.
        var next: Int32
        /// Scalars: the bytes of the value (strings without quotes). Containers: the bytes from the
        /// opening to past the closing bracket.
        var start: Int
        var end: Int
    }

    var nodes: [Node] = []

    mutating func reset() { nodes.removeAll(keepingCapacity: true) }
}

/// A cursor over the input that parses one value at a time into a `JSONTape`.
struct JSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var pos = 0
    /// Set by `parse` when it skipped an `"elem"` member (see `parse(into:skippingElem:)`): where it
    /// starts and how many elements it holds.
    var skippedElem: (offset: Int, count: Int)?

    static let maxDepth = 200

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func error(_ message: String, at offset: Int? = nil) -> NFTJSONError {
        NFTJSONError(message, at: offset ?? pos, in: bytes)
    }

    @inline(__always) mutating func skipWhitespace() {
        while pos < bytes.count {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    /// The next non-blank byte without consuming it (nil at the end of the input).
    mutating func peek() -> UInt8? {
        skipWhitespace()
        return pos < bytes.count ? bytes[pos] : nil
    }

    mutating func expect(_ c: UInt8, _ what: String) throws(NFTJSONError) {
        skipWhitespace()
        guard pos < bytes.count else { throw error("unexpected end of input, expected \(what)") }
        guard bytes[pos] == c else { throw error("expected \(what), found \(describe(bytes[pos]))") }
        pos += 1
    }

    func describe(_ c: UInt8) -> String {
        c >= 0x20 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
    }

    /// After a value inside a container: consumes `,` (true: another value follows) or the closing
    /// bracket (false).
    mutating func commaOrEnd(_ close: UInt8) throws(NFTJSONError) -> Bool {
        skipWhitespace()
        guard pos < bytes.count else {
            throw error("unexpected end of input inside \(close == 0x5D ? "array" : "object")")
        }
        let c = bytes[pos]
        pos += 1
        if c == 0x2C { return true }
        if c == close { return false }
        pos -= 1
        throw error("expected ',' or '\(Character(Unicode.Scalar(close)))', found \(describe(c))")
    }

    /// Parses one value and appends it (and its subtree) to `tape`.
    ///
    /// With `skippingElem`, an `"elem"` member of the object one level below the value is not parsed
    /// but skipped, its offset left in `skippedElem`: the elements of a large set are streamed one by
    /// one afterwards instead of being held on the tape all at once.
    mutating func parse(into tape: inout JSONTape, skippingElem: Bool = false) throws(NFTJSONError) {
        skippedElem = nil
        try parseValue(into: &tape, depth: 0, skipElemDepth: skippingElem ? 1 : -1)
    }

    private mutating func parseValue(into tape: inout JSONTape, depth: Int, skipElemDepth: Int) throws(NFTJSONError) {
        skipWhitespace()
        guard pos < bytes.count else { throw error("unexpected end of input, expected a value") }
        let c = bytes[pos]
        let index = tape.nodes.count
        switch c {
        case UInt8(ascii: "\""):
            let (start, end, escaped) = try scanString()
            tape.nodes.append(
                .init(
                    kind: escaped ? .escapedString : .string,
                    count: 0,
                    next: Int32(index + 1),
                    start: start,
                    end: end
                )
            )
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
            let isObject = c == UInt8(ascii: "{")
            let start = pos
            pos += 1
            tape.nodes.append(.init(kind: isObject ? .object : .array, count: 0, next: 0, start: start, end: 0))
            var count: Int32 = 0
            let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            skipWhitespace()
            if pos < bytes.count && bytes[pos] == close {
                pos += 1
            } else {
                repeat {
                    if isObject {
                        skipWhitespace()
                        guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                            throw pos < bytes.count
                                ? error("expected a string as object key, found \(describe(bytes[pos]))")
                                : error("unexpected end of input inside object")
                        }
                        let keyIndex = tape.nodes.count
                        let (ks, ke, kesc) = try scanString()
                        tape.nodes.append(
                            .init(
                                kind: kesc ? .escapedString : .string,
                                count: 0,
                                next: Int32(keyIndex + 1),
                                start: ks,
                                end: ke
                            )
                        )
                        try expect(UInt8(ascii: ":"), "':' after object key")
                        if depth == skipElemDepth && !kesc && ke - ks == 4 && bytes[ks] == UInt8(ascii: "e")
                            && bytes[ks + 1] == UInt8(ascii: "l") && bytes[ks + 2] == UInt8(ascii: "e")
                            && bytes[ks + 3] == UInt8(ascii: "m")
                        {
                            skipWhitespace()
                            let offset = pos
                            let n = tape.nodes.count
                            skippedElem = (offset, try skipValue())
                            tape.nodes.append(.init(kind: .null, count: 0, next: Int32(n + 1), start: pos, end: pos))
                        } else {
                            try parseValue(into: &tape, depth: depth + 1, skipElemDepth: skipElemDepth)
                        }
                    } else {
                        try parseValue(into: &tape, depth: depth + 1, skipElemDepth: skipElemDepth)
                    }
                    count += 1
                } while try commaOrEnd(close)
            }
            tape.nodes[index].count = count
            tape.nodes[index].end = pos
            tape.nodes[index].next = Int32(tape.nodes.count)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = pos
            try scanNumber()
            tape.nodes.append(.init(kind: .number, count: 0, next: Int32(index + 1), start: start, end: pos))
        case UInt8(ascii: "t"):
            try literal("true")
            tape.nodes.append(.init(kind: .true, count: 0, next: Int32(index + 1), start: pos - 4, end: pos))
        case UInt8(ascii: "f"):
            try literal("false")
            tape.nodes.append(.init(kind: .false, count: 0, next: Int32(index + 1), start: pos - 5, end: pos))
        case UInt8(ascii: "n"):
            try literal("null")
            tape.nodes.append(.init(kind: .null, count: 0, next: Int32(index + 1), start: pos - 4, end: pos))
        default:
            throw error("expected a value, found \(describe(c))")
        }
    }

    private mutating func literal(_ word: StaticString) throws(NFTJSONError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= bytes.count else { throw error("invalid literal") }
        let w = word.utf8Start
        for i in 0..<n where bytes[pos + i] != w[i] { throw error("invalid literal") }
        pos += n
    }

    /// At an opening quote: returns the content range and whether it holds escapes; `pos` ends past
    /// the closing quote. Escapes are only checked for shape here and decoded on demand.
    @inline(__always)
    private mutating func scanString() throws(NFTJSONError) -> (Int, Int, Bool) {
        let open = pos
        pos += 1
        let start = pos
        var escaped = false
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                return (start, pos - 1, escaped)
            }
            if c == UInt8(ascii: "\\") {
                escaped = true
                pos += 2
                continue
            }
            if c < 0x20 { throw error("control character in string") }
            pos += 1
        }
        throw error("unterminated string", at: open)
    }

    private mutating func scanNumber() throws(NFTJSONError) {
        let start = pos
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        let digitsStart = pos
        while pos < bytes.count, bytes[pos] &- 0x30 < 10 { pos += 1 }
        guard pos > digitsStart else { throw error("invalid number", at: start) }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            let f = pos
            while pos < bytes.count, bytes[pos] &- 0x30 < 10 { pos += 1 }
            guard pos > f else { throw error("invalid number", at: start) }
        }
        if pos < bytes.count, bytes[pos] | 0x20 == UInt8(ascii: "e") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            let e = pos
            while pos < bytes.count, bytes[pos] &- 0x30 < 10 { pos += 1 }
            guard pos > e else { throw error("invalid number", at: start) }
        }
    }

    /// Skips one value, checking brackets and strings only (what is skipped is parsed properly later).
    /// Returns the number of items of a skipped array or object (0 for a scalar).
    @discardableResult
    mutating func skipValue() throws(NFTJSONError) -> Int {
        skipWhitespace()
        guard pos < bytes.count else { throw error("unexpected end of input, expected a value") }
        let c = bytes[pos]
        guard c == UInt8(ascii: "[") || c == UInt8(ascii: "{") else {
            var scratch = JSONTape()
            try parseValue(into: &scratch, depth: 0, skipElemDepth: -1)
            return 0
        }
        let start = pos
        var depth = 0
        var commas = 0
        var empty = true
        while pos < bytes.count {
            let b = bytes[pos]
            switch b {
            case UInt8(ascii: "\""):
                _ = try scanString()
                empty = false
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                if depth > 0 { empty = false }
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 {
                    pos += 1
                    return empty ? 0 : commas + 1
                }
            case UInt8(ascii: ","):
                if depth == 1 { commas += 1 }
            case 0x20, 0x0A, 0x0D, 0x09:
                break
            default:
                empty = false
            }
            pos += 1
        }
        throw error("unterminated \(c == UInt8(ascii: "[") ? "array" : "object")", at: start)
    }
}

/// Read access to a tape and the input it points into. Values are node indices.
struct JSONView {
    let bytes: UnsafeBufferPointer<UInt8>
    let nodes: UnsafeBufferPointer<JSONTape.Node>

    @inline(__always) func kind(_ i: Int) -> JSONTape.Kind { nodes[i].kind }
    @inline(__always) func count(_ i: Int) -> Int { Int(nodes[i].count) }
    @inline(__always) func next(_ i: Int) -> Int { Int(nodes[i].next) }

    /// The elements of an array (empty for anything else).
    func elements(_ i: Int) -> [Int] {
        guard kind(i) == .array else { return [] }
        var out: [Int] = []
        out.reserveCapacity(count(i))
        var j = i + 1
        for _ in 0..<count(i) {
            out.append(j)
            j = next(j)
        }
        return out
    }

    /// The value of member `key` of an object, if present.
    func member(_ i: Int, _ key: StaticString) -> Int? {
        guard kind(i) == .object else { return nil }
        var k = i + 1
        for _ in 0..<count(i) {
            if equals(k, key) { return k + 1 }
            k = next(k + 1)
        }
        return nil
    }

    /// Whether a string node holds exactly `literal` (escaped strings are decoded first).
    func equals(_ i: Int, _ literal: StaticString) -> Bool {
        let node = nodes[i]
        switch node.kind {
        case .string:
            let n = literal.utf8CodeUnitCount
            guard node.end - node.start == n else { return false }
            let p = literal.utf8Start
            for j in 0..<n where bytes[node.start + j] != p[j] { return false }
            return true
        case .escapedString:
            return string(i) == literal.description
        default:
            return false
        }
    }

    /// Whether a string node starts with `prefix` (raw bytes; used for `@set` references).
    func hasPrefix(_ i: Int, _ c: UInt8) -> Bool {
        let node = nodes[i]
        return (node.kind == .string || node.kind == .escapedString) && node.end > node.start && bytes[node.start] == c
    }

    /// The decoded text of a string node (nil for anything else).
    func string(_ i: Int) -> String? {
        let node = nodes[i]
        switch node.kind {
        case .string:
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[node.start..<node.end]), as: UTF8.self)
        case .escapedString:
            var out: [UInt8] = []
            appendUnescaped(i, to: &out)
            return String(decoding: out, as: UTF8.self)
        default:
            return nil
        }
    }

    /// Appends the decoded UTF-8 of a string node to `out`.
    func appendUnescaped(_ i: Int, to out: inout [UInt8]) {
        let node = nodes[i]
        if node.kind == .string {
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[node.start..<node.end]))
            return
        }
        var p = node.start
        while p < node.end {
            let c = bytes[p]
            guard c == UInt8(ascii: "\\"), p + 1 < node.end else {
                out.append(c)
                p += 1
                continue
            }
            let e = bytes[p + 1]
            p += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                var scalar = hex4(p, end: node.end)
                p += 4
                if let high = scalar, (0xD800..<0xDC00).contains(high), p + 6 <= node.end,
                    bytes[p] == UInt8(ascii: "\\"), bytes[p + 1] == UInt8(ascii: "u"),
                    let low = hex4(p + 2, end: node.end), (0xDC00..<0xE000).contains(low)
                {
                    scalar = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    p += 6
                }
                let s = scalar.flatMap(Unicode.Scalar.init) ?? "\u{FFFD}"
                out.append(contentsOf: String(s).utf8)
            default: out.append(e)  // \" \\ \/ and anything nft would not write
            }
        }
    }

    private func hex4(_ p: Int, end: Int) -> UInt32? {
        guard p + 4 <= end else { return nil }
        var v: UInt32 = 0
        for j in 0..<4 {
            let c = bytes[p + j]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// An integer node's value (nil for non-integers and out-of-range values).
    func int(_ i: Int) -> Int? {
        let node = nodes[i]
        guard node.kind == .number else { return nil }
        var p = node.start
        let negative = bytes[p] == UInt8(ascii: "-")
        if negative { p += 1 }
        var v = 0
        while p < node.end {
            let d = bytes[p] &- 0x30
            guard d < 10 else { return nil }  // fraction or exponent
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(d))
            if o1 || o2 { return nil }
            v = s
            p += 1
        }
        return negative ? -v : v
    }

    /// The raw bytes of any node (a container from its opening to its closing bracket).
    func raw(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        let node = nodes[i]
        switch node.kind {
        case .string, .escapedString:
            return UnsafeBufferPointer(rebasing: bytes[(node.start - 1)..<(node.end + 1)])
        default:
            return UnsafeBufferPointer(rebasing: bytes[node.start..<node.end])
        }
    }

    /// The value as compact JSON (blanks outside strings removed), for placeholder text.
    func compact(_ i: Int) -> String {
        var out: [UInt8] = []
        var inString = false
        var escape = false
        for c in raw(i) {
            if inString {
                out.append(c)
                if escape {
                    escape = false
                } else if c == UInt8(ascii: "\\") {
                    escape = true
                } else if c == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if c == UInt8(ascii: "\"") {
                inString = true
                out.append(c)
            } else if c != 0x20 && c != 0x0A && c != 0x0D && c != 0x09 {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
