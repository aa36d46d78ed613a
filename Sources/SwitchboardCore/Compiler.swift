import NetworkTypes
import NFTModel

/// The compiler's output: the desired ruleset and what was skipped or ignored, and why.
public struct CompileResult: Hashable, Sendable {
    public var ruleset: Ruleset
    public var diagnostics: [Diagnostic]

    public init(ruleset: Ruleset, diagnostics: [Diagnostic]) {
        self.ruleset = ruleset
        self.diagnostics = diagnostics
    }
}

/// The fixed names of the ruleset (see DESIGN.md, "Ruleset shape", and README's "Ruleset shape").
///
/// The set of chains and maps is fixed: every Service, port and endpoint is elements of the maps below,
/// never a chain or map of its own. The kernel re-validates every chain reachable from a base chain on
/// each commit that adds a jump, and libnftables 1.0.6 lists every chain before each `add element`; with a
/// chain per Service and endpoint that made a one-element change cost ~1 s at 10,000 Services.
public enum RulesetNames {
    /// VIP entry points with endpoints, one set per Maglev table size M: `addr . proto . port`.
    public static func serviceVIPs(_ m: Int) -> String { "service-ips-m\(m)" }
    /// NodePort entry points with endpoints, per M: `proto . nodeport`.
    public static func serviceNodePorts(_ m: Int) -> String { "service-nodeports-m\(m)" }
    /// The chain that picks a backend for a VIP whose table has M slots.
    public static func maglevChain(_ m: Int) -> String { "maglev-m\(m)" }
    /// The same for a NodePort.
    public static func nodePortMaglevChain(_ m: Int) -> String { "nodeport-maglev-m\(m)" }
    /// `externalTrafficPolicy: Local`: external VIPs whose table over this node's endpoints has M slots.
    public static func localVIPs(_ m: Int) -> String { "local-ips-m\(m)" }
    /// The same for node ports.
    public static func localNodePorts(_ m: Int) -> String { "local-nodeports-m\(m)" }
    public static func localMaglevChain(_ m: Int) -> String { "local-maglev-m\(m)" }
    public static func localNodePortMaglevChain(_ m: Int) -> String { "local-nodeport-maglev-m\(m)" }
    /// `addr . proto . port . slot : endpoint-addr . endpoint-port`: every VIP's Maglev table.
    public static let backends = "backends"
    /// `proto . nodeport . slot : endpoint-addr . endpoint-port`: every NodePort's Maglev table.
    public static let nodePortBackends = "nodeport-backends"
    /// The Maglev tables over this node's endpoints only (`externalTrafficPolicy: Local`).
    public static let localBackends = "local-backends"
    public static let localNodePortBackends = "local-nodeport-backends"
    /// External IPs and LoadBalancer IPs of `externalTrafficPolicy: Cluster` Services: masqueraded.
    public static let externalVIPs = "external-ips"
    /// Node ports of `externalTrafficPolicy: Cluster` Services: masqueraded.
    public static let externalNodePorts = "external-nodeports"
    /// External and LoadBalancer IPs of `externalTrafficPolicy: Local` Services: external clients keep
    /// their address and reach this node's endpoints only.
    public static let externalLocalVIPs = "external-local-ips"
    public static let externalLocalNodePorts = "external-local-nodeports"
    public static let externalLocal = "external-local"
    public static let externalLocalNodePort = "external-local-nodeport"
    /// `endpoint . endpoint`: a pod reaching itself through a Service (hairpin) is masqueraded.
    public static let hairpin = "hairpin"
    public static let noEndpointServices = "no-endpoint-services"
    public static let noEndpointNodePorts = "no-endpoint-nodeports"
    /// `internalTrafficPolicy: Local` cluster IPs with endpoints, none of them on this node: dropped.
    public static let noLocalEndpointServices = "no-local-endpoint-services"
    /// LoadBalancer IPs with `loadBalancerSourceRanges`, and `VIP . proto . port . source range`.
    public static let firewallVIPs = "firewall-ips"
    public static let firewallAllow = "firewall-allow"
    /// `sessionAffinity: ClientIP`: `client . VIP . proto . port : endpoint . port`, filled from the
    /// packet path with the Service's timeout.
    public static let affinity = "affinity"
    /// `VIP . proto . port : jump affinity-tT` and `proto . nodeport : jump affinity-tT`.
    public static let affinityServices = "affinity-services"
    public static let affinityNodePorts = "affinity-nodeports"
    /// The chain that records a connection's endpoint in `affinity` for T seconds.
    public static func affinityChain(_ seconds: Int) -> String { "affinity-t\(seconds)" }
    public static let nodePortAddresses = "nodeport-addresses"
    public static let clusterIPs = "cluster-ips"
    /// Where pod traffic comes from (`--detect-local-mode` ClusterCIDR: `--cluster-cidr`; NodeCIDR: the
    /// Node's `podCIDRs`).
    public static let podCIDRs = "pod-cidrs"
    public static let services = "services"
    public static let endpointsCheck = "endpoints-check"
    public static let markForMasquerade = "mark-for-masquerade"
    public static let masquerading = "masquerading"
    /// One element, never referenced by a rule: the agent's periodic check that our table is still what
    /// it wrote (a flushed or deleted table has lost it) without listing millions of elements.
    public static let canary = "canary"
    public static let canaryElement = "1"
    /// The packet-mark bit that asks nat postrouting to masquerade (kube-proxy's bit).
    public static let masqueradeMark = "0x00004000"
    /// The fixed jhash seed: every node hashes a flow to the same Maglev slot.
    public static let jhashSeed = "0x5b1e0c1d"
    /// Sets the skeleton fills itself; every other set's elements come from Services (or, for
    /// `affinity`, from the packet path).
    static let skeletonFilledSets: Set<String> = [podCIDRs, nodePortAddresses, canary]
}

