/// Makes fuzz inputs: a seed of the corpus with one to eight mutations stacked on it ("havoc", as AFL and
/// libFuzzer call it), chosen by a `SplitMix64`, so the same generator state always gives the same input.
///
/// The mutations are byte-level (bit flips, interesting bytes, inserts, deletes, duplicated ranges,
/// truncation), structural for the text formats read here (a line duplicated, dropped or re-indented; a
/// number replaced by an extreme one; a splice of two seeds) and token-level: the target's dictionary plus
/// `commonTokens` (JSON and YAML syntax, escapes, invalid UTF-8, NUL), sometimes repeated thousands of
/// times (`[[[[…`, `- - - …`) to probe nesting limits, or a long run of one byte for size limits.
public struct FuzzMutator: Sendable {
    public var seeds: [[UInt8]]
    public var dictionary: [[UInt8]]
    /// Inputs are cut to this length (a long-string or deep-nesting mutation can otherwise grow one a lot).
    public var maximumLength: Int

    public init(seeds: [[UInt8]], dictionary: [[UInt8]] = [], maximumLength: Int? = nil) {
        precondition(!seeds.isEmpty, "a fuzz target needs at least one seed")
        self.seeds = seeds
        self.dictionary = dictionary + Self.commonTokens
        self.maximumLength = maximumLength ?? max(64 << 10, 2 * (seeds.map(\.count).max() ?? 0))
    }

    /// Syntax of the formats decoded here, and bytes that break naive readers.
    public static let commonTokens: [[UInt8]] = [
        "{", "}", "[", "]", "\"", "'", "\\", "\\u", "\\u0000", "\\uD800", "\\uDBFF\\uDFFF", "\\uDC00\\uD800", "\\\"",
        ": ", ":", ",", "- ", "? ", "&a ", "*a", "<<: *a", "!!", "!!str ", "!!int ", "!!binary ", "!tag ", "|", ">-",
        "---\n", "...\n", "%YAML 1.2\n", "# ", "\t", "\r\n", "\n  ", "null", "true", "~", "-0", "0", "00", "-",
        "1e999", "-1e999", "1e-999", "1.5", "0.1e-400", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "18446744073709551616", "1.7976931348623157e308",
        "99999999999999999999999999999999", "NaN", "Infinity", "0x1F", "+1", "1_000", "::", "::ffff:",
        "255.255.255.255", "/", "/128", "/33", "%eth0", "1h", "ms", "µs", "\u{FEFF}",
    ].map { Array($0.utf8) } + [
        [0], [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80], [0x7F],
    ]

    static let interestingBytes: [UInt8] = [
        0, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x27, 0x2C, 0x2D, 0x2E, 0x30, 0x31, 0x39, 0x3A, 0x5B, 0x5C, 0x5D, 0x7B,
        0x7D, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFE, 0xFF,
    ]

    static let interestingNumbers: [[UInt8]] = [
        "0", "-0", "1", "-1", "65535", "65536", "2147483648", "4294967296", "9223372036854775807",
        "9223372036854775808", "-9223372036854775809", "1e999", "-1e999", "1e-999", "1E+308", "0.0", "00", "01",
        "1.", ".5", "1e", "9999999999999999999999999999999999999999",
    ].map { Array($0.utf8) }

    /// The input of `iteration` of the run seeded with `seed`: a function of those two numbers alone.
    public func input(seed: UInt64, iteration: Int) -> [UInt8] {
        var random = SplitMix64(seed: seed, iteration: iteration)
        var bytes = seeds[Int(random.next() % UInt64(seeds.count))]
        let stacked = 1 << Int(random.next() % 4)  // 1, 2, 4 or 8 mutations
        for _ in 0..<stacked { mutate(&bytes, using: &random) }
        if bytes.count > maximumLength { bytes.removeLast(bytes.count - maximumLength) }
        return bytes
    }

    /// One random mutation of `bytes`.
    public func mutate(_ bytes: inout [UInt8], using random: inout SplitMix64) {
        func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(random.next() % UInt64(n)) }
        func position() -> Int { below(bytes.count + 1) }
        /// A range of the input, short more often than long.
        func range() -> Range<Int> {
            let start = below(bytes.count)
            let limit = bytes.count - start
            let length = min(limit, random.next() % 4 == 0 ? below(limit) + 1 : below(min(limit, 16)) + 1)
            return start..<(start + length)
        }
        func token() -> [UInt8] { dictionary[below(dictionary.count)] }
        /// The bounds of the line around `index`.
        func line(around index: Int) -> Range<Int> {
            var start = min(index, bytes.count)
            while start > 0, bytes[start - 1] != 0x0A { start -= 1 }
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            return start..<min(end + 1, bytes.count)
        }

