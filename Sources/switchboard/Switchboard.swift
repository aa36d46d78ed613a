import ArgumentParser
import Foundation
import NFTModel
import Netfilter
import SwitchboardCore

/// The CLI. Subcommands parse, validate and call library code; exit codes are part of the contract:
/// 0 success (for `diff`: no difference), 1 (`diff` only) a difference, 2 any error.
@main
struct Switchboard: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A kube-proxy replacement: Kubernetes Services as one atomic nftables transaction.",
        version: version,
        subcommands: [Run.self, Render.self, Diff.self, ExplainCommand.self, Apply.self, CleanupCommand.self, Version.self]
    )

    /// Overrides ArgumentParser's exit codes: help and version exit 0, every usage or input error
    /// prints one line and exits 2.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("switchboard: \(message)\n".utf8))
            Foundation.exit(2)
        }
    }
}

/// An error that the CLI reports as one line and exit code 2.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("switchboard \(Switchboard.version)") }
}
