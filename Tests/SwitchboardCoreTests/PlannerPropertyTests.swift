import NetworkTypes
import NFTModel
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

// The planner's property, without a kernel: for random pairs of cluster states a and b (SwitchboardTesting's
// `PlannerPropertyCase`: one seed, one pair), the plan a → b is minimal and leaves exactly b. EndToEndTests'
// `PlannerPropertyTests.Kernel` runs the same cases through libnftables.
//
// Each seed drives one deterministic generator (SplitMix64): a random cluster (`RandomCluster`) and a second
// one derived from it by random mutations. Seed n always includes mutation kind
// `n % RandomCluster.Mutation.allCases.count`, so the first seeds cover every kind, Maglev resizes and "remove
// everything" included. A failing seed is reproduced by running its test case alone; the issue names the
// mutations.
//
// - `Plans`: the transaction a → b touches only what differs (elements one by one, changed chains only) and a
//   second plan is empty; the incremental compiler equals a fresh compile.
// - `Fake`: the same chain of plans through `FakeNFTables`, which checks the kernel's reference rules
//   (a rule's map exists, a deleted chain is no longer referred to, ...).
// - `ColdStart`, `StagedRebuilds`: bounded batches through `FakeNFTables`.

/// Seeds without a kernel: cheap, so many of them (debug builds make even these cost ~0.1 s a seed).
private let modelSeeds: [UInt64] = Array(0..<64)
private let fakeSeeds: [UInt64] = Array(0..<32)

@Suite(.exclusive) struct PlannerPropertyTests {
    /// What the planner emits between two compiled clusters, checked without a kernel.
    @Suite struct Plans {
        @Test("a plan touches only what differs, and a second plan is empty", arguments: modelSeeds)
        func planTouchesOnlyWhatDiffers(seed: UInt64) {
            let c = PlannerPropertyCase(seed: seed)
            let pairs = [("a → b", c.ra, c.rb), ("b → a", c.rb, c.ra), ("a → empty", c.ra, c.rEmpty),
                         ("empty → b", c.rEmpty, c.rb)]
            for (label, old, new) in pairs {
                let tx = new.transaction(from: old)
                let problems = planProblems(from: old, to: new, tx)
                #expect(problems.isEmpty, "\(c.summary)\n\(label):\n\(problems.joined(separator: "\n"))")
                #expect(tx.elementChanges == elementSymmetricDifference(from: old, to: new),
                        "\(c.summary)\n\(label): element changes ≠ symmetric difference of (key, data) pairs")
            }
            for (label, r) in [("a", c.ra), ("b", c.rb), ("empty", c.rEmpty)] {
                let again = r.transaction(from: r)
                #expect(again.isEmpty, "\(c.summary)\nplan(\(label), \(label)) is not empty:\n\(again.excerpt)")
            }
        }

        /// The agent's incremental compiler, fed the changes one at a time with the dirty sets the
        /// cluster state reports (as the controller does), must hold exactly what a fresh compile gives,
        /// and the plan over its scope must equal the plan over everything.
        @Test("incremental compile and scoped plans equal fresh compile and full plans", arguments: modelSeeds)
        func incrementalEqualsFresh(seed: UInt64) {
            var rng = SplitMix64(seed: seed ^ 0x1c0_ffee)
            let context = NodeContext.random(&rng)
            var world = RandomCluster.random(&rng)
            var state = world.state
            var compiler = IncrementalCompiler(node: context)
            compiler.update(state, changed: [])
            var previous = compiler.ruleset  // a whole copy, so the sparse `before` can be checked against it
            for step in 0..<12 {
                let kind = RandomCluster.Mutation.allCases[(Int(seed) + step) % RandomCluster.Mutation.allCases.count]
                let before = world.objects
                let label = world.mutate(kind, &rng)
                let dirty = state.apply(from: before, to: world.objects)
                let change = compiler.update(state, changed: dirty)
                let fresh = compile(state, for: context)
                let where_ = "seed \(seed) step \(step) (\(label))"
                guard compiler.ruleset == fresh.ruleset else {
                    let diff = rulesetDiff(expected: fresh.ruleset, actual: compiler.ruleset)
                    Issue.record("\(where_): incremental ruleset differs\n\(diff)")
                    return
                }
                #expect(compiler.diagnostics == fresh.diagnostics, "\(where_)")
                let scoped = compiler.ruleset.transaction(from: change.before, scope: change.scope)
                let full = compiler.ruleset.transaction(from: previous)
                #expect(scoped == full, "\(where_): scoped plan\n\(scoped.excerpt)\nfull plan\n\(full.excerpt)")
                previous = compiler.ruleset
            }
        }

