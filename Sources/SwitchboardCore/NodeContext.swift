import NFTModel

/// What the compiler needs to know about the node it compiles for, besides the cluster.
public struct NodeContext: Hashable, Sendable {
    /// This node's name (`--hostname-override`, default the host name).
    public var nodeName: String
    /// `--cluster-cidr`: traffic to a cluster IP from outside these is masqueraded. Empty: no such
    /// masquerade (kube-proxy's behaviour without a cluster CIDR), unless `masqueradeAll`.
    public var clusterCIDRs: [CIDR]
    /// `--nodeport-addresses`: NodePorts answer on local addresses inside these. Empty: on the node's
    /// InternalIPs.
    public var nodePortAddresses: [CIDR]
    /// `--masquerade-all`: masquerade all traffic sent to a service.
    public var masqueradeAll: Bool
    /// The name of the tables Switchboard owns (`ip <name>`, `ip6 <name>`).
    public var tableName: String

    public init(
        nodeName: String, clusterCIDRs: [CIDR] = [], nodePortAddresses: [CIDR] = [], masqueradeAll: Bool = false,
        tableName: String = NodeContext.defaultTableName
    ) {
        self.nodeName = nodeName
        self.clusterCIDRs = clusterCIDRs
        self.nodePortAddresses = nodePortAddresses
        self.masqueradeAll = masqueradeAll
        self.tableName = tableName
    }

    public static let defaultTableName = "switchboard"

    /// The tables Switchboard owns for this context, one per IP family.
    public var tableIDs: Set<TableID> { Set(IPFamily.allCases.map(tableID)) }

    /// The table Switchboard owns for one IP family.
    public func tableID(_ family: IPFamily) -> TableID { TableID(family.nftFamily, tableName) }
}

extension IPFamily {
    /// The nftables table family that serves this IP family.
    public var nftFamily: Family { self == .v4 ? .ip : .ip6 }
    /// The payload protocol keyword (`ip`, `ip6`).
    public var nftPayload: String { self == .v4 ? "ip" : "ip6" }
    /// The nft address type (`ipv4_addr`, `ipv6_addr`).
    public var nftAddressType: String { self == .v4 ? "ipv4_addr" : "ipv6_addr" }
}
