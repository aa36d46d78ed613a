import NFTModel

#if canImport(Glibc)
import Glibc
#endif

/// How the elements of one set or map are laid out in nf_tables netlink messages: the bytes of the key and,
/// for a map, of the data, as nft itself encodes them. Pure: element text in, bytes out (`NetlinkSetElements`
/// sends them).
///
/// A concatenation (`ipv4_addr . inet_proto . inet_service . integer`) is its fields one after the other,
/// each padded with zeros to a multiple of 4 bytes, because the kernel loads each field into its own 32-bit
/// register (`NFT_REG32_SIZE`) before the lookup and compares the registers byte for byte.
struct SetElementLayout: Hashable, Sendable {
    let key: ValueLayout
    /// nil for a set.
    let data: ValueLayout?

    /// The layout of a set the encoder can write, or nil: a set with `interval` (ranges are sent as pairs of
    /// start and end elements, which this encoder does not make) or `timeout` (its listing carries per-element
    /// timeouts, and its elements come from the packet path anyway), a verdict map, or a type outside
    /// `ValueLayout.Field`.
    init?(_ set: NFTSet) {
        guard !set.flags.contains("interval"), !set.flags.contains("timeout") else { return nil }
        switch set.keyType {
        case .types(let types):
            guard let key = ValueLayout(types: types) else { return nil }
            self.key = key
        case .hashSlot:
            self.key = ValueLayout(types: ["integer"])!
        }
        if let dataType = set.dataType {
            guard let data = ValueLayout(types: dataType.split(separator: " . ").map(String.init)) else { return nil }
            self.data = data
        } else {
            self.data = nil
        }
    }

    /// `type a . b : c . d`, for messages.
    var typeDescription: String {
        key.typeNames.joined(separator: " . ") + (data.map { " : " + $0.typeNames.joined(separator: " . ") } ?? "")
    }
}

/// The byte layout of a key or of a map's data: one field per concatenated type.
///
/// Encoding runs once per element, millions of times in a cold start, so it works on raw pointers with
/// plain loops and returns codes instead of throwing: no iterators, tuples or generic calls, which cost
/// most in debug builds.
struct ValueLayout: Hashable, Sendable {
    enum Field: UInt8, Hashable, Sendable {
        /// 4 bytes, network order.
        case ipv4Address = 1
        /// 16 bytes, network order.
        case ipv6Address
        /// 1 byte: `tcp`, `udp`, `sctp`, ... or a number.
        case inetProto
        /// 2 bytes, network order.
        case inetService
        /// 4 bytes in host order: nft's `integer` of a Maglev slot (declared `typeof numgen inc mod N`; numgen and
        /// jhash write their 32-bit register in host order, and nft keeps such a key host-endian), or a `mark`.
        case hostInteger

        init?(type: String) {
            switch type {
            case "ipv4_addr": self = .ipv4Address
            case "ipv6_addr": self = .ipv6Address
            case "inet_proto": self = .inetProto
            case "inet_service": self = .inetService
            case "integer", "mark": self = .hostInteger
            default: return nil
            }
        }

        /// The bytes the field occupies, with its padding to a 32-bit register.
        var paddedLength: Int { self == .ipv6Address ? 16 : 4 }
        /// The bytes of the type itself: the length of a key or data of this one type (not concatenated),
        /// e.g. the canary's `inet_service` key is 2 bytes.
        var length: Int {
            switch self {
            case .ipv4Address, .hostInteger: 4
            case .ipv6Address: 16
            case .inetProto: 1
            case .inetService: 2
            }
        }
    }

    let fields: [Field]
    let typeNames: [String]
    /// The length of the whole value: what the kernel checks against the set's key (or data) length.
    let length: Int
    /// `fields` as one byte each, the first in the lowest byte: read in the per-element loop without an array.
    private let packed: UInt64

    /// nil for an empty list, an unknown type, more than 8 fields, or a value longer than the kernel's 64 bytes
    /// (`NFT_DATA_VALUE_MAXLEN`).
    init?(types: [String]) {
        var fields: [Field] = []
        for type in types {
            guard let field = Field(type: type) else { return nil }
            fields.append(field)
        }
        // Only a concatenation pads its fields to registers; a single type is its own length.
        let length = fields.count == 1 ? fields[0].length : fields.reduce(0) { $0 + $1.paddedLength }
        guard !fields.isEmpty, fields.count <= 8, length <= 64 else { return nil }
        self.fields = fields
        self.typeNames = types
        self.length = length
        self.packed = fields.reversed().reduce(0) { $0 << 8 | UInt64($1.rawValue) }
    }

    /// `encode`'s result when every field was written.
    static let encoded = -1

