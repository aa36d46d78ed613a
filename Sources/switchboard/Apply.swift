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
        discussion: "Reads Switchboard's tables from the kernel, plans the smallest change and applies it as one atomic transaction.")

    @OptionGroup var input: InputOptions
    @OptionGroup var node: NodeOptions

    @Flag(name: .customLong("ipset-export"), help: "Also write kube-proxy's IPVS-mode ipsets (KUBE-CLUSTER-IP, ...).")
    var ipsetExport = false

    func validate() throws { try input.requireFiles() }

    func run() async throws {
        let (state, decodeDiagnostics) = try input.load()
        let context = try node.nodeContext()
        let result = compile(state, for: context)
        printDiagnostics(decodeDiagnostics + result.diagnostics)
        try await applyRuleset(result, context)
        if ipsetExport { try await exportIPSets(state, context) }
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
        do {
            kernel = try KernelNFTables()
            current = try await kernel.read(context.tableIDs)
        } catch {
            throw CLIError("reading the kernel's ruleset: \(error)")
        }
        let tx = result.ruleset.transaction(from: current)
        if tx.isEmpty {
            print("no changes")
            return
        }
        do {
            try await kernel.apply(tx)
        } catch {
            throw CLIError("transaction rejected, kernel unchanged: \(error)")
        }
        print("applied \(tx.commands.count) commands (\(tx.elementChanges) element changes)")
    }
}
