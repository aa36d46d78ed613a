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
// The cases are SwitchboardTesting's `PlannerPropertyCase` (one seed, one pair of random clusters); the
// layers without a kernel (minimal plans, FakeNFTables, batches) are SwitchboardCoreTests'
// `PlannerPropertyTests`, with many more seeds. A failing seed is reproduced by running its test case alone;
// the issue names the mutations, and a rejected transaction is saved in full under the temporary directory.
//
// - `Kernel`: a full sync to a, partial plans a → b → a → empty cluster → b, and a full sync to a over b,
//   through libnftables in a scratch namespace; after every step the kernel's listing must equal the
//   target exactly and a second plan from it must be empty. Fewer seeds (this is what costs time), plus
//   one fixed case with the longest names Kubernetes allows.

/// Kernel seeds: one per mutation kind, so every kind reaches the kernel at least once.
private let kernelSeeds: [UInt64] = Array(0..<UInt64(RandomCluster.Mutation.allCases.count))

@Suite(.exclusive) struct PlannerPropertyTests {
    /// The property itself, against libnftables and the kernel in a scratch network namespace.
    @Suite(
        .serialized,
        .enabled(if: Skip.privilegedTestsAvailable, "needs root and `ip netns` (reason printed as SKIP)")
    )
    struct Kernel {
        @Test("plans applied to the kernel leave exactly the target", arguments: kernelSeeds)
        func kernelFollowsPlans(seed: UInt64) async throws {
            let c = PlannerPropertyCase(seed: seed)
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
            let c = PlannerPropertyCase(seed: seed)
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
            let c = PlannerPropertyCase(seed: seed)
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
            let ref = ObjectRef(namespace: RandomCluster.longestName, name: RandomCluster.longestName)
            let service = Service(
                ref: ref, type: .nodePort, clusterIPs: [.parsing("10.96.0.10"), .parsing("fd00:10:96::a")],
                ports: [ServicePort(name: "http-metrics-tl", protocol: .tcp, port: 80, nodePort: 30080)])
            let slices: [KubeObject] = [(IPFamily.v4, "v4"), (.v6, "v6")].map { family, suffix in
                .endpointSlice(EndpointSlice(
                    ref: ObjectRef(namespace: RandomCluster.longestName, name: String(RandomCluster.longestName.prefix(60)) + suffix),
                    serviceName: RandomCluster.longestName, addressType: family == .v4 ? .ipv4 : .ipv6,
                    ports: [EndpointPort(name: "http-metrics-tl", protocol: .tcp, port: 8080)],
                    endpoints: (1...3).map { i in
                        .at(family == .v4 ? "10.244.0.\(i)" : "fd00:10:244::\(i)")
                    }))
            }
            let context = NodeContext(nodeName: "n1", clusterCIDRs: [CIDR("10.244.0.0/16")!])
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

/// a's cold start in batches, checking their bound: every batch but the first (declarations) and the last
/// holds whole entry points up to the bound; one entry point larger than the bound goes alone.
private func coldStart(_ c: PlannerPropertyCase, maxElements: Int) -> [Transaction] {
    let batches = c.coldStartBatches(maxElements: maxElements)
    for batch in batches.dropFirst().dropLast() where batch.elementChanges > maxElements {
        #expect(batch.commands.count <= 8, "an oversized batch is one entry point: \(batch.excerpt)")
    }
    return batches
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
                \(tx.excerpt)
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
                \(tx.excerpt)
                """)
            return nil
        }
        let again = target.transaction(from: held)
        guard again.isEmpty else {
            Issue.record("\(summary)\nstep \(label): a second plan is not empty:\n\(again.excerpt)")
            return nil
        }
        return held
    }
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
