/// Hashes whose values are part of Switchboard's contract with the kernel.
///
/// Maglev tables are shared between releases (an upgraded agent adopts the table its
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
/// Stable across processes and releases (never Swift's seeded `Hasher`): the hash Maglev's permutations are salted
/// variants of (`Maglev.offsetHash`/`skipHash`), so its reference vectors pin every node's tables. It hashes bytes, not characters, so two
/// canonically equivalent but differently encoded strings hash differently, exactly as the kernel sees them.
public func stableHash64(_ s: String) -> UInt64 {
    FNV1a64.hash(s.utf8)
}
