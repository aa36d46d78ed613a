import Foundation
import Netfilter
import NetworkTypes
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// `Conntrack` against the kernel: real UDP flows make entries in a scratch namespace, one
/// filter deletes some, and `conntrack -L` inside the namespace shows exactly which went.
@Suite(
    "Conntrack deletes exactly the matching entries",
    .serialized,
    .enabled(if: ScratchNamespace.isAvailable && Shell.which("conntrack") != nil && Skip.privilegedTestsAvailable,
             "needs root, `ip netns`, python3 and the conntrack tool"),
    .exclusive
)
struct ConntrackTests {
    /// One flow per client source port, all inside one namespace over `lo`: output-hook DNAT gives each
    /// its original destination and reply source.
    struct Flow {
        var sport: Int
        var proto: TransportProtocol
        var destination: String
        var port: Int
    }

    static let flows: [Flow] = [
        Flow(sport: 40001, proto: .udp, destination: "10.96.0.10", port: 53),  // → 10.244.1.2:5353
        Flow(sport: 40002, proto: .udp, destination: "10.96.0.10", port: 53),  // → 10.244.1.3:5353
        Flow(sport: 40003, proto: .udp, destination: "10.96.0.11", port: 53),  // → 10.244.1.2:5353
        Flow(sport: 40004, proto: .udp, destination: "10.96.0.10", port: 54),  // → 10.244.1.2:5353
        Flow(sport: 40005, proto: .udp, destination: "10.244.1.2", port: 5353),  // no NAT
        Flow(sport: 40007, proto: .udp, destination: "fd00:10:96::10", port: 53),  // → [fd00:10:244:1::2]:5353
    ]

    static let setup = """
        table inet t {
            chain out {
                type nat hook output priority -100; policy accept;
                udp sport 40002 ip daddr 10.96.0.10 dnat ip to 10.244.1.3:5353
                meta l4proto { tcp, udp } ip daddr { 10.96.0.10, 10.96.0.11 } dnat ip to 10.244.1.2:5353
                meta l4proto udp ip6 daddr fd00:10:96::10 dnat ip6 to [fd00:10:244:1::2]:5353
            }
        }
        """

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var filters: [ConntrackFilter]
        /// The source ports of the flows that must be gone.
        var deleted: Set<Int>
        var testDescription: String { name }
    }

    static func ip(_ s: String) -> IPAddress { IPAddress(s)! }

    static let cases: [Case] = [
        Case(name: "family and protocol only: every UDP entry of IPv4",
             filters: [ConntrackFilter(family: .v4, protocol: .udp)], deleted: [40001, 40002, 40003, 40004, 40005]),
        Case(name: "original destination",
             filters: [ConntrackFilter(family: .v4, protocol: .udp, originalDestination: ip("10.96.0.10"))],
             deleted: [40001, 40002, 40004]),
        Case(name: "original destination port",
             filters: [ConntrackFilter(family: .v4, protocol: .udp, originalDestinationPort: 53)],
             deleted: [40001, 40002, 40003]),
        Case(name: "reply source",
             filters: [ConntrackFilter(family: .v4, protocol: .udp, replySource: ip("10.244.1.2"))],
             deleted: [40001, 40003, 40004, 40005]),
        Case(name: "all three (kube-proxy's ClearEntriesForNAT on one port)",
             filters: [ConntrackFilter(family: .v4, protocol: .udp, originalDestination: ip("10.96.0.10"),
                                       originalDestinationPort: 53, replySource: ip("10.244.1.2"))],
             deleted: [40001]),
        Case(name: "another protocol (TCP): nothing",
             filters: [ConntrackFilter(family: .v4, protocol: .tcp, originalDestination: ip("10.96.0.10"))], deleted: []),
        Case(name: "IPv6 reply source",
             filters: [ConntrackFilter(family: .v6, protocol: .udp, replySource: ip("fd00:10:244:1::2"))],
             deleted: [40007]),
        Case(name: "SCTP: nothing", filters: [ConntrackFilter(family: .v4, protocol: .sctp)], deleted: []),
        Case(name: "several filters: the union",
             filters: [ConntrackFilter(family: .v4, protocol: .udp, originalDestination: ip("10.96.0.11")),
                       ConntrackFilter(family: .v4, protocol: .udp, originalDestinationPort: 54),
                       ConntrackFilter(family: .v6, protocol: .udp, originalDestinationPort: 53)],
             deleted: [40003, 40004, 40007]),
    ]

    @Test(arguments: cases)
    func deletesMatchingEntries(_ c: Case) async throws {
        try await ScratchNamespace.with(purpose: "conntrack") { ns in
            let addresses = """
                link set lo up
                addr add 10.96.0.10/32 dev lo
                addr add 10.96.0.11/32 dev lo
                addr add 10.244.1.2/32 dev lo
                addr add 10.244.1.3/32 dev lo
                addr add fd00:10:96::10/128 dev lo
                addr add fd00:10:244:1::2/128 dev lo

                """
            try await Shell.run(["ip", "-n", ns.name, "-batch", "-"], input: addresses).checked()
            try await Shell.run(["nft", "-f", "-"], in: ns.name, input: Self.setup).checked()
            for flow in Self.flows {
                // Nothing listens: the request is refused, and the entry stays (UNREPLIED).
                _ = try await Traffic.request(from: ns.name, to: flow.destination, port: flow.port, proto: flow.proto,
                                              sourcePort: flow.sport, timeout: .milliseconds(500))
            }
            let before = try await entries(ns)
            #expect(before == Set(Self.flows.map(\.sport)), "every flow made an entry")

            let conntrack = try Conntrack(networkNamespace: ns.name)
            let deleted = try await conntrack.delete(c.filters)

            let after = try await entries(ns)
            #expect(before.subtracting(after) == c.deleted)
            #expect(deleted == c.deleted.count)
        }
    }

    @Test func aMissingNamespaceIsNotFound() {
        #expect(throws: NetfilterError.self) { try Conntrack(networkNamespace: "sbt-no-such-namespace-xyz") }
        do {
            _ = try Conntrack(networkNamespace: "sbt-no-such-namespace-xyz")
        } catch {
            #expect(error.isNotFound)
        }
    }

    /// The client source ports of the entries `conntrack -L` lists in the namespace.
    private func entries(_ ns: ScratchNamespace) async throws -> Set<Int> {
        var ports = Set<Int>()
        for family in ["ipv4", "ipv6"] {
            let listing = try await Shell.run(["conntrack", "-L", "-f", family], in: ns.name).checked().stdout
            for line in listing.split(separator: "\n") {
                // The first sport= is the original direction's source port.
                guard let range = line.range(of: "sport=") else { continue }
                if let port = Int(line[range.upperBound...].prefix { $0.isNumber }) { ports.insert(port) }
            }
        }
        return ports
    }
}
