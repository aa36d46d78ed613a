import Foundation
import NetworkTypes
import NFTModel
import Netfilter
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

// The planner's property, against a real kernel: for random pairs of cluster states a and b, applying
// `plan(a, b)` to a kernel holding a leaves exactly b.
//
// Each seed drives one deterministic generator (SplitMix64): a random cluster (Services of every type,
// single- and dual-stack, 1–3 ports, EndpointSlices with per-slice port numbers and mixed readiness, a
// Node) and a second cluster derived from it by random mutations. Seed n always includes mutation kind
// `n % Mutation.allCases.count`, so the first seeds cover every kind, Maglev resizes and "remove
// everything" included. A failing seed is reproduced by running its test case alone; the issue names the
// mutations, and a rejected transaction is saved in full under the temporary directory.
//
// Three layers, cheapest first:
// - `Plans`: pure. The transaction a → b touches only what differs (elements one by one, changed chains
//   only) and a second plan is empty. Many seeds; needs no privileges.
// - `Fake`: the same chain of plans through `FakeNFTables`, which checks the kernel's reference rules
//   (a rule's map exists, a deleted chain is no longer referred to, ...). Many seeds; no privileges.
// - `Kernel`: a full sync to a, partial plans a → b → a → empty cluster → b, and a full sync to a over b,
//   through libnftables in a scratch namespace; after every step the kernel's listing must equal the
//   target exactly and a second plan from it must be empty. Fewer seeds (this is what costs time), plus
//   one fixed case with the longest names Kubernetes allows.

/// Kernel seeds: one per mutation kind, so every kind reaches the kernel at least once.
private let kernelSeeds: [UInt64] = Array(0..<UInt64(Mutation.allCases.count))
/// Seeds without a kernel: cheaper, so more of them (debug builds make even these cost ~0.1 s a seed).
private let modelSeeds: [UInt64] = Array(0..<64)
private let fakeSeeds: [UInt64] = Array(0..<32)

@Suite(.exclusive) struct PlannerPropertyTests {
    /// What the planner emits between two compiled clusters, checked without a kernel.
    @Suite struct Plans {
        @Test("a plan touches only what differs, and a second plan is empty", arguments: modelSeeds)
        func planTouchesOnlyWhatDiffers(seed: UInt64) {
            let c = PropertyCase(seed: seed)
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
                #expect(again.isEmpty, "\(c.summary)\nplan(\(label), \(label)) is not empty:\n\(excerpt(again))")
            }
        }

        /// The agent's incremental compiler, fed the changes one at a time with the dirty sets the
        /// cluster state reports (as the controller does), must hold exactly what a fresh compile gives,
        /// and the plan over its scope must equal the plan over everything.
        @Test("incremental compile and scoped plans equal fresh compile and full plans", arguments: modelSeeds)
        func incrementalEqualsFresh(seed: UInt64) {
            var rng = SplitMix64(seed: seed ^ 0x1c0_ffee)
            let context = NodeContext.random(&rng)
            var world = World.random(&rng)
            var state = world.state
            var compiler = IncrementalCompiler(node: context)
            compiler.update(state, changed: [])
            var previous = compiler.ruleset  // a whole copy, so the sparse `before` can be checked against it
            for step in 0..<12 {
                let kind = Mutation.allCases[(Int(seed) + step) % Mutation.allCases.count]
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
                #expect(scoped == full, "\(where_): scoped plan\n\(excerpt(scoped))\nfull plan\n\(excerpt(full))")
                previous = compiler.ruleset
            }
        }

