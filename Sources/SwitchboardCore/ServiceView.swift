import NetworkTypes

/// One Service as this node serves it, resolved once from the Service, its EndpointSlices and the node:
/// which families serve it, where its traffic enters (VIPs and node port per port) and which endpoints
/// each kind of traffic may reach, and why. Pure.
///
/// Every Kubernetes rule about entry points and endpoint eligibility lives in this file, in one function
/// each. The compiler, the conntrack summary, the ipset export and the health checks read this value and
/// restate none of it.
public struct ServiceView: Hashable, Sendable {
    public var service: Service
    /// The families that serve the Service, each with its ports: a family serves it when the Service has
    /// a cluster IP of that family (kube-proxy's per-family proxiers); none when the Service is not proxied.
    public var families: [IPFamily: FamilyView]
    /// Why parts of the Service are not served (no cluster IP, a duplicate port).
    public var diagnostics: [Diagnostic]

    /// The Service in one family: its cluster IP and its ports, duplicates left out.
    public struct FamilyView: Hashable, Sendable {
        public var clusterIP: IPAddress
        public var ports: [ServicePortView]
    }

    /// Resolves `service` with its slices (any family; each family reads its own) for the node named
    /// `nodeName` (nil: no endpoint counts as this node's), whose Node object is in `zone` (topology hints).
    public init(_ service: Service, slices: [EndpointSlice], nodeName: String?, zone: String?) {
        self.service = service
        families = [:]
        diagnostics = []
        guard service.isProxied else { return }
        for family in IPFamily.allCases {
            // Without any cluster IP (not yet allocated) kube-proxy skips the Service, and so do we.
            guard let clusterIP = service.clusterIPs.first(where: { $0.family == family }) else {
                if service.clusterIPs.isEmpty && family == .v4 {
                    diagnostics.append(diagnostic("spec.clusterIPs", "no cluster IP; the Service is skipped"))
                }
                continue
            }
            let familySlices = slices.filter { $0.addressType.ipFamily == family }
            let externalIPs = deduplicated(service.externalIPs.filter { $0.family == family })
            let loadBalancerIPs = service.loadBalancerIPs(family)
            // loadBalancerSourceRanges firewall a LoadBalancer's IPs; without a range of this family, only
            // the node itself gets through.
            let sourceRanges = service.type == .loadBalancer && !service.loadBalancerSourceRanges.isEmpty
                ? CIDR.outermost(service.loadBalancerSourceRanges.filter { $0.family == family }) : nil
            var ports: [ServicePortView] = []
            var seen = Set<String>()
            for (index, port) in service.ports.enumerated() {
                // Two ports with the same protocol and number: the first one counts.
                let portID = "\(port.protocol.nftName)/\(port.port)"
                guard seen.insert(portID).inserted else {
                    let message = diagnostic("spec.ports[\(index)]", "duplicate port \(portID); ignored")
                    if !diagnostics.contains(message) { diagnostics.append(message) }
                    continue
                }
                ports.append(
                    ServicePortView(
                        index: index, port: port, family: family, clusterIP: clusterIP, externalIPs: externalIPs,
                        loadBalancerIPs: loadBalancerIPs, loadBalancerSourceRanges: sourceRanges,
                        nodePort: service.type == .nodePort || service.type == .loadBalancer ? port.nodePort : nil,
                        endpoints: EndpointClasses(port.resolve(familySlices), nodeName: nodeName, zone: zone)))
            }
            families[family] = FamilyView(clusterIP: clusterIP, ports: ports)
        }
    }

    /// Every served port of every family, IPv4 first.
    public var ports: [ServicePortView] { IPFamily.allCases.flatMap { families[$0]?.ports ?? [] } }

    private func diagnostic(_ field: String, _ message: String) -> Diagnostic {
        Diagnostic(.service(service.ref), field: field, message: message, severity: .warning)
    }
}

/// One port of a Service in one family: its entry points and its endpoints.
public struct ServicePortView: Hashable, Sendable {
    /// The port's index in `spec.ports`.
    public var index: Int
    public var port: ServicePort
    public var family: IPFamily
    public var clusterIP: IPAddress
    /// `spec.externalIPs` of the family, each once.
    public var externalIPs: [IPAddress]
    /// The load-balancer ingress IPs served (`Service.loadBalancerIPs`).
    public var loadBalancerIPs: [IPAddress]
    /// The source ranges a load-balancer IP accepts new connections from (outermost, of the family),
    /// besides the node itself; nil when the Service is not firewalled (not a LoadBalancer, or no
    /// `loadBalancerSourceRanges`).
    public var loadBalancerSourceRanges: [CIDR]?
    /// The node port: NodePort and LoadBalancer Services only.
    public var nodePort: Int?
    public var endpoints: EndpointClasses

