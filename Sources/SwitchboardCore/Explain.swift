import NetworkTypes
import NFTModel

/// What happens to one flow on this node, and why: `switchboard explain`. Every field is derived from
/// `ServiceView` (the value the compiler reads) and the claim the compiler resolved, then checked against
/// the compiled ruleset's own element (`Maglev.compiled`). Codable: `-o json` prints it as is.
public struct Explanation: Hashable, Sendable, Codable {
    public struct FlowText: Hashable, Sendable, Codable {
        public var source: String
        public var sourcePort: Int?
        public var destination: String
        public var destinationPort: Int
        public var `protocol`: String
        public var family: String
    }

    public struct Source: Hashable, Sendable, Codable {
        public var kind: SourceKind
        public var reason: String

        public init(kind: SourceKind, reason: String) {
            self.kind = kind
            self.reason = reason
        }
    }

    public enum EntryKind: String, Hashable, Sendable, Codable {
        case clusterIP, nodePort, loadBalancerIP, externalIP

        var text: String {
            switch self {
            case .clusterIP: "cluster IP"
            case .nodePort: "node port"
            case .loadBalancerIP: "load-balancer IP"
            case .externalIP: "external IP"
            }
        }
    }

    /// The entry point the destination matched.
    public struct Entry: Hashable, Sendable, Codable {
        /// `namespace/name`.
        public var service: String
        /// kube-proxy's service port name: `namespace/name:port`, or `namespace/name` for an unnamed port.
        public var servicePort: String
        public var port: Int
        public var `protocol`: String
        public var kind: EntryKind
        public var family: String
        /// Other Services that claim the same entry point; theirs is ignored.
        public var ignoredClaims: [String]
    }

    /// A yes/no step (source ranges, masquerade) and why.
    public struct Decision: Hashable, Sendable, Codable {
        public var applies: Bool
        public var reason: String

        public init(applies: Bool, reason: String) {
            self.applies = applies
            self.reason = reason
        }
    }

    public struct LeftOut: Hashable, Sendable, Codable {
        public var endpoint: String
        public var reason: String

        public init(endpoint: String, reason: String) {
            self.endpoint = endpoint
            self.reason = reason
        }
    }

    /// The endpoints the flow may reach.
    public struct Endpoints: Hashable, Sendable, Codable {
        /// The traffic policy that chose the set, e.g. `externalTrafficPolicy Local`.
        public var policy: String
        /// Why the set holds what it holds (the `EndpointClasses` choice).
        public var reason: String
        public var endpoints: [String]
        public var leftOut: [LeftOut]
    }

    public struct Affinity: Hashable, Sendable, Codable {
        public var timeoutSeconds: Int
        /// With `--live`: the client's entry in the kernel's affinity map.
        public var live: LiveAffinity?
    }

    public struct LiveAffinity: Hashable, Sendable, Codable {
        /// The element looked up: `client . address . protocol . port`.
        public var element: String
        /// The recorded endpoint, nil when the client has none (the flow goes by Maglev).
        public var endpoint: String?
        /// nft's `expires` text, e.g. `2h59m58s`.
        public var expires: String?

        public init(element: String, endpoint: String?, expires: String?) {
            self.element = element
            self.endpoint = endpoint
            self.expires = expires
        }
    }

    public struct Maglev: Hashable, Sendable, Codable {
        /// The table's size M.
        public var tableSize: Int
        /// The map holding the table, and the nft expression that picks the slot.
        public var map: String
        public var hash: String
        /// nil without a source port.
        public var slot: Int?
        public var endpoint: String?
        /// The map element for the slot (`key : data` text), as the compiled ruleset has it.
        public var element: String?
        /// The compiled ruleset's data for the slot; equals `endpoint` unless something is wrong.
        public var compiled: String?
    }

    public enum VerdictKind: String, Hashable, Sendable, Codable {
        case dnat = "DNAT", reject = "REJECT", drop = "DROP"
        /// Not a Service: the ruleset leaves the packet alone.
        case untouched = "UNTOUCHED"
    }

    public struct Verdict: Hashable, Sendable, Codable {
        public var kind: VerdictKind
        public var endpoint: String?
        public var reason: String

        public init(kind: VerdictKind, endpoint: String? = nil, reason: String) {
            self.kind = kind
            self.endpoint = endpoint
            self.reason = reason
        }
    }

