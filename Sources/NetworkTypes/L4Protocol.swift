/// An L4 protocol as Kubernetes spells it.
public enum L4Protocol: String, Hashable, Sendable, CaseIterable, Comparable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"

    /// nft's name (`inet_proto` values, `meta l4proto`).
    public var nftName: String { rawValue.lowercased() }

    public static func < (a: L4Protocol, b: L4Protocol) -> Bool { a.rawValue < b.rawValue }
}