/// Compiles the cluster into the desired ruleset for one node: pure and deterministic.
///
/// All Kubernetes semantics live here. A Service that cannot be compiled is skipped with a
/// `Diagnostic`; it never stops the others. The agent keeps an `IncrementalCompiler` instead, which
/// gives the same result while recompiling only the Services that changed; this is its first update.
public func compile(_ state: ClusterState, for node: NodeContext) -> CompileResult {
    var compiler = IncrementalCompiler(node: node)
    compiler.update(state, changed: nil)
    return CompileResult(ruleset: compiler.ruleset, diagnostics: compiler.diagnostics)
}

/// What one Service contributes to one family's table: claims on entries of the shared maps, which
/// `IncrementalCompiler` resolves between Services.
struct ServiceFragment: Hashable, Sendable {
    /// A claim on one entry point (or address), with every element that goes with it: a VIP's dispatch
    /// entry comes with its Maglev slots in `backends`, and they are held or lost together.
    struct Claim: Hashable, Sendable {
        var elements: [Element]
        /// The index of the port that made the claim, for the conflict diagnostic.
        var portIndex: Int
        /// Chains that exist while the claim is held (a session-affinity timeout's recording chain).
        var chains: [String: Chain] = [:]
    }

    /// One element, or with `slots` a whole Maglev table: the elements `<key> . <slot>` of `set`.
    struct Element: Hashable, Sendable {
        var set: String
        var key: String
        var data: String
        var slots: SlotTable? = nil
    }

    /// At most one claim per (space, key); a later claim of the same Service replaces an earlier one.
    var claims: [ClaimKey: Claim] = [:]

    mutating func claim(_ space: ClaimSpace, _ key: String, port: Int, _ elements: [Element], chains: [String: Chain] = [:]) {
        claims[ClaimKey(space: space, key: key)] = Claim(elements: elements, portIndex: port, chains: chains)
    }
}

/// What Services claim. Within a space a key is held by one Service (the first in name order); in
/// `vip` and `nodePort` the others are told, in the shared ones they are not (they want the same thing).
enum ClaimSpace: Hashable, Sendable, CaseIterable {
    /// (address, protocol, port): a cluster, external or load-balancer VIP's port.
    case vip
    /// (protocol, node port).
    case nodePort
    /// A cluster IP in `cluster-ips` (several Services may name it).
    case clusterIP
    /// An endpoint address in `hairpin` (several Services may have it).
    case hairpin
    /// A session-affinity timeout's recording chain (shared by every Service with that timeout).
    case affinityTimeout

