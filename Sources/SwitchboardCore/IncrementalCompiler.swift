import NetworkTypes
import NFTModel

/// The compiler the agent keeps between syncs: holds the desired ruleset and what each Service
/// contributed to it, and on each update recompiles only the Services whose inputs changed.
///
/// `update` returns the `RulesetScope` of what may have changed, so the planner compares those chains,
/// maps and entries only: compiling and planning one change costs the same at 100 Services as at
/// 30,000. The result is always exactly what a fresh `compile` of the same state gives (the property
/// tests check this after random sequences of changes); `compile` is this type's first update.
///
/// Entries of the shared dispatch maps are claimed by Services; when several claim the same entry the
/// Service first in name order wins and the others get a diagnostic, exactly as one pass in name order
/// would decide, whatever order the changes came in.
///
/// The ruleset is mutated in place: a caller that keeps a copy of `ruleset` across an update makes the
/// next update copy the whole ruleset (copy-on-write), which is correct but slow at scale.
public struct IncrementalCompiler: Sendable {
    public let node: NodeContext
    /// The desired ruleset for the state of the last update.
    public private(set) var ruleset: Ruleset
    /// Service ports, per IP family, whose Local traffic policy finds no endpoint on this node, in the state
    /// of the last update (kept up to date Service by Service, like `ruleset`).
    public private(set) var noLocalEndpoints = NoLocalEndpointCounts()

    /// The inputs each compiled Service was compiled from, and what it compiled to.
    private var inputs: [ObjectRef: ServiceInputs] = [:]
    private var outputs: [ObjectRef: ServiceOutput] = [:]
    /// Per table and claimed entry: every Service claiming it, with its claim.
    private var claimants: [TableID: [ClaimKey: [ObjectRef: ServiceFragment.Claim]]] = [:]
    /// Per table and claimed entry: the claim whose elements are in `ruleset`.
    private var holders: [TableID: [ClaimKey: ServiceFragment.Claim]] = [:]
    /// Conflict diagnostics per table and contested entry.
    private var conflicts: [TableID: [ClaimKey: [Diagnostic]]] = [:]
    /// The Node object the skeleton was built from (`forRules`: a taint change rebuilds nothing); nil before
    /// the first update.
    private var nodeObject: Node??
    /// The change being recorded, during `update` only.
    private var change: IncrementalChange?

    private struct ServiceInputs: Hashable, Sendable {
        var service: Service
        var slices: [EndpointSlice]
    }

    public init(node: NodeContext) {
        self.node = node
        self.ruleset = Ruleset()
    }

    /// Every diagnostic of the current state, deduplicated, in a stable order.
    public var diagnostics: [Diagnostic] {
        var all = Set<Diagnostic>()
        for output in outputs.values { all.formUnion(output.diagnostics) }
        for table in conflicts.values {
            for list in table.values { all.formUnion(list) }
        }
        return all.sorted { ($0.object, $0.field, $0.message) < ($1.object, $1.field, $1.message) }
    }

    /// Brings `ruleset` up to date with `state`. `changed` names the Services that may have changed since
    /// the last update (the agent's dirty set); nil checks every Service. A Service whose inputs are
    /// unchanged is never recompiled, so a too-large `changed` only costs time. A change of this node's
    /// Node object recompiles everything.
    ///
    /// Returns what may differ from the ruleset of the previous update, and the previous versions of
    /// exactly those parts: `ruleset.transaction(from: change.before, scope: change.scope)` is the plan
    /// from the previous ruleset, without a copy of the whole previous ruleset ever being kept.
    @discardableResult
    public mutating func update(_ state: ClusterState, changed: Set<ObjectRef>?) -> IncrementalChange {
        change = IncrementalChange(tables: ruleset.tables.keys)
        defer { change = nil }
        let nodeObject = state.nodes[node.nodeName]?.forRules
        let rebuildAll = self.nodeObject != .some(nodeObject)
        if rebuildAll {
            self.nodeObject = .some(nodeObject)
            rebuildSkeleton(state)
        }
        let candidates: Set<ObjectRef> =
            if rebuildAll || changed == nil { Set(state.services.keys).union(outputs.keys) } else { changed! }

        let compiler = ServiceCompiler(node: node, zone: nodeObject?.zone)
        var touched: [TableID: Set<ClaimKey>] = [:]
        for ref in candidates {
            let now = state.services[ref].map { ServiceInputs(service: $0, slices: state.endpointSlices(for: ref)) }
            if !rebuildAll && now == inputs[ref] { continue }
            inputs[ref] = now
            let output = now.map { compiler.compile($0.service, slices: $0.slices) }
            replace(ref, with: output, touched: &touched)
        }
        for (id, keys) in touched {
            for key in keys { resolve(key, in: id) }
        }
        return change!
    }