    /// Every external entry address: external IPs, then load-balancer IPs, each once.
    public var externalAddresses: [IPAddress] { deduplicated(externalIPs + loadBalancerIPs) }
}

/// One backend of a service port: an endpoint's address with the port resolved through its slice.
public struct Backend: Hashable, Sendable, Comparable {
    public var address: IPAddress
    public var port: Int

    public init(address: IPAddress, port: Int) {
        self.address = address
        self.port = port
    }

    /// `10.0.0.5:80` or `[fd00::5]:80`: the Maglev identity, the same on every node.
    public var identity: String { address.family == .v4 ? "\(address):\(port)" : "[\(address)]:\(port)" }
    /// A backend map's data for it, as nft lists it: `10.0.0.5 . 80`.
    public var dnatTarget: String { "\(address) . \(port)" }

    /// The backend a map's data names (`dnatTarget`'s text); nil for other text.
    public init?(dnatTarget text: String) {
        let parts = text.split(separator: " . ", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])), let port = Int(parts[1]) else { return nil }
        self.init(address: address, port: port)
    }

    public static func < (a: Backend, b: Backend) -> Bool { (a.address, a.port) < (b.address, b.port) }
}

extension MaglevTable {
    /// The Maglev table over `endpoints` (by identity, the same on every node), sized by their count
    /// (`size(forBackendCount:)`): what the compiler writes and `explain` looks a flow up in.
    init(_ endpoints: [Backend]) {
        self.init(backends: endpoints.map(\.identity), size: MaglevTable.size(forBackendCount: endpoints.count))
    }
}

/// The endpoints of one service port, as kube-proxy categorises them. Duplicates across slices count once;
/// the lists are in address order.
public struct EndpointClasses: Hashable, Sendable {
    /// Why `cluster` holds what it holds.
    public enum ClusterChoice: Hashable, Sendable {
        /// Every ready endpoint.
        case ready
        /// The ready endpoints hinted for this node (`trafficDistribution: PreferSameNode`; see `Topology`).
        case readyOnNode(String)
        /// The ready endpoints hinted for this node's zone (`PreferSameZone`, `PreferClose`, topology-aware
        /// routing; see `Topology`).
        case readyInZone(String)
        /// No endpoint is ready: the serving terminating ones (KEP-1669); possibly none.
        case servingTerminating
    }

    /// Why `local` holds what it holds.
    public enum LocalChoice: Hashable, Sendable {
        /// This node's ready endpoints.
        case ready
        /// None of this node's endpoints is ready: its serving terminating ones; possibly none.
        case servingTerminating
    }

    /// For traffic that may go anywhere: ready endpoints (narrowed by topology hints); when none is ready,
    /// the serving terminating ones.
    public var cluster: [Backend]
    public var clusterChoice: ClusterChoice
    /// For Local traffic policies: this node's ready endpoints; when none, its serving terminating ones.
    public var local: [Backend]
    public var localChoice: LocalChoice
    /// The ready endpoints, or when none is ready the serving terminating ones, topology hints ignored:
    /// where the port's traffic may have gone on any node (stale-conntrack cleanup).
    public var usable: Set<Backend>
    /// This node's ready endpoints, without the terminating fallback (ipset `KUBE-LOOP-BACK`).
    public var localReady: [Backend]
    /// Some endpoint anywhere is ready, or serving while terminating: without one, connections are
    /// rejected; with one but none for a Local policy, they are dropped.
    public var hasAny: Bool

