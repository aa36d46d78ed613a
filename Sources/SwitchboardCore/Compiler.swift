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

/// The fixed names of the ruleset's skeleton (see DESIGN.md, "Ruleset shape").
public enum RulesetNames {
    public static let serviceIPs = "service-ips"
    public static let serviceNodePorts = "service-nodeports"
    public static let noEndpointServices = "no-endpoint-services"
    public static let noEndpointNodePorts = "no-endpoint-nodeports"
    public static let nodePortAddresses = "nodeport-addresses"
    public static let clusterIPs = "cluster-ips"
    public static let clusterCIDRs = "cluster-cidrs"
    public static let services = "services"
    public static let endpointsCheck = "endpoints-check"
    public static let markForMasquerade = "mark-for-masquerade"
    public static let masquerading = "masquerading"
    public static let rejectChain = "reject-chain"
    /// The packet-mark bit that asks nat postrouting to masquerade (kube-proxy's bit).
    public static let masqueradeMark = "0x00004000"
    /// The fixed jhash seed: every node hashes a flow to the same Maglev slot.
    public static let jhashSeed = "0x5b1e0c1d"
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

/// What one Service contributes to one family's table: the chains and maps it owns outright, and its
/// claims on entries of the shared dispatch maps, which `IncrementalCompiler` resolves between Services.
struct ServiceFragment: Hashable, Sendable {
    /// A claim on one entry of a shared map. Entries of one `space` are one namespace across the maps
    /// of that space (a VIP port is either dispatched or rejected, never both).
    struct Claim: Hashable, Sendable {
        var space: ClaimSpace
        var set: String
        var key: String
        var data: String
        /// The index of the port that made the claim, for the conflict diagnostic.
        var portIndex: Int
    }

    /// At most one claim per (space, key); a later claim of the same Service replaces an earlier one.
    var claims: [ClaimKey: Claim] = [:]
    var chains: [Chain] = []
    var sets: [NFTSet] = []

    mutating func claim(_ space: ClaimSpace, _ set: String, _ key: String, _ data: String, port: Int) {
        claims[ClaimKey(space: space, key: key)] = Claim(space: space, set: set, key: key, data: data, portIndex: port)
    }
}

/// The shared maps whose entries Services claim.
enum ClaimSpace: Hashable, Sendable, CaseIterable {
    /// (address, protocol, port): `service-ips` or `no-endpoint-services`.
    case vip
    /// (protocol, node port): `service-nodeports` or `no-endpoint-nodeports`.
    case nodePort
    /// A cluster IP in `cluster-ips` (several Services may name it; no conflict is reported).
    case clusterIP

    var sets: [String] {
        switch self {
        case .vip: [RulesetNames.serviceIPs, RulesetNames.noEndpointServices]
        case .nodePort: [RulesetNames.serviceNodePorts, RulesetNames.noEndpointNodePorts]
        case .clusterIP: [RulesetNames.clusterIPs]
        }
    }
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

    func compile(_ service: Service, slices: [EndpointSlice]) -> ServiceOutput {
        var output = ServiceOutput()
        guard shouldProgram(service) else { return output }
        for family in IPFamily.allCases {
            let familySlices = slices.filter { $0.addressType.ipFamily == family }
            if let fragment = compile(service, slices: familySlices, family: family, diagnostics: &output.diagnostics) {
                output.fragments[family] = fragment
            }
        }
        var seen = Set<Diagnostic>()
        output.diagnostics = output.diagnostics.filter { seen.insert($0).inserted }
        return output
    }

