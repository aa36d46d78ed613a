/// Reads JSON bytes into a `JSONValue`: one pass over the bytes, no intermediate tree, no `Codable`.
///
/// `JSONDecoder` costs about a microsecond per value through its generic containers, which made decoding
/// the 37 MB of a 10k-Service cluster's initial lists take seconds; this reader does it in a fraction.
/// It also refuses nesting deeper than `JSONValue.maximumDepth` before recursing past it, so hostile input
/// (`[[[[…` a few thousand deep) is a syntax error instead of a stack overflow.
///
/// Numbers keep `JSONDecoder`'s reading: a number with an integral value that fits `Int` is `.int` (so
/// `80.0` and `1e3` are the integers 80 and 1000), anything else `.double`; a non-finite one is an error.
/// Strings must be valid UTF-8 with valid escapes (`\uD83D\uDE00` pairs included); a duplicate object
/// member keeps its last value.
struct JSONParser: ~Copyable {
    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The one value of the whole input (whitespace around it allowed).
    mutating func parseDocument() throws(JSONValue.SyntaxError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue(depth: 1)
        skipWhitespace()
        if index < bytes.count { throw error("unexpected text after the JSON value") }
        return value
    }

    /// A top-level object whose array member `streamed` is handed to `each` one element at a time instead of
    /// being kept: a LIST response of 10k objects never exists as one tree, only its current item does.
    /// Returns the object's other members (`items` is absent from it). Errors thrown by `each` propagate.
    mutating func parseObject(
        streaming streamed: String, _ each: (JSONValue) throws -> Void
    ) throws -> [String: JSONValue] {
        skipWhitespace()
        guard peek == UInt8(ascii: "{") else { throw error("expected a JSON object") }
        var members: [String: JSONValue] = [:]
        var failure: (any Error)?
        do {
            try parseMembers(depth: 1) { (parser, key) throws(JSONValue.SyntaxError) in
                guard key == streamed, parser.peek == UInt8(ascii: "[") else {
                    members[key] = try parser.parseValue(depth: 2)
                    return
                }
                members[key] = nil
                try parser.parseElements(depth: 2) { (parser) throws(JSONValue.SyntaxError) in
                    let value = try parser.parseValue(depth: 3)
                    do {
                        try each(value)
                    } catch {
                        failure = error
                        throw parser.error("stopped by the caller")
                    }
                }
            }
        } catch {
            throw failure ?? error
        }
        skipWhitespace()
        if index < bytes.count { throw error("unexpected text after the JSON value") }
        return members
    }

    private mutating func parseValue(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character \(describe(bytes[index]))")
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        var members: [String: JSONValue] = [:]
        try parseMembers(depth: depth) { (parser, key) throws(JSONValue.SyntaxError) in
            members[key] = try parser.parseValue(depth: depth + 1)
        }
        return .object(members)
    }

    private mutating func parseArray(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        var elements: [JSONValue] = []
        try parseElements(depth: depth) { (parser) throws(JSONValue.SyntaxError) in
            elements.append(try parser.parseValue(depth: depth + 1))
        }
        return .array(elements)
    }

