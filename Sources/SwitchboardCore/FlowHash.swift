import NetworkTypes

/// The Maglev slot the kernel picks for a flow: what the ruleset's `jhash <fam> saddr . th sport mod M seed
/// <seed>` evaluates to for a packet (see `Skeleton`), computed here so `explain` can name the backend without
/// sending a packet.
///
/// How the kernel gets there (nft 1.0.6 and `net/netfilter/nft_hash.c`): nft loads the source address and the
/// source port into adjacent 32-bit registers, the port in network byte order and zero-padded to 4 bytes, and
/// hashes them as one key of 8 bytes (IPv4) or 20 bytes (IPv6) with Bob Jenkins' lookup3 `jhash` (the byte
/// variant of `include/linux/jhash.h`); the result is scaled to the table with `reciprocal_scale`,
/// `(hash * M) >> 32`, not a remainder. The unit tests hold vectors observed in the kernel, and a namespace
/// test compares against the kernel afresh.
public enum FlowHash {
    /// The seed every node uses, so that every node hashes a flow to the same slot.
    public static let seed: UInt32 = 0x5b1e_0c1d

    /// The slot of a table with `tableSize` slots that a packet from `source`:`sourcePort` (TCP, UDP or SCTP)
    /// is sent to.
    public static func slot(source: IPAddress, sourcePort: Int, tableSize: Int) -> Int {
        precondition((0...0xffff).contains(sourcePort) && tableSize > 0)
        let port = UInt16(sourcePort)
        let key = source.bytes + [UInt8(port >> 8), UInt8(port & 0xff), 0, 0]
        return Int((UInt64(jhash(key, seed: seed)) * UInt64(tableSize)) >> 32)
    }

    /// lookup3's `hashlittle` as the kernel's `jhash(key, length, initval)` computes it on a little-endian
    /// machine (whole 12-byte blocks are read in host order, the tail byte by byte as little-endian words).
    public static func jhash(_ key: [UInt8], seed: UInt32) -> UInt32 {
        var a: UInt32 = 0xdead_beef &+ UInt32(truncatingIfNeeded: key.count) &+ seed
        var b = a
        var c = a
        var rest = key[...]
        func word(_ bytes: ArraySlice<UInt8>, _ offset: Int) -> UInt32 {
            var value: UInt32 = 0
            for i in 0..<4 where offset + i < bytes.count {
                value |= UInt32(bytes[bytes.startIndex + offset + i]) << (8 * i)
            }
            return value
        }
        while rest.count > 12 {
            a &+= word(rest, 0)
            b &+= word(rest, 4)
            c &+= word(rest, 8)
            mix(&a, &b, &c)
            rest = rest.dropFirst(12)
        }
        guard !rest.isEmpty else { return c }
        a &+= word(rest, 0)
        b &+= word(rest, 4)
        c &+= word(rest, 8)
        final(&a, &b, &c)
        return c
    }

    private static func rol(_ x: UInt32, _ k: UInt32) -> UInt32 { (x << k) | (x >> (32 - k)) }

    private static func mix(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        a &-= c; a ^= rol(c, 4); c &+= b
        b &-= a; b ^= rol(a, 6); a &+= c
        c &-= b; c ^= rol(b, 8); b &+= a
        a &-= c; a ^= rol(c, 16); c &+= b
        b &-= a; b ^= rol(a, 19); a &+= c
        c &-= b; c ^= rol(b, 4); b &+= a
    }

    private static func final(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        c ^= b; c &-= rol(b, 14)
        a ^= c; a &-= rol(c, 11)
        b ^= a; b &-= rol(a, 25)
        c ^= b; c &-= rol(b, 16)
        a ^= c; a &-= rol(c, 4)
        b ^= a; b &-= rol(a, 14)
        c ^= b; c &-= rol(b, 24)
    }
}
