#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, parsed strictly and held in the canonical text nft prints.
///
/// IPv4 with leading zeros (`010.1.2.3`) is rejected: Kubernetes validation treats it as ambiguous
/// (some parsers read octal, Go's newer ones decimal), so such an address is an error, not a guess.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let family: IPFamily
    /// Network-order bytes (4 or 16).
    public let bytes: [UInt8]

    public init?(_ text: String) {
        if text.contains(":") {
            guard let b = Self.parseV6(text) else { return nil }
            family = .v6
            bytes = b
        } else {
            guard let b = Self.parseV4(text) else { return nil }
            family = .v4
            bytes = b
        }
    }

    public init(family: IPFamily, bytes: [UInt8]) {
        precondition(bytes.count == (family == .v4 ? 4 : 16))
        self.family = family
        self.bytes = bytes
    }

    /// Canonical text: dotted decimal, or RFC 5952 IPv6 (as `inet_ntop` and nft print it).
    public var description: String {
        switch family {
        case .v4: return bytes.map(String.init).joined(separator: ".")
        case .v6: return Self.formatV6(bytes)
        }
    }

    /// An IPv4-mapped IPv6 address is treated by nothing here as IPv4; it is simply IPv6.
    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        if a.family != b.family { return a.family < b.family }
        return a.bytes.lexicographicallyPrecedes(b.bytes)
    }

    private static func parseV4(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            if p.count > 1 && p.first == "0" { return nil }
            guard let v = Int(p), v <= 255 else { return nil }
            out.append(UInt8(v))
        }
        return out
    }

    private static func parseV6(_ s: String) -> [UInt8]? {
        guard s.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }) else { return nil }
        var addr = in6_addr()
        guard inet_pton(AF_INET6, s, &addr) == 1 else { return nil }
        // Reject an embedded dotted quad with leading zeros, as for IPv4.
        if let lastColon = s.lastIndex(of: ":"), s[lastColon...].contains(".") {
            guard parseV4(String(s[s.index(after: lastColon)...])) != nil else { return nil }
        }
        return withUnsafeBytes(of: &addr) { Array($0) }
    }

    private static func formatV6(_ bytes: [UInt8]) -> String {
        var addr = in6_addr()
        withUnsafeMutableBytes(of: &addr) { raw in
            for i in 0..<16 { raw[i] = bytes[i] }
        }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An address prefix such as `10.244.0.0/16`; the address is masked to the prefix on parse.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let ip = IPAddress(String(parts[0])),
            parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let len = Int(parts[1]),
            len >= 0, len <= ip.bytes.count * 8
        else { return nil }
        self.init(address: ip, prefixLength: len)
    }

    public init(address: IPAddress, prefixLength: Int) {
        var b = address.bytes
        for i in 0..<b.count {
            let bits = max(0, min(8, prefixLength - i * 8))
            b[i] &= bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bits))
        }
        self.address = IPAddress(family: address.family, bytes: b)
        self.prefixLength = prefixLength
    }

    public var family: IPFamily { address.family }

    public func contains(_ ip: IPAddress) -> Bool {
        ip.family == family && CIDR(address: ip, prefixLength: prefixLength).address == address
    }

    /// As nft prints it: a full-length prefix is a bare address.
    public var description: String {
        prefixLength == address.bytes.count * 8 ? address.description : "\(address)/\(prefixLength)"
    }
}

extension CIDR {
    /// The prefixes that are not inside another one of the list, deduplicated and sorted: what a
    /// named interval set can hold (the kernel refuses overlapping intervals).
    public static func outermost(_ cidrs: [CIDR]) -> [CIDR] {
        let unique = Set(cidrs)
        return unique.filter { inner in
            !unique.contains { outer in
                outer != inner && outer.prefixLength <= inner.prefixLength && outer.contains(inner.address)
            }
        }.sorted { ($0.address, $0.prefixLength) < ($1.address, $1.prefixLength) }
    }
}