    // MARK: - Cold start in bounded batches

    /// Writes `tables` of `ruleset` into a kernel that does not hold them intact (absent, or flushed: no
    /// canary) as a series of batches of about `maxElements` elements each, so that neither this process
    /// nor libnftables ever holds the whole cluster as text. Each batch is atomic and leaves every entry
    /// point whole or absent, never half-filled:
    ///
    /// 1. each table is created afresh (added, deleted, added) with every set and chain declared, every
    ///    rule, and the skeleton's own elements (CIDRs, node addresses): no Service is reachable yet;
    /// 2. entry points follow claim by claim (a VIP or node port with its dispatch entry, its Maglev slots
    ///    and its marks; hairpin pairs), never split across batches;
    /// 3. the last batch adds `cluster-ips` (a cluster IP there rejects ports that are not dispatched, so
    ///    it waits for all of them) and the canary: a cold start cut short leaves no canary, and the next
    ///    full sync starts again from 1.
    ///
    /// Batches are made one at a time as the sequence is iterated. The result equals
    /// `ruleset.replacing(tables)` applied at once.
    public func coldStartBatches(_ tables: Set<TableID>, maxElements: Int) -> ColdStartBatches {
        ColdStartBatches(ruleset: ruleset, holders: holders.filter { tables.contains($0.key) }, tables: tables,
                         maxElements: max(1, maxElements))
    }

    // MARK: - Assembly

    /// Rebuilds both tables' skeletons, keeping the elements Services claimed.
    private mutating func rebuildSkeleton(_ state: ClusterState) {
        for family in IPFamily.allCases {
            let id = node.tableID(family)
            let skeleton = Skeleton.table(
                family: family, node: node, nodeAddresses: nodePortAddresses(family, state).map(\.description), podCIDRs: podCIDRs(state))
            if ruleset[id] == nil { ruleset[id] = Table(id: id) }
            for (name, chain) in skeleton.chains { setChain(name, chain, in: id) }
            for (name, set) in skeleton.sets {
                var merged = set
                // Sets keep the elements Services claimed; the skeleton's own sets (CIDRs, node
                // addresses) are the skeleton's alone.
                if !RulesetNames.skeletonFilledSets.contains(name), let old = ruleset[id]!.sets[name] {
                    merged.elements = old.elements
                }
                setSet(name, merged, in: id)
            }
        }
    }

    /// Swaps one Service's contribution for a new one (nil: the Service is gone or produces nothing).
    private mutating func replace(
        _ ref: ObjectRef, with output: ServiceOutput?, touched: inout [TableID: Set<ClaimKey>]
    ) {
        let old = outputs[ref]
        outputs[ref] = output
        for family in IPFamily.allCases {
            let id = node.tableID(family)
            let before = old?.fragments[family]
            let after = output?.fragments[family]
            if before == nil && after == nil { continue }
            noLocalEndpoints.remove(before?.noLocalEndpoints ?? NoLocalEndpointCounts())
            noLocalEndpoints.add(after?.noLocalEndpoints ?? NoLocalEndpointCounts())
            for (key, _) in before?.claims ?? [:] {
                claimants[id, default: [:]][key]?[ref] = nil
                touched[id, default: []].insert(key)
            }
            for (key, claim) in after?.claims ?? [:] {
                claimants[id, default: [:]][key, default: [:]][ref] = claim
                touched[id, default: []].insert(key)
            }
        }
    }