        /// A name or comment the kernel shortens or refuses reads back as something else, and then every
        /// later plan sees a difference (a set's comment is part of its declaration: the table is replaced).
        @Test("every name and comment the compiler emits is one the kernel keeps verbatim", arguments: modelSeeds)
        func namesAndCommentsAreKeptVerbatim(seed: UInt64) {
            let c = PlannerPropertyCase(seed: seed)
            var offenders = Set<String>()
            for r in [c.ra, c.rb] {
                for table in r.tables.values {
                    for name in Array(table.chains.keys) + Array(table.sets.keys) where !isValidNFTIdentifier(name) {
                        offenders.insert("name \(name) (\(name.utf8.count) bytes)")
                    }
                    for set in table.sets.values {
                        if let comment = set.comment, nftQuoted(comment) != "\"\(comment)\"" {
                            offenders.insert("comment of \(table.id) \(set.name): \"\(comment)\" "
                                + "(\(comment.utf8.count) bytes; nft keeps \(nftQuoted(comment)))")
                        }
                    }
                }
            }
            if !offenders.isEmpty {
                Issue.record("""
                    \(c.summary)
                    \(offenders.count) names or comments the kernel would not keep as written, e.g.:
                    \(offenders.sorted().prefix(3).joined(separator: "\n"))
                    """)
            }
        }