        /// A name or comment the kernel shortens or refuses reads back as something else, and then every
        /// later plan sees a difference (a set's comment is part of its declaration: the table is replaced).
        @Test("every name and comment the compiler emits is one the kernel keeps verbatim", arguments: modelSeeds)
        func namesAndCommentsAreKeptVerbatim(seed: UInt64) {
            let c = PropertyCase(seed: seed)
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
                let c = PropertyCase(seed: seed)
                for (key, n) in c.coverage() { seen[key, default: 0] += n }
            }
            for key in PropertyCase.coverageKeys {
                #expect(seen[key, default: 0] > 0, "no model seed produced \"\(key)\"; seen: \(seen)")
            }
        }
    }

    /// The same chain of plans through the in-memory fake, which enforces the kernel's reference checks.
    @Suite struct Fake {
        @Test("plans applied to FakeNFTables leave exactly the target", arguments: fakeSeeds)
        func fakeFollowsPlans(seed: UInt64) async throws {
            let c = PropertyCase(seed: seed)
            let fake = FakeNFTables()
            var current = Ruleset.empty
            for (label, target, full) in c.chain {
                let tx = full ? target.replacing(c.tableIDs) : target.transaction(from: current)
                do {
                    try await fake.apply(tx)
                } catch {
                    Issue.record(
                        "\(c.summary)\nstep \(label): FakeNFTables rejected the plan: \(error)\n\(excerpt(tx))")
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
            let c = PropertyCase(seed: seed)
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
            let c = PropertyCase(seed: seed)
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

    /// The property itself, against libnftables and the kernel in a scratch network namespace.
    @Suite(
        .serialized,
        .enabled(if: Skip.privilegedTestsAvailable, "needs root and `ip netns` (reason printed as SKIP)")
    )
    struct Kernel {
        @Test("plans applied to the kernel leave exactly the target", arguments: kernelSeeds)
        func kernelFollowsPlans(seed: UInt64) async throws {
            let c = PropertyCase(seed: seed)
            try await ScratchNamespace.with(purpose: "plan\(seed)") { ns in
                let kernel = try KernelNFTables(networkNamespace: ns.name)
                var current = try await kernel.read(c.tableIDs)
                #expect(current == .empty)
                for (label, target, full) in c.chain {
                    let tx = full ? target.replacing(c.tableIDs) : target.transaction(from: current)
                    let step = Step(label: label, tableIDs: c.tableIDs, summary: c.summary, file: "seed\(seed)")
                    guard let held = try await step.run(kernel, tx, target) else { return }
                    current = held
                }
            }
        }

        @Test("a cold start in batches through libnftables leaves exactly the target", arguments: [UInt64(0), 3, 7])
        func coldStartInBatches(seed: UInt64) async throws {
            let c = PropertyCase(seed: seed)
            try await ScratchNamespace.with(purpose: "cold\(seed)") { ns in
                let kernel = try KernelNFTables(networkNamespace: ns.name)
                try await kernel.apply(c.rb.replacing(c.tableIDs))
                // As the agent does: element-only batches through netlink (libnftnl) where it can encode them.
                #expect(kernel.netlink != nil)
                var declarations: [TableID: [String: NFTSet]] = [:]
                for (id, table) in c.ra.tables { declarations[id] = table.sets.mapValues(\.declarationOnly) }
                for batch in coldStart(c, maxElements: 200) {
                    if batch.commands.allSatisfy({ if case .addElements = $0 { true } else { false } }) {
                        try await kernel.applyElements(batch, declarations: declarations)
                    } else {
                        try await kernel.apply(batch)
                    }
                }
                let held = try await kernel.read(c.tableIDs).withoutPacketPathElements()
                #expect(held == c.ra, "\(c.summary)\n\(rulesetDiff(expected: c.ra, actual: held))")
                #expect(c.ra.transaction(from: held).isEmpty)
            }
        }

        @Test("staged rebuilds through libnftables: b → a → b, then a partial plan", arguments: [UInt64(1), 4, 9])
        func stagedRebuilds(seed: UInt64) async throws {
            let c = PropertyCase(seed: seed)
            try await ScratchNamespace.with(purpose: "staged\(seed)") { ns in
                let kernel = try KernelNFTables(networkNamespace: ns.name)
                try await kernel.apply(c.rb.replacing(c.tableIDs))
                var names = KernelNames.identity
                for target in [c.ra, c.rb] {
                    for id in c.tableIDs.sorted() where target[id] != nil {
                        let declared = try #require(try await kernel.readDeclarations(id))
                        #expect(declared.elementCount == 0)
                        let staging = Set(target[id]!.sets.filter { $0.value.elements.count > 3 }.keys)
                        let rebuild = target.stagedRebuild(id, kernel: declared, names: names, staging: staging, maxElements: 100)
                        for batch in rebuild {
                            do { try await kernel.apply(batch) } catch {
                                Issue.record("\(c.summary)\nrejected: \(error)\n\(save(batch, name: "staged\(seed)", label: "staged"))")
                                return
                            }
                        }
                        names = rebuild.names
                    }
                    let (held, found) = KernelNames.fromKernel(try await kernel.read(c.tableIDs))
                    #expect(found == names)
                    #expect(held.withoutPacketPathElements() == target, "\(c.summary)\n\(rulesetDiff(expected: target, actual: held))")
                }
                try await kernel.apply(names.toKernel(c.ra.transaction(from: c.rb)))
                let held = KernelNames.fromKernel(try await kernel.read(c.tableIDs)).0.withoutPacketPathElements()
                #expect(held == c.ra, "\(c.summary)\n\(rulesetDiff(expected: c.ra, actual: held))")
            }
        }

        /// Kubernetes allows 63-character namespaces and Service names and 15-character port names; the
        /// kernel caps comments at 128 bytes and names at 256. Whatever the compiler makes of such names
        /// must read back as written, or every later sync sees a difference.
        @Test func longestNamesReadBackAsWritten() async throws {
            let ref = ObjectRef(namespace: longName, name: longName)
            let service = Service(
                ref: ref, type: .nodePort, clusterIPs: [v4(10, 96, 0, 10), v6(clusterV6Prefix, 10)],
                ports: [ServicePort(name: "http-metrics-tl", protocol: .tcp, port: 80, nodePort: 30080)])
            let slices: [KubeObject] = [(Family4or6.v4, "v4"), (.v6, "v6")].map { family, suffix in
                .endpointSlice(EndpointSlice(
                    ref: ObjectRef(namespace: longName, name: String(longName.prefix(60)) + suffix),
                    serviceName: longName, addressType: family == .v4 ? .ipv4 : .ipv6,
                    ports: [EndpointPort(name: "http-metrics-tl", protocol: .tcp, port: 8080)],
                    endpoints: (1...3).map { i in
                        Endpoint(addresses: [family == .v4 ? v4(10, 244, 0, i) : v6(podV6Prefix, i)], ready: true)
                    }))
            }
            let context = NodeContext(nodeName: testNodeName, clusterCIDRs: [CIDR("10.244.0.0/16")!])
            let desired = compile(ClusterState([.service(service)] + slices), for: context).ruleset
            try await ScratchNamespace.with(purpose: "planlong") { ns in
                let kernel = try KernelNFTables(networkNamespace: ns.name)
                let step = Step(
                    label: "full sync", tableIDs: context.tableIDs,
                    summary: "one Service \(ref), port http-metrics-tl", file: "longest-names")
                _ = try await step.run(kernel, desired.replacing(context.tableIDs), desired)
            }
        }
    }
}

// MARK: - Cold start

private func coldStart(_ c: PropertyCase, maxElements: Int) -> [Transaction] {
    var compiler = IncrementalCompiler(node: c.context)
    compiler.update(c.a.state, changed: nil)
    let batches = Array(compiler.coldStartBatches(c.tableIDs, maxElements: maxElements))
    // Every batch but the first (declarations) and the last holds whole entry points up to the bound; one
    // entry point larger than the bound goes alone.
    for batch in batches.dropFirst().dropLast() where batch.elementChanges > maxElements {
        #expect(batch.commands.count <= 8, "an oversized batch is one entry point: \(excerpt(batch))")
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

// MARK: - Kernel steps and failure reports

/// One step against the kernel, with what a failure report needs.
private struct Step {
    var label: String
    var tableIDs: Set<TableID>
    /// The case: seed, clusters, mutations.
    var summary: String
    /// Names the saved transaction file.
    var file: String

    /// Applies `tx`, reads the tables back and checks they equal `target` and that a second plan is
    /// empty. Records an issue with everything needed to reproduce (the case, the transaction, nft's error
    /// or a diff of what the kernel holds) and returns nil when the step fails; the caller stops there.
    func run(_ kernel: KernelNFTables, _ tx: Transaction, _ target: Ruleset) async throws -> Ruleset? {
        do {
            try await kernel.apply(tx)
        } catch {
            let path = save(tx, name: file, label: label)
            Issue.record("""
                \(summary)
                step \(label): the kernel rejected the planner's transaction
                nft error: \(error)
                transaction (\(tx.commands.count) commands; full text in \(path)):
                \(excerpt(tx))
                """)
            return nil
        }
        let held = try await kernel.read(tableIDs)
        guard held == target else {
            let path = save(tx, name: file, label: label)
            Issue.record("""
                \(summary)
                step \(label): after the transaction the kernel holds something else than planned
                \(rulesetDiff(expected: target, actual: held))
                transaction (\(tx.commands.count) commands; full text in \(path)):
                \(excerpt(tx))
                """)
            return nil
        }
        let again = target.transaction(from: held)
        guard again.isEmpty else {
            Issue.record("\(summary)\nstep \(label): a second plan is not empty:\n\(excerpt(again))")
            return nil
        }
        return held
    }
}

/// A readable diff of two rulesets: their scripts, and where the scripts agree, the objects that differ.
private func rulesetDiff(expected: Ruleset, actual: Ruleset) -> String {
    let diff = UnifiedDiff(old: expected.script, new: actual.script)
    if !diff.isEmpty { return diff.render(oldName: "planned", newName: "kernel", context: 2) }
    var lines = ["(the scripts are identical; the difference is in a field they do not show)"]
    for id in Set(expected.tables.keys).union(actual.tables.keys).sorted() {
        let e = expected[id], a = actual[id]
        guard let e, let a else {
            lines.append("table \(id): \(e == nil ? "not planned" : "missing in the kernel")")
            continue
        }
        for name in Set(e.sets.keys).union(a.sets.keys).sorted() where e.sets[name] != a.sets[name] {
            guard let x = e.sets[name], let y = a.sets[name] else {
                lines.append("set \(id) \(name): \(e.sets[name] == nil ? "not planned" : "missing in the kernel")")
                continue
            }
            var fields: [String] = []
            func field<T: Equatable>(_ label: String, _ p: T, _ k: T) {
                if p != k { fields.append("\(label): planned \(p), kernel \(k)") }
            }
            field("key", "\(x.keyType)", "\(y.keyType)")
            field("data", x.dataType ?? "-", y.dataType ?? "-")
            field("flags", x.flags, y.flags)
            field("size", x.size.map(String.init) ?? "-", y.size.map(String.init) ?? "-")
            field("timeout", x.timeout.map(String.init) ?? "-", y.timeout.map(String.init) ?? "-")
            field("comment", x.comment.map { "\"\($0)\" (\($0.utf8.count) bytes)" } ?? "-",
                  y.comment.map { "\"\($0)\" (\($0.utf8.count) bytes)" } ?? "-")
            if x.elements != y.elements { fields.append("elements differ") }
            lines.append("set \(id) \(name):\n    " + fields.joined(separator: "\n    "))
        }
        for name in Set(e.chains.keys).union(a.chains.keys).sorted() where e.chains[name] != a.chains[name] {
            let x = e.chains[name], y = a.chains[name]
            lines.append("chain \(id) \(name): planned base \(String(describing: x?.base)), "
                + "kernel base \(String(describing: y?.base))")
        }
    }
    return lines.joined(separator: "\n")
}

/// The transaction's script with long lines (a whole map's elements) cut and at most 150 lines.
private func excerpt(_ tx: Transaction) -> String {
    let lines = tx.description.split(separator: "\n")
    var out = lines.prefix(150).map { $0.count > 300 ? "\($0.prefix(300))… (\($0.utf8.count) bytes)" : String($0) }
    if lines.count > 150 { out.append("… \(lines.count - 150) more lines") }
    return out.joined(separator: "\n")
}

/// Writes the full transaction next to the test run, for `nft -f` by hand; returns the path.
private func save(_ tx: Transaction, name: String, label: String) -> String {
    let safe = String(label.map { $0.isLetter || $0.isNumber ? $0 : "-" })
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("switchboard-plan-\(name)-\(safe).nft")
    do {
        try tx.description.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    } catch {
        return "(not saved: \(error))"
    }
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

// MARK: - One seed's case

/// One seed's clusters, the node context they compile for, and the rulesets they compile to.
private struct PropertyCase {
    let seed: UInt64
    let context: NodeContext
    let a: World
    let b: World
    /// What turned a into b, in order, for the failure report.
    let mutations: [String]
    let ra: Ruleset
    let rb: Ruleset
    /// The compiled empty cluster: the skeleton tables only.
    let rEmpty: Ruleset

    init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        self.seed = seed
        let context = NodeContext.random(&rng)
        let a = World.random(&rng)
        var b = a
        var log: [String] = []
        // Random extras first, then the kind this seed is responsible for, so that it has the last word.
        for _ in 0..<rng.int(0...4) {
            let kind = rng.chance(0.03) ? Mutation.removeEverything
                : Mutation.allCases.filter { $0 != .removeEverything }.randomElement(using: &rng)!
            log.append(b.mutate(kind, &rng))
        }
        log.append(b.mutate(Mutation.allCases[Int(seed % UInt64(Mutation.allCases.count))], &rng))
        self.context = context
        self.a = a
        self.b = b
        self.mutations = log
        ra = compile(a.state, for: context).ruleset
        rb = compile(b.state, for: context).ruleset
        rEmpty = compile(ClusterState(), for: context).ruleset
    }

    var tableIDs: Set<TableID> { context.tableIDs }

    /// The steps every backend goes through: (label, target, full sync?). The first and last are full
    /// syncs (`replacing`), the others partial plans from what the backend holds.
    var chain: [(String, Ruleset, Bool)] {
        [("full sync to a", ra, true), ("a → b", rb, false), ("b → a", ra, false), ("a → empty", rEmpty, false),
         ("empty → b", rb, false), ("full sync to a over b", ra, true)]
    }

    var summary: String {
        """
        seed \(seed): a has \(a.services.count) services, \(a.slices.count) slices, \(ra.elementCount) elements, \
        \(ra.chainCount) chains; b has \(b.services.count) services, \(b.slices.count) slices, \
        \(rb.elementCount) elements, \(rb.chainCount) chains
        context: clusterCIDRs \(context.clusterCIDRs), nodePortAddresses \(context.nodePortAddresses), \
        masqueradeAll \(context.masqueradeAll)
        mutations a → b: \(mutations.joined(separator: "; "))
        """
    }

    static let coverageKeys = [
        "maglev table resized", "maglev slots changed in place", "hairpin element removed", "external VIP element",
        "no-endpoint element", "node port element", "IPv6 service element", "sctp element",
        "b is empty", "nothing changed",
    ]

    /// Which interesting kinds of change plan(a, b) contains, for `generatorReachesEveryKindOfChange`.
    func coverage() -> [String: Int] {
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
    fileprivate mutating func apply(from before: [KubeObject], to after: [KubeObject]) -> Set<ObjectRef> {
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

// MARK: - Generator

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fixed, the same sequence on every machine.
private struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) * 0x1p-53 < p }
    mutating func pick<T>(_ choices: [T]) -> T { choices.randomElement(using: &self)! }

    mutating func weighted<T>(_ choices: [(T, Double)]) -> T {
        var x = Double(next() >> 11) * 0x1p-53 * choices.reduce(0) { $0 + $1.1 }
        for (value, weight) in choices {
            if x < weight { return value }
            x -= weight
        }
        return choices[choices.count - 1].0
    }
}

private typealias Family4or6 = NetworkTypes.IPFamily

private func v4(_ a: Int, _ b: Int, _ c: Int, _ d: Int) -> IPAddress {
    IPAddress(family: .v4, bytes: [a, b, c, d].map { UInt8($0) })
}

/// `prefix` (up to 12 bytes, zero-padded) followed by a 32-bit `low` part.
private func v6(_ prefix: [UInt8], _ low: Int) -> IPAddress {
    let head = prefix + [UInt8](repeating: 0, count: 12 - prefix.count)
    return IPAddress(family: .v6, bytes: head + [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: low >> $0) })
}

private let clusterV6Prefix: [UInt8] = [0xfd, 0x00, 0x00, 0x10, 0x00, 0x96]  // fd00:10:96::/108
private let podV6Prefix: [UInt8] = [0xfd, 0x00, 0x00, 0x10, 0x02, 0x44]  // fd00:10:244::/64
private let testNodeName = "n1"
/// 63 characters, the longest DNS label (namespace, Service name).
private let longName = "a-name-as-long-as-kubernetes-allows-for-a-dns-label-which-is-63"

extension NodeContext {
    fileprivate static func random(_ rng: inout SplitMix64) -> NodeContext {
        let cidrs = rng.pick([[], ["10.244.0.0/16"], ["10.244.0.0/16", "fd00:10:244::/56"],
                              ["10.244.0.0/16", "10.245.0.0/16", "fd00:10:244::/56"]])
        // Adjacent and nested prefixes too: an operator may well write them, and the kernel merges or
        // refuses overlapping intervals.
        let nodePortAddresses = rng.chance(0.25)
            ? rng.pick([["10.200.0.0/24"], ["10.200.0.0/24", "fd00:200::/64"], ["10.200.0.0/24", "10.200.1.0/24"],
                        ["10.200.0.0/16", "10.200.0.0/24", "fd00:200::/64", "fd00:200::/56"]])
            : []
        return NodeContext(
            nodeName: testNodeName, clusterCIDRs: cidrs.map { CIDR($0)! },
            nodePortAddresses: nodePortAddresses.map { CIDR($0)! }, masqueradeAll: rng.chance(0.15))
    }
}

/// The ways b is derived from a.
private enum Mutation: String, CaseIterable {
    case addService, removeService, addEndpoints, removeEndpoints, flipReadiness, changePorts
    case changeSlicePortNumbers, changeType, scaleAcrossRungs, changeClusterIPs, changeExternalAddresses
    case changeNode, reslice, orphanSlice, removeEverything
}

/// A cluster as plain objects, easy to mutate; `state` turns it into a `ClusterState`.
private struct World {
    var services: [ObjectRef: Service] = [:]
    var slices: [ObjectRef: EndpointSlice] = [:]
    var node: Node?
    /// Makes object names unique.
    var serial = 0

    var objects: [KubeObject] {
        services.keys.sorted().map { .service(services[$0]!) }
            + slices.keys.sorted().map { .endpointSlice(slices[$0]!) }
            + (node.map { [.node($0)] } ?? [])
    }

    var state: ClusterState { ClusterState(objects) }

    func sliceRefs(of service: ObjectRef) -> [ObjectRef] {
        slices.values.filter { $0.serviceRef == service }.map(\.ref).sorted()
    }

    static func random(_ rng: inout SplitMix64) -> World {
        var world = World()
        world.node = randomNode(&rng)
        for _ in 0..<rng.int(1...15) { world.addService(&rng) }
        return world
    }

    static func randomNode(_ rng: inout SplitMix64) -> Node {
        var addresses = [NodeAddress(type: "InternalIP", address: "10.200.0.\(rng.int(1...9))")]
        if rng.chance(0.3) {
            // Another address, possibly adjacent to the first (no duplicates: see the report on
            // duplicate InternalIPs).
            let other = rng.pick((1...9).map { "10.200.0.\($0)" }.filter { $0 != addresses[0].address })
            addresses.append(NodeAddress(type: "InternalIP", address: other))
        }
        if rng.chance(0.5) { addresses.append(NodeAddress(type: "InternalIP", address: "fd00:200::\(rng.int(1...9))")) }
        addresses.append(NodeAddress(type: "ExternalIP", address: "192.0.2.\(rng.int(1...9))"))
        addresses.append(NodeAddress(type: "Hostname", address: testNodeName))
        return Node(name: testNodeName, addresses: addresses)
    }

    // MARK: Services

    mutating func addService(_ rng: inout SplitMix64) {
        serial += 1
        // Now and then names as long as Kubernetes allows (63 characters): kernel names and comments
        // have limits of their own.
        let suffix = "-\(serial)"
        let base = rng.chance(0.1) ? String(longName.prefix(63 - suffix.count))
            : rng.pick(["web", "dns", "api", "db", "cache", "metrics"])
        let ref = ObjectRef(namespace: rng.pick(["default", "kube-system", "team-a", longName]), name: base + suffix)
        var service = Service(ref: ref)
        service.type = rng.weighted([(.clusterIP, 5), (.nodePort, 3), (.loadBalancer, 3), (.externalName, 0.2)])
        let families: [Family4or6] = rng.weighted([([.v4], 6), ([.v6], 2), ([.v4, .v6], 2), ([.v6, .v4], 1)])
        if rng.chance(0.05) {
            service.isHeadless = true
        } else {
            for family in families { service.clusterIPs.append(freshClusterIP(family, &rng)) }
        }
        service.ports = randomPorts(rng.int(1...3), &rng)
        assignNodePorts(&service, &rng)
        if rng.chance(0.2) { service.externalIPs = randomExternalIPs(&rng) }
        if service.type == .loadBalancer { service.loadBalancerIngress = randomIngress(&rng) }
        if rng.chance(0.03) { service.labels["service.kubernetes.io/service-proxy-name"] = "another-proxy" }
        services[ref] = service
        makeSlices(for: service, &rng)
    }

    func freshClusterIP(_ family: Family4or6, _ rng: inout SplitMix64) -> IPAddress {
        let used = Set(services.values.flatMap(\.clusterIPs))
        while true {
            let ip = family == .v4
                ? v4(10, 96, rng.int(0...255), rng.int(1...254)) : v6(clusterV6Prefix, rng.int(1...0xfffff))
            if !used.contains(ip) { return ip }
        }
    }

    func freshNodePort(_ rng: inout SplitMix64, avoiding extra: Set<Int> = []) -> Int {
        let used = Set(services.values.flatMap { $0.ports.compactMap(\.nodePort) }).union(extra)
        while true {
            let port = rng.int(30000...32767)
            if !used.contains(port) { return port }
        }
    }

    func randomPorts(_ count: Int, _ rng: inout SplitMix64) -> [ServicePort] {
        var names = ["http", "https", "dns", "grpc", "metrics", "admin", "http-metrics-tl"].shuffled(using: &rng)
        var taken = Set<String>()
        var out: [ServicePort] = []
        while out.count < count {
            let proto: L4Protocol = rng.weighted([(.tcp, 5), (.udp, 3), (.sctp, 1)])
            let number = rng.chance(0.6) ? rng.pick([53, 80, 443, 8080, 8443, 9090]) : rng.int(1...65535)
            guard taken.insert("\(proto)/\(number)").inserted else { continue }
            let name = count == 1 && rng.chance(0.5) ? "" : names.removeFirst()
            let target: TargetPort = !name.isEmpty && rng.chance(0.5) ? .name(name) : .number(rng.int(1024...9999))
            out.append(ServicePort(name: name, protocol: proto, port: number, targetPort: target))
        }
        return out
    }

    /// NodePort and LoadBalancer Services get a unique node port per port; others none.
    func assignNodePorts(_ service: inout Service, _ rng: inout SplitMix64) {
        var mine = Set<Int>()
        for i in service.ports.indices {
            if service.type == .nodePort || service.type == .loadBalancer {
                let port = service.ports[i].nodePort ?? freshNodePort(&rng, avoiding: mine)
                service.ports[i].nodePort = port
                mine.insert(port)
            } else {
                service.ports[i].nodePort = nil
            }
        }
    }

    /// From a small pool, so that Services sometimes share an address (and, on the same port, conflict).
    func randomExternalIPs(_ rng: inout SplitMix64) -> [IPAddress] {
        (0..<rng.int(1...2)).map { _ in
            rng.chance(0.7) ? v4(203, 0, 113, rng.int(1...6)) : IPAddress("2001:db8::\(rng.int(1...6))")!
        }
    }

    func randomIngress(_ rng: inout SplitMix64) -> [LoadBalancerIngress] {
        (0..<rng.int(0...2)).map { _ in
            if rng.chance(0.1) { return LoadBalancerIngress(hostname: "lb.example.com") }
            let ip = rng.chance(0.7) ? v4(198, 51, 100, rng.int(1...6)) : IPAddress("2001:db8:1::\(rng.int(1...6))")!
            return LoadBalancerIngress(ip: ip, ipMode: rng.weighted([(nil, 6), (.vip, 2), (.proxy, 1)]))
        }
    }

    // MARK: Slices

    /// Replaces the Service's slices: one or two per family of its cluster IPs (sometimes the other family
    /// too), `endpointCount` endpoints per family (random 0–12 if nil), each slice with its own port numbers.
    mutating func makeSlices(
        for service: Service, endpointCount: Int? = nil, allReady: Bool = false, _ rng: inout SplitMix64
    ) {
        for ref in sliceRefs(of: service.ref) { slices[ref] = nil }
        var families = Set(service.clusterIPs.map(\.family))
        if families.isEmpty || rng.chance(0.15) { families.insert(rng.pick([.v4, .v6])) }
        for family in families.sorted() {
            let total = endpointCount ?? rng.int(0...12)
            let sliceCount = total > 1 && rng.chance(0.25) ? 2 : 1
            var addresses = Set<IPAddress>()
            while addresses.count < total { addresses.insert(randomPodIP(family, &rng)) }
            var pending = addresses.sorted().shuffled(using: &rng)
            for k in 0..<sliceCount {
                let n = k == sliceCount - 1 ? pending.count : rng.int(0...pending.count)
                let endpoints = pending.prefix(n).map { randomEndpoint($0, allReady: allReady, &rng) }
                pending.removeFirst(n)
                addSlice(for: service, family: family, endpoints: endpoints, &rng)
            }
        }
    }

    mutating func addSlice(
        for service: Service, family: Family4or6, endpoints: [Endpoint], ports: [EndpointPort]? = nil,
        _ rng: inout SplitMix64
    ) {
        serial += 1
        let ref = ObjectRef(namespace: service.ref.namespace, name: "\(service.ref.name)-\(serial)")
        let ports = ports ?? service.ports.compactMap { p -> EndpointPort? in
            if rng.chance(0.05) { return nil }  // a slice without this port resolves nothing for it
            return EndpointPort(name: p.name, protocol: p.protocol, port: rng.chance(0.03) ? nil : rng.int(1024...9999))
        }
        slices[ref] = EndpointSlice(
            ref: ref, serviceName: service.ref.name, addressType: family == .v4 ? .ipv4 : .ipv6, ports: ports,
            endpoints: endpoints)
    }

    func randomPodIP(_ family: Family4or6, _ rng: inout SplitMix64) -> IPAddress {
        family == .v4 ? v4(10, 244, rng.int(0...3), rng.int(1...254)) : v6(podV6Prefix, rng.int(1...0xffff))
    }

    func randomEndpoint(_ address: IPAddress, allReady: Bool = false, _ rng: inout SplitMix64) -> Endpoint {
        Endpoint(
            addresses: [address], ready: allReady ? true : rng.pick([true, true, true, false, nil]),
            serving: rng.pick([true, false, nil]), terminating: rng.pick([false, true, nil]),
            nodeName: rng.pick(["n1", "n2", "n3"]))
    }

    // MARK: Mutations

    /// Applies one mutation of `kind` (or, when it has nothing to act on, adds a Service) and says what it did.
    mutating func mutate(_ kind: Mutation, _ rng: inout SplitMix64) -> String {
        let programmable = services.keys.sorted()
        let withIPs = services.keys.sorted().filter { !services[$0]!.clusterIPs.isEmpty }
        let sliceKeys = slices.keys.sorted()
        let populated = sliceKeys.filter { !slices[$0]!.endpoints.isEmpty }

        switch kind {
        case .addService:
            addService(&rng)
            return "addService"

        case .removeService:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            services[ref] = nil
            let keepSlices = rng.chance(0.3)
            if !keepSlices { for s in sliceRefs(of: ref) { slices[s] = nil } }
            return "removeService \(ref)\(keepSlices ? " (its slices stay)" : "")"

        case .addEndpoints:
            guard let ref = sliceKeys.randomElement(using: &rng) else { break }
            let family: Family4or6 = slices[ref]!.addressType == .ipv4 ? .v4 : .v6
            let n = rng.int(1...4)
            for _ in 0..<n { slices[ref]!.endpoints.append(randomEndpoint(randomPodIP(family, &rng), &rng)) }
            return "addEndpoints \(ref) +\(n)"

        case .removeEndpoints:
            guard let ref = populated.randomElement(using: &rng) else { break }
            let n = rng.int(1...slices[ref]!.endpoints.count)
            for _ in 0..<n { slices[ref]!.endpoints.remove(at: rng.int(0...slices[ref]!.endpoints.count - 1)) }
            return "removeEndpoints \(ref) -\(n)"

        case .flipReadiness:
            guard let ref = populated.randomElement(using: &rng) else { break }
            let n = rng.int(1...slices[ref]!.endpoints.count)
            for _ in 0..<n {
                let i = rng.int(0...slices[ref]!.endpoints.count - 1)
                let wasReady = slices[ref]!.endpoints[i].isReady
                slices[ref]!.endpoints[i].ready = wasReady ? false : rng.pick([true, nil])
            }
            return "flipReadiness \(ref) ×\(n)"

        case .changePorts:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            return "changePorts \(ref): " + changePorts(ref, &rng)

        case .changeSlicePortNumbers:
            guard let ref = sliceKeys.randomElement(using: &rng), !slices[ref]!.ports.isEmpty else { break }
            for i in slices[ref]!.ports.indices { slices[ref]!.ports[i].port = rng.int(1024...9999) }
            return "changeSlicePortNumbers \(ref)"

        case .changeType:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            var service = services[ref]!
            let old = service.type
            service.type = rng.pick([ServiceType.clusterIP, .nodePort, .loadBalancer].filter { $0 != old })
            services[ref] = nil  // its own node ports must not count as taken when reassigning
            assignNodePorts(&service, &rng)
            if service.type == .loadBalancer && service.loadBalancerIngress.isEmpty {
                service.loadBalancerIngress = randomIngress(&rng)
            }
            services[ref] = service
            return "changeType \(ref) \(old.rawValue) → \(service.type.rawValue)"

        case .scaleAcrossRungs:
            guard let ref = withIPs.randomElement(using: &rng) else { break }
            let service = services[ref]!
            let before = sliceRefs(of: ref).reduce(0) { $0 + slices[$1]!.endpoints.count }
            let rungs = [1, 2, 3, 5, 7, 13, 26]
            let size = MaglevTable.size(forBackendCount:)
            let target = rng.pick(rungs.filter { size($0) != size(max(before, 1)) })
            makeSlices(for: service, endpointCount: target, allReady: true, &rng)
            return "scaleAcrossRungs \(ref) \(before) → \(target) endpoints per family "
                + "(M \(size(max(before, 1))) → \(size(target)))"

        case .changeClusterIPs:
            guard let ref = withIPs.randomElement(using: &rng) else { break }
            var service = services[ref]!
            let old = service.clusterIPs
            if old.count == 2 {
                service.clusterIPs.remove(at: rng.int(0...1))
            } else if rng.chance(0.5) {
                let other: Family4or6 = old[0].family == .v4 ? .v6 : .v4
                service.clusterIPs.append(freshClusterIP(other, &rng))
                if !sliceRefs(of: ref).contains(where: { slices[$0]!.addressType == (other == .v4 ? .ipv4 : .ipv6) }) {
                    let endpoints = (0..<rng.int(0...6)).map { _ in randomEndpoint(randomPodIP(other, &rng), &rng) }
                    addSlice(for: service, family: other, endpoints: endpoints, &rng)
                }
            } else {
                service.clusterIPs[0] = freshClusterIP(old[0].family, &rng)
            }
            services[ref] = service
            return "changeClusterIPs \(ref) \(old) → \(service.clusterIPs)"

        case .changeExternalAddresses:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            services[ref]!.externalIPs = rng.chance(0.3) ? [] : randomExternalIPs(&rng)
            services[ref]!.loadBalancerIngress = randomIngress(&rng)
            return "changeExternalAddresses \(ref)"

        case .changeNode:
            node = rng.chance(0.15) ? nil : Self.randomNode(&rng)
            return "changeNode \(node.map { $0.addresses.map(\.address).joined(separator: ",") } ?? "removed")"

        case .reslice:
            guard let ref = withIPs.randomElement(using: &rng) else { break }
            // The same endpoints of each family, spread over another number of slices: nothing should change.
            for family in [Family4or6.v4, .v6] {
                let mine = sliceRefs(of: ref).filter { slices[$0]!.addressType == (family == .v4 ? .ipv4 : .ipv6) }
                guard let first = mine.first else { continue }
                let ports = slices[first]!.ports
                let endpoints = mine.flatMap { slices[$0]!.endpoints }
                for s in mine { slices[s] = nil }
                let parts = rng.int(1...3)
                for k in 0..<parts {
                    let chunk = endpoints.enumerated().filter { $0.offset % parts == k }.map(\.element)
                    addSlice(for: services[ref]!, family: family, endpoints: chunk, ports: ports, &rng)
                }
            }
            return "reslice \(ref)"

        case .orphanSlice:
            guard let ref = sliceKeys.randomElement(using: &rng) else { break }
            let old = slices[ref]!.serviceName ?? "-"
            let other = services.keys.filter { $0.namespace == ref.namespace }.randomElement(using: &rng)
            slices[ref]!.serviceName = rng.chance(0.5) ? nil : other?.name
            return "orphanSlice \(ref) \(old) → \(slices[ref]!.serviceName ?? "none")"

        case .removeEverything:
            services = [:]
            slices = [:]
            if rng.chance(0.5) { node = nil }
            return "removeEverything\(node == nil ? " (node too)" : "")"
        }
        addService(&rng)
        return "\(kind.rawValue) had nothing to act on: addService"
    }

    /// Changes one thing about a Service's ports and keeps its slices' ports in step.
    mutating func changePorts(_ ref: ObjectRef, _ rng: inout SplitMix64) -> String {
        var service = services[ref]!
        let taken = Set(service.ports.map { "\($0.protocol)/\($0.port)" })
        let i = rng.int(0...service.ports.count - 1)
        var what = ""
        switch rng.int(0...3) {
        case 0:
            var number = rng.int(1...65535)
            while taken.contains("\(service.ports[i].protocol)/\(number)") { number = rng.int(1...65535) }
            what = "port \(service.ports[i].port) → \(number)"
            service.ports[i].port = number
        case 1:
            let old = service.ports[i].protocol
            let candidates = L4Protocol.allCases.filter {
                $0 != old && !taken.contains("\($0)/\(service.ports[i].port)")
            }
            guard let proto = candidates.randomElement(using: &rng) else { return "nothing" }
            service.ports[i].protocol = proto
            let name = service.ports[i].name
            let followSlices = rng.chance(0.8)
            if followSlices {
                for s in sliceRefs(of: ref) {
                    for j in slices[s]!.ports.indices where slices[s]!.ports[j].name == name {
                        slices[s]!.ports[j].protocol = proto
                    }
                }
            }
            what = "protocol of \(name.isEmpty ? "the port" : name) \(old) → \(proto)"
                + (followSlices ? "" : " (slices not)")
        case 2 where service.ports.count < 3:
            if service.ports.count == 1 && service.ports[0].name.isEmpty {
                // A second port needs both named.
                service.ports[0].name = "first"
                for s in sliceRefs(of: ref) {
                    for j in slices[s]!.ports.indices where slices[s]!.ports[j].name.isEmpty {
                        slices[s]!.ports[j].name = "first"
                    }
                }
            }
            var port = randomPorts(1, &rng)[0]
            while taken.contains("\(port.protocol)/\(port.port)") { port = randomPorts(1, &rng)[0] }
            port.name = "extra\(serial)"
            serial += 1
            service.ports.append(port)
            for s in sliceRefs(of: ref) {
                slices[s]!.ports.append(
                    EndpointPort(name: port.name, protocol: port.protocol, port: rng.int(1024...9999)))
            }
            what = "add port \(port.name) \(port.protocol)/\(port.port)"
        case 3 where service.ports.count > 1:
            let gone = service.ports.remove(at: i)
            if rng.chance(0.7) {
                for s in sliceRefs(of: ref) { slices[s]!.ports.removeAll { $0.name == gone.name } }
            }
            what = "remove port \(gone.name)"
        default:
            what = "target port only"
            service.ports[i].targetPort = .number(rng.int(1024...9999))
        }
        services[ref] = nil
        assignNodePorts(&service, &rng)
        services[ref] = service
        return what
    }
}