    var reportsConflicts: Bool { self == .vip || self == .nodePort }
}

struct ClaimKey: Hashable, Sendable {
    var space: ClaimSpace
    var key: String
}

/// Everything one Service compiles to, per family, with its own diagnostics.
struct ServiceOutput: Hashable, Sendable {
    var fragments: [IPFamily: ServiceFragment] = [:]
    var diagnostics: [Diagnostic] = []
}

/// Compiles one Service (with its EndpointSlices) for one node. Knows nothing of other Services.
struct ServiceCompiler {
    let node: NodeContext
    /// This node's `topology.kubernetes.io/zone`, for topology hints.
    let zone: String?

    func compile(_ service: Service, slices: [EndpointSlice]) -> ServiceOutput {
        let view = ServiceView(service, slices: slices, nodeName: node.nodeName, zone: zone)
        var output = ServiceOutput(diagnostics: view.diagnostics)
        for (family, familyView) in view.families {
            output.fragments[family] = compile(service, familyView, family: family)
        }
        return output
    }

    private func compile(_ service: Service, _ view: ServiceView.FamilyView, family: IPFamily) -> ServiceFragment {
        let n = RulesetNames.self
        var fragment = ServiceFragment()
        let firewalled = service.type == .loadBalancer && !service.loadBalancerSourceRanges.isEmpty
        let sourceRanges = CIDR.outermost(service.loadBalancerSourceRanges.filter { $0.family == family })
        let externalLocal = service.externalTrafficPolicy == .local
        let internalLocal = service.internalTrafficPolicy == .local
        // Session affinity: the entry points' verdict-map entries jump to the chain that records the
        // endpoint for this timeout; the chain exists while some Service claims it.
        var affinityTarget: String?
        if case .clientIP(let timeout) = service.sessionAffinity {
            let chain = n.affinityChain(timeout)
            affinityTarget = "jump \(chain)"
            fragment.claim(.affinityTimeout, chain, port: 0, [], chains: [chain: affinityChain(family: family, timeout: timeout)])
        }
        if !service.ports.isEmpty {
            let clusterIP = view.clusterIP.description
            fragment.claim(.clusterIP, clusterIP, port: 0, [.init(set: n.clusterIPs, key: clusterIP, data: "")])
        }

        for port in view.ports {
            let index = port.index
            let endpoints = port.endpoints
            let proto = port.port.protocol.nftName
            let number = port.port.port

            // Entry points: the cluster IP, then external and load-balancer IPs, then the node port.
            let internalKey = "\(port.clusterIP) . \(proto) . \(number)"
            let externalKeys = port.externalAddresses.map { (ip: $0, key: "\($0) . \(proto) . \(number)") }
            let nodePort = port.nodePort.map { "\(proto) . \($0)" }
            if !endpoints.hasAny {
                for key in [internalKey] + externalKeys.map(\.key) {
                    fragment.claim(.vip, key, port: index, [.init(set: n.noEndpointServices, key: key, data: "")])
                }
                if let nodePort {
                    fragment.claim(.nodePort, nodePort, port: index, [.init(set: n.noEndpointNodePorts, key: nodePort, data: "")])
                }
                continue
            }

            // The cluster IP: all endpoints, or with internalTrafficPolicy Local this node's (none: drop).
            let internalEndpoints = internalLocal ? endpoints.local : endpoints.cluster
            var clusterIPEntry: [ServiceFragment.Element] = []
            if internalEndpoints.isEmpty {
                clusterIPEntry.append(.init(set: n.noLocalEndpointServices, key: internalKey, data: ""))
            } else {
                clusterIPEntry += table(internalEndpoints, dispatch: n.serviceVIPs, map: n.backends, entry: internalKey)
                if let affinityTarget { clusterIPEntry.append(.init(set: n.affinityServices, key: internalKey, data: affinityTarget)) }
            }
            fragment.claim(.vip, internalKey, port: index, clusterIPEntry)

            // External and load-balancer IPs: all endpoints (externalTrafficPolicy Cluster, masqueraded);
            // with Local, external clients get this node's endpoints (none: drop) and keep their address,
            // while pods and the node itself still get all of them.
            let loadBalancerIPs = Set(port.loadBalancerIPs)
            for external in externalKeys {
                var elements = table(endpoints.cluster, dispatch: n.serviceVIPs, map: n.backends, entry: external.key)
                if externalLocal {
                    elements.append(.init(set: n.externalLocalVIPs, key: external.key, data: ""))
                    elements += table(endpoints.local, dispatch: n.localVIPs, map: n.localBackends, entry: external.key)
                } else {
                    elements.append(.init(set: n.externalVIPs, key: external.key, data: ""))
                }
                if let affinityTarget { elements.append(.init(set: n.affinityServices, key: external.key, data: affinityTarget)) }
                if firewalled && loadBalancerIPs.contains(external.ip) {
                    elements.append(.init(set: n.firewallVIPs, key: external.key, data: ""))
                    for range in sourceRanges {
                        elements.append(.init(set: n.firewallAllow, key: "\(external.key) . \(range)", data: ""))
                    }
                }
                fragment.claim(.vip, external.key, port: index, elements)
            }
            if let nodePort {
                var elements = table(endpoints.cluster, dispatch: n.serviceNodePorts, map: n.nodePortBackends, entry: nodePort)
                if externalLocal {
                    elements.append(.init(set: n.externalLocalNodePorts, key: nodePort, data: ""))
                    elements += table(endpoints.local, dispatch: n.localNodePorts, map: n.localNodePortBackends, entry: nodePort)
                } else {
                    elements.append(.init(set: n.externalNodePorts, key: nodePort, data: ""))
                }
                if let affinityTarget { elements.append(.init(set: n.affinityNodePorts, key: nodePort, data: affinityTarget)) }
                fragment.claim(.nodePort, nodePort, port: index, elements)
            }
            for endpoint in Set(endpoints.cluster + endpoints.local) {
                let pair = "\(endpoint.address) . \(endpoint.address)"
                fragment.claim(.hairpin, pair, port: index, [.init(set: n.hairpin, key: pair, data: "")])
            }
        }
        return fragment
    }

