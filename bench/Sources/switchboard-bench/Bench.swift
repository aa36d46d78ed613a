import BenchKit
import NFTModel
import Netfilter
import SwitchboardCore
import SwitchboardTesting

/// The measurements. Every namespace is created here and deleted by a `defer` in the same scope, so a
/// failed apply or a failed `nft -f` never leaves one behind; the host's own ruleset is never touched.
struct Bench {
    var options: Options
    var log: (String) -> Void

    struct BenchError: Error, CustomStringConvertible {
        var description: String
    }

    /// Cold full sync (with its memory cost), then the single-change run against the namespaces that hold
    /// its ruleset.
    func run(size: Int) async throws -> (BenchResults.ColdSync, BenchResults.SingleChange, BenchResults.Cost) {
        let node = SyntheticCluster.nodeContext
        // Peak RSS from here on: the cluster state, compile, plan, render and the libnftables apply.
        let rssBefore = ProcessMemory.status["VmRSS"] ?? 0
        if !ProcessMemory.resetPeak() { log("  note: /proc/self/clear_refs refused; peak RSS is the process's") }
        var cluster = SyntheticCluster(services: size, endpointsPerService: options.endpointsPerService)
        // The agent's compiler, from the cold compile on: the single changes below recompile only what each
        // touches.
        var compiler = IncrementalCompiler(node: node)
        let (_, compileMs) = timed { _ = compiler.update(cluster.state, changed: nil) }
        if !compiler.diagnostics.isEmpty {
            let first = compiler.diagnostics.prefix(3)
            throw BenchError(description: "synthetic cluster compiled with diagnostics: \(first)")
        }
        let ruleset = compiler.ruleset
        let bounded = ruleset.elementCount > options.coldBatchesAbove

        let libNS = try ScratchNamespace.create(purpose: "bench-lib")
        defer { libNS.delete() }
        let execNS = try ScratchNamespace.create(purpose: "bench-exec")
        defer { execNS.delete() }

        let backend = try KernelNFTables(networkNamespace: libNS.name)
        let slabBefore = ProcessMemory.meminfo
        var planMs = 0.0, renderMs = 0.0, applyMs = 0.0, execMs = 0.0
        var scriptBytes = 0, batches = 0
        if bounded {
            // As the agent writes a cold table: bounded batches of whole entry points, element-only ones
            // through netlink. The exec path gets every batch's text through its own `nft -f`.
            let declarations = ruleset.setDeclarations
            let iterator = compiler.coldStartBatches(node.tableIDs, maxElements: Self.coldBatchElements).makeIterator()
            while true {
                let (next, ms) = timed { iterator.next() }
                planMs += ms
                guard let batch = next else { break }
                let (_, applied) = try await timedAsync { try await backend.applyBatch(batch, declarations: declarations) }
                applyMs += applied
                let (text, rendered) = timed { batch.description }
                renderMs += rendered
                scriptBytes += text.utf8.count
                execMs += try await execApply(text, in: execNS.name)
                batches += 1
            }
        } else {
            let (full, plan) = timed { ruleset.replacing(node.tableIDs) }
            let (script, render) = timed { full.description }
            // The rendered text straight to libnftables (what `backend.apply` does after rendering), so both
            // paths are timed on the same bytes and rendering is reported on its own.
            let (_, applied) = try await timedAsync { try await backend.library.run(script) }
            (planMs, renderMs, applyMs, scriptBytes, batches) = (plan, render, applied, script.utf8.count, 1)
            execMs = try await execApply(script, in: execNS.name)
        }
        let slabAfter = ProcessMemory.meminfo
        let cost = BenchResults.Cost(
            services: size, elements: ruleset.elementCount, chains: ruleset.chainCount, rules: ruleset.ruleCount,
            rssBeforeBytes: rssBefore, peakRSSBytes: ProcessMemory.status["VmHWM"] ?? 0,
            slabDeltaBytes: (slabAfter["Slab"] ?? 0) - (slabBefore["Slab"] ?? 0),
            sUnreclaimDeltaBytes: (slabAfter["SUnreclaim"] ?? 0) - (slabBefore["SUnreclaim"] ?? 0)
        )
        let cold = BenchResults.ColdSync(
            services: size, endpoints: size * options.endpointsPerService,
            elements: ruleset.elementCount, chains: ruleset.chainCount, rules: ruleset.ruleCount,
            scriptBytes: scriptBytes, compileMs: compileMs, planMs: planMs, renderMs: renderMs,
            applyLibnftablesMs: applyMs, applyExecMs: execMs, ratio: ratio(applyMs, execMs), batches: batches
        )
        log("  cold: \(ruleset.elementCount) elements, \(ruleset.chainCount) chains, \(batches) batch(es); "
            + "compile \(fixed(compileMs, 1)) ms, plan \(fixed(planMs, 1)) ms, render \(fixed(renderMs, 1)) ms, "
            + "\(bounded ? "libnftables+netlink" : "libnftables") \(fixed(applyMs, 1)) ms, nft -f \(fixed(execMs, 1)) ms; "
            + "peak RSS \(cost.peakRSSBytes >> 20) MiB, SUnreclaim +\(cost.sUnreclaimDeltaBytes >> 20) MiB")

        // Single changes. Both namespaces hold `current`; each change's transaction goes to both.
        var rng = SplitMix64(seed: options.seed ^ UInt64(size))
        var total: [Double] = [], compileT: [Double] = [], planT: [Double] = [], applyT: [Double] = []
        var execT: [Double] = []
        var kinds: [String: Int] = [:]
        var commands = 0
        let clock = ContinuousClock()
        let origin = clock.now
        var meter = ProgressMeter(label: "  size \(size) · single-change", total: options.changes, at: 0)
        for n in 0..<options.changes {
            let kind = ChangeKind.allCases[n % ChangeKind.allCases.count]
            let t0 = clock.now
            let dirty = cluster.apply(kind, using: &rng)
            let t1 = clock.now
            let change = compiler.update(cluster.state, changed: dirty)
            let t2 = clock.now
            let tx = compiler.ruleset.transaction(from: change.before, scope: change.scope)
            let t3 = clock.now
            try await backend.apply(tx)
            let t4 = clock.now
            total.append((t4 - t0).milliseconds)
            compileT.append((t2 - t1).milliseconds)
            planT.append((t3 - t2).milliseconds)
            applyT.append((t4 - t3).milliseconds)
            kinds[kind.rawValue, default: 0] += 1
            commands += tx.commands.count
            if !tx.isEmpty { execT.append(try await execApply(tx.description, in: execNS.name)) }
            if let line = meter.step(n + 1, at: (clock.now - origin).milliseconds / 1000) { log(line) }
        }
        var floor: [Double] = []
        for _ in 0..<15 {
            let (result, ms) = try await timedAsync { try await Shell.run(["true"], in: execNS.name) }
            guard result.succeeded else { throw BenchError(description: "exec floor: \(result)") }
            floor.append(ms)
        }
        // The kernel must now hold what we think it holds.
        try await checkReadBack(compiler.ruleset, from: backend, whole: !bounded)
        let apply = Summary(applyT)
        let exec = Summary(execT)
        let single = BenchResults.SingleChange(
            services: size, changes: options.changes, kinds: kinds,
            total: Summary(total), compile: Summary(compileT), plan: Summary(planT), apply: apply,
            applyExec: exec, execFloor: Summary(floor),
            ratioP50: ratio(apply.p50, exec.p50), ratioP99: ratio(apply.p99, exec.p99),
            meanCommands: Double(commands) / Double(max(1, options.changes))
        )
        log("  single change: total p50 \(fixed(single.total.p50, 2)) p99 \(fixed(single.total.p99, 2)) ms "
            + "(compile p50 \(fixed(single.compile.p50, 2)), apply p50 \(fixed(apply.p50, 2))); "
            + "nft -f p50 \(fixed(exec.p50, 2)) p99 \(fixed(exec.p99, 2)) ms")
        return (cold, single, cost)
    }