    /// `--live`: the kernel's element for the flow's slot against the compiled one.
    public struct Live: Hashable, Sendable, Codable {
        public var table: String
        public var map: String
        public var element: String
        /// The kernel's data for the element; nil when the kernel has no such element.
        public var kernel: String?
        public var agrees: Bool

        public init(table: String, map: String, element: String, kernel: String?, agrees: Bool) {
            self.table = table
            self.map = map
            self.element = element
            self.kernel = kernel
            self.agrees = agrees
        }
    }

    public var flow: FlowText
    public var source: Source
    public var entry: Entry?
    /// loadBalancerSourceRanges, for a firewalled load-balancer IP only.
    public var sourceRange: Decision?
    public var masquerade: Decision?
    public var endpoints: Endpoints?
    public var affinity: Affinity?
    public var maglev: Maglev?
    public var verdict: Verdict
    public var live: Live?
}

/// Explains flows against one compiled state: compile once, explain many.
public struct Explainer: Sendable {
    public let state: ClusterState
    public let node: NodeContext
    fileprivate let compiler: IncrementalCompiler

    public init(state: ClusterState, node: NodeContext) {
        self.state = state
        self.node = node
        var compiler = IncrementalCompiler(node: node)
        compiler.update(state, changed: nil)
        self.compiler = compiler
    }

    /// The ruleset the state compiles to (what `render` prints).
    public var ruleset: Ruleset { compiler.ruleset }

    /// What happens to `flow` here. `from` overrides how the source is classified (needed when
    /// `--detect-local-mode` goes by interface, which an address does not tell).
    public func explain(_ flow: Flow, from: SourceKind? = nil) -> Explanation {
        var step = ExplainStep(explainer: self, flow: flow, from: from)
        return step.run()
    }
}

/// One flow's way through the ruleset, in the order `Skeleton`'s chains take it.
private struct ExplainStep {
    let explainer: Explainer
    let flow: Flow
    let family: IPFamily
    let source: Explanation.Source
    /// Whether the ruleset can tell pods at all (`Skeleton.podSource`).
    let detectsPods: Bool
    var out: Explanation

    /// The compiled state: its claims, pod CIDRs and node-port addresses.
    var compiler: IncrementalCompiler { explainer.compiler }

    init(explainer: Explainer, flow: Flow, from: SourceKind?) {
        self.explainer = explainer
        self.flow = flow
        family = flow.destination.family
        let podCIDRs = explainer.compiler.podCIDRs(explainer.state).filter { $0.family == flow.destination.family }
        detectsPods = Skeleton.podSource(family: family, node: explainer.node, podCIDRs: podCIDRs) != nil
        source = Self.classify(flow.source, from: from, explainer: explainer, podCIDRs: podCIDRs)
        out = Explanation(
            flow: .init(
                source: flow.source.description, sourcePort: flow.sourcePort, destination: flow.destination.description,
                destinationPort: flow.destinationPort, protocol: flow.proto.nftName, family: family.rawValue),
            source: source, verdict: .init(kind: .untouched, reason: ""))
    }

    private static func classify(
        _ address: IPAddress, from: SourceKind?, explainer: Explainer, podCIDRs: [CIDR]
    ) -> Explanation.Source {
        if let from { return .init(kind: from, reason: "given with --from") }
        let node = explainer.node
        let nodeAddresses = explainer.state.nodes[node.nodeName]?.addresses.compactMap { IPAddress($0.address) } ?? []
        if nodeAddresses.contains(address) {
            return .init(kind: .node, reason: "an address of Node \(node.nodeName)")
        }
        if address == IPAddress(address.family == .v4 ? "127.0.0.1" : "::1") {
            return .init(kind: .node, reason: "loopback")
        }
        switch node.localDetection {
        case .clusterCIDR, .nodeCIDR:
            let origin = node.localDetection == .clusterCIDR ? "--cluster-cidr" : "Node \(node.nodeName)'s podCIDRs"
            guard !podCIDRs.isEmpty else {
                return .init(kind: .external, reason: "no pod CIDR of this family is known (\(origin)): no source counts as a pod")
            }
            let list = podCIDRs.map(\.description).joined(separator: ", ")
            if let cidr = podCIDRs.first(where: { $0.contains(address) }) {
                return .init(kind: .pod, reason: "in \(origin) \(cidr)")
            }
            return .init(kind: .external, reason: "not in \(origin) \(list), not this node's address")
        case .interfaceNamePrefix, .bridgeInterface:
            return .init(
                kind: .external,
                reason: "--detect-local-mode goes by the interface a packet arrives on, which an address does not tell: taken as not a pod (give --from pod if it is one)")
        }
    }