    /// An object from its `{` to its `}`: `member` reads each member's value (the parser is at it).
    private mutating func parseMembers(
        depth: Int, _ member: (inout JSONParser, String) throws(JSONValue.SyntaxError) -> Void
    ) throws(JSONValue.SyntaxError) {
        try checkDepth(depth)
        index += 1  // {
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
            let key = try parseString()
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
            index += 1
            skipWhitespace()
            try member(&self, key)
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return
            default: throw error("expected ',' or '}' in an object")
            }
        }
    }

    /// An array from its `[` to its `]`: `element` reads each element (the parser is at it).
    private mutating func parseElements(
        depth: Int, _ element: (inout JSONParser) throws(JSONValue.SyntaxError) -> Void
    ) throws(JSONValue.SyntaxError) {
        try checkDepth(depth)
        index += 1  // [
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return
            default: throw error("expected ',' or ']' in an array")
            }
        }
    }

    private func checkDepth(_ depth: Int) throws(JSONValue.SyntaxError) {
        if depth > JSONValue.maximumDepth {
            var tooDeep = error("nested deeper than \(JSONValue.maximumDepth) levels")
            tooDeep.isTooDeep = true
            throw tooDeep
        }
    }

    /// A string starting at the opening quote; `index` ends after the closing one.
    private mutating func parseString() throws(JSONValue.SyntaxError) -> String {
        index += 1  // "
        let start = index
        // Fast path: no escapes, the common case for Kubernetes objects.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = try makeString(UnsafeRawBufferPointer(rebasing: bytes[start..<index]), at: start)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character \(describe(byte)) in a string") }
            index += 1
        }
        guard index < bytes.count else { throw error("unterminated string") }
        var buffer = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: buffer, as: UTF8.self) else {
                    throw error("invalid UTF-8 in a string", at: start)
                }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escape)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"): appendUTF8(try parseEscapedScalar(), to: &buffer)
                default: throw error("invalid escape \\\(describe(escape))")
                }
            default:
                if byte < 0x20 { throw error("control character \(describe(byte)) in a string") }
                buffer.append(byte)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    /// The scalar of a `\u` escape whose `u` was just read, joining a surrogate pair.
    private mutating func parseEscapedScalar() throws(JSONValue.SyntaxError) -> Unicode.Scalar {
        let first = try hex4()
        if (0xD800...0xDBFF).contains(first) {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { throw error("unpaired surrogate \\u\(String(first, radix: 16))") }
            index += 2
            let second = try hex4()
            guard (0xDC00...0xDFFF).contains(second) else {
                throw error("unpaired surrogate \\u\(String(first, radix: 16))")
            }
            return Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))!
        }
        guard let scalar = Unicode.Scalar(first) else { throw error("unpaired surrogate \\u\(String(first, radix: 16))") }
        return scalar
    }

    private mutating func hex4() throws(JSONValue.SyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private func appendUTF8(_ scalar: Unicode.Scalar, to buffer: inout [UInt8]) {
        UTF8.encode(scalar) { buffer.append($0) }
    }

    private func makeString(_ raw: UnsafeRawBufferPointer, at start: Int) throws(JSONValue.SyntaxError) -> String {
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw error("invalid UTF-8 in a string", at: start)
        }
        return text
    }

    private mutating func parseNumber() throws(JSONValue.SyntaxError) -> JSONValue {
        let start = index
        var integral = true
        if peek == UInt8(ascii: "-") { index += 1 }
        guard let first = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw error("invalid number")
        }
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            skipDigits()
        }
        if peek == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard skipDigits() > 0 else { throw error("invalid number: no digits after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            integral = false
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard skipDigits() > 0 else { throw error("invalid number: no digits in the exponent") }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if integral, let value = Int(text) { return .int(value) }
        guard let value = Double(text), value.isFinite else { throw error("number out of range: \(text)", at: start) }
        if value == value.rounded(), let exact = Int(exactly: value) { return .int(exact) }
        return .double(value)
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        return index - start
    }

    private mutating func literal(_ word: StaticString) throws(JSONValue.SyntaxError) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw error("invalid literal (expected \(word))")
        }
        index += count
    }

    private var peek: UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): index += 1
            default: return
            }
        }
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "0x\(String(byte, radix: 16))"
    }

    /// A syntax error at `offset` (default: the current position), with its line and column.
    private func error(_ message: String, at offset: Int? = nil) -> JSONValue.SyntaxError {
        let end = min(offset ?? index, bytes.count)
        var line = 1
        var lineStart = 0
        for position in 0..<end where bytes[position] == UInt8(ascii: "\n") {
            line += 1
            lineStart = position + 1
        }
        // Columns count Unicode scalars: UTF-8 continuation bytes do not start one.
        var column = 1
        for position in lineStart..<end where bytes[position] & 0xC0 != 0x80 { column += 1 }
        return JSONValue.SyntaxError(line: line, column: column, message: message)
    }
}