    /// Writes the value of `text` (one field per type, separated by ` . `, exactly as nft lists them) to `out`,
    /// which must hold `length` bytes; padding is written as zeros. Returns `encoded`, or the index of the
    /// field that is not text of its type, or `fields.count` when there are too few fields.
    func encode(_ text: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutableRawPointer) -> Int {
        var fieldsLeft = packed
        var index = 0
        var position = 0
        var offset = 0
        while fieldsLeft != 0 {
            let code = UInt8(truncatingIfNeeded: fieldsLeft)
            fieldsLeft >>= 8
            var end = count
            if fieldsLeft != 0 {
                // The next ` . `.
                end = position
                while end + 2 < count && !(text[end] == 0x20 && text[end + 1] == 0x2E && text[end + 2] == 0x20) {
                    end += 1
                }
                if end + 2 >= count { return fields.count }
            }
            let ok: Bool
            // Raw values as literals: `Field.x.rawValue` is a call in debug builds.
            switch code {
            case 1:  // ipv4Address
                ok = Self.parseIPv4(text + position, count: end - position, into: out + offset)
                offset += 4
            case 2:  // ipv6Address
                ok = Self.parseIPv6(text + position, count: end - position, into: out + offset)
                offset += 16
            case 3:  // inetProto
                let number = Self.parseProtocol(text + position, count: end - position)
                ok = number >= 0
                out.storeBytes(of: UInt32(0), toByteOffset: offset, as: UInt32.self)
                out.storeBytes(of: UInt8(truncatingIfNeeded: number), toByteOffset: offset, as: UInt8.self)
                offset += 4
            case 4:  // inetService
                let port = Self.parseNumber(text + position, count: end - position)
                ok = port >= 0 && port <= 0xFFFF
                out.storeBytes(of: UInt32(0), toByteOffset: offset, as: UInt32.self)
                out.storeBytes(of: UInt16(truncatingIfNeeded: port).bigEndian, toByteOffset: offset, as: UInt16.self)
                offset += 4
            default:  // hostInteger
                let value = Self.parseNumber(text + position, count: end - position)
                ok = value >= 0
                out.storeBytes(of: UInt32(truncatingIfNeeded: value), toByteOffset: offset, as: UInt32.self)
                offset += 4
            }
            if !ok { return index }
            index += 1
            position = end + 3
        }
        return Self.encoded
    }

    /// `encode` for a buffer, throwing what went wrong: for tests and for messages.
    func encode(_ text: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawPointer) throws(ElementTextError) {
        guard let base = text.baseAddress else { throw .field(index: 0, text: "") }
        let result = encode(base, count: text.count, into: out)
        if result == Self.encoded { return }
        if result == fields.count { throw .fieldCount(expected: fields.count) }
        // Find the failing field's text again (the error path only).
        let string = String(decoding: text, as: UTF8.self)
        let parts = string.split(separator: " . ", maxSplits: fields.count - 1, omittingEmptySubsequences: false)
        throw .field(index: result, text: result < parts.count ? String(parts[result]) : "")
    }

    /// A decimal (or `0x` hexadecimal, as nft lists marks) number that fits 32 bits, or -1.
    static func parseNumber(_ text: UnsafePointer<UInt8>, count: Int) -> Int {
        if count == 0 { return -1 }
        var value = 0
        var i = 0
        if count > 2 && text[0] == 0x30 && (text[1] | 0x20) == 0x78 {
            if count > 10 { return -1 }
            i = 2
            while i < count {
                let c = text[i]
                let digit: Int
                if c &- 0x30 < 10 {
                    digit = Int(c &- 0x30)
                } else if (c | 0x20) &- 0x61 < 6 {
                    digit = Int((c | 0x20) &- 0x61) + 10
                } else {
                    return -1
                }
                value = value << 4 | digit
                i += 1
            }
            return value
        }
        if count > 10 { return -1 }
        while i < count {
            let digit = text[i] &- 0x30
            if digit >= 10 { return -1 }
            value = value * 10 + Int(digit)
            i += 1
        }
        return value <= 0xFFFF_FFFF ? value : -1
    }

    /// The names nft prints for the protocols a Service can have (from `/etc/protocols`), or a number; -1
    /// for anything else.
    static func parseProtocol(_ text: UnsafePointer<UInt8>, count: Int) -> Int {
        if count > 0 && text[0] &- 0x30 < 10 {
            let number = parseNumber(text, count: count)
            return number <= 255 ? number : -1
        }
        // The common three without a table lookup.
        if count == 3 && text[0] == 0x74 && text[1] == 0x63 && text[2] == 0x70 { return 6 }  // tcp
        if count == 3 && text[0] == 0x75 && text[1] == 0x64 && text[2] == 0x70 { return 17 }  // udp
        let name = String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
        switch name {
        case "sctp": return 132
        case "icmp": return 1
        case "ipv6-icmp": return 58
        case "udplite": return 136
        case "gre": return 47
        case "esp": return 50
        case "ah": return 51
        default: return -1
        }
    }

