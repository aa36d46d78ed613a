import Foundation
import NetworkTypes
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// `FlowHash` against the running kernel: a rule sets each connection's conntrack mark to the slot the
/// kernel computes (`jhash <fam> saddr . th sport mod M seed <ours>`, the ruleset's own expression), one UDP
/// datagram is sent per flow, and every mark read back must equal `FlowHash.slot`.
@Suite(
    "End to end: FlowHash equals the kernel's jhash",
    .serialized,
    .enabled(if: ScratchNamespace.isAvailable, "needs root and `ip netns` (reason printed as SKIP)"),
    .exclusive
)
struct FlowHashKernelTests {
    @Test("random flows of both families, every table size on the ladder")
    func kernelAgrees() async throws {
        try await ScratchNamespace.with(purpose: "flowhash") { ns in
            try ns.exec(["ip", "link", "set", "lo", "up"])
            let sources4 = ["10.1.2.1", "10.77.3.9", "192.168.200.254"]
            let sources6 = ["fd00::1", "fd00:abcd::1234", "2001:db8:ffff::9"]
            for address in sources4 { try ns.exec(["ip", "addr", "add", "\(address)/32", "dev", "lo"]) }
            for address in sources6 { try ns.exec(["ip", "addr", "add", "\(address)/128", "dev", "lo", "nodad"]) }
            var generator = SystemRandomNumberGenerator()
            var checked = 0
            for m in MaglevTable.ladder {
                let script = """
                    add table ip sbt-flowhash
                    add chain ip sbt-flowhash out { type filter hook output priority 0; }
                    add rule ip sbt-flowhash out meta l4proto udp ct mark set jhash ip saddr . th sport mod \(m) seed \(RulesetNames.jhashSeed)
                    add table ip6 sbt-flowhash
                    add chain ip6 sbt-flowhash out { type filter hook output priority 0; }
                    add rule ip6 sbt-flowhash out meta l4proto udp ct mark set jhash ip6 saddr . th sport mod \(m) seed \(RulesetNames.jhashSeed)

                    """
                let loaded = try await Shell.run(["nft", "-f", "-"], in: ns.name, input: script)
                try #require(loaded.status.code == 0, "\(loaded.stderr)")
                let flows = (sources4 + sources6).map { ($0, Int.random(in: 1...65535, using: &generator)) }
                let sender = """
                    import socket, sys
                    for spec in sys.argv[1:]:
                        address, port = spec.rsplit(",", 1)
                        family = socket.AF_INET6 if ":" in address else socket.AF_INET
                        s = socket.socket(family, socket.SOCK_DGRAM)
                        s.bind((address, int(port)))
                        s.sendto(b"x", ("10.1.2.1" if family == socket.AF_INET else "fd00::1", 9))
                        s.close()
                    """
                let sent = try await Shell.run(["python3", "-I", "-c", sender] + flows.map { "\($0.0),\($0.1)" }, in: ns.name)
                try #require(sent.status.code == 0, "\(sent.stderr)")
                let listing = try await Shell.run(["conntrack", "-L", "-p", "udp"], in: ns.name)
                for (source, port) in flows {
                    let address = try #require(IPAddress(source))
                    let line = listing.stdout.split(separator: "\n").first {
                        $0.contains("src=\(address) ") && $0.contains("sport=\(port) dport=9 ")
                    }
                    let mark = line.flatMap { $0.split(separator: " ").first { $0.hasPrefix("mark=") } }.flatMap { Int($0.dropFirst(5)) }
                    #expect(mark == FlowHash.slot(source: address, sourcePort: port, tableSize: m), "\(source):\(port) mod \(m): \(line ?? "no entry")")
                    checked += 1
                }
                _ = try await Shell.run(["conntrack", "-F"], in: ns.name)
                _ = try await Shell.run(["nft", "delete table ip sbt-flowhash; delete table ip6 sbt-flowhash"], in: ns.name)
            }
            #expect(checked == 6 * MaglevTable.ladder.count)
        }
    }
}