    /// Decides one claimed entry: the claimant first in name order holds it; in the spaces that report
    /// conflicts, the others are told.
    private mutating func resolve(_ key: ClaimKey, in id: TableID) {
        let claims = claimants[id]?[key] ?? [:]
        if claims.isEmpty { claimants[id]?[key] = nil }
        let winner = Self.winner(claims.keys)
        let claim = winner.map { claims[$0]! }
        conflicts[id]?[key] = nil
        if holders[id]?[key] != claim {
            // Take the old holder's elements out, put the new one's in; an element both have keeps its
            // place (the planner sees the same data before and after; with another comment, the new one's).
            for element in holders[id]?[key]?.elements ?? [] {
                if element.slots != nil {
                    setSlots(element.key, nil, of: element.set, in: id)
                } else {
                    setElement(element.key, nil, comment: nil, of: element.set, in: id)
                }
            }
            for (name, _) in holders[id]?[key]?.chains ?? [:] where claim?.chains[name] == nil { setChain(name, nil, in: id) }
            for (name, chain) in claim?.chains ?? [:] where ruleset[id]!.chains[name] != chain { setChain(name, chain, in: id) }
            for element in claim?.elements ?? [] {
                if let slots = element.slots {
                    setSlots(element.key, slots, of: element.set, in: id)
                } else {
                    setElement(element.key, element.data, comment: element.comment, of: element.set, in: id)
                }
            }
            holders[id, default: [:]][key] = claim
        }
        guard let winner, claims.count > 1, key.space.reportsConflicts else { return }
        conflicts[id, default: [:]][key] = claims.keys.filter { $0 != winner }.sorted().map { loser in
            Diagnostic(
                .service(loser), field: "spec.ports[\(claims[loser]!.portIndex)]",
                message: "\(key.key) is already used by Service \(winner); ignored")
        }
    }

    /// Of the Services claiming one entry, the one that holds it: the first in name order.
    private static func winner(_ claimants: some Sequence<ObjectRef>) -> ObjectRef? { claimants.min() }

    /// Who claims an entry point of `family`'s table: the VIP port `address . proto . port`, or with
    /// `address` nil the node port `proto . port`. The holder's elements are in `ruleset`; the others'
    /// claims are ignored (each has a diagnostic). Both empty when no Service claims it.
    public func claimants(
        _ family: IPFamily, address: IPAddress?, _ proto: L4Protocol, port: Int
    ) -> (holder: ObjectRef?, others: [ObjectRef]) {
        let key = address.map { ClaimKey(space: .vip, key: EntryKey.vip($0, proto, port)) }
            ?? ClaimKey(space: .nodePort, key: EntryKey.nodePort(proto, port))
        let refs = claimants[node.tableID(family)]?[key].map { Array($0.keys) } ?? []
        let holder = Self.winner(refs)
        return (holder, refs.filter { $0 != holder }.sorted())
    }

    // MARK: - Recording changes

    /// Every change to `ruleset` goes through these three, which note the part in the scope and keep
    /// its previous version (the first time it changes in this update).
    private mutating func setChain(_ name: String, _ chain: Chain?, in id: TableID) {
        if recording(id), change!.scope.tables[id]?.chains.contains(name) != true {
            change!.scope.insertChain(name, in: id)
            change!.before.tables[id]?.chains[name] = ruleset[id]!.chains[name]
        }
        ruleset.tables[id]!.chains[name] = chain
    }

    /// For a set that also has single elements changed, call this first (the skeleton is rebuilt
    /// before any Service is).
    private mutating func setSet(_ name: String, _ set: NFTSet?, in id: TableID) {
        if recording(id), change!.scope.tables[id]?.sets.contains(name) != true {
            change!.scope.insertSet(name, in: id)
            change!.before.tables[id]?.sets[name] = ruleset[id]!.sets[name]
        }
        ruleset.tables[id]!.sets[name] = set
    }

