import NFTModel
import SwitchboardCore

/// One change of a churn run: what was changed in the synthetic cluster, the objects to send, and how to
/// recognise in the kernel's transactions that it was committed.
struct ChurnChange: Sendable {
    /// What the kernel shows once the change is committed. Addresses are never reused by the
    /// synthetic cluster, so presence or absence of one is unambiguous.
    enum Signature: Hashable, Sendable {
        /// A `service-ips` element with this cluster IP exists (`present`) or is gone.
        case serviceIP(String, present: Bool)
        /// An endpoint chain DNATs to this address (`present`) or no longer does.
        case endpoint(String, present: Bool)
    }

    var kind: ChangeKind
    var service: ObjectRef
    var upserts: [KubeObject]
    var deletes: [KubeObject]
    var signature: Signature
}

extension SyntheticCluster {
    /// `apply(kind, using:)`, made through the same mutators with the same random choices, but returning
    /// what changed. (`apply` itself returns nothing; it belongs to the single-change part.)
    mutating func change(_ kind: ChangeKind, using rng: inout SplitMix64) -> ChurnChange? {
        func ref(_ i: Int) -> ObjectRef { ObjectRef(namespace: Self.namespace, name: "svc-\(i)") }
        func sliceRef(_ i: Int) -> ObjectRef { ObjectRef(namespace: Self.namespace, name: "svc-\(i)-bench") }
        func clusterIP(_ i: Int) -> String? { state.services[ref(i)]?.clusterIPs.first?.description }
        switch kind {
        case .addEndpoint:
            guard let i = live.randomElement(using: &rng) else { return nil }
            addEndpoint(to: i)
            guard let slice = state.slices[sliceRef(i)], let added = slice.endpoints.last?.addresses.first else {
                return nil
            }
            return ChurnChange(kind: kind, service: ref(i), upserts: [.endpointSlice(slice)], deletes: [],
                               signature: .endpoint(added.description, present: true))
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
                removeEndpoint(from: i), let slice = state.slices[sliceRef(i)]
            else { return nil }
            return ChurnChange(kind: kind, service: ref(i), upserts: [.endpointSlice(slice)], deletes: [],
                               signature: .endpoint(removed.description, present: false))
        case .addService:
            let objects = addService()
            guard case .service(let service)? = objects.first, let ip = service.clusterIPs.first else { return nil }
            return ChurnChange(kind: kind, service: service.ref, upserts: objects, deletes: [],
                               signature: .serviceIP(ip.description, present: true))
        case .removeService:
            guard let i = live.randomElement(using: &rng), let ip = clusterIP(i),
                let service = state.services[ref(i)], let slice = state.slices[sliceRef(i)]
            else { return nil }
            removeService(i)
            return ChurnChange(kind: kind, service: ref(i), upserts: [],
                               deletes: [.endpointSlice(slice), .service(service)],
                               signature: .serviceIP(ip, present: false))
        }
    }

    /// Every object of the cluster, as informers' first lists deliver them.
    var allObjects: [KubeObject] {
        state.nodes.values.map { .node($0) } + state.services.values.map { .service($0) }
            + state.slices.values.map { .endpointSlice($0) }
    }
}

/// The part of our `ip` table that signatures look at, kept up to date from every committed transaction:
/// the cluster IPs in `service-ips`, and the addresses that endpoint chains DNAT to.
struct KernelPresence {
    static let table = TableID(.ip, "switchboard")
    private(set) var serviceIPs: Set<String> = []
    private var endpointByChain: [String: String] = [:]
    private(set) var endpoints: [String: Int] = [:]

    mutating func apply(_ transaction: Transaction) {
        for command in transaction.commands {
            switch command {
            case .deleteTable(let t) where t == Self.table:
                serviceIPs = []
                endpointByChain = [:]
                endpoints = [:]
            case .addElements(let t, let set, let elements) where t == Self.table && set == RulesetNames.serviceIPs:
                for e in elements { serviceIPs.insert(Self.firstWord(e.key)) }
            case .deleteElements(let t, let set, let keys) where t == Self.table && set == RulesetNames.serviceIPs:
                for k in keys { serviceIPs.remove(Self.firstWord(k)) }
            case .addRule(let t, let chain, let rule) where t == Self.table:
                if let address = Self.dnatAddress(rule.text), endpointByChain[chain] != address {
                    if let old = endpointByChain.updateValue(address, forKey: chain) { release(old) }
                    endpoints[address, default: 0] += 1
                }
            case .deleteChain(let t, let chain) where t == Self.table:
                if let old = endpointByChain.removeValue(forKey: chain) { release(old) }
            default:
                break
            }
        }
    }

    func holds(_ signature: ChurnChange.Signature) -> Bool {
        switch signature {
        case .serviceIP(let ip, let present): serviceIPs.contains(ip) == present
        case .endpoint(let address, let present): (endpoints[address] != nil) == present
        }
    }

    private mutating func release(_ address: String) {
        if let n = endpoints[address] { endpoints[address] = n > 1 ? n - 1 : nil }
    }

    private static func firstWord(_ key: String) -> String {
        String(key.prefix { $0 != " " })
    }

    /// `... dnat to 10.128.0.5:8080` → `10.128.0.5` (IPv4 only: the synthetic cluster is IPv4).
    static func dnatAddress(_ rule: String) -> String? {
        guard let range = rule.range(of: "dnat to ") else { return nil }
        let target = rule[range.upperBound...].prefix { $0 != " " }
        guard let colon = target.lastIndex(of: ":") else { return String(target) }
        return String(target[..<colon])
    }
}
