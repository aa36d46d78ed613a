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
    /// The fixed jhash seed (`FlowHash.seed`): every node hashes a flow to the same Maglev slot.
    public static let jhashSeed: String = {
        let hex = String(FlowHash.seed, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - hex.count) + hex
    }()
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

/// Service ports that have endpoints, none of them on this node, and a `Local` traffic policy, so that
/// traffic of that kind to them is dropped here: kube-proxy's `kubeproxy_sync_proxy_rules_no_local_endpoints_total`
/// (a gauge). Counted as kube-proxy's per-family proxiers count it: once per service port and IP family
/// the Service is served in. A port without any usable endpoint is not counted (its traffic is rejected).
public struct NoLocalEndpointCounts: Hashable, Sendable {
    /// `internalTrafficPolicy: Local`: cluster-IP traffic is dropped (`traffic_policy="internal"`).
    public var internalPolicy = 0
    /// `externalTrafficPolicy: Local` on an externally reachable Service (NodePort, LoadBalancer or external
    /// IPs): traffic from outside the cluster is dropped (`traffic_policy="external"`).
    public var externalPolicy = 0

    public init(internalPolicy: Int = 0, externalPolicy: Int = 0) {
        self.internalPolicy = internalPolicy
        self.externalPolicy = externalPolicy
    }

    mutating func add(_ other: NoLocalEndpointCounts) {
        internalPolicy += other.internalPolicy
        externalPolicy += other.externalPolicy
    }

    mutating func remove(_ other: NoLocalEndpointCounts) {
        internalPolicy -= other.internalPolicy
        externalPolicy -= other.externalPolicy
    }
}