    /// One entry point's Maglev table over `endpoints`: its entry in the dispatch set for the table's
    /// size, and its slots in `map`. Nothing for no endpoints.
    private func table(
        _ endpoints: [Backend], dispatch: (Int) -> String, map: String, entry: String
    ) -> [ServiceFragment.Element] {
        guard !endpoints.isEmpty else { return [] }
        let maglev = MaglevTable(backends: endpoints.map(\.identity), size: MaglevTable.size(forBackendCount: endpoints.count))
        let byIdentity = Dictionary(endpoints.map { ($0.identity, $0.dnatTarget) }, uniquingKeysWith: { a, _ in a })
        let targets = maglev.backends.map { byIdentity[$0]! }
        return [
            .init(set: dispatch(maglev.size), key: entry, data: ""),
            .init(set: map, key: entry, data: "", slots: SlotTable(targets: targets, slots: maglev.slots.map { UInt32($0) })),
        ]
    }

    /// The chain that records (or refreshes) a new connection's endpoint in `affinity` for `timeout`
    /// seconds, run in nat postrouting after DNAT (so `daddr . dport` is the endpoint and
    /// `ct original` the entry point). nft types `ct original proto-dst` only after a protocol match;
    /// `tcp dport != 0` is that match and lists back as written (a `meta l4proto tcp` would not).
    private func affinityChain(family: IPFamily, timeout: Int) -> Chain {
        let p = family.nftPayload
        return Chain(name: RulesetNames.affinityChain(timeout), rules: L4Protocol.allCases.map { proto in
            let l4 = proto.nftName
            return Rule(
                "\(l4) dport != 0 update @\(RulesetNames.affinity) { \(p) saddr . ct original \(p) daddr . meta l4proto . ct original proto-dst timeout \(nftDuration(seconds: timeout)) : \(p) daddr . \(l4) dport }")
        })
    }
}

