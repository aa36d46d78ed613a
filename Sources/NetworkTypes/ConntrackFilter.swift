/// One conntrack deletion: every entry of `family` and `protocol` whose fields equal all the fields given
/// here (a nil field matches anything). kube-proxy's `ClearEntriesForNAT`, `ClearEntriesForPortNAT`,
/// `ClearEntriesForIP` and `ClearEntriesForPort` are all of this shape.
public struct ConntrackFilter: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var family: IPFamily
    public var `protocol`: L4Protocol
    /// The original direction's destination address (a service VIP).
    public var originalDestination: IPAddress?
    /// The original direction's destination port (a service port or node port).
    public var originalDestinationPort: Int?
    /// The reply direction's source address: after DNAT, the endpoint that answers.
    public var replySource: IPAddress?

    public init(
        family: IPFamily, protocol: L4Protocol, originalDestination: IPAddress? = nil,
        originalDestinationPort: Int? = nil, replySource: IPAddress? = nil
    ) {
        self.family = family
        self.protocol = `protocol`
        self.originalDestination = originalDestination
        self.originalDestinationPort = originalDestinationPort
        self.replySource = replySource
    }

    /// Whether an entry with these fields is one this filter deletes.
    public func matches(
        family: IPFamily, protocol: L4Protocol, originalDestination: IPAddress, originalDestinationPort: Int,
        replySource: IPAddress
    ) -> Bool {
        family == self.family && `protocol` == self.protocol
            && (self.originalDestination.map { $0 == originalDestination } ?? true)
            && (self.originalDestinationPort.map { $0 == originalDestinationPort } ?? true)
            && (self.replySource.map { $0 == replySource } ?? true)
    }

    /// As the `conntrack` tool's options would say it: `-f ipv4 -p udp --orig-dst 10.96.0.10 --dport 53`.
    public var description: String {
        var parts = ["-f \(family == .v4 ? "ipv4" : "ipv6")", "-p \(`protocol`.nftName)"]
        if let originalDestination { parts.append("--orig-dst \(originalDestination)") }
        if let originalDestinationPort { parts.append("--dport \(originalDestinationPort)") }
        if let replySource { parts.append("--reply-src \(replySource)") }
        return parts.joined(separator: " ")
    }

    public static func < (a: ConntrackFilter, b: ConntrackFilter) -> Bool {
        func key(_ f: ConntrackFilter) -> (IPFamily, L4Protocol, String, Int, String) {
            (f.family, f.protocol, f.originalDestination?.description ?? "", f.originalDestinationPort ?? 0,
             f.replySource?.description ?? "")
        }
        return key(a) < key(b)
    }
}

/// The kernel's connection tracking table, as far as Switchboard edits it: deleting entries.
///
/// `Conntrack` (in Netfilter) is the real one, through libnetfilter_conntrack; tests use a fake.
public protocol ConntrackBackend: Sendable {
    /// Deletes every entry that matches any of the filters and returns how many were deleted.
    /// An entry that vanished on its own meanwhile is not an error.
    func delete(_ filters: [ConntrackFilter]) async throws -> Int
}