        /// The generator is only as good as what it reaches: over all model seeds, every interesting kind
        /// of change must occur (else a generator change silently weakened the property).
        @Test func generatorReachesEveryKindOfChange() {
            var seen: [String: Int] = [:]
            for seed in modelSeeds {
                let c = PlannerPropertyCase(seed: seed)
                for (key, n) in c.coverage() { seen[key, default: 0] += n }
            }
            for key in PlannerPropertyCase.coverageKeys {
                #expect(seen[key, default: 0] > 0, "no model seed produced \"\(key)\"; seen: \(seen)")
            }
        }
    }

    /// The same chain of plans through the in-memory fake, which enforces the kernel's reference checks.
    @Suite struct Fake {
        @Test("plans applied to FakeNFTables leave exactly the target", arguments: fakeSeeds)
        func fakeFollowsPlans(seed: UInt64) async throws {
            let c = PlannerPropertyCase(seed: seed)
            let fake = FakeNFTables()
            var current = Ruleset.empty
            for (label, target, full) in c.chain {
                let tx = full ? target.replacing(c.tableIDs) : target.transaction(from: current)
                do {
                    try await fake.apply(tx)
                } catch {
                    Issue.record(
                        "\(c.summary)\nstep \(label): FakeNFTables rejected the plan: \(error)\n\(tx.excerpt)")
                    return
                }
                current = await fake.read(c.tableIDs)
                guard current == target else {
                    let diff = rulesetDiff(expected: target, actual: current)
                    Issue.record("\(c.summary)\nstep \(label): the fake holds something else\n\(diff)")
                    return
                }
            }
        }
    }

    /// A cold start in bounded batches (`IncrementalCompiler.coldStartBatches`), over a table that holds
    /// something else: after every batch each entry point present is whole, the canary comes last, and
    /// the end is exactly the full sync's result.
    @Suite struct ColdStart {
        @Test("batches applied to FakeNFTables end at the target, every entry point whole after each", arguments: fakeSeeds)
        func coldStartInBatches(seed: UInt64) async throws {
            let c = PlannerPropertyCase(seed: seed)
            let fake = FakeNFTables()
            try await fake.apply(c.rb.replacing(c.tableIDs))
            let batches = coldStart(c, maxElements: 40)
            for (index, batch) in batches.enumerated() {
                try await fake.apply(batch)
                let held = await fake.read(c.tableIDs)
                for problem in entryPointProblems(held) { Issue.record("\(c.summary)\nbatch \(index): \(problem)") }
                let canary = held.tables.values.contains { !($0.sets[RulesetNames.canary]?.elements.isEmpty ?? true) }
                #expect(canary == (index == batches.count - 1), "the canary comes with the last batch only")
            }
            let held = await fake.read(c.tableIDs)
            #expect(held == c.ra, "\(c.summary)\n\(rulesetDiff(expected: c.ra, actual: held))")
        }
    }

    /// The staged rebuild of an intact table (`Ruleset.stagedRebuild`): b → a → b, large sets filled out of
    /// place. Until the last batch the sets and rules in use are exactly the old ones; after it, read in our
    /// names, exactly the target; then partial plans, renamed for the kernel, apply on top.
    @Suite struct StagedRebuilds {
        @Test("staged rebuilds through FakeNFTables keep the old state live until the switch", arguments: fakeSeeds)
        func stagedRebuildsKeepTheOldStateUntilTheSwitch(seed: UInt64) async throws {
            let c = PlannerPropertyCase(seed: seed)
            let fake = FakeNFTables()
            try await fake.apply(c.rb.replacing(c.tableIDs))
            var names = KernelNames.identity
            for (label, old, target) in [("b → a", c.rb, c.ra), ("a → b", c.ra, c.rb), ("b → a again", c.rb, c.ra)] {
                for id in c.tableIDs.sorted() where target[id] != nil {
                    let declared = try #require(try await fake.readDeclarations(id))
                    let found = KernelNames.fromKernel(Ruleset(tables: [declared])).1
                    #expect(found.sets[id] == names.sets[id] && found.chains[id] == names.chains[id])
                    let staging = Set(target[id]!.sets.filter { $0.value.elements.count > 3 }.keys)
                    let rebuild = target.stagedRebuild(id, kernel: declared, names: names, staging: staging, maxElements: 25)
                    let batches = Array(rebuild)
                    for (index, batch) in batches.enumerated() {
                        try await fake.apply(batch)
                        guard index < batches.count - 1 else { break }
                        // What packets see: the rules and the sets they name, read in our names.
                        var held = await fake.read([id])
                        for name in rebuild.stagedSetsForTests { held.tables[id]!.sets[rebuild.names.kernelSet(name, in: id)] = nil }
                        for name in rebuild.stagedChainsForTests { held.tables[id]!.chains[rebuild.names.kernelChain(name, in: id)] = nil }
                        let live = KernelNames.fromKernel(held).0[id]
                        #expect(live == old[id], "\(c.summary)\n\(label) batch \(index): the live state changed early")
                    }
                    names = rebuild.names
                }
                let (held, found) = KernelNames.fromKernel(await fake.read(c.tableIDs))
                #expect(found == names)
                #expect(held == target, "\(c.summary)\n\(label)\n\(rulesetDiff(expected: target, actual: held))")
            }
            // A partial plan afterwards, in the kernel's names.
            try await fake.apply(names.toKernel(c.rb.transaction(from: c.ra)))
            #expect(KernelNames.fromKernel(await fake.read(c.tableIDs)).0 == c.rb)
        }
    }
}

// MARK: - Cold start

/// a's cold start in batches, checking their bound: every batch but the first (declarations) and the last
/// holds whole entry points up to the bound; one entry point larger than the bound goes alone.
private func coldStart(_ c: PlannerPropertyCase, maxElements: Int) -> [Transaction] {
    let batches = c.coldStartBatches(maxElements: maxElements)
    for batch in batches.dropFirst().dropLast() where batch.elementChanges > maxElements {
        #expect(batch.commands.count <= 8, "an oversized batch is one entry point: \(batch.excerpt)")
    }
    return batches
}