    private func compile(
        _ service: Service, slices: [EndpointSlice], family: IPFamily, diagnostics: inout [Diagnostic]
    ) -> ServiceFragment? {
        let ref = service.ref
        // A Service is served by the family of each of its cluster IPs, like kube-proxy's per-family
        // proxiers: a single-stack IPv4 Service has no IPv6 rules at all, not even for its NodePort or
        // an IPv6 external IP. Without any cluster IP (not yet allocated) kube-proxy skips the Service,
        // and so do we.
        guard let clusterIP = service.clusterIPs.first(where: { $0.family == family }) else {
            if service.clusterIPs.isEmpty && family == .v4 {
                diagnostics.append(diagnostic(service, "spec.clusterIPs", "no cluster IP; the Service is skipped"))
            }
            return nil
        }
        var fragment = ServiceFragment()
        let externalVIPs = externalAddresses(of: service, family: family)
        if !service.ports.isEmpty {
            fragment.claim(.clusterIP, RulesetNames.clusterIPs, clusterIP.description, "", port: 0)
        }

        var seenPorts = Set<String>()
        for (index, port) in service.ports.enumerated() {
            let portID = "\(port.protocol.nftName)/\(port.port)"
            guard seenPorts.insert(portID).inserted else {
                diagnostics.append(diagnostic(service, "spec.ports[\(index)]", "duplicate port \(portID); ignored"))
                continue
            }
            let key = Naming.servicePortKey(ref, port)
            let endpoints = eligibleEndpoints(slices, port: port)
            let proto = port.protocol.nftName

            // Entry points.
            var vipElements: [(String, Bool)] = [("\(clusterIP) . \(proto) . \(port.port)", false)]  // (key, external?)
            for ip in externalVIPs { vipElements.append(("\(ip) . \(proto) . \(port.port)", true)) }
            var nodePortElement: String?
            if service.type == .nodePort || service.type == .loadBalancer, let nodePort = port.nodePort {
                nodePortElement = "\(proto) . \(nodePort)"
            }
            if endpoints.isEmpty {
                let reject = "goto \(RulesetNames.rejectChain)"
                for (element, _) in vipElements {
                    fragment.claim(.vip, RulesetNames.noEndpointServices, element, reject, port: index)
                }
                if let element = nodePortElement {
                    fragment.claim(.nodePort, RulesetNames.noEndpointNodePorts, element, reject, port: index)
                }
                continue
            }

            let serviceChain = Naming.serviceChain(key)
            let externalChain = Naming.externalChain(key)
            let hasExternal = vipElements.contains { $0.1 } || nodePortElement != nil
            for (element, external) in vipElements {
                fragment.claim(
                    .vip, RulesetNames.serviceIPs, element, "goto \(external ? externalChain : serviceChain)", port: index)
            }
            if let element = nodePortElement {
                fragment.claim(.nodePort, RulesetNames.serviceNodePorts, element, "goto \(externalChain)", port: index)
            }

            // The Maglev table and the endpoint chains it points at.
            let backends = endpoints.map(\.identity)
            let size = MaglevTable.size(forBackendCount: backends.count)
            let maglev = MaglevTable(backends: backends, size: size)
            let mapName = Naming.maglevMap(key, size: size)
            var chainOf: [String: String] = [:]
            for endpoint in endpoints {
                let name = Naming.endpointChain(key, endpoint: endpoint.identity)
                chainOf[endpoint.identity] = name
                fragment.chains.append(Chain(name: name, rules: endpointRules(endpoint, family: family, proto: proto)))
            }
            var elements: [String: String] = [:]
            elements.reserveCapacity(size)
            for (slot, backend) in maglev.slots.enumerated() {
                elements[String(slot)] = "goto \(chainOf[maglev.backends[backend]]!)"
            }
            fragment.sets.append(NFTSet(
                name: mapName, keyType: .hashSlot, dataType: "verdict", size: size,
                comment: "\(ref) \(port.name.isEmpty ? String(port.port) : port.name) Maglev M=\(size)",
                elements: elements))

            fragment.chains.append(Chain(name: serviceChain, rules: serviceRules(
                clusterIP: clusterIP, family: family, mapName: mapName, size: size)))
            if hasExternal {
                fragment.chains.append(Chain(name: externalChain, rules: [
                    Rule("jump \(RulesetNames.markForMasquerade)"),
                    Rule("goto \(serviceChain)"),
                ]))
            }
        }
        return fragment
    }

    // MARK: - Semantics

