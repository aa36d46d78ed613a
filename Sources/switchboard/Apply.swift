import ArgumentParser
import Foundation
import NFTModel
import Netfilter
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
