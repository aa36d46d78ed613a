import NetworkTypes
import NFTModel

/// What stale-conntrack cleanup remembers of the cluster between syncs: for each UDP and SCTP service
/// port, where its traffic enters (VIPs on the port, the node port) and which endpoints it goes to.
///
/// TCP ports are left out: a TCP flow to a removed endpoint ends with a reset or a timeout, and
/// kube-proxy never deletes TCP entries either. Node locality is ignored, as in kube-proxy's cleanup.
public struct ConntrackSummary: Hashable, Sendable {
    /// kube-proxy's `ServicePortName` (namespace/name, port name, protocol), per family as its per-family
    /// proxiers are.
    public struct Key: Hashable, Sendable, Comparable {
        public var service: ObjectRef
        public var family: IPFamily
        public var portName: String
        public var `protocol`: L4Protocol

        public init(service: ObjectRef, family: IPFamily, portName: String, protocol: L4Protocol) {
            self.service = service
            self.family = family
            self.portName = portName
            self.protocol = `protocol`
        }

        public static func < (a: Key, b: Key) -> Bool {
            (a.service, a.family, a.portName, a.protocol) < (b.service, b.family, b.portName, b.protocol)
        }
    }

    /// One endpoint of a service port: its address and resolved target port.
    public typealias Endpoint = Backend

    public struct Port: Hashable, Sendable {
        /// The port on the VIPs.
        public var port: Int
        /// Cluster IP, external IPs and load-balancer ingress IPs of the key's family.
        public var vips: [IPAddress]
        public var nodePort: Int?
        /// The usable endpoints: empty when the port has none (its traffic is rejected).
        public var endpoints: Set<Endpoint>

        public init(port: Int, vips: [IPAddress], nodePort: Int? = nil, endpoints: Set<Endpoint> = []) {
            self.port = port
            self.vips = vips
            self.nodePort = nodePort
            self.endpoints = endpoints
        }
    }

    public var ports: [Key: Port]

    public init(ports: [Key: Port] = [:]) {
        self.ports = ports
    }

    /// The UDP and SCTP ports of the given Services in `state` (nil: of every Service): the ports
    /// `ServiceView` serves, with their usable endpoints.
    public init(_ state: ClusterState, services: Set<ObjectRef>? = nil) {
        ports = [:]
        let refs = services ?? Set(state.services.keys)
        for ref in refs {
            guard let service = state.services[ref] else { continue }
            let view = ServiceView(service, slices: state.endpointSlices(for: ref), nodeName: nil, zone: nil)
            for port in view.ports where port.port.protocol != .tcp {
                let key = Key(service: ref, family: port.family, portName: port.port.name, protocol: port.port.protocol)
                guard ports[key] == nil else { continue }  // two ports of one name: the first counts
                ports[key] = Port(
                    port: port.port.port, vips: deduplicated([port.clusterIP] + port.externalAddresses),
                    nodePort: port.nodePort, endpoints: port.endpoints.usable)
            }
        }
    }

    /// The part of the summary that belongs to the given Services (nil: all of it).
    public func restricted(to services: Set<ObjectRef>?) -> ConntrackSummary {
        guard let services else { return self }
        return ConntrackSummary(ports: ports.filter { services.contains($0.key.service) })
    }

    /// Replaces what the summary holds for the given Services (nil: everything) with `fresh`.
    public mutating func replace(_ services: Set<ObjectRef>?, with fresh: ConntrackSummary) {
        if let services {
            ports = ports.filter { !services.contains($0.key.service) }
            ports.merge(fresh.ports) { _, new in new }
        } else {
            ports = fresh.ports
        }
    }
}

extension ConntrackSummary {
    /// The conntrack entries that may hold flows the new rules would no longer send where they go: what a
    /// sync from `old` to `new` must delete, sorted and without duplicates. Pure.
    ///
    /// - A **stale endpoint** (used by a port in `old`, not in `new`, or with another target port): entries
    ///   to each of the port's VIPs on the port whose reply comes from the endpoint's address
    ///   (`ClearEntriesForNAT`), and to the node port with that reply source (`ClearEntriesForPortNAT`).
    ///   The VIPs and ports of both `old` and `new` count: the entries were made under the old rules.
    /// - A **stale service** (a port without usable endpoints in `old`, or absent, that has some in `new`):
    ///   every entry to each VIP on the port, and to the node port. Packets sent while it was rejected
    ///   may have left an entry that would keep the flow from ever reaching the new endpoints.
    public static func staleFilters(from old: ConntrackSummary, to new: ConntrackSummary) -> [ConntrackFilter] {
        var filters = Set<ConntrackFilter>()
        for key in Set(old.ports.keys).union(new.ports.keys) {
            let before = old.ports[key]
            let after = new.ports[key]
            func filter(_ vip: IPAddress?, _ port: Int, _ replySource: IPAddress?) -> ConntrackFilter {
                ConntrackFilter(
                    family: key.family, protocol: key.protocol, originalDestination: vip, originalDestinationPort: port,
                    replySource: replySource)
            }
            let gone = (before?.endpoints ?? []).subtracting(after?.endpoints ?? [])
            if !gone.isEmpty {
                var entries = Set<EntryPoint>()
                for port in [before, after].compactMap({ $0 }) {
                    for vip in port.vips { entries.insert(EntryPoint(vip: vip, port: port.port)) }
                    if let nodePort = port.nodePort { entries.insert(EntryPoint(vip: nil, port: nodePort)) }
                }
                // Only the address identifies a reply source: a changed target port clears the address.
                for address in Set(gone.map(\.address)) {
                    for entry in entries { filters.insert(filter(entry.vip, entry.port, address)) }
                }
            }
            if let after, !after.endpoints.isEmpty, before?.endpoints.isEmpty ?? true {
                for vip in after.vips { filters.insert(filter(vip, after.port, nil)) }
                if let nodePort = after.nodePort { filters.insert(filter(nil, nodePort, nil)) }
            }
        }
        return filters.sorted()
    }

