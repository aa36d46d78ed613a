import NFTModel
import SwitchboardCore

/// One seed's case of the planner's property tests (SwitchboardCoreTests' and EndToEndTests'
/// `PlannerPropertyTests`): two random clusters a and b, b derived from a by mutations, the node context they
/// compile for, and the rulesets they compile to. Seed n always includes mutation kind
/// `n % RandomCluster.Mutation.allCases.count`, so the first seeds cover every kind.
public struct PlannerPropertyCase: Sendable {
    public let seed: UInt64
    public let context: NodeContext
    public let a: RandomCluster
    public let b: RandomCluster
    /// What turned a into b, in order, for the failure report.
    public let mutations: [String]
    public let ra: Ruleset
    public let rb: Ruleset
    /// The compiled empty cluster: the skeleton tables only.
    public let rEmpty: Ruleset

    public init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        self.seed = seed
        let context = NodeContext.random(&rng)
        let a = RandomCluster.random(&rng)
        var b = a
        var log: [String] = []
        // Random extras first, then the kind this seed is responsible for, so that it has the last word.
        for _ in 0..<rng.int(0...4) {
            let kind = rng.chance(0.03) ? RandomCluster.Mutation.removeEverything
                : RandomCluster.Mutation.allCases.filter { $0 != .removeEverything }.randomElement(using: &rng)!
            log.append(b.mutate(kind, &rng))
        }
        let kinds = RandomCluster.Mutation.allCases
        log.append(b.mutate(kinds[Int(seed % UInt64(kinds.count))], &rng))
        self.context = context
        self.a = a
        self.b = b
        self.mutations = log
        ra = compile(a.state, for: context).ruleset
        rb = compile(b.state, for: context).ruleset
        rEmpty = compile(ClusterState(), for: context).ruleset
    }

    public var tableIDs: Set<TableID> { context.tableIDs }

    /// The steps every backend goes through: (label, target, full sync?). The first and last are full
    /// syncs (`replacing`), the others partial plans from what the backend holds.
    public var chain: [(String, Ruleset, Bool)] {
        [("full sync to a", ra, true), ("a → b", rb, false), ("b → a", ra, false), ("a → empty", rEmpty, false),
         ("empty → b", rb, false), ("full sync to a over b", ra, true)]
    }

    public var summary: String {
        """
        seed \(seed): a has \(a.services.count) services, \(a.slices.count) slices, \(ra.elementCount) elements, \
        \(ra.chainCount) chains; b has \(b.services.count) services, \(b.slices.count) slices, \
        \(rb.elementCount) elements, \(rb.chainCount) chains
        context: clusterCIDRs \(context.clusterCIDRs), nodePortAddresses \(context.nodePortAddresses), \
        masqueradeAll \(context.masqueradeAll)
        mutations a → b: \(mutations.joined(separator: "; "))
        """
    }

    public static let coverageKeys = [
        "maglev table resized", "maglev slots changed in place", "hairpin element removed", "external VIP element",
        "no-endpoint element", "node port element", "IPv6 service element", "sctp element",
        "b is empty", "nothing changed",
    ]

    /// Which interesting kinds of change plan(a, b) contains, for `generatorReachesEveryKindOfChange`.
    public func coverage() -> [String: Int] {
        let tx = rb.transaction(from: ra)
        var out: [String: Int] = [:]
        func count(_ key: String, _ yes: Bool) { if yes { out[key, default: 0] += 1 } }
        var deleted: [String: Set<String>] = [:]
        var added: [String: Set<String>] = [:]
        for command in tx.commands {
            switch command {
            case .deleteElements(_, let set, let keys): deleted[set, default: []].formUnion(keys)
            case .addElements(_, let set, let elements): added[set, default: []].formUnion(elements.map(\.key))
            default: break
            }
        }
        let dispatch = { (name: String) in name.hasPrefix("service-ips-m") }
        count("maglev table resized", deleted.contains { d in dispatch(d.key) && added.contains { a in
            dispatch(a.key) && a.key != d.key && !a.value.isDisjoint(with: d.value) } })
        count("maglev slots changed in place", !(deleted["backends"] ?? []).isDisjoint(with: added["backends"] ?? []))
        count("hairpin element removed", !(deleted["hairpin"] ?? []).isEmpty)
        let all = [ra, rb].flatMap { r in r.tables.values.flatMap { t in t.sets.values.map { (t.id, $0) } } }
        count("external VIP element", all.contains { $0.1.name == "external-ips" && !$0.1.elements.isEmpty })
        count("no-endpoint element", all.contains { $0.1.name.hasPrefix("no-endpoint") && !$0.1.elements.isEmpty })
        count("node port element", all.contains { $0.1.name.hasPrefix("service-nodeports") && !$0.1.elements.isEmpty })
        count("IPv6 service element", all.contains { $0.0.family == .ip6 && $0.1.name == "backends"
            && !$0.1.elements.isEmpty })
        count("sctp element", all.contains { $0.1.elements.keys.contains { $0.contains("sctp") } })
        count("b is empty", b.services.isEmpty)
        count("nothing changed", tx.isEmpty)
        return out
    }
}

extension ClusterState {
    /// Moves the state from one list of objects to another the way the agent's tracker does (upserts of
    /// new or changed objects, removals of gone ones); returns the Services the state reports touched.
    public mutating func apply(from before: [KubeObject], to after: [KubeObject]) -> Set<ObjectRef> {
        func key(_ o: KubeObject) -> String {
            switch o {
            case .service(let s): "s \(s.ref)"
            case .endpointSlice(let e): "e \(e.ref)"
            case .node(let n): "n \(n.name)"
            }
        }
        let old = Dictionary(uniqueKeysWithValues: before.map { (key($0), $0) })
        let new = Dictionary(uniqueKeysWithValues: after.map { (key($0), $0) })
        var touched = Set<ObjectRef>()
        for (k, object) in old where new[k] == nil { touched.formUnion(remove(object)) }
        for (k, object) in new where old[k] != object { touched.formUnion(upsert(object)) }
        return touched
    }
}

extension PlannerPropertyCase {
    /// a's cold start in bounded batches (`IncrementalCompiler.coldStartBatches`), as the agent sends them.
    public func coldStartBatches(maxElements: Int) -> [Transaction] {
        var compiler = IncrementalCompiler(node: context)
        compiler.update(a.state, changed: nil)
        return Array(compiler.coldStartBatches(tableIDs, maxElements: maxElements))
    }
}