    private mutating func setElement(_ key: String, _ data: String?, comment: String?, of set: String, in id: TableID) {
        guard recording(id) else {
            ruleset.tables[id]!.sets[set]!.elements.set(key, data, comment: comment)
            return
        }
        // Read in place: a copy of the set's elements held across the write below would copy them all.
        let old = ruleset[id]!.sets[set]!.elements[key]
        let oldComment = ruleset[id]!.sets[set]!.elements.comment(key)
        if old == data && (data == nil || oldComment == comment) { return }
        let wholeSet = change!.scope.tables[id]?.sets.contains(set) == true
        if !wholeSet, change!.scope.tables[id]?.elements[set]?.contains(key) != true {
            change!.scope.insertElement(key, of: set, in: id)
            if change!.before.tables[id]?.sets[set] == nil {
                change!.before.tables[id]?.sets[set] = ruleset[id]!.sets[set]!.declarationOnly
            }
            change!.before.tables[id]?.sets[set]?.elements.set(key, old, comment: oldComment)
        }
        ruleset.tables[id]!.sets[set]!.elements.set(key, data, comment: comment)
    }

    /// The same for a Maglev table, recorded as one part: the planner compares it slot by slot.
    private mutating func setSlots(_ prefix: String, _ slots: SlotTable?, of set: String, in id: TableID) {
        guard recording(id) else {
            ruleset.tables[id]!.sets[set]!.elements.setSlots(prefix, slots)
            return
        }
        let old = ruleset[id]!.sets[set]!.elements.slots(prefix)
        if old == slots { return }
        let wholeSet = change!.scope.tables[id]?.sets.contains(set) == true
        if !wholeSet, change!.scope.tables[id]?.slotTables[set]?.contains(prefix) != true {
            change!.scope.insertSlotTable(prefix, of: set, in: id)
            if change!.before.tables[id]?.sets[set] == nil {
                change!.before.tables[id]?.sets[set] = ruleset[id]!.sets[set]!.declarationOnly
            }
            change!.before.tables[id]?.sets[set]?.elements.setSlots(prefix, old)
        }
        ruleset.tables[id]!.sets[set]!.elements.setSlots(prefix, slots)
    }

    /// A table that did not exist before this update is created whole by any plan: nothing of it needs
    /// recording (at cold start that is millions of elements).
    private func recording(_ id: TableID) -> Bool { change!.before.tables[id] != nil }

    /// Where pod traffic comes from: `--cluster-cidr`, or with `--detect-local-mode NodeCIDR` this
    /// node's `podCIDRs`; the interface modes need none.
    func podCIDRs(_ state: ClusterState) -> [CIDR] {
        switch node.localDetection {
        case .clusterCIDR: return node.clusterCIDRs
        case .nodeCIDR: return state.nodes[node.nodeName]?.podCIDRs ?? []
        case .interfaceNamePrefix, .bridgeInterface: return []
        }
    }

    /// The local addresses NodePorts answer on: `--nodeport-addresses`, or the node's InternalIPs.
    func nodePortAddresses(_ family: IPFamily, _ state: ClusterState) -> [CIDR] {
        if !node.nodePortAddresses.isEmpty {
            return CIDR.outermost(node.nodePortAddresses.filter { $0.family == family })
        }
        let ips = state.nodes[node.nodeName]?.internalIPs ?? []
        return CIDR.outermost(ips.filter { $0.family == family }.map { CIDR(address: $0, prefixLength: $0.bytes.count * 8) })
    }
}

/// What one `IncrementalCompiler.update` changed: the scope to plan over, and the previous version of
/// every part in it (a sparse ruleset: the tables that existed, holding only those parts).
public struct IncrementalChange: Sendable {
    public var scope = RulesetScope()
    public var before: Ruleset

    init(tables: some Sequence<TableID>) {
        before = Ruleset(tables: tables.map { Table(id: $0) })
    }

    /// Nothing changed.
    public var isEmpty: Bool { scope.tables.values.allSatisfy { $0.chains.isEmpty && $0.sets.isEmpty && $0.elements.isEmpty } }
}

/// The batches of `IncrementalCompiler.coldStartBatches`, made one at a time.
public struct ColdStartBatches: Sequence, Sendable {
    let ruleset: Ruleset
    let holders: [TableID: [ClaimKey: ServiceFragment.Claim]]
    let tables: Set<TableID>
    let maxElements: Int