    private struct EntryPoint: Hashable {
        /// nil: a node port (any local address).
        var vip: IPAddress?
        var port: Int
    }
}

extension ConntrackSummary {
    /// The summary of what a ruleset compiled by `compile(_:for:)` (or read back from the kernel) sends
    /// where: one port per entry point (a VIP port or a node port), keyed by the entry point itself,
    /// since a ruleset does not name Services. Two summaries made this way compare as the cluster ones do,
    /// which is what `switchboard apply` needs: it has the kernel's ruleset, not the previous cluster.
    public init(ruleset: Ruleset, node: NodeContext) {
        ports = [:]
        for family in IPFamily.allCases {
            guard let table = ruleset[node.tableID(family)] else { continue }
            func add(_ key: String, vip: IPAddress?, proto: L4Protocol, port: Int, endpoint: Endpoint?) {
                let summaryKey = Key(
                    service: ObjectRef(namespace: "", name: key), family: family, portName: "", protocol: proto)
                var entry = ports[summaryKey] ?? Port(port: port, vips: vip.map { [$0] } ?? [], nodePort: vip == nil ? port : nil)
                if let endpoint { entry.endpoints.insert(endpoint) }
                ports[summaryKey] = entry
            }
            // `10.96.0.10 . udp . 53 . 7 : 10.244.1.2 . 5353` and `udp . 30053 . 7 : 10.244.1.2 . 5353`.
            for (key, data) in table.sets[RulesetNames.backends]?.elements ?? [:] {
                let fields = key.split(separator: " . ").map(String.init)
                guard fields.count == 4, let vip = IPAddress(fields[0]), let proto = L4Protocol(nftName: fields[1]),
                    proto != .tcp, let port = Int(fields[2]), let endpoint = Endpoint(nftData: data)
                else { continue }
                add(fields[0..<3].joined(separator: " . "), vip: vip, proto: proto, port: port, endpoint: endpoint)
            }
            for (key, data) in table.sets[RulesetNames.nodePortBackends]?.elements ?? [:] {
                let fields = key.split(separator: " . ").map(String.init)
                guard fields.count == 3, let proto = L4Protocol(nftName: fields[0]), proto != .tcp,
                    let port = Int(fields[1]), let endpoint = Endpoint(nftData: data)
                else { continue }
                add(fields[0..<2].joined(separator: " . "), vip: nil, proto: proto, port: port, endpoint: endpoint)
            }
            // Entry points without endpoints: known, with none (so a later sync sees "none → some").
            for key in table.sets[RulesetNames.noEndpointServices]?.elements.keys.sorted() ?? [] {
                let fields = key.split(separator: " . ").map(String.init)
                guard fields.count == 3, let vip = IPAddress(fields[0]), let proto = L4Protocol(nftName: fields[1]),
                    proto != .tcp, let port = Int(fields[2])
                else { continue }
                add(key, vip: vip, proto: proto, port: port, endpoint: nil)
            }
            for key in table.sets[RulesetNames.noEndpointNodePorts]?.elements.keys.sorted() ?? [] {
                let fields = key.split(separator: " . ").map(String.init)
                guard fields.count == 2, let proto = L4Protocol(nftName: fields[0]), proto != .tcp,
                    let port = Int(fields[1])
                else { continue }
                add(key, vip: nil, proto: proto, port: port, endpoint: nil)
            }
        }
    }
}

extension L4Protocol {
    /// From nft's name (`udp`).
    init?(nftName: String) {
        guard let match = L4Protocol.allCases.first(where: { $0.nftName == nftName }) else { return nil }
        self = match
    }
}

extension Backend {
    /// From a `backends` map's data as nft lists it: `10.244.1.2 . 5353`.
    init?(nftData: String) {
        let fields = nftData.split(separator: " . ").map(String.init)
        guard fields.count == 2, let address = IPAddress(fields[0]), let port = Int(fields[1]) else { return nil }
        self.init(address: address, port: port)
    }
}