    mutating func run() -> Explanation {
        guard let (view, port, kind) = entryPoint() else { return out }
        let service = view.service
        let policyLocal = service.externalTrafficPolicy == .local
        guard port.endpoints.hasAny else {
            out.endpoints = endpoints(
                service.ref, port, [], local: false, policy: "none", reason: "no endpoint is ready, or serving while terminating")
            return verdict(.reject, "no endpoints: \(out.entry!.servicePort) has no ready or serving endpoint")
        }
        // loadBalancerSourceRanges (the first rule of `services`).
        if kind == .loadBalancerIP, let ranges = port.loadBalancerSourceRanges {
            let list = ranges.isEmpty ? "(none of this family)" : ranges.map(\.description).joined(separator: ", ")
            if let range = ranges.first(where: { $0.contains(flow.source) }) {
                out.sourceRange = .init(applies: true, reason: "allowed: in loadBalancerSourceRanges \(range)")
            } else if source.kind == .node {
                out.sourceRange = .init(applies: true, reason: "allowed: outside loadBalancerSourceRanges \(list), but from the node itself")
            } else {
                out.sourceRange = .init(applies: false, reason: "outside loadBalancerSourceRanges \(list)")
                return verdict(.drop, "the source is outside loadBalancerSourceRanges \(list)")
            }
        }
        out.masquerade = masquerade(kind, policyLocal: policyLocal)
        if case .clientIP(let timeout) = service.sessionAffinity {
            out.affinity = .init(timeoutSeconds: timeout)
        }
        // Which endpoints: the traffic policies, then the classes `EndpointClasses` resolved.
        let chosen: [Backend]
        let local: Bool
        if kind == .clusterIP {
            local = service.internalTrafficPolicy == .local
            chosen = local ? port.endpoints.local : port.endpoints.cluster
            out.endpoints = endpoints(
                service.ref, port, chosen, local: local, policy: "internalTrafficPolicy \(service.internalTrafficPolicy.rawValue)",
                reason: local ? localReason(port.endpoints) : clusterReason(port.endpoints))
            if chosen.isEmpty {
                return verdict(.drop, "internalTrafficPolicy Local and no endpoint on node \(explainer.node.nodeName)")
            }
        } else if policyLocal && (source.kind == .node || source.kind == .pod && detectsPods) {
            local = false
            chosen = port.endpoints.cluster
            out.endpoints = endpoints(
                service.ref, port, chosen, local: false, policy: "externalTrafficPolicy Local",
                reason: "traffic from \(source.kind == .pod ? "a pod" : "the node itself") uses every endpoint; "
                    + clusterReason(port.endpoints))
        } else {
            local = policyLocal
            chosen = local ? port.endpoints.local : port.endpoints.cluster
            out.endpoints = endpoints(
                service.ref, port, chosen, local: local, policy: "externalTrafficPolicy \(service.externalTrafficPolicy.rawValue)",
                reason: local ? localReason(port.endpoints) : clusterReason(port.endpoints))
            if chosen.isEmpty {
                return verdict(.drop, "externalTrafficPolicy Local and no endpoint on node \(explainer.node.nodeName)")
            }
        }
        let picked = maglev(chosen, kind: kind, local: local)
        if let picked, picked.address == flow.source {
            out.masquerade = .init(applies: true, reason: "hairpin: the client is the endpoint it reaches")
        }
        if let picked {
            return verdict(.dnat, "Maglev slot \(out.maglev!.slot!) of \(out.maglev!.tableSize)", endpoint: picked.identity)
        }
        return verdict(.dnat, "one of \(chosen.count) endpoint(s) by Maglev; give SRC:SPORT to name it")
    }

    // MARK: - Steps

