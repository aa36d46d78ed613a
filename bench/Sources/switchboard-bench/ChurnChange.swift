import BenchKit
import NFTModel
import SwitchboardCore
import SwitchboardTesting

/// One change of a churn run: what was changed in the synthetic cluster, the objects to send, and how to
/// recognise in the kernel's transactions that it was committed.
struct ChurnChange: Sendable {
    /// What the kernel shows once the change is committed. Addresses are never reused by the
    /// synthetic cluster, so presence or absence of one is unambiguous.
    enum Signature: Hashable, Sendable {
        /// The Service port's key is in a `service-ips-m<M>` set or in `no-endpoint-services` (`present`), or
        /// in none of them.
        case servicePort(ServicePortKey, present: Bool)
        /// The endpoint address is the data of a `backends` element (a Maglev slot) under the Service port's
        /// key (`present`), or of none.
        case endpoint(String, of: ServicePortKey, present: Bool)

        /// The same signature with the cluster IP changed (the API server moves them).
        func mappingClusterIP(_ transform: (String) -> String) -> Signature {
            switch self {
            case .servicePort(let key, let present):
                .servicePort(key.mappingClusterIP(transform), present: present)
            case .endpoint(let address, let key, let present):
                .endpoint(address, of: key.mappingClusterIP(transform), present: present)
            }
        }
    }

    var kind: ChangeKind
    var service: ObjectRef
    var upserts: [KubeObject]
    var deletes: [KubeObject]
    var signature: Signature
}

/// A Service port's entry point as the ruleset keys it (`service-ips-m<M>`, `no-endpoint-services`, and the
/// prefix of its Maglev slots in `backends`): `10.96.0.10 . tcp . 80`.
struct ServicePortKey: Hashable, Sendable, CustomStringConvertible {
    var clusterIP: String
    var proto: String
    var port: Int

    /// The first port of `service` at its first cluster IP (the synthetic Services have one of each).
    init?(_ service: Service) {
        guard let ip = service.clusterIPs.first, let port = service.ports.first else { return nil }
        self.init(clusterIP: ip.description, proto: port.protocol.nftName, port: port.port)
    }

    init(clusterIP: String, proto: String, port: Int) {
        self.clusterIP = clusterIP
        self.proto = proto
        self.port = port
    }

    var description: String { "\(clusterIP) . \(proto) . \(port)" }

    func mappingClusterIP(_ transform: (String) -> String) -> ServicePortKey {
        ServicePortKey(clusterIP: transform(clusterIP), proto: proto, port: port)
    }
}

extension SyntheticCluster {
    /// `apply(kind, using:)`, made through the same mutators with the same random choices, but returning
    /// what changed as objects and the signature to look for, instead of the dirty set.
    mutating func churnChange(_ kind: ChangeKind, using rng: inout SplitMix64) -> ChurnChange? {
        func ref(_ i: Int) -> ObjectRef { ObjectRef(namespace: Self.namespace, name: "svc-\(i)") }
        func sliceRef(_ i: Int) -> ObjectRef { ObjectRef(namespace: Self.namespace, name: "svc-\(i)-bench") }
        func portKey(_ i: Int) -> ServicePortKey? { state.services[ref(i)].flatMap(ServicePortKey.init) }
        switch kind {
        case .addEndpoint:
            guard let i = live.randomElement(using: &rng) else { return nil }
            addEndpoint(to: i)
            guard let slice = state.slices[sliceRef(i)], let added = slice.endpoints.last?.addresses.first,
                let key = portKey(i)
            else { return nil }
            return ChurnChange(kind: kind, service: ref(i), upserts: [.endpointSlice(slice)], deletes: [],
                               signature: .endpoint(added.description, of: key, present: true))
        case .removeEndpoint:
            // As `apply`: prefer a Service that keeps at least one endpoint.
            var chosen: Int?
            for _ in 0..<8 {
                if let i = live.randomElement(using: &rng), endpointCount(of: i) > 1 {
                    chosen = i
                    break
                }
            }
            if chosen == nil { chosen = live.randomElement(using: &rng) }
            guard let i = chosen, let removed = state.slices[sliceRef(i)]?.endpoints.first?.addresses.first,
                let key = portKey(i), removeEndpoint(from: i), let slice = state.slices[sliceRef(i)]
            else { return nil }
            return ChurnChange(kind: kind, service: ref(i), upserts: [.endpointSlice(slice)], deletes: [],
                               signature: .endpoint(removed.description, of: key, present: false))
        case .addService:
            let objects = addService()
            guard case .service(let service)? = objects.first, let key = ServicePortKey(service) else { return nil }
            return ChurnChange(kind: kind, service: service.ref, upserts: objects, deletes: [],
                               signature: .servicePort(key, present: true))
        case .removeService:
            guard let i = live.randomElement(using: &rng), let key = portKey(i),
                let service = state.services[ref(i)], let slice = state.slices[sliceRef(i)]
            else { return nil }
            removeService(i)
            return ChurnChange(kind: kind, service: ref(i), upserts: [],
                               deletes: [.endpointSlice(slice), .service(service)],
                               signature: .servicePort(key, present: false))
        }
    }