    /// ExternalName and headless Services, and those another proxy owns or that are marked headless by
    /// label, produce nothing (kube-proxy's rules; the agent's watch excludes the labelled ones too).
    private func shouldProgram(_ service: Service) -> Bool {
        if service.type == .externalName || service.isHeadless { return false }
        if service.labels["service.kubernetes.io/service-proxy-name"] != nil { return false }
        if service.labels["service.kubernetes.io/headless"] != nil { return false }
        return true
    }

    /// External IPs and LoadBalancer ingress IPs (ipMode VIP or unset) of one family, deduplicated.
    private func externalAddresses(of service: Service, family: IPFamily) -> [IPAddress] {
        var out: [IPAddress] = service.externalIPs.filter { $0.family == family }
        if service.type == .loadBalancer {
            for ingress in service.loadBalancerIngress {
                guard let ip = ingress.ip, ip.family == family, ingress.ipMode != .proxy else { continue }
                out.append(ip)
            }
        }
        var seen = Set<IPAddress>()
        return out.filter { seen.insert($0).inserted }
    }

    /// One backend of a service port: address and the port resolved through its slice.
    struct Backend: Hashable {
        var address: IPAddress
        var port: Int
        /// `10.0.0.5:80` or `[fd00::5]:80`: the Maglev identity (the same on every node) and, in
        /// exactly this form, the DNAT target nft expects.
        var identity: String { address.family == .v4 ? "\(address):\(port)" : "[\(address)]:\(port)" }
    }

    /// The endpoints that receive traffic for a service port. The port is resolved per slice: the
    /// slice port with the Service port's name and protocol carries the (possibly named, hence
    /// per-pod) target port number. Duplicates across slices count once.
    private func eligibleEndpoints(_ slices: [EndpointSlice], port: ServicePort) -> [Backend] {
        var out = Set<Backend>()
        for slice in slices {
            guard let slicePort = slice.ports.first(where: { $0.name == port.name && $0.protocol == port.protocol }),
                let number = slicePort.port
            else { continue }
            for endpoint in slice.endpoints where endpoint.isReady {
                for address in endpoint.addresses where address.family == slice.addressType.ipFamily {
                    out.insert(Backend(address: address, port: number))
                }
            }
        }
        return out.sorted { ($0.address, $0.port) < ($1.address, $1.port) }
    }

    // MARK: - Rules

    private func serviceRules(clusterIP: IPAddress, family: IPFamily, mapName: String, size: Int) -> [Rule] {
        let p = family.nftPayload
        var rules: [Rule] = []
        if node.masqueradeAll {
            rules.append(Rule("jump \(RulesetNames.markForMasquerade)"))
        } else if node.clusterCIDRs.contains(where: { $0.family == family }) {
            // A named set, not an anonymous one: nft merges adjacent prefixes of an anonymous set
            // (10.244.0.0/16 and 10.245.0.0/16 list back as 10.244.0.0/15), which would make the
            // kernel's rule differ from ours on every comparison.
            rules.append(Rule("\(p) daddr \(clusterIP) \(p) saddr != @\(RulesetNames.clusterCIDRs) jump \(RulesetNames.markForMasquerade)"))
        }
        rules.append(Rule("jhash \(p) saddr . th sport mod \(size) seed \(RulesetNames.jhashSeed) vmap @\(mapName)"))
        return rules
    }

    private func endpointRules(_ backend: Backend, family: IPFamily, proto: String) -> [Rule] {
        let p = family.nftPayload
        return [
            // Hairpin: a pod reaching itself through its Service must be masqueraded, or the reply
            // would go straight back to it from its own address and be dropped.
            Rule("\(p) saddr \(backend.address) jump \(RulesetNames.markForMasquerade)"),
            Rule("meta l4proto \(proto) dnat to \(backend.identity)"),
        ]
    }

    private func diagnostic(_ service: Service, _ field: String, _ message: String) -> Diagnostic {
        Diagnostic(object: "Service \(service.ref)", field: field, message: message, severity: .warning)
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