    /// Classifies the resolved endpoints of a port (`ServicePort.resolve`) for node `nodeName` (nil: none
    /// is local) in `zone`.
    public init(_ resolved: [ServicePort.ResolvedEndpoint], nodeName: String?, zone: String?) {
        func backends(_ include: (Endpoint) -> Bool) -> [Backend] {
            Set(resolved.filter { include($0.endpoint) }.map { Backend(address: $0.address, port: $0.port) }).sorted()
        }
        let servingTerminating = { (e: Endpoint) in e.isServing && e.isTerminating }
        let isLocal = { (e: Endpoint) in nodeName != nil && e.nodeName == nodeName }

        let ready = backends { $0.isReady }
        switch Topology(resolved.map(\.endpoint), nodeName: nodeName, zone: zone) {
        case .sameNode(let node):
            cluster = backends { $0.isReady && $0.nodeHints?.contains(node) == true }
            clusterChoice = .readyOnNode(node)
        case .sameZone(let zone):
            cluster = backends { $0.isReady && $0.zoneHints?.contains(zone) == true }
            clusterChoice = .readyInZone(zone)
        case .none:
            cluster = ready
            clusterChoice = .ready
        }
        if cluster.isEmpty {
            cluster = backends(servingTerminating)
            clusterChoice = .servingTerminating
        }
        localReady = backends { $0.isReady && isLocal($0) }
        local = localReady
        localChoice = .ready
        if local.isEmpty {
            local = backends { servingTerminating($0) && isLocal($0) }
            localChoice = .servingTerminating
        }
        usable = Set(ready.isEmpty ? backends(servingTerminating) : ready)
        hasAny = resolved.contains { $0.endpoint.isReady || servingTerminating($0.endpoint) }
    }
}

/// Which hints narrow a port's endpoints for traffic that may go anywhere (kube-proxy's
/// `topologyModeFromHints`, 1.34). Only ready endpoints are looked at:
/// - **same node** when every ready endpoint carries node hints (`hints.forNodes`, written for
///   `trafficDistribution: PreferSameNode`) and at least one names this node;
/// - otherwise **same zone** when every ready endpoint carries zone hints (`hints.forZones`) and at least one
///   names the zone of this node's Node (`topology.kubernetes.io/zone`);
/// - otherwise none: every ready endpoint. There is no fallback after the choice: a mode is chosen only
///   when it leaves at least one ready endpoint.
enum Topology: Hashable {
    case sameNode(String)
    case sameZone(String)
    case none

    init(_ endpoints: [Endpoint], nodeName: String?, zone: String?) {
        var anyReady = false
        var allNodeHints = true, forThisNode = false
        var allZoneHints = true, forThisZone = false
        for endpoint in endpoints where endpoint.isReady {
            anyReady = true
            if let hints = endpoint.nodeHints, !hints.isEmpty {
                if let nodeName, hints.contains(nodeName) { forThisNode = true }
            } else {
                allNodeHints = false
            }
            if let hints = endpoint.zoneHints, !hints.isEmpty {
                if let zone, !zone.isEmpty, hints.contains(zone) { forThisZone = true }
            } else {
                allZoneHints = false
            }
        }
        if anyReady && allNodeHints && forThisNode, let nodeName {
            self = .sameNode(nodeName)
        } else if anyReady && allZoneHints && forThisZone, let zone {
            self = .sameZone(zone)
        } else {
            self = .none
        }
    }
}

extension ClusterState {
    /// The number of ready endpoints of `service` on node `nodeName`, which its health check reports:
    /// distinct addresses of endpoints whose `nodeName` is this node and whose `ready` condition holds
    /// (nil counts as ready; serving but terminating endpoints are not ready, so they do not count). As
    /// kube-proxy's `EndpointsMap.LocalReadyEndpoints`: an endpoint is its first address, only slices
    /// that carry a usable port contribute (kube-proxy builds its endpoints per slice port), and IPv4 and
    /// IPv6 slices both count. FQDN slices are not proxied and do not count.
    public func localReadyEndpoints(of service: ObjectRef, onNode nodeName: String) -> Int {
        var addresses: Set<IPAddress> = []
        for slice in endpointSlices(for: service) where slice.addressType != .fqdn {
            guard slice.ports.contains(where: { $0.port != nil }) else { continue }
            for endpoint in slice.endpoints where endpoint.isReady && endpoint.nodeName == nodeName {
                if let address = endpoint.addresses.first { addresses.insert(address) }
            }
        }
        return addresses.count
    }
}

extension EndpointAddressType {
    /// nil for FQDN slices, which kube-proxy ignores.
    var ipFamily: IPFamily? {
        switch self {
        case .ipv4: return .v4
        case .ipv6: return .v6
        case .fqdn: return nil
        }
    }
}
