import ArgumentParser
import Foundation
import NFTModel
import Netfilter
import SwitchboardCore

struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove everything Switchboard created (like kube-proxy --cleanup), and exit.",
        discussion: """
            With --kube-proxy-leftovers, also remove kube-proxy's own state: its nftables tables and
            the KUBE-* iptables chains as iptables-nft stores them. Traffic to Services stops until a
            proxy programs the node again.
            """)

    @Flag(name: .customLong("kube-proxy-leftovers"), help: "Also remove kube-proxy's tables and KUBE-* chains.")
    var kubeProxyLeftovers = false

    func run() async throws {
        do {
            let lib = try LibNFTables()
            var removed = try await Cleanup.removeSwitchboard(lib, tableName: NodeContext.defaultTableName).removed
            if kubeProxyLeftovers { removed += try await Cleanup.removeKubeProxyLeftovers(lib).removed }
            for item in removed { print("removed \(item)") }
            if removed.isEmpty { print("nothing to remove") }
        } catch {
            throw CLIError("cleanup: \(error)")
        }
    }
}