    /// Every object of the cluster, as informers' first lists deliver them.
    var allObjects: [KubeObject] {
        state.nodes.values.map { .node($0) } + state.services.values.map { .service($0) }
            + state.slices.values.map { .endpointSlice($0) }
    }
}

/// The part of our `ip` table that signatures look at, kept up to date from every committed transaction:
/// the Service port keys in the `service-ips-m<M>` sets and `no-endpoint-services`, and each Service port's
/// Maglev slots in `backends` (slot → endpoint address).
///
/// The `backends` data under the Service's own key is exact for an endpoint; `hairpin` (`E . E`) would be
/// too here (addresses are never shared), but not in general, as several Services may share an endpoint.
struct KernelPresence {
    static let table = TableID(.ip, "switchboard")
    /// The sets whose keys are Service ports: one per Maglev size, and the ports without endpoints.
    static let portSets: Set<String> = Set(MaglevTable.ladder.map(RulesetNames.serviceVIPs))
        .union([RulesetNames.noEndpointServices])

    /// Set name → the Service port keys in it. A port moves between sets as its endpoint count changes.
    private var ports: [String: Set<String>] = [:]
    /// Service port key → endpoint address per Maglev slot ("" for none).
    private var slots: [String: [String]] = [:]

    mutating func apply(_ transaction: Transaction) {
        for command in transaction.commands {
            switch command {
            case .deleteTable(let t) where t == Self.table:
                ports = [:]
                slots = [:]
            case .deleteSet(let t, let name, _) where t == Self.table, .flushSet(let t, let name, _) where t == Self.table:
                if Self.portSets.contains(name) { ports[name] = nil }
                if name == RulesetNames.backends { slots = [:] }
            case .addSet(let t, let set) where t == Self.table && !set.elements.isEmpty:
                add(set.name, set.elements.map { Command.Element(key: $0.key, data: $0.value) })
            case .addElements(let t, let set, let elements) where t == Self.table:
                add(set, elements)
            case .deleteElements(let t, let set, let keys) where t == Self.table:
                if Self.portSets.contains(set) {
                    ports[set]?.subtract(keys)
                } else if set == RulesetNames.backends {
                    for key in keys {
                        guard let (port, slot) = Self.slot(key), slots[port]?.indices.contains(slot) == true else {
                            continue
                        }
                        slots[port]![slot] = ""
                        if slots[port]!.allSatisfy(\.isEmpty) { slots[port] = nil }
                    }
                }
            default:
                break
            }
        }
    }

    private mutating func add(_ set: String, _ elements: [Command.Element]) {
        if Self.portSets.contains(set) {
            ports[set, default: []].formUnion(elements.map(\.key))
        } else if set == RulesetNames.backends {
            for element in elements {
                guard let (port, slot) = Self.slot(element.key) else { continue }
                var addresses = slots[port] ?? []
                if addresses.count <= slot { addresses += Array(repeating: "", count: slot + 1 - addresses.count) }
                addresses[slot] = Self.firstWord(element.data)
                slots[port] = addresses
            }
        }
    }

    func holds(_ signature: ChurnChange.Signature) -> Bool {
        switch signature {
        case .servicePort(let key, let present):
            let text = key.description
            return ports.values.contains { $0.contains(text) } == present
        case .endpoint(let address, let key, let present):
            return (slots[key.description]?.contains(address) ?? false) == present
        }
    }

    /// Service port keys in the kernel (with or without endpoints).
    var servicePortCount: Int { ports.values.reduce(0) { $0 + $1.count } }

    /// `10.96.0.10 . tcp . 80 . 17` → (`10.96.0.10 . tcp . 80`, 17).
    static func slot(_ key: String) -> (port: String, slot: Int)? {
        // The slot and the port are numbers, so the last "." is the separator before the slot.
        guard let dot = key.lastIndex(of: "."), let slot = Int(key[key.index(after: dot)...].drop { $0 == " " }),
            slot >= 0
        else { return nil }
        var port = key[..<dot]
        while port.last == " " { port = port.dropLast() }
        return (String(port), slot)
    }

    /// `10.244.0.2 . 8080` → `10.244.0.2`.
    private static func firstWord(_ text: String) -> String {
        String(text.prefix { $0 != " " })
    }
}