    /// The entry point the destination matches, in the order the ruleset looks: VIP ports, then node
    /// ports; a cluster IP's other ports are rejected. Sets `out.entry`, or the verdict when there is none.
    private mutating func entryPoint() -> (ServiceView, ServicePortView, Explanation.EntryKind)? {
        let state = explainer.state
        let zone = state.nodes[explainer.node.nodeName]?.zone
        let dst = flow.destination
        var views: [ServiceView] = []
        for ref in state.services.keys.sorted() {
            let service = state.services[ref]!
            guard service.clusterIPs.contains(dst) || service.externalIPs.contains(dst)
                || service.loadBalancerIPs(family).contains(dst) || service.ports.contains(where: { $0.nodePort == flow.destinationPort })
            else { continue }
            views.append(ServiceView(
                service, slices: state.endpointSlices(for: ref), nodeName: explainer.node.nodeName, zone: zone))
        }
        let (proto, dport) = (flow.proto, flow.destinationPort)
        func matches(_ p: ServicePortView, port: Int) -> Bool { p.port.protocol == proto && port == dport }
        let claim = compiler.claimants(family, address: dst, flow.proto, port: flow.destinationPort)
        let vips = views.flatMap { view in
            (view.families[family]?.ports ?? []).filter {
                matches($0, port: $0.port.port) && ($0.clusterIP == dst || $0.externalAddresses.contains(dst))
            }.map { (view, $0) }
        }
        if let (view, port) = vips.first(where: { $0.0.service.ref == claim.holder }) ?? vips.first {
            let kind: Explanation.EntryKind =
                port.clusterIP == dst ? .clusterIP : port.loadBalancerIPs.contains(dst) ? .loadBalancerIP : .externalIP
            setEntry(view, port, kind, ignored: claim.others)
            return (view, port, kind)
        }
        if compiler.nodePortAddresses(family, state).contains(where: { $0.contains(dst) }) {
            let claim = compiler.claimants(family, address: nil, flow.proto, port: flow.destinationPort)
            let ports = views.flatMap { view in
                (view.families[family]?.ports ?? []).filter { p in p.nodePort.map { matches(p, port: $0) } ?? false }.map { (view, $0) }
            }
            if let (view, port) = ports.first(where: { $0.0.service.ref == claim.holder }) ?? ports.first {
                setEntry(view, port, .nodePort, ignored: claim.others)
                return (view, port, .nodePort)
            }
        }
        if let view = views.first(where: { $0.families[family]?.clusterIP == dst && !$0.service.ports.isEmpty }) {
            verdict(.reject, "\(dst) is the cluster IP of Service \(view.service.ref), but \(flow.destinationPort)/\(flow.proto.nftName) is not one of its ports")
            return nil
        }
        verdict(.untouched, "not a Service address: no Service has \(dst) port \(flow.destinationPort)/\(flow.proto.nftName) as a cluster IP, external IP, load-balancer IP or node port here")
        return nil
    }

    private mutating func setEntry(_ view: ServiceView, _ port: ServicePortView, _ kind: Explanation.EntryKind, ignored: [ObjectRef]) {
        let ref = view.service.ref
        out.entry = .init(
            service: ref.description, servicePort: ref.servicePortName(port.port.name),
            port: flow.destinationPort, protocol: flow.proto.nftName, kind: kind, family: family.rawValue,
            ignoredClaims: ignored.map(\.description))
    }

    /// The masquerade decision the `services` chain makes before any DNAT (hairpin is decided after).
    private func masquerade(_ kind: Explanation.EntryKind, policyLocal: Bool) -> Explanation.Decision {
        if kind == .clusterIP {
            if explainer.node.masqueradeAll { return .init(applies: true, reason: "--masquerade-all") }
            guard detectsPods else {
                return .init(applies: false, reason: "no pod CIDR of this family is known, so cluster-IP traffic keeps its address")
            }
            return source.kind == .pod
                ? .init(applies: false, reason: "cluster-IP traffic from a pod keeps its address")
                : .init(applies: true, reason: "cluster-IP traffic not from a pod (--detect-local-mode)")
        }
        if !policyLocal { return .init(applies: true, reason: "external traffic to an externalTrafficPolicy Cluster entry point") }
        return source.kind == .node
            ? .init(applies: true, reason: "the node itself to an externalTrafficPolicy Local entry point")
            : .init(applies: false, reason: "externalTrafficPolicy Local keeps the client's address")
    }

    private func clusterReason(_ classes: EndpointClasses) -> String {
        switch classes.clusterChoice {
        case .ready: "every ready endpoint"
        case .readyOnNode(let node): "the ready endpoints hinted for node \(node) (PreferSameNode)"
        case .readyInZone(let zone): "the ready endpoints hinted for zone \(zone) (topology hints)"
        case .servingTerminating: "no endpoint is ready: the serving terminating ones"
        }
    }

