import NetworkTypes
import NFTModel

/// kube-proxy's IPVS-mode ipsets (`pkg/proxy/ipvs/ipset.go`), with its names, types and meaning, so that
/// host firewalls written for IPVS mode (`iptables -m set --match-set KUBE-CLUSTER-IP dst,dst ...`) keep
/// working with Switchboard. Switchboard's own rules never read them.
///
/// Not exported: `KUBE-HEALTH-CHECK-NODE-PORT` (IPVS mode's own filter rules accept health checks with it;
/// Switchboard's health-check servers need no rule, and no firewall written for IPVS mode reads it) and
/// `KUBE-IPVS-IPS` (addresses bound to `kube-ipvs0`, which Switchboard does not have).
public enum KubeIPSet: String, Hashable, Sendable, CaseIterable, Comparable {
    case loopBack = "KUBE-LOOP-BACK"
    case clusterIP = "KUBE-CLUSTER-IP"
    case externalIP = "KUBE-EXTERNAL-IP"
    case externalIPLocal = "KUBE-EXTERNAL-IP-LOCAL"
    case loadBalancer = "KUBE-LOAD-BALANCER"
    case loadBalancerLocal = "KUBE-LOAD-BALANCER-LOCAL"
    case loadBalancerFW = "KUBE-LOAD-BALANCER-FW"
    case loadBalancerSourceIP = "KUBE-LOAD-BALANCER-SOURCE-IP"
    case loadBalancerSourceCIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
    case nodePortTCP = "KUBE-NODE-PORT-TCP"
    case nodePortLocalTCP = "KUBE-NODE-PORT-LOCAL-TCP"
    case nodePortUDP = "KUBE-NODE-PORT-UDP"
    case nodePortLocalUDP = "KUBE-NODE-PORT-LOCAL-UDP"
    case nodePortSCTP = "KUBE-NODE-PORT-SCTP-HASH"
    case nodePortLocalSCTP = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"

    public static func < (a: KubeIPSet, b: KubeIPSet) -> Bool { a.rawValue < b.rawValue }

    public var type: IPSetType {
        switch self {
        case .loopBack, .loadBalancerSourceIP: .hashIPPortIP
        case .loadBalancerSourceCIDR: .hashIPPortNet
        case .nodePortTCP, .nodePortLocalTCP, .nodePortUDP, .nodePortLocalUDP: .bitmapPort
        default: .hashIPPort
        }
    }

    /// kube-proxy's comment for the set. kube-proxy puts it on its iptables rules (`-m comment`), never on
    /// the set itself (`ipset create` gets no comment), and neither does Switchboard.
    public var comment: String {
        switch self {
        case .loopBack: "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"
        case .clusterIP: "Kubernetes service cluster ip + port for masquerade purpose"
        case .externalIP: "Kubernetes service external ip + port for masquerade and filter purpose"
        case .externalIPLocal: "Kubernetes service external ip + port with externalTrafficPolicy=local"
        case .loadBalancer: "Kubernetes service lb portal"
        case .loadBalancerLocal: "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"
        case .loadBalancerFW: "Kubernetes service load balancer ip + port for load balancer with sourceRange"
        case .loadBalancerSourceIP:
            "Kubernetes service load balancer ip + port + source IP for packet filter purpose"
        case .loadBalancerSourceCIDR:
            "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"
        case .nodePortTCP: "Kubernetes nodeport TCP port for masquerade purpose"
        case .nodePortLocalTCP: "Kubernetes nodeport TCP port with externalTrafficPolicy=local"
        case .nodePortUDP: "Kubernetes nodeport UDP port for masquerade purpose"
        case .nodePortLocalUDP: "Kubernetes nodeport UDP port with externalTrafficPolicy=local"
        case .nodePortSCTP: "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"
        case .nodePortLocalSCTP:
            "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"
        }
    }

    /// The kernel name for one family, as kube-proxy's IPv6 proxier names it: `KUBE-` becomes `KUBE-6-`,
    /// cut to ipset's 31 characters (`KUBE-6-LOAD-BALANCER-SOURCE-CID`, `KUBE-6-NODE-PORT-LOCAL-SCTP-HAS`).
    ///
    /// Stable across releases: firewall rules name these sets.
    public func name(_ family: IPFamily) -> String {
        guard family == .v6 else { return rawValue }
        return String(("KUBE-6-" + rawValue.dropFirst("KUBE-".count)).prefix(IPSet.maxNameLength))
    }