/// Dispatch entries whose Maglev slots are not all there: what a packet must never see.
private func entryPointProblems(_ ruleset: Ruleset) -> [String] {
    var problems: [String] = []
    for table in ruleset.tables.values {
        for m in MaglevTable.ladder {
            for (dispatch, map) in [
                (RulesetNames.serviceVIPs(m), RulesetNames.backends),
                (RulesetNames.serviceNodePorts(m), RulesetNames.nodePortBackends),
                (RulesetNames.localVIPs(m), RulesetNames.localBackends),
                (RulesetNames.localNodePorts(m), RulesetNames.localNodePortBackends),
            ] {
                for (entry, _) in table.sets[dispatch]?.elements ?? [:] {
                    let missing = (0..<m).filter { table.sets[map]?.elements["\(entry) . \($0)"] == nil }
                    if !missing.isEmpty { problems.append("\(table.id) \(dispatch) \(entry): \(missing.count) slots missing") }
                }
            }
        }
    }
    return problems
}

// MARK: - What a minimal plan looks like

private struct SetRef: Hashable, Comparable, CustomStringConvertible {
    var table: TableID
    var name: String
    static func < (a: SetRef, b: SetRef) -> Bool { (a.table, a.name) < (b.table, b.name) }
    var description: String { "\(table) \(name)" }
}

/// The size of the symmetric difference of `(set, key, data)` triples between `old` and `new`, over the
/// sets that `new` holds. A key whose data changed counts twice (its old pair goes, its new pair comes),
/// as the planner deletes and re-adds it. The elements of a set that only `old` holds are not counted:
/// that set goes whole with one `delete set`/`delete map` (checked in `planProblems`).
private func elementSymmetricDifference(from old: Ruleset, to new: Ruleset) -> Int {
    var n = 0
    for (id, table) in new.tables {
        for (name, set) in table.sets {
            let before = old[id]?.sets[name]?.elements ?? [:]
            let pairsBefore = Set(before.map { "\($0.key)\u{0}\($0.value)" })
            let pairsAfter = Set(set.elements.map { "\($0.key)\u{0}\($0.value)" })
            n += pairsBefore.symmetricDifference(pairsAfter).count
        }
    }
    return n
}