    /// Dotted quad, each part 0...255 without leading zeros, as nft prints it.
    static func parseIPv4(_ text: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutableRawPointer) -> Bool {
        var part = 0
        var value = 0
        var digits = 0
        var i = 0
        while i < count {
            let c = text[i]
            if c == 0x2E {
                if digits == 0 || part == 3 { return false }
                out.storeBytes(of: UInt8(value), toByteOffset: part, as: UInt8.self)
                part += 1
                value = 0
                digits = 0
            } else if c &- 0x30 < 10 {
                if digits > 0 && value == 0 { return false }  // a leading zero
                value = value * 10 + Int(c &- 0x30)
                digits += 1
                if value > 255 { return false }
            } else {
                return false
            }
            i += 1
        }
        if part != 3 || digits == 0 { return false }
        out.storeBytes(of: UInt8(value), toByteOffset: 3, as: UInt8.self)
        return true
    }

    /// Any form `inet_pton` reads (nft lists the compressed one).
    static func parseIPv6(_ text: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutableRawPointer) -> Bool {
        // INET6_ADDRSTRLEN is 46 with the NUL.
        if count == 0 || count >= 46 { return false }
        var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &buffer) { bytes in
            bytes.baseAddress!.copyMemory(from: text, byteCount: count)
            bytes[count] = 0
            return inet_pton(AF_INET6, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), out) == 1
        }
    }
}

/// Why one element's text does not fit its set's types.
enum ElementTextError: Error, Hashable, Sendable {
    /// Field `index` (0-based) is not text of its type.
    case field(index: Int, text: String)
    /// Fewer ` . `-separated fields than the type has.
    case fieldCount(expected: Int)
    /// Data given for a set, or none for a map.
    case data(expected: Bool)
    /// A comment that is not `comment "…"` at the end of the key, or longer than nft allows.
    case comment

    func describe(types: [String]) -> String {
        switch self {
        case .field(let index, let text):
            let type = index < types.count ? types[index] : "?"
            return "field \(index + 1) \"\(text)\" is not a valid \(type)"
        case .fieldCount(let expected):
            return "expected \(expected) fields separated by \" . \""
        case .data(let expected):
            return expected ? "a map element needs data" : "a set element has no data"
        case .comment:
            return "the comment must be `comment \"...\"` (at most 128 bytes, no quotes) at the end of the key"
        }
    }
}

/// nft's longest element comment (`NFTNL_UDATA_COMMENT_MAXLEN`).
let elementCommentLimit = 128

/// Where the comment of a key as the JSON listing gives it (`10.96.0.1 . tcp . 80 comment "ns/svc:http"`) starts:
/// the index of ` comment "`, or -1 when there is none. `nftCommentText` leaves no `"` inside a comment, so a
/// key with a comment ends in `"` and the first ` comment "` starts it. `checkComment` says whether it is
/// well formed.
func commentStart(_ key: UnsafePointer<UInt8>, count: Int) -> Int {
    if count == 0 || key[count - 1] != 0x22 { return -1 }
    let marker: StaticString = " comment \""
    let m = marker.utf8Start
    let n = marker.utf8CodeUnitCount
    var i = 0
    while i + n <= count {
        if key[i] == 0x20 && key[i + 1] == 0x63 && memcmp(key + i, m, n) == 0 { return i }
        i += 1
    }
    return -1
}

/// The comment's byte range in a key whose comment starts at `start`, if it is `comment "…"` of at most
/// `elementCommentLimit` bytes without a quote or NUL inside.
func checkComment(_ key: UnsafePointer<UInt8>, count: Int, start: Int) -> Range<Int>? {
    let first = start + 10
    guard count > first, key[count - 1] == 0x22 else { return nil }
    let range = first..<(count - 1)
    guard range.count <= elementCommentLimit else { return nil }
    var i = range.lowerBound
    while i < range.upperBound {
        if key[i] == 0x22 || key[i] == 0 { return nil }
        i += 1
    }
    return range
}

/// Splits a key into the value's length and the comment's byte range, if any (tests and messages).
func splitComment(
    _ key: UnsafeBufferPointer<UInt8>
) throws(ElementTextError) -> (valueLength: Int, comment: Range<Int>?) {
    guard let base = key.baseAddress else { return (0, nil) }
    let start = commentStart(base, count: key.count)
    if start < 0 {
        // A key that has ` comment "` but does not end in `"` is malformed too.
        if String(decoding: key, as: UTF8.self).contains(" comment \"") { throw .comment }
        return (key.count, nil)
    }
    guard let range = checkComment(base, count: key.count, start: start) else { throw .comment }
    return (start, range)
}
