import NetworkTypes
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
    /// `--detect-local-mode`: how traffic from this node's pods is told apart from other traffic.
    public var localDetection: LocalDetection

    public init(
        nodeName: String, clusterCIDRs: [CIDR] = [], nodePortAddresses: [CIDR] = [], masqueradeAll: Bool = false,
        tableName: String = NodeContext.defaultTableName, localDetection: LocalDetection = .clusterCIDR
    ) {
        self.nodeName = nodeName
        self.clusterCIDRs = clusterCIDRs
        self.nodePortAddresses = nodePortAddresses
        self.masqueradeAll = masqueradeAll
        self.tableName = tableName
        self.localDetection = localDetection
    }

    public static let defaultTableName = "switchboard"

    /// The tables Switchboard owns for this context, one per IP family.
    public var tableIDs: Set<TableID> { Set(IPFamily.allCases.map(tableID)) }

    /// The table Switchboard owns for one IP family.
    public func tableID(_ family: IPFamily) -> TableID { TableID(family.nftFamily, tableName) }
}

/// kube-proxy's `--detect-local-mode`: which packets come from pods (of this node, or of the cluster).
/// Pod traffic to a cluster IP is not masqueraded, and pod traffic to an external IP or load balancer
/// of an `externalTrafficPolicy: Local` Service is sent to all endpoints, as if it were internal.
public enum LocalDetection: Hashable, Sendable {
    /// `ClusterCIDR` (the default): source inside `--cluster-cidr`. Without a cluster CIDR nothing is
    /// detected as local.
    case clusterCIDR
    /// `NodeCIDR`: source inside this node's Node `spec.podCIDRs`.
    case nodeCIDR
    /// `InterfaceNamePrefix` (`--pod-interface-name-prefix`): arrived on an interface whose name starts so.
    case interfaceNamePrefix(String)
    /// `BridgeInterface` (`--pod-bridge-interface`): arrived on this bridge.
    case bridgeInterface(String)
}

extension IPFamily {
    /// The nftables table family that serves this IP family.
    public var nftFamily: Family { self == .v4 ? .ip : .ip6 }
    /// The payload protocol keyword (`ip`, `ip6`).
    public var nftPayload: String { self == .v4 ? "ip" : "ip6" }
    /// The nft address type (`ipv4_addr`, `ipv6_addr`).
    public var nftAddressType: String { self == .v4 ? "ipv4_addr" : "ipv6_addr" }
}
