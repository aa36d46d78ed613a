/// An IP address family, spelled as Kubernetes spells it (`IPv4`, `IPv6`).
public enum IPFamily: String, Hashable, Sendable, CaseIterable, Comparable {
    case v4 = "IPv4"
    case v6 = "IPv6"

    public static func < (a: IPFamily, b: IPFamily) -> Bool { a.rawValue < b.rawValue }
}
