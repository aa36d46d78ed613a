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
    /// `addr . proto . port . slot : endpoint-addr . endpoint-port`: every VIP's Maglev table.
    public static let backends = "backends"
    /// `proto . nodeport . slot : endpoint-addr . endpoint-port`: every NodePort's Maglev table.
    public static let nodePortBackends = "nodeport-backends"
    /// External IPs and LoadBalancer IPs (with endpoints): external traffic is masqueraded.
    public static let externalVIPs = "external-ips"
    /// `endpoint . endpoint`: a pod reaching itself through a Service (hairpin) is masqueraded.
    public static let hairpin = "hairpin"
    public static let noEndpointServices = "no-endpoint-services"
    public static let noEndpointNodePorts = "no-endpoint-nodeports"
    public static let nodePortAddresses = "nodeport-addresses"
    public static let clusterIPs = "cluster-ips"
    public static let clusterCIDRs = "cluster-cidrs"
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
    /// Sets the skeleton fills itself; every other set's elements come from Services.
    static let skeletonFilledSets: Set<String> = [clusterCIDRs, nodePortAddresses, canary]
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
    }

    struct Element: Hashable, Sendable {
        var set: String
        var key: String
        var data: String
    }

    /// At most one claim per (space, key); a later claim of the same Service replaces an earlier one.
    var claims: [ClaimKey: Claim] = [:]

    mutating func claim(_ space: ClaimSpace, _ key: String, port: Int, _ elements: [Element]) {
        claims[ClaimKey(space: space, key: key)] = Claim(elements: elements, portIndex: port)
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
            fragment.claim(.clusterIP, clusterIP.description, port: 0, [.init(set: RulesetNames.clusterIPs, key: clusterIP.description, data: "")])
        }

        var seenPorts = Set<String>()
        for (index, port) in service.ports.enumerated() {
            let portID = "\(port.protocol.nftName)/\(port.port)"
            guard seenPorts.insert(portID).inserted else {
                diagnostics.append(diagnostic(service, "spec.ports[\(index)]", "duplicate port \(portID); ignored"))
                continue
            }
            let endpoints = eligibleEndpoints(slices, port: port)
            let proto = port.protocol.nftName

            // Entry points: the cluster IP, then external and load-balancer IPs, then the node port.
            var vips: [(key: String, external: Bool)] = [("\(clusterIP) . \(proto) . \(port.port)", false)]
            for ip in externalVIPs { vips.append(("\(ip) . \(proto) . \(port.port)", true)) }
            var nodePort: String?
            if service.type == .nodePort || service.type == .loadBalancer, let number = port.nodePort {
                nodePort = "\(proto) . \(number)"
            }
            if endpoints.isEmpty {
                for vip in vips {
                    fragment.claim(.vip, vip.key, port: index, [.init(set: RulesetNames.noEndpointServices, key: vip.key, data: "")])
                }
                if let nodePort {
                    fragment.claim(.nodePort, nodePort, port: index, [.init(set: RulesetNames.noEndpointNodePorts, key: nodePort, data: "")])
                }
                continue
            }

            // The Maglev table: slot → endpoint, copied under each entry point's key.
            let maglev = MaglevTable(backends: endpoints.map(\.identity), size: MaglevTable.size(forBackendCount: endpoints.count))
            let targets = maglev.backends.map { identity in endpoints.first { $0.identity == identity }!.dnatTarget }
            func slots(_ map: String, _ entry: String) -> [ServiceFragment.Element] {
                maglev.slots.enumerated().map { slot, backend in .init(set: map, key: "\(entry) . \(slot)", data: targets[backend]) }
            }
            for vip in vips {
                var elements: [ServiceFragment.Element] = [.init(set: RulesetNames.serviceVIPs(maglev.size), key: vip.key, data: "")]
                if vip.external { elements.append(.init(set: RulesetNames.externalVIPs, key: vip.key, data: "")) }
                elements += slots(RulesetNames.backends, vip.key)
                fragment.claim(.vip, vip.key, port: index, elements)
            }
            if let nodePort {
                fragment.claim(.nodePort, nodePort, port: index,
                    [.init(set: RulesetNames.serviceNodePorts(maglev.size), key: nodePort, data: "")]
                        + slots(RulesetNames.nodePortBackends, nodePort))
            }
            for endpoint in endpoints {
                let pair = "\(endpoint.address) . \(endpoint.address)"
                fragment.claim(.hairpin, pair, port: index, [.init(set: RulesetNames.hairpin, key: pair, data: "")])
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
        /// `10.0.0.5:80` or `[fd00::5]:80`: the Maglev identity, the same on every node.
        var identity: String { address.family == .v4 ? "\(address):\(port)" : "[\(address)]:\(port)" }
        /// The `backends` map's data for it, as nft lists it: `10.0.0.5 . 80`.
        var dnatTarget: String { "\(address) . \(port)" }
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
