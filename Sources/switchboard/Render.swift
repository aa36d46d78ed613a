import ArgumentParser
import Foundation
import NFTModel
import SwitchboardCore

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the full nftables ruleset that the input compiles to (what a full sync loads).")

    @OptionGroup var input: InputOptions
    @OptionGroup var node: NodeOptions

    func validate() throws { try input.requireFiles() }

    func run() throws {
        let (result, _) = try compileInput(input, node)
        print(result.ruleset.script, terminator: "")
    }
}
