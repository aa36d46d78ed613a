/// Hashes whose values are part of Switchboard's contract with the kernel.
///
/// Kernel object names and Maglev tables are shared between releases (an upgraded agent adopts the table its
/// predecessor left behind) and between nodes (every node must pick the same backend for a flow). Swift's `Hasher`
/// is seeded per process, so nothing here may use it; every function below is pinned by golden tests, and changing
/// one is a breaking change to state already in the kernel.

/// FNV-1a 64-bit parameters, as published at http://www.isthe.com/chongo/tech/comp/fnv/.
enum FNV1a64 {
    static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// FNV-1a over `bytes`, starting from `state`; passing the hash of a prefix continues that hash, which is how
    /// salted variants are built without concatenating strings.
    @inline(__always)
    static func hash(_ bytes: some Sequence<UInt8>, state: UInt64 = offsetBasis) -> UInt64 {
        var h = state
        for b in bytes {
            h ^= UInt64(b)
            h = h &* prime
        }
        return h
    }
}

/// MurmurHash3's 64-bit finalizer (`fmix64`): a bijection in which every input bit affects every output bit.
///
/// FNV-1a ends with a multiplication, so two strings that differ only in their last byte (`10.0.0.1:80` and
/// `10.0.0.2:80`) get hashes whose difference is a small multiple of the FNV prime. Reducing such values `mod M`
/// or truncating them leaves visible structure; one finalizer round removes it at the cost of a few cycles.
@inline(__always)
func stableMix64(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 33)) &* 0xff51_afd7_ed55_8ccd
    z = (z ^ (z >> 33)) &* 0xc4ce_b9fe_1a85_ec53
    return z ^ (z >> 33)
}

/// FNV-1a 64-bit of the string's UTF-8 bytes.
///
/// Stable across processes and releases (never Swift's seeded `Hasher`): values derived from it name kernel objects
/// and fill Maglev tables that are shared across upgrades and across nodes. It hashes bytes, not characters, so two
/// canonically equivalent but differently encoded strings hash differently, exactly as the kernel sees them.
public func stableHash64(_ s: String) -> UInt64 {
    FNV1a64.hash(s.utf8)
}

/// The lowercase RFC 4648 base32 alphabet: letters and digits only, so the text is valid anywhere in an nft
/// identifier and survives case-insensitive tooling.
private let base32Alphabet: [UInt8] = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

/// Eight characters of lowercase base32 (`a-z`, `2-7`) encoding 40 bits of a stable hash of `s`.
///
/// Stable across processes and releases: chain, set and map names are built from it (`svc-<hash8>-...`), and those
/// names are kernel state shared across upgrades, so a change here orphans every object a previous release created.
/// The 64-bit FNV-1a value is finalized with `fmix64` before its top 40 bits are taken, so that service ports that
/// differ in one character get visibly different names; 40 bits keep the chance of any collision among 100k names
/// near 0.5%, and callers keep the readable part of the name next to the hash anyway. The first character may be a
/// digit: use the result after a letter prefix, never as a whole identifier.
public func stableHash8(_ s: String) -> String {
    let bits = stableMix64(stableHash64(s)) >> 24  // top 40 bits
    var out = [UInt8](repeating: 0, count: 8)
    for i in 0..<8 {
        out[i] = base32Alphabet[Int((bits >> UInt64(35 - 5 * i)) & 0x1f)]
    }
    return String(decoding: out, as: UTF8.self)
}
