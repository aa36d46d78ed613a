import ArgumentParser
import Foundation
import NFTListing
import NFTModel
import Netfilter
import SwitchboardCore

struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the ruleset the input compiles to with the live kernel or a saved ruleset.",
        discussion: """
            Exits 0 when they are equal, 1 when they differ, 2 on error. The input is manifests (-f) or
            the cluster (--kubeconfig: Services, EndpointSlices and this node's Node, listed once: the
            dry run before switching a node over). --against takes a saved listing in nft's JSON form
            (`nft -j list ruleset > FILE`); only Switchboard's tables in it are compared.
            """)

    @OptionGroup var input: InputOptions
    @OptionGroup var node: NodeOptions

    @Option(name: .customLong("kubeconfig"), help: "Read the cluster through this kubeconfig instead of -f files.")
    var kubeconfig: String?

    @Option(name: .customLong("against"), help: "A saved ruleset (nft -j list ruleset) instead of the live kernel.")
    var against: String?

    @Flag(name: .customLong("transaction"), help: "Print the exact nft commands a sync would run instead of a diff.")
    var transaction = false

    @Flag(name: .customLong("no-color"), help: "Never colour the diff.")
    var noColor = false

    func validate() throws {
        if kubeconfig == nil { try input.requireFiles() }
        if kubeconfig != nil && !input.files.isEmpty { throw ValidationError("use either -f or --kubeconfig") }
    }

    func run() async throws {
        let (result, context) = try await compileSource()
        var current: Ruleset
        let currentName: String
        if let against {
            guard let data = FileManager.default.contents(atPath: against) else { throw CLIError("cannot read \(against)") }
            do {
                current = try Ruleset(nftJSON: String(decoding: data, as: UTF8.self)).restricted(to: context.tableIDs)
            } catch {
                throw CLIError("\(against): \(error)")
            }
            currentName = against
        } else {
            do {
                current = try await KernelNFTables().read(context.tableIDs)
            } catch {
                throw CLIError("reading the kernel's ruleset: \(error)")
            }
            currentName = "kernel"
        }
        let desired = result.ruleset
        // Session-affinity entries are the kernel's own, not a difference; sets the agent rebuilt under their
        // alternate names are compared under their own.
        current = KernelNames.fromKernel(current).0.withoutPacketPathElements()
        if transaction {
            let tx = desired.transaction(from: current)
            print(tx.description, terminator: "")
            throw ExitCode(tx.isEmpty ? 0 : 1)
        }
        let diff = UnifiedDiff(old: current.script, new: desired.script)
        let colour = !noColor && isatty(STDOUT_FILENO) == 1
        print(diff.render(oldName: currentName, newName: "desired", colour: colour), terminator: "")
        throw ExitCode(diff.isEmpty ? 0 : 1)
    }

    private func compileSource() async throws -> (CompileResult, NodeContext) {
        guard let kubeconfig else { return try compileInput(input, node) }
        let context = try node.nodeContext(node.settings())
        let (state, diagnostics) = try await readCluster(kubeconfig: kubeconfig, nodeName: context.nodeName)
        let result = compile(state, for: context)
        printDiagnostics(diagnostics + result.diagnostics)
        return (result, context)
    }
}