    public func family(_ family: IPFamily) -> IPSetFamily? {
        type == .bitmapPort ? nil : (family == .v4 ? .inet : .inet6)
    }

    /// Every kernel name the export owns (both families), for cleanup.
    public static var allNames: [String] {
        IPFamily.allCases.flatMap { family in allCases.map { $0.name(family) } }.sorted()
    }
}

/// The desired content of every exported set, kept up to date Service by Service: pure.
///
/// Every set of both families always exists (empty when nothing needs it), as kube-proxy creates all of
/// its sets, so a firewall rule naming one can always be loaded. A Service contributes exactly when the
/// compiler programs it (not ExternalName, headless or labelled for another proxy; a cluster IP of the
/// family; load-balancer ingress with ipMode `Proxy` skipped), with kube-proxy's entries:
///
/// | set | entry, per Service port |
/// |---|---|
/// | `KUBE-CLUSTER-IP` | `clusterIP,proto:port` |
/// | `KUBE-EXTERNAL-IP` / `-LOCAL` (externalTrafficPolicy Local) | `externalIP,proto:port` |
/// | `KUBE-LOAD-BALANCER` (and `-LOCAL` when Local) | `ingressIP,proto:port` |
/// | `KUBE-LOAD-BALANCER-FW` (with loadBalancerSourceRanges of the family) | `ingressIP,proto:port` |
/// | `KUBE-LOAD-BALANCER-SOURCE-CIDR` | `ingressIP,proto:port,sourceRange` |
/// | `KUBE-LOAD-BALANCER-SOURCE-IP` (a range holds the node's IP) | `ingressIP,proto:port,ingressIP` |
/// | `KUBE-NODE-PORT-TCP` / `-UDP` (and `-LOCAL-`) | `nodePort` (bitmap:port) |
/// | `KUBE-NODE-PORT-SCTP-HASH` (and `-LOCAL-`) | `nodeIP,sctp:nodePort` per node IP |
/// | `KUBE-LOOP-BACK` | `endpoint,proto:targetPort,endpoint` for ready endpoints on this node |
///
/// Node IPs are the Node's InternalIPs of the family (inside `--nodeport-addresses` when given); a source
/// range `0.0.0.0/0` or `::/0`, which `hash:ip,port,net` cannot hold, is written as its two halves.
public struct IPSetExport: Sendable {
    public let node: NodeContext

    /// What each Service contributes: set name → entries.
    private var contributions: [ObjectRef: [String: Set<String>]] = [:]
    /// How many Services contribute each entry of each set.
    private var counts: [String: [String: Int]] = [:]
    /// The Node object the contributions were computed with; nil before the first update.
    private var nodeObject: Node??

    public init(node: NodeContext) {
        self.node = node
    }

    /// Brings the sets up to date with `state`; `changed` names the Services that may have changed (nil:
    /// any). A change of this node's Node object recomputes every Service. Returns the names of the sets
    /// whose content changed.
    @discardableResult
    public mutating func update(_ state: ClusterState, changed: Set<ObjectRef>?) -> Set<String> {
        let currentNode = state.nodes[node.nodeName]
        var refs: Set<ObjectRef>
        if changed == nil || nodeObject != .some(currentNode) {
            refs = Set(state.services.keys).union(contributions.keys)
        } else {
            refs = changed!
        }
        nodeObject = .some(currentNode)
        var touched = Set<String>()
        for ref in refs {
            let new = state.services[ref].map { contribution(of: $0, slices: state.endpointSlices(for: ref), node: currentNode) } ?? [:]
            let old = contributions[ref] ?? [:]
            guard new != old else { continue }
            for (set, entries) in old {
                for entry in entries.subtracting(new[set] ?? []) {
                    let left = (counts[set]?[entry] ?? 1) - 1
                    counts[set]?[entry] = left > 0 ? left : nil
                    if left == 0 { touched.insert(set) }
                }
            }
            // Only an entry's first contributor or last one changes the set's content.
            for (set, entries) in new {
                for entry in entries.subtracting(old[set] ?? []) {
                    counts[set, default: [:]][entry, default: 0] += 1
                    if counts[set]?[entry] == 1 { touched.insert(set) }
                }
            }
            contributions[ref] = new.isEmpty ? nil : new
        }
        return touched
    }

