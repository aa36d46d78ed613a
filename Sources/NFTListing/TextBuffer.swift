import NFTModel

/// A growable byte buffer for building canonical text without intermediate `String`s.
struct TextBuffer {
    var bytes: [UInt8] = []

    mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    @inline(__always) mutating func append(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always) mutating func append(_ b: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: b) }

    mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    mutating func appendDecimal(_ value: Int) { bytes.append(contentsOf: String(value).utf8) }

    /// `0x` and at least `minDigits` lowercase hex digits, as C's `%0Nx`.
    mutating func appendHex(_ value: UInt64, minDigits: Int) {
        bytes.append(UInt8(ascii: "0"))
        bytes.append(UInt8(ascii: "x"))
        var n = 1
        while n < 16 && value >> (4 * UInt64(n)) != 0 { n += 1 }
        n = max(n, minDigits)
        for i in stride(from: n - 1, through: 0, by: -1) {
            let d = UInt8(truncatingIfNeeded: (value >> (4 * UInt64(i))) & 0xF)
            bytes.append(d < 10 ? d + 0x30 : d + 0x57)
        }
    }

    /// nft's `time_print` for whole seconds (`1d2h3m4s`), from NFTModel's one writer of that text.
    mutating func appendDuration(seconds: Int) { appendNFTDuration(seconds: seconds, to: &bytes) }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
