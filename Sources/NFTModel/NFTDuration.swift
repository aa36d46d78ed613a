/// A whole number of seconds as nft prints a duration (`time_print`): `1d2h3m4s`, `3h`, `15s`, `0s`. The
/// one writer of that text: rules the compiler writes and listings read back must agree on it.
public func nftDuration(seconds: Int) -> String {
    var bytes: [UInt8] = []
    appendNFTDuration(seconds: seconds, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
}

/// `nftDuration(seconds:)` appended to UTF-8 bytes: NFTListing builds a listing's text without a `String`
/// per value.
package func appendNFTDuration(seconds: Int, to bytes: inout [UInt8]) {
    guard seconds > 0 else {
        bytes.append(contentsOf: "0s".utf8)
        return
    }
    let parts: [(Int, UInt8)] = [
        (seconds / 86400, UInt8(ascii: "d")), (seconds % 86400 / 3600, UInt8(ascii: "h")),
        (seconds % 3600 / 60, UInt8(ascii: "m")), (seconds % 60, UInt8(ascii: "s")),
    ]
    for (value, unit) in parts where value > 0 {
        bytes.append(contentsOf: String(value).utf8)
        bytes.append(unit)
    }
}