/// Everything in `tx` that a minimal plan from `old` to `new` would not contain, or that it lacks.
///
/// Minimal means: no table is replaced (both sides always hold the same two tables and declarations never
/// change under a name); sets and chains are declared only when new and deleted only when gone; every
/// element command is exactly an element that differs; a chain is flushed only when its rules differ or
/// it goes, and refilled only with its new rules; a chain whose rules are unchanged is not touched.
private func planProblems(from old: Ruleset, to new: Ruleset, _ tx: Transaction) -> [String] {
    var problems: [String] = []
    var addedSets = Set<SetRef>(), deletedSets = Set<SetRef>()
    var addedChains = Set<SetRef>(), deletedChains = Set<SetRef>(), flushed = Set<SetRef>()
    var rulesAdded: [SetRef: [Rule]] = [:]
    var elementsDeleted: [SetRef: [String]] = [:]
    var elementsAdded: [SetRef: [String: String]] = [:]

    for command in tx.commands {
        switch command {
        case .addTable, .deleteTable:
            problems.append("replaces a table: \(command)")
        case .addChain(let t, let chain):
            if !addedChains.insert(SetRef(table: t, name: chain.name)).inserted { problems.append("twice: \(command)") }
        case .deleteChain(let t, let name):
            if !deletedChains.insert(SetRef(table: t, name: name)).inserted { problems.append("twice: \(command)") }
        case .flushChain(let t, let name):
            if !flushed.insert(SetRef(table: t, name: name)).inserted { problems.append("twice: \(command)") }
        case .addRule(let t, let chain, let rule):
            rulesAdded[SetRef(table: t, name: chain), default: []].append(rule)
        case .addSet(let t, let set):
            if !addedSets.insert(SetRef(table: t, name: set.name)).inserted { problems.append("twice: \(command)") }
        case .deleteSet(let t, let name, _):
            if !deletedSets.insert(SetRef(table: t, name: name)).inserted { problems.append("twice: \(command)") }
        case .flushSet:
            problems.append("a plan never flushes a set: \(command)")
        case .addElements(let t, let set, let elements):
            for e in elements {
                let ref = SetRef(table: t, name: set)
                if elementsAdded[ref, default: [:]].updateValue(e.data, forKey: e.key) != nil {
                    problems.append("adds \(ref) { \(e.key) } twice")
                }
            }
        case .deleteElements(let t, let set, let keys):
            elementsDeleted[SetRef(table: t, name: set), default: []].append(contentsOf: keys)
        }
    }

    func refs<V>(_ r: Ruleset, _ objects: (Table) -> [String: V]) -> Set<SetRef> {
        Set(r.tables.values.flatMap { t in objects(t).keys.map { SetRef(table: t.id, name: $0) } })
    }
    let oldSets = refs(old, \.sets), newSets = refs(new, \.sets)
    let oldChains = refs(old, \.chains), newChains = refs(new, \.chains)

    func compare(_ what: String, _ got: Set<SetRef>, _ want: Set<SetRef>) {
        if got != want {
            problems.append(
                "\(what): extra \(got.subtracting(want).sorted()), missing \(want.subtracting(got).sorted())")
        }
    }
    compare("set declarations", addedSets, newSets.subtracting(oldSets))
    compare("set deletions", deletedSets, oldSets.subtracting(newSets))
    compare("chain declarations", addedChains, newChains.subtracting(oldChains))
    compare("chain deletions", deletedChains, oldChains.subtracting(newChains))

    // Elements: exactly the pairs that differ, in sets that stay or come.
    for ref in newSets.union(elementsAdded.keys).union(elementsDeleted.keys).sorted() {
        let before = old[ref.table]?.sets[ref.name]?.elements ?? [:]
        let after = new[ref.table]?.sets[ref.name]?.elements ?? [:]
        let wantDeleted = Set(before.keys.filter { after[$0] != before[$0] && newSets.contains(ref) })
        let wantAdded = after.filter { before[$0.key] != $0.value }
        let gotDeleted = elementsDeleted[ref] ?? []
        if gotDeleted.count != Set(gotDeleted).count { problems.append("deletes a key of \(ref) twice") }
        if Set(gotDeleted) != wantDeleted {
            problems.append("element deletes in \(ref): extra \(Set(gotDeleted).subtracting(wantDeleted).sorted()), "
                + "missing \(wantDeleted.subtracting(gotDeleted).sorted())")
        }
        if (elementsAdded[ref] ?? [:]) != wantAdded {
            problems.append("element adds in \(ref) differ: planned \((elementsAdded[ref] ?? [:]).count), "
                + "want \(wantAdded.count)")
        }
    }

    // Chains: flushed only when changed or going, refilled with exactly the new rules.
    for ref in oldChains.union(newChains).union(flushed).union(rulesAdded.keys).sorted() {
        let before = old[ref.table]?.chains[ref.name]
        let after = new[ref.table]?.chains[ref.name]
        let wantFlush: Bool
        let wantRules: [Rule]
        switch (before, after) {
        case (let b?, let a?):
            wantFlush = b.rules != a.rules
            wantRules = wantFlush ? a.rules : []
        case (let b?, nil):
            wantFlush = !b.rules.isEmpty
            wantRules = []
        case (nil, let a?):
            wantFlush = false
            wantRules = a.rules
        case (nil, nil):
            wantFlush = false
            wantRules = []
        }
        if flushed.contains(ref) != wantFlush {
            problems.append(
                wantFlush ? "chain \(ref) changed but is not flushed" : "chain \(ref) is flushed needlessly")
        }
        if (rulesAdded[ref] ?? []) != wantRules {
            problems.append(
                "rules added to \(ref): \((rulesAdded[ref] ?? []).map(\.text)), want \(wantRules.map(\.text))")
        }
    }
    return problems
}
