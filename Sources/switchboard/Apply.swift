import ArgumentParser
import Foundation
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

    func validate() throws { try input.requireFiles() }

    func run() async throws {
        let (result, context) = try compileInput(input, node)
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
            try await deleteStaleAffinity(result.ruleset, kernel)
            return
        }
        do {
            try await kernel.apply(tx)
        } catch {
            throw CLIError("transaction rejected, kernel unchanged: \(error)")
        }
        print("applied \(tx.commands.count) commands (\(tx.elementChanges) element changes)")
        try await deleteStaleAffinity(result.ruleset, kernel)
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
