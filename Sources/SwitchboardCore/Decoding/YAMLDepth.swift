/// How deeply a YAML text nests, estimated by one pass over its characters before any YAML parser sees it.
///
/// Yams composes collections recursively, so `a: [[[[…` a few thousand deep overflows the stack (a SIGSEGV,
/// not an error). This scan finds such input first. It counts two kinds of nesting:
/// - block collections, by indentation (a stack of the columns where nested collections start, plus one
///   level per `- ` / `? ` entry indicator that opens a sequence on the same line, as in `- - - x`);
/// - flow collections, by the `[` and `{` that start a node (at the start of a line's content, or after
///   `:`, `-`, `?`, `,`, `[`, `{` or a tag or anchor), every one inside a flow collection, and their
///   closing brackets.
/// Quoted scalars, comments and block scalars (`|`, `>`) are skipped. The result is close to the real depth
/// (within a factor of two where a block sequence shares its parent mapping's indentation); the converter
/// checks the exact depth afterwards, so this only has to keep the parser's recursion bounded.
enum YAMLDepth {
    /// The deepest nesting seen, stopping early once it passes `limit`.
    static func estimate(_ text: String, limit: Int) -> Int {
        var scanner = Scanner(limit: limit)
        var text = text
        return text.withUTF8 { scanner.scan($0) }
    }

    private struct Scanner {
        let limit: Int
        var deepest = 0
        var blockColumns: [Int] = []
        var flowDepth = 0
        /// Inside a quoted scalar that spans lines: its quote character.
        var openQuote: UInt8?
        /// Inside a block scalar: the indentation of the line that introduced it.
        var blockScalarParent: Int?

        init(limit: Int) { self.limit = limit }

        mutating func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
            var start = 0
            while start < bytes.count, deepest <= limit {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
                line(UnsafeBufferPointer(rebasing: bytes[start..<end]))
                start = end + 1
            }
            return deepest
        }

        private mutating func line(_ text: UnsafeBufferPointer<UInt8>) {
            var indent = 0
            while indent < text.count, text[indent] == UInt8(ascii: " ") { indent += 1 }
            let blank = indent >= text.count || text[indent] == UInt8(ascii: "\r")
                || (text[indent] == UInt8(ascii: "#") && openQuote == nil)
            if let parent = blockScalarParent {
                if blank || indent > parent { return }
                blockScalarParent = nil
            }
            if blank && openQuote == nil { return }
            var i = indent
            if openQuote == nil && flowDepth == 0 {
                while let last = blockColumns.last, last > indent { blockColumns.removeLast() }
                if blockColumns.last.map({ $0 < indent }) ?? true { blockColumns.append(indent) }
                // Entry indicators that open nested sequences (or complex keys) on this line: `- - - x`.
                while i + 1 < text.count, text[i] == UInt8(ascii: "-") || text[i] == UInt8(ascii: "?"),
                    text[i + 1] == UInt8(ascii: " ")
                {
                    i += 2
                    while i < text.count, text[i] == UInt8(ascii: " ") { i += 1 }
                    if blockColumns.last.map({ $0 < i }) ?? true { blockColumns.append(i) }
                }
                note()
            }
            var nodeStart = true  // a `[`, `{` or quote here starts a node
            while i < text.count {
                let c = text[i]
                if let quote = openQuote {
                    if c == quote {
                        if quote == UInt8(ascii: "'"), i + 1 < text.count, text[i + 1] == quote {
                            i += 2
                            continue
                        }
                        openQuote = nil
                        nodeStart = false
                    } else if c == UInt8(ascii: "\\"), quote == UInt8(ascii: "\"") {
                        i += 1
                    }
                    i += 1
                    continue
                }
                let space = i + 1 >= text.count || text[i + 1] == UInt8(ascii: " ")
                    || text[i + 1] == UInt8(ascii: "\t") || text[i + 1] == UInt8(ascii: "\r")
                if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") {
                    i += 1
                    continue
                }
                if c == UInt8(ascii: "#"), i == 0 || text[i - 1] == UInt8(ascii: " ") || text[i - 1] == UInt8(ascii: "\t") {
                    return
                }
                if nodeStart, c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                    openQuote = c
                    i += 1
                    continue
                }
                if nodeStart, c == UInt8(ascii: "!") || c == UInt8(ascii: "&") {
                    // Node properties (a tag, an anchor): the node they belong to follows them.
                    while i < text.count, !Self.endsProperty(text[i]) { i += 1 }
                    continue
                }
                // Inside a flow collection every bracket outside quotes is structure: a plain scalar there
                // cannot hold one.
                if nodeStart || flowDepth > 0, c == UInt8(ascii: "[") || c == UInt8(ascii: "{") {
                    flowDepth += 1
                    note()
                    i += 1
                    continue
                }
                if flowDepth > 0, c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                    flowDepth -= 1
                    nodeStart = false
                    i += 1
                    continue
                }
                // In a flow collection `:` may touch the value after a quoted key (`{"a":"b"}`, `{"a":[`).
                if c == UInt8(ascii: ",") || (c == UInt8(ascii: ":") && flowDepth > 0)
                    || ((c == UInt8(ascii: ":") || c == UInt8(ascii: "-") || c == UInt8(ascii: "?")) && space)
                {
                    nodeStart = true
                    i += 1
                    continue
                }
                if nodeStart, flowDepth == 0, c == UInt8(ascii: "|") || c == UInt8(ascii: ">") {
                    // A block scalar: the lines below that are indented deeper are its text.
                    blockScalarParent = indent
                    return
                }
                nodeStart = false
                i += 1
            }
        }

        /// Where a tag or an anchor ends: a blank, or a flow indicator (neither can hold one).
        private static func endsProperty(_ c: UInt8) -> Bool {
            switch c {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: ","), UInt8(ascii: "["),
                UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"):
                return true
            default:
                return false
            }
        }

        private mutating func note() {
            deepest = max(deepest, blockColumns.count + flowDepth)
        }
    }
}