        switch below(16) {
        case 0 where !bytes.isEmpty:  // flip a bit
            let i = below(bytes.count)
            bytes[i] ^= 1 << UInt8(below(8))
        case 1 where !bytes.isEmpty:  // set a byte to an interesting or random value
            let i = below(bytes.count)
            bytes[i] = random.next() % 2 == 0 ? Self.interestingBytes[below(Self.interestingBytes.count)] : UInt8(below(256))
        case 2:  // insert a byte
            bytes.insert(Self.interestingBytes[below(Self.interestingBytes.count)], at: position())
        case 3 where !bytes.isEmpty:  // delete a range
            bytes.removeSubrange(range())
        case 4 where !bytes.isEmpty:  // duplicate a range somewhere
            let copied = Array(bytes[range()])
            bytes.insert(contentsOf: copied, at: position())
        case 5, 6:  // insert a token
            bytes.insert(contentsOf: token(), at: position())
        case 7 where !bytes.isEmpty:  // overwrite a range with a token
            bytes.replaceSubrange(range(), with: token())
        case 8:  // splice: this input's head, another seed's tail
            let other = seeds[below(seeds.count)]
            bytes = Array(bytes[..<position()]) + other[below(other.count + 1)...]
        case 9 where !bytes.isEmpty:  // truncate
            bytes.removeLast(below(bytes.count) + 1)
        case 10:  // a deep nesting run: one token repeated up to thousands of times
            let unit = random.next() % 3 == 0 ? token() : Self.nestingUnits[below(Self.nestingUnits.count)]
            let count = [2, 10, 100, 129, 200, 1000, 5000][below(7)]
            let run = (0..<count).flatMap { _ in unit }
            bytes.insert(contentsOf: run.prefix(maximumLength), at: position())
        case 11:  // a long run of one byte (a huge string, number or indentation)
            let byte: UInt8 = [0x61, 0x30, 0x20, 0x39, 0x5C, 0x0A][below(6)]
            let count = [256, 4096, 65536][below(3)]
            bytes.insert(contentsOf: repeatElement(byte, count: count), at: position())
        case 12 where !bytes.isEmpty:  // replace a run of digits with an extreme number
            let i = below(bytes.count)
            var start = i
            while start < bytes.count, !(0x30...0x39).contains(bytes[start]) { start += 1 }
            var end = start
            while end < bytes.count, (0x30...0x39).contains(bytes[end]) || bytes[end] == 0x2E { end += 1 }
            bytes.replaceSubrange(start..<end, with: Self.interestingNumbers[below(Self.interestingNumbers.count)])
        case 13 where !bytes.isEmpty:  // duplicate, drop or move a line
            let here = line(around: below(bytes.count))
            let text = Array(bytes[here])
            switch below(3) {
            case 0: bytes.insert(contentsOf: text, at: here.lowerBound)
            case 1: bytes.removeSubrange(here)
            default:
                bytes.removeSubrange(here)
                bytes.insert(contentsOf: text, at: line(around: below(bytes.count + 1)).lowerBound)
            }
        case 14 where !bytes.isEmpty:  // re-indent a line (YAML structure lives in indentation)
            let start = line(around: below(bytes.count)).lowerBound
            var end = start
            while end < bytes.count, bytes[end] == 0x20 { end += 1 }
            bytes.replaceSubrange(start..<end, with: repeatElement(0x20, count: below(12)))
        case 15 where bytes.count > 1:  // swap two ranges' bytes
            let a = range()
            let b = range()
            if a.upperBound <= b.lowerBound || b.upperBound <= a.lowerBound {
                let (first, second) = a.lowerBound < b.lowerBound ? (a, b) : (b, a)
                let firstBytes = Array(bytes[first])
                let secondBytes = Array(bytes[second])
                bytes.replaceSubrange(second, with: firstBytes)
                bytes.replaceSubrange(first, with: secondBytes)
            }
        default:  // a mutation that needs bytes, on an empty input
            bytes.insert(contentsOf: token(), at: position())
        }
    }

    /// What nests in the formats read here, one level each.
    static let nestingUnits: [[UInt8]] = [
        "[", "{", "{\"a\":", "[{\"a\":", "- ", "-\n  ", "a:\n ", "{a: ", "[!!seq ", "[&a ", "? ", "\n" + "  ",
    ].map { Array($0.utf8) }
}