    /// Every exported set, both families, with its current entries, in name order.
    public var sets: [IPSet] {
        IPFamily.allCases.flatMap { family in
            KubeIPSet.allCases.map { kind in
                let name = kind.name(family)
                return IPSet(
                    name: name, type: kind.type, family: kind.family(family),
                    entries: Set(counts[name].map { Array($0.keys) } ?? []))
            }
        }.sorted { $0.name < $1.name }
    }

    // MARK: - One Service

    /// kube-proxy's entries for one Service, both families.
    func contribution(of service: Service, slices: [EndpointSlice], node nodeObject: Node?) -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        func insert(_ kind: KubeIPSet, _ family: IPFamily, _ entry: String) {
            out[kind.name(family), default: []].insert(entry)
        }
        let local = service.externalTrafficPolicy == .local
        let view = ServiceView(service, slices: slices, nodeName: node.nodeName, zone: nodeObject?.zone)
        for (family, familyView) in view.families {
            let nodeIPs = (nodeObject?.internalIPs ?? []).filter { ip in
                ip.family == family && (node.nodePortAddresses.isEmpty || node.nodePortAddresses.contains { $0.contains(ip) })
            }
            let primaryNodeIP = nodeObject?.internalIPs.first { $0.family == family }
            let sourceRanges = service.loadBalancerSourceRanges.filter { $0.family == family }.flatMap(Self.storable)

            for port in familyView.ports {
                let proto = port.port.protocol.nftName
                let portPart = "\(proto):\(port.port.port)"
                insert(.clusterIP, family, "\(port.clusterIP),\(portPart)")
                for ip in port.externalIPs { insert(local ? .externalIPLocal : .externalIP, family, "\(ip),\(portPart)") }
                for ip in port.loadBalancerIPs {
                    insert(.loadBalancer, family, "\(ip),\(portPart)")
                    if local { insert(.loadBalancerLocal, family, "\(ip),\(portPart)") }
                    guard !sourceRanges.isEmpty else { continue }
                    insert(.loadBalancerFW, family, "\(ip),\(portPart)")
                    for range in sourceRanges { insert(.loadBalancerSourceCIDR, family, "\(ip),\(portPart),\(range)") }
                    if let primaryNodeIP, service.loadBalancerSourceRanges.contains(where: { $0.contains(primaryNodeIP) }) {
                        insert(.loadBalancerSourceIP, family, "\(ip),\(portPart),\(ip)")
                    }
                }
                if let nodePort = port.nodePort {
                    switch port.port.protocol {
                    case .tcp:
                        insert(.nodePortTCP, family, "\(nodePort)")
                        if local { insert(.nodePortLocalTCP, family, "\(nodePort)") }
                    case .udp:
                        insert(.nodePortUDP, family, "\(nodePort)")
                        if local { insert(.nodePortLocalUDP, family, "\(nodePort)") }
                    case .sctp:
                        for ip in nodeIPs {
                            insert(.nodePortSCTP, family, "\(ip),sctp:\(nodePort)")
                            if local { insert(.nodePortLocalSCTP, family, "\(ip),sctp:\(nodePort)") }
                        }
                    }
                }
                for endpoint in port.endpoints.localReady {
                    insert(.loopBack, family, "\(endpoint.address),\(proto):\(endpoint.port),\(endpoint.address)")
                }
            }
        }
        return out
    }

    /// `hash:ip,port,net` holds prefixes of length 1 or more: `/0` is written as its two halves.
    static func storable(_ cidr: CIDR) -> [CIDR] {
        guard cidr.prefixLength == 0 else { return [cidr] }
        var high = cidr.address.bytes
        high[0] = 0x80
        return [
            CIDR(address: cidr.address, prefixLength: 1),
            CIDR(address: IPAddress(family: cidr.family, bytes: high), prefixLength: 1),
        ]
    }
}

/// The exported sets for a cluster state, computed from scratch (what `IPSetExport`'s first update gives).
public func exportedIPSets(_ state: ClusterState, for node: NodeContext) -> [IPSet] {
    var export = IPSetExport(node: node)
    export.update(state, changed: nil)
    return export.sets
}
