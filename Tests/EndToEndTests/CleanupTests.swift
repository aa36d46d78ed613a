import Foundation
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// `switchboard cleanup`: Switchboard's tables go; with --kube-proxy-leftovers kube-proxy's nftables
/// tables and KUBE-* iptables(-nft) chains go too, and nobody else's rules are touched.
@Suite(
    "CLI: cleanup",
    .serialized,
    .enabled(if: SB.available && Shell.which("iptables") != nil, "needs root, `ip netns`, iptables and the binary"),
    .exclusive
)
struct CleanupTests {
    private func sb(_ args: [String], in ns: ScratchNamespace) async throws -> ShellResult {
        try await Shell.run([SwitchboardBinary.path!] + args, in: ns.name, timeout: .seconds(60))
    }

    private func iptablesLikeKubeProxy(_ ns: ScratchNamespace) async throws {
        let commands = [
            "iptables -t nat -N KUBE-SERVICES", "iptables -t nat -N KUBE-SVC-ABCDEF",
            "iptables -t nat -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp --dport 80 -j KUBE-SVC-ABCDEF",
            "iptables -t nat -A PREROUTING -m comment --comment k8s -j KUBE-SERVICES",
            "iptables -t nat -A OUTPUT -j KUBE-SERVICES",
            "iptables -t filter -N KUBE-FORWARD", "iptables -t filter -A FORWARD -j KUBE-FORWARD",
            "ip6tables -t nat -N KUBE-SERVICES", "ip6tables -t nat -A PREROUTING -j KUBE-SERVICES",
            // Someone else's rules, which must survive.
            "iptables -t filter -A FORWARD -s 192.0.2.1 -j DROP", "iptables -t nat -A POSTROUTING -j MASQUERADE",
            "nft add table ip kube-proxy", "nft add table ip6 kube-proxy",
        ]
        for command in commands {
            try await Shell.run(command.split(separator: " ").map(String.init), in: ns.name).checked()
        }
    }

    @Test("cleanup removes only Switchboard's tables")
    func cleanupOwnTables() async throws {
        try await ScratchNamespace.with(purpose: "cleanup") { ns in
            try await sb(["apply", "-f", CLITests.examples] + CLITests.flags, in: ns).checked()
            try await Shell.run(["nft", "add", "table", "ip", "someone-else"], in: ns.name).checked()
            let result = try await sb(["cleanup"], in: ns)
            #expect(result.status.code == 0)
            #expect(result.stdout == "removed table ip switchboard\nremoved table ip6 switchboard\n")
            let tables = try await Shell.run(["nft", "list", "tables"], in: ns.name).checked().stdout
            #expect(tables == "table ip someone-else\n")
            #expect(try await sb(["cleanup"], in: ns).stdout == "nothing to remove\n")
        }
    }

    @Test("cleanup --kube-proxy-leftovers removes kube-proxy's tables and KUBE-* chains, nothing else")
    func kubeProxyLeftovers() async throws {
        try await ScratchNamespace.with(purpose: "cleanup") { ns in
            try await iptablesLikeKubeProxy(ns)
            let result = try await sb(["cleanup", "--kube-proxy-leftovers"], in: ns)
            #expect(result.status.code == 0, "\(result.stderr)")
            #expect(result.stdout.contains("removed table ip kube-proxy"))
            let v4 = try await Shell.run(["iptables-save"], in: ns.name).checked().stdout
            let v6 = try await Shell.run(["ip6tables-save"], in: ns.name).checked().stdout
            #expect(!v4.contains("KUBE-") && !v6.contains("KUBE-"), "\(v4)\(v6)")
            #expect(v4.contains("-A FORWARD -s 192.0.2.1/32 -j DROP"))
            #expect(v4.contains("-A POSTROUTING -j MASQUERADE"))
            let tables = try await Shell.run(["nft", "list", "tables"], in: ns.name).checked().stdout
            #expect(!tables.contains("kube-proxy"))
        }
    }
}