/// The key text of an entry point in the dispatch sets and maps, and in the claims: a VIP port
/// `addr . proto . port`, a node port `proto . port`.
enum EntryKey {
    static func vip(_ address: IPAddress, _ proto: L4Protocol, _ port: Int) -> String { "\(address) . \(proto.nftName) . \(port)" }
    static func nodePort(_ proto: L4Protocol, _ port: Int) -> String { "\(proto.nftName) . \(port)" }
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
        /// The Service port an entry point's element stands for (`ServiceCompiler.owner`); nil for the
        /// others (Maglev slots, hairpin pairs, cluster IPs, source ranges).
        var comment: String? = nil
    }

    /// At most one claim per (space, key); a later claim of the same Service replaces an earlier one.
    var claims: [ClaimKey: Claim] = [:]
    /// Its ports whose Local traffic policy finds no endpoint on this node.
    var noLocalEndpoints = NoLocalEndpointCounts()

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

    /// What a Service's settings ask of each of its entry points in one family.
    private struct Policies {
        var externalLocal: Bool
        var internalLocal: Bool
        /// `jump affinity-tT` for `sessionAffinity: ClientIP`.
        var affinityTarget: String?
        /// kube-proxy's `ExternallyAccessible` (NodePort, LoadBalancer or external IPs): only then does
        /// externalTrafficPolicy apply.
        var externallyReachable: Bool
    }

    private func compile(_ service: Service, _ view: ServiceView.FamilyView, family: IPFamily) -> ServiceFragment {
        let n = RulesetNames.self
        var fragment = ServiceFragment()
        var policies = Policies(
            externalLocal: service.externalTrafficPolicy == .local, internalLocal: service.internalTrafficPolicy == .local,
            externallyReachable: service.type == .nodePort || service.type == .loadBalancer || !service.externalIPs.isEmpty)
        // Session affinity: the entry points' verdict-map entries jump to the chain that records the
        // endpoint for this timeout; the chain exists while some Service claims it.
        if case .clientIP(let timeout) = service.sessionAffinity {
            let chain = n.affinityChain(timeout)
            policies.affinityTarget = "jump \(chain)"
            fragment.claim(.affinityTimeout, chain, port: 0, [], chains: [chain: affinityChain(family: family, timeout: timeout)])
        }
        if !service.ports.isEmpty {
            let clusterIP = view.clusterIP.description
            fragment.claim(.clusterIP, clusterIP, port: 0, [.init(set: n.clusterIPs, key: clusterIP, data: "")])
        }
        // Entry points: the cluster IP, then external and load-balancer IPs, then the node port.
        for port in view.ports {
            let owner = Self.owner(service.ref, port: port.port.name)
            let internalKey = EntryKey.vip(port.clusterIP, port.port.protocol, port.port.port)
            let externalKeys = port.externalAddresses.map { (ip: $0, key: EntryKey.vip($0, port.port.protocol, port.port.port)) }
            let nodePort = port.nodePort.map { EntryKey.nodePort(port.port.protocol, $0) }
            guard port.endpoints.hasAny else {
                rejectAll(vips: [internalKey] + externalKeys.map(\.key), nodePort: nodePort, port, owner, &fragment)
                continue
            }
            if port.endpoints.local.isEmpty {
                if policies.internalLocal { fragment.noLocalEndpoints.internalPolicy += 1 }
                if policies.externalLocal && policies.externallyReachable { fragment.noLocalEndpoints.externalPolicy += 1 }
            }
            clusterIPEntry(internalKey, port, policies, owner, &fragment)
            let loadBalancerIPs = Set(port.loadBalancerIPs)
            for external in externalKeys {
                externalEntry(
                    external.key, isLoadBalancer: loadBalancerIPs.contains(external.ip), port, policies, owner,
                    &fragment)
            }
            if let nodePort { nodePortEntry(nodePort, port, policies, owner, &fragment) }
            for endpoint in Set(port.endpoints.cluster + port.endpoints.local) {
                let pair = "\(endpoint.address) . \(endpoint.address)"
                fragment.claim(.hairpin, pair, port: port.index, [.init(set: n.hairpin, key: pair, data: "")])
            }
        }
        return fragment
    }

    /// The comment on the elements that stand for an entry point of a Service port: kube-proxy's
    /// `ServicePortName` (`default/web:http`, or `default/web` for an unnamed port), as its nftables mode
    /// comments them, so `nft list ruleset` says who owns what. At most 143 bytes (namespace 63, name 63, port
    /// name 15), so cut to the kernel's 127 by `nftCommentText` like every comment: only a comment is lost.
    static func owner(_ service: ObjectRef, port: String) -> String {
        nftCommentText(service.servicePortName(port))
    }

    /// No endpoint ready or serving anywhere: every entry point of the port REJECTs.
    private func rejectAll(
        vips: [String], nodePort: String?, _ port: ServicePortView, _ owner: String, _ fragment: inout ServiceFragment
    ) {
        let n = RulesetNames.self
        for key in vips {
            fragment.claim(
                .vip, key, port: port.index, [.init(set: n.noEndpointServices, key: key, data: "", comment: owner)])
        }
        if let nodePort {
            fragment.claim(
                .nodePort, nodePort, port: port.index,
                [.init(set: n.noEndpointNodePorts, key: nodePort, data: "", comment: owner)])
        }
    }

    /// The cluster IP: all endpoints, or with internalTrafficPolicy Local this node's (none: drop).
    private func clusterIPEntry(
        _ key: String, _ port: ServicePortView, _ policies: Policies, _ owner: String, _ fragment: inout ServiceFragment
    ) {
        let n = RulesetNames.self
        let endpoints = policies.internalLocal ? port.endpoints.local : port.endpoints.cluster
        var elements: [ServiceFragment.Element] = []
        if endpoints.isEmpty {
            elements.append(.init(set: n.noLocalEndpointServices, key: key, data: "", comment: owner))
        } else {
            elements += table(endpoints, dispatch: n.serviceVIPs, map: n.backends, entry: key, owner)
            if let target = policies.affinityTarget {
                elements.append(.init(set: n.affinityServices, key: key, data: target, comment: owner))
            }
        }
        fragment.claim(.vip, key, port: port.index, elements)
    }

    /// The sets an external entry point's elements go to: an external or load-balancer IP's, or a node port's.
    struct ExternalSets: Sendable {
        var dispatch: @Sendable (Int) -> String
        var map: String
        /// `externalTrafficPolicy: Cluster`: masqueraded.
        var cluster: String
        /// `externalTrafficPolicy: Local`: the mark, and the table over this node's endpoints.
        var local: String
        var localDispatch: @Sendable (Int) -> String
        var localMap: String
        var affinity: String

        static let vip = ExternalSets(
            dispatch: RulesetNames.serviceVIPs, map: RulesetNames.backends, cluster: RulesetNames.externalVIPs,
            local: RulesetNames.externalLocalVIPs, localDispatch: RulesetNames.localVIPs,
            localMap: RulesetNames.localBackends, affinity: RulesetNames.affinityServices)
        static let nodePort = ExternalSets(
            dispatch: RulesetNames.serviceNodePorts, map: RulesetNames.nodePortBackends,
            cluster: RulesetNames.externalNodePorts, local: RulesetNames.externalLocalNodePorts,
            localDispatch: RulesetNames.localNodePorts, localMap: RulesetNames.localNodePortBackends,
            affinity: RulesetNames.affinityNodePorts)
    }

    /// An external entry point: all endpoints (externalTrafficPolicy Cluster, masqueraded); with Local,
    /// external clients get this node's endpoints (none: drop) and keep their address, while pods and the
    /// node itself still get all of them.
    private func externalElements(
        _ key: String, _ sets: ExternalSets, _ port: ServicePortView, _ policies: Policies, _ owner: String
    ) -> [ServiceFragment.Element] {
        var elements = table(port.endpoints.cluster, dispatch: sets.dispatch, map: sets.map, entry: key, owner)
        if policies.externalLocal {
            elements.append(.init(set: sets.local, key: key, data: "", comment: owner))
            elements += table(port.endpoints.local, dispatch: sets.localDispatch, map: sets.localMap, entry: key, owner)
        } else {
            elements.append(.init(set: sets.cluster, key: key, data: "", comment: owner))
        }
        if let target = policies.affinityTarget {
            elements.append(.init(set: sets.affinity, key: key, data: target, comment: owner))
        }
        return elements
    }

    /// An external or load-balancer IP; a load-balancer IP may be firewalled by source range.
    private func externalEntry(
        _ key: String, isLoadBalancer: Bool, _ port: ServicePortView, _ policies: Policies, _ owner: String,
        _ fragment: inout ServiceFragment
    ) {
        let n = RulesetNames.self
        var elements = externalElements(key, .vip, port, policies, owner)
        if let sourceRanges = port.loadBalancerSourceRanges, isLoadBalancer {
            elements.append(.init(set: n.firewallVIPs, key: key, data: "", comment: owner))
            for range in sourceRanges {
                elements.append(.init(set: n.firewallAllow, key: "\(key) . \(range)", data: ""))
            }
        }
        fragment.claim(.vip, key, port: port.index, elements)
    }

    /// The node port: as an external IP, without source ranges.
    private func nodePortEntry(
        _ key: String, _ port: ServicePortView, _ policies: Policies, _ owner: String, _ fragment: inout ServiceFragment
    ) {
        fragment.claim(.nodePort, key, port: port.index, externalElements(key, .nodePort, port, policies, owner))
    }

    /// One entry point's Maglev table over `endpoints`: its entry in the dispatch set for the table's
    /// size (commented with its owner), and its slots in `map` (without: one comment per slot would cost an
    /// allocation per element). Nothing for no endpoints.
    private func table(
        _ endpoints: [Backend], dispatch: (Int) -> String, map: String, entry: String, _ owner: String
    ) -> [ServiceFragment.Element] {
        guard !endpoints.isEmpty else { return [] }
        let maglev = MaglevTable(endpoints)
        let byIdentity = Dictionary(endpoints.map { ($0.identity, $0.dnatTarget) }, uniquingKeysWith: { a, _ in a })
        let targets = maglev.backends.map { byIdentity[$0]! }
        return [
            .init(set: dispatch(maglev.size), key: entry, data: "", comment: owner),
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

