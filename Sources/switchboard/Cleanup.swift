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
            Also destroys the ipsets of --ipset-export (KUBE-CLUSTER-IP, ...) that no rule references.
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
            // The --ipset-export sets (kube-proxy's IPVS-mode names): those still referenced by a rule are kept.
            let names = KubeIPSet.allNames.flatMap { [$0, IPSet.temporaryName(for: $0)] }
            let ipsets = await Cleanup.removeIPSets(try LibIPSet(), names: names)
            removed += ipsets.report.removed
            for (name, error) in ipsets.kept.sorted(by: { $0.key < $1.key }) {
                FileHandle.standardError.write(Data("switchboard: kept ipset \(name): \(error)\n".utf8))
            }
            for item in removed { print("removed \(item)") }
            if removed.isEmpty { print("nothing to remove") }
        } catch {
            throw CLIError("cleanup: \(error)")
        }
    }
}