    /// Compares what `backend` holds with `current`: every chain and element when `whole`; else (a ruleset
    /// whose JSON listing alone would take gigabytes) every chain and every set of up to 100k elements.
    private func checkReadBack(_ current: Ruleset, from backend: KernelNFTables, whole: Bool) async throws {
        if whole {
            let readBack = try await backend.read(SyntheticCluster.nodeContext.tableIDs)
            if readBack.elementCount != current.elementCount || readBack.chainCount != current.chainCount {
                throw BenchError(description: "libnftables namespace holds \(readBack.elementCount) elements / "
                    + "\(readBack.chainCount) chains, expected \(current.elementCount) / \(current.chainCount)")
            }
            return
        }
        for (id, table) in current.tables {
            let declared = try await backend.readDeclarations(id)
            guard declared?.chains.count == table.chains.count else {
                throw BenchError(description: "\(id) holds \(declared?.chains.count ?? 0) chains, expected \(table.chains.count)")
            }
            for (name, set) in table.sets where set.elements.count <= 100_000 {
                let held = try await backend.readSet(id, name)
                guard held?.elements.count == set.elements.count else {
                    throw BenchError(description: "\(id) set \(name) holds \(held?.elements.count ?? 0) elements, "
                        + "expected \(set.elements.count)")
                }
            }
        }
    }

    /// Elements per batch of a bounded cold load: the agent's (`Controller.coldStartBatchElements` default).
    static let coldBatchElements = 50_000

    /// a / b, or 0 when b is 0 (JSON has no infinity).
    private func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }

    /// `ip netns exec NS nft -f -` with `script` on stdin; the exec path kube-proxy uses. Returns ms.
    private func execApply(_ script: String, in netns: String) async throws -> Double {
        let (result, ms) = try await timedAsync {
            try await Shell.run(["nft", "-f", "-"], in: netns, input: script, timeout: .seconds(600))
        }
        guard result.succeeded else {
            throw BenchError(description: "nft -f - failed: \(result.status): \(result.stderr.prefix(2000))")
        }
        return ms
    }

    /// Median build time of a Maglev table for each size × backend count.
    func maglev() -> [BenchResults.MaglevBuild] {
        var out: [BenchResults.MaglevBuild] = []
        let budgetMs = options.quick ? 100.0 : 500.0
        for size in [251, 4093, 16381] {
            for count in [10, 100, 1000] {
                let backends = (0..<count).map { "\(SyntheticCluster.v4(0x0a80_0001, plus: $0)):8080" }
                var samples: [Double] = []
                var spent = 0.0
                var slots = 0
                while samples.count < 3 || (spent < budgetMs && samples.count < 101) {
                    let (table, ms) = timed { MaglevTable(backends: backends, size: size) }
                    slots &+= table.size
                    samples.append(ms)
                    spent += ms
                }
                precondition(slots > 0)
                out.append(.init(size: size, backends: count, repetitions: samples.count, medianMs: median(samples)))
                log("  maglev M=\(size) N=\(count): \(fixed(median(samples), 3)) ms (median of \(samples.count))")
            }
        }
        return out
    }
}