    private func localReason(_ classes: EndpointClasses) -> String {
        let node = explainer.node.nodeName
        return switch classes.localChoice {
        case .ready: "node \(node)'s ready endpoints"
        case .servingTerminating: "none of node \(node)'s endpoints is ready: its serving terminating ones"
        }
    }

    /// The endpoint set, with every other endpoint of the port and why it was left out. `local`: the set is
    /// this node's endpoints.
    private func endpoints(
        _ ref: ObjectRef, _ port: ServicePortView, _ chosen: [Backend], local: Bool, policy: String, reason: String
    ) -> Explanation.Endpoints {
        let slices = explainer.state.endpointSlices(for: ref).filter { $0.addressType.ipFamily == family }
        let usesReady = local ? port.endpoints.localChoice == .ready : port.endpoints.clusterChoice != .servingTerminating
        let used = Set(chosen)
        var leftOut: [Backend: String] = [:]
        for resolved in port.port.resolve(slices) {
            let backend = Backend(address: resolved.address, port: resolved.port)
            guard !used.contains(backend), leftOut[backend] == nil else { continue }
            leftOut[backend] = whyLeftOut(resolved.endpoint, usesReady: usesReady, local: local, port.endpoints)
        }
        return .init(
            policy: policy, reason: reason, endpoints: chosen.map(\.identity),
            leftOut: leftOut.sorted { $0.key < $1.key }.map { .init(endpoint: $0.key.identity, reason: $0.value) })
    }

    private func whyLeftOut(_ e: Endpoint, usesReady: Bool, local: Bool, _ classes: EndpointClasses) -> String {
        let node = explainer.node.nodeName
        if !e.isReady && !(e.isServing && e.isTerminating) {
            return e.isTerminating ? "not ready (terminating, not serving)" : "not ready"
        }
        if !e.isReady && usesReady { return "serving but terminating, and ready endpoints exist" }
        if local && e.nodeName != node { return "on \(e.nodeName.map { "node \($0)" } ?? "no node"), not node \(node)" }
        if !local {
            switch classes.clusterChoice {
            case .readyOnNode(let n): return "hinted for node(s) \((e.nodeHints ?? []).joined(separator: ", ")), not \(n)"
            case .readyInZone(let z): return "hinted for zone(s) \((e.zoneHints ?? []).joined(separator: ", ")), not \(z)"
            default: break
            }
        }
        return "not in the set"
    }

    /// Maglev over `chosen`: the table, the slot the kernel's jhash picks, and the endpoint there, checked
    /// against the compiled map. nil when the source port is not known.
    private mutating func maglev(_ chosen: [Backend], kind: Explanation.EntryKind, local: Bool) -> Backend? {
        let table = MaglevTable(chosen)
        let size = table.size
        // The map the compiler puts this entry point's table in: a cluster IP's is a VIP's.
        let sets = kind == .nodePort ? ServiceCompiler.ExternalSets.nodePort : .vip
        let map = local ? sets.localMap : sets.map
        let entryKey = kind == .nodePort
            ? EntryKey.nodePort(flow.proto, flow.destinationPort)
            : EntryKey.vip(flow.destination, flow.proto, flow.destinationPort)
        var result = Explanation.Maglev(
            tableSize: size, map: map,
            hash: "jhash \(family.nftPayload) saddr . th sport mod \(size) seed \(RulesetNames.jhashSeed)")
        defer { out.maglev = result }
        guard let sport = flow.sourcePort else { return nil }
        let slot = FlowHash.slot(source: flow.source, sourcePort: sport, tableSize: size)
        let identity = table.backend(forSlot: slot)
        let backend = chosen.first { $0.identity == identity }!
        let key = SlotTable.key(entryKey, slot: slot)
        result.slot = slot
        result.endpoint = identity
        result.element = "\(key) : \(backend.dnatTarget)"
        result.compiled = explainer.ruleset.tables[explainer.node.tableID(family)]?.sets[map]?.elements[key]
        return backend
    }

    @discardableResult
    private mutating func verdict(_ kind: Explanation.VerdictKind, _ reason: String, endpoint: String? = nil) -> Explanation {
        out.verdict = .init(kind: kind, endpoint: endpoint, reason: reason)
        return out
    }
}
