import ArgumentParser
import Foundation
import Logging
import NFTModel
import Netfilter
import SwitchboardAgent
import SwitchboardCore

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perform one sync into the current network namespace and exit.",
        discussion: """
            Reads Switchboard's tables from the kernel, plans the smallest change and applies it as one atomic \
            transaction. Then deletes the conntrack entries of UDP and SCTP flows that the new rules would send \
            elsewhere (comparing the backends the kernel held with the new ones), as the agent does after each sync.
            """)

    @OptionGroup var input: InputOptions
    @OptionGroup var node: NodeOptions

    @Flag(inversion: .prefixedNo, help: "Delete stale UDP/SCTP conntrack entries after applying (default on).")
    var conntrackCleanup = true
    @Flag(name: .customLong("ipset-export"), help: "Also write kube-proxy's IPVS-mode ipsets (KUBE-CLUSTER-IP, ...).")
    var ipsetExport = false

    func validate() throws { try input.requireFiles() }

    func run() async throws {
        let (state, decodeDiagnostics) = try input.load()
        // `--ipset-export` or the config file's `SwitchboardConfiguration.ipsetExport`.
        let settings = try node.settings(extra: ProxySettings(ipsetExport: ipsetExport ? true : nil))
        let context = try node.nodeContext(settings)
        let result = compile(state, for: context)
        printDiagnostics(decodeDiagnostics + result.diagnostics)
        try await applyRuleset(result, context)
        if settings.ipsetExport == true { try await exportIPSets(state, context) }
    }

    /// Rebuilds (build, then swap) the exported sets whose content differs from the kernel's.
    private func exportIPSets(_ state: ClusterState, _ context: NodeContext) async throws {
        do {
            let exporter = IPSetExporter(
                backend: try KernelIPSets(), node: context, logger: Logger(label: "switchboard", factory: { _ in SwiftLogNoOpLogHandler() }))
            let plan = try await exporter.export(state)
            print(plan.isEmpty ? "ipsets unchanged" : "ipsets rebuilt: \(plan.steps.map(\.set).joined(separator: " "))")
        } catch {
            throw CLIError("ipset export: \(error)")
        }
    }

    private func applyRuleset(_ result: CompileResult, _ context: NodeContext) async throws {
        let kernel: KernelNFTables
        let current: Ruleset
        let names: KernelNames
        do {
            kernel = try KernelNFTables()
            // The agent may hold large sets under their alternate names (a staged rebuild): plan in the
            // ruleset's names, apply in the kernel's.
            (current, names) = KernelNames.fromKernel(try await kernel.read(context.tableIDs))
        } catch {
            throw CLIError("reading the kernel's ruleset: \(error)")
        }
        let tx = result.ruleset.transaction(from: current)
        if tx.isEmpty {
            print("no changes")
            try await deleteStaleAffinity(result.ruleset, kernel)
            return
        }
        do {
            try await kernel.apply(names.toKernel(tx))
        } catch {
            throw CLIError("transaction rejected, kernel unchanged: \(error)")
        }
        print("applied \(tx.commands.count) commands (\(tx.elementChanges) element changes)")
        if conntrackCleanup { try await cleanConntrack(from: current, to: result.ruleset, context) }
        try await deleteStaleAffinity(result.ruleset, kernel)
    }

    /// Compares the backends the kernel held with the new ones; the rules are applied whatever happens here.
    private func cleanConntrack(from current: Ruleset, to desired: Ruleset, _ context: NodeContext) async throws {
        let filters = ConntrackSummary.staleFilters(
            from: ConntrackSummary(ruleset: current, node: context), to: ConntrackSummary(ruleset: desired, node: context))
        guard !filters.isEmpty else { return }
        do {
            let deleted = try await Conntrack().delete(filters)
            print("deleted \(deleted) stale conntrack entries")
        } catch {
            throw CLIError("rules applied, but the conntrack cleanup failed: \(error)")
        }
    }

    /// Session-affinity entries that lead to a removed endpoint (or a Service without affinity now).
    private func deleteStaleAffinity(_ desired: Ruleset, _ kernel: KernelNFTables) async throws {
        do {
            let deleted = try await AffinityCleanup.run(desired: desired, backend: kernel)
            if deleted > 0 { print("deleted \(deleted) stale session-affinity entries") }
        } catch {
            FileHandle.standardError.write(Data("switchboard: session-affinity cleanup: \(error)\n".utf8))
        }
    }
}