    public func makeIterator() -> AnyIterator<Transaction> {
        var stage = 0
        // The claims to write, in a fixed order: table, space, key (each space sorted on its own).
        var claims: [(TableID, ServiceFragment.Claim)] = []
        var last: [(TableID, ServiceFragment.Claim)] = []
        for id in tables.sorted() {
            var bySpace: [ClaimSpace: [(key: String, claim: ServiceFragment.Claim)]] = [:]
            for (key, claim) in holders[id] ?? [:] { bySpace[key.space, default: []].append((key.key, claim)) }
            for space in ClaimSpace.allCases {
                let sorted = (bySpace[space] ?? []).sorted { canonicalOrder($0.key, $1.key) }
                if space == .clusterIP {
                    last += sorted.map { (id, $0.claim) }
                } else {
                    claims += sorted.map { (id, $0.claim) }
                }
            }
        }
        var next = 0
        let ruleset = ruleset
        let tables = tables.sorted().filter { ruleset[$0] != nil }
        let maxElements = maxElements
        return AnyIterator {
            switch stage {
            case 0:
                stage = 1
                return Self.skeleton(ruleset, tables)
            case 1:
                var batch = ElementBatch()
                while next < claims.count && (batch.count == 0 || batch.count + claims[next].1.elementCount <= maxElements) {
                    batch.add(claims[next].1, in: claims[next].0)
                    next += 1
                }
                if next >= claims.count { stage = 2 }
                if batch.count > 0 { return batch.transaction }
                fallthrough
            case 2:
                stage = 3
                var batch = ElementBatch()
                for (id, claim) in last { batch.add(claim, in: id) }
                for id in tables {
                    if let canary = ruleset[id]?.sets[RulesetNames.canary] {
                        for (key, data) in canary.elements { batch.add(RulesetNames.canary, key, data, in: id) }
                    }
                }
                return batch.transaction
            default:
                return nil
            }
        }
    }

    /// Stage 1: the tables, declared whole, with rules and the skeleton's own elements but the canary.
    private static func skeleton(_ ruleset: Ruleset, _ ids: [TableID]) -> Transaction {
        var declarations: [Command] = []
        var rules: [Command] = []
        var elements: [Command] = []
        for id in ids {
            let table = ruleset[id]!
            declarations += [.addTable(id), .deleteTable(id), .addTable(id)]
            for name in table.sets.keys.sorted(by: canonicalOrder) {
                let set = table.sets[name]!
                declarations.append(.addSet(id, set.declarationOnly))
                if RulesetNames.skeletonFilledSets.contains(name), name != RulesetNames.canary, !set.elements.isEmpty {
                    elements.append(.addElements(id, set: name, set.elements.sorted().map { .init(key: $0.key, data: $0.value) }))
                }
            }
            for name in table.chains.keys.sorted(by: canonicalOrder) {
                let chain = table.chains[name]!
                declarations.append(.addChain(id, chain.declarationOnly))
                rules += chain.rules.map { .addRule(id, chain: name, $0) }
            }
        }
        return Transaction(declarations + rules + elements)
    }

    /// Elements of whole claims, grouped per table and set.
    private struct ElementBatch {
        var sets: [TableID: [String: [Command.Element]]] = [:]
        var count = 0

        mutating func add(_ claim: ServiceFragment.Claim, in id: TableID) {
            for element in claim.elements {
                if let slots = element.slots {
                    for slot in 0..<slots.count { add(element.set, SlotTable.key(element.key, slot: slot), slots[slot], in: id) }
                } else {
                    add(element.set, element.key, element.data, comment: element.comment, in: id)
                }
            }
        }

        mutating func add(_ set: String, _ key: String, _ data: String, comment: String? = nil, in id: TableID) {
            sets[id, default: [:]][set, default: []].append(Command.Element(key: key, data: data, comment: comment))
            count += 1
        }

        var transaction: Transaction {
            var commands: [Command] = []
            for id in sets.keys.sorted() {
                for name in sets[id]!.keys.sorted(by: canonicalOrder) {
                    commands.append(.addElements(id, set: name, sets[id]![name]!))
                }
            }
            return Transaction(commands)
        }
    }
}

extension ServiceFragment.Claim {
    /// The elements this claim writes (a Maglev table counts its slots).
    var elementCount: Int { elements.reduce(0) { $0 + ($1.slots?.count ?? 1) } }
}
