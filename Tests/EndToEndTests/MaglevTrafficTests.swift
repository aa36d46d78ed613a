import Foundation
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// Maglev through the real kernel: flow → slot by the kernel's jhash, slot → backend by the table
/// every node computes identically.
@Suite(
    "End to end: Maglev backend selection",
    .serialized,
    .enabled(if: SB.available, "needs root, `ip netns` and the switchboard binary (reason printed as SKIP)"),
    .exclusive
)
struct MaglevTrafficTests {
    static func builder(backends n: Int) -> Topology.Builder {
        var b = Topology.Builder().node("n1").client("c1", attachedTo: "n1")
        for i in 1...n { b = b.backend("b\(i)", on: "n1") }
        return b
    }

    private func manifests(_ net: Topology, backends: [String]) -> [String] {
        [
            SB.nodeManifest(net),
            Manifest.service("mg", clusterIPs: ["10.96.0.70"], ports: [.init(name: "http", port: 80, targetPort: "8080")]),
            Manifest.slice("mg-1", service: "mg", ports: [("http", "TCP", 8080)],
                           endpoints: backends.map { .init(address: net.backend($0).ipv4) }),
        ]
    }

    private func startServers(_ net: Topology, _ names: [String]) async throws {
        for name in names { try await net.startServer(on: name, proto: .tcp, port: 8080) }
    }

    @Test("the same client address and port always reach the same backend")
    func sameFlowSameBackend() async throws {
        let names = ["b1", "b2", "b3"]
        try await withTopology(Self.builder(backends: 3)) { net in
            try await startServers(net, names)
            try await SB.apply(net, manifests(net, backends: names))
            let ports = SB.sourcePorts(20)
            let rounds = try await (0..<3).asyncMap { _ in
                try await net.requests(from: "c1", to: "10.96.0.70", port: 80, proto: .tcp, sourcePorts: ports).replies()
            }
            #expect(rounds[0] == rounds[1] && rounds[1] == rounds[2], "\(rounds)")
            #expect(Set(rounds[0]).count >= 2, "20 flows all hit one of three backends: \(rounds[0])")
        }
    }

    /// Two nodes that never talk to each other, given the same input, choose the same backend for
    /// the same 5-tuple: the property that lets any node take over a flow.
    @Test("two separate node namespaces send the same 5-tuple to the same backend")
    func twoNodesAgree() async throws {
        let names = ["b1", "b2", "b3", "b4"]
        let builder = Self.builder(backends: 4)
        try await withTopology(builder) { one in
            try await withTopology(builder) { two in
                #expect(one.client("c1").ipv4 == two.client("c1").ipv4)
                var results: [[String]] = []
                for net in [one, two] {
                    try await startServers(net, names)
                    try await SB.apply(net, manifests(net, backends: names))
                    results.append(try await net.requests(from: "c1", to: "10.96.0.70", port: 80, proto: .tcp,
                                                          sourcePorts: SB.sourcePorts(40)).replies())
                }
                #expect(results[0] == results[1])
                #expect(Set(results[0]).count >= 3, "\(results[0])")
            }
        }
    }

    /// Removes one of six backends (M stays 61, see `MaglevTable.size`). A probe table in the node
    /// records each connection's slot (the same `jhash ... mod M seed` expression as the service
    /// chain) in its conntrack mark, so the test knows every flow's slot and checks, flow by flow,
    /// that the kernel followed the Maglev tables: flows whose slot kept its backend stayed.
    @Test("after one of N backends is removed, the flows of the others stay where they were")
    func removalMovesOnlyItsShare() async throws {
        let names = (1...6).map { "b\($0)" }
        try await withTopology(Self.builder(backends: 6)) { net in
            try await startServers(net, names)
            let ns = net.node("n1").namespace
            let size = MaglevTable.size(forBackendCount: 6)
            #expect(size == MaglevTable.size(forBackendCount: 5))
            let probe = """
                table ip sbt-probe {
                    chain pre {
                        type filter hook prerouting priority -150; policy accept;
                        ip daddr 10.96.0.70 tcp dport 80 ct state new ct mark set jhash ip saddr . th sport mod \(size) seed 0x5b1e0c1d
                    }
                }
                """
            try await Shell.run(["nft", "-f", "-"], in: ns, input: probe).checked()
            let identity = { (name: String) in "\(net.backend(name).ipv4):8080" }
            let ports = SB.sourcePorts(120)

            func observe() async throws -> [Int: (backend: String, slot: Int)] {
                try await Shell.run(["conntrack", "-F"], in: ns).checked()
                let replies = try await net.requests(from: "c1", to: "10.96.0.70", port: 80, proto: .tcp,
                                                     sourcePorts: ports).replies()
                let listing = try await Shell.run(["conntrack", "-L", "-p", "tcp", "--orig-dst", "10.96.0.70"], in: ns).checked()
                var slots: [Int: Int] = [:]
                for line in listing.stdout.split(separator: "\n") {
                    let fields = line.split(separator: " ")
                    guard let sport = fields.first(where: { $0.hasPrefix("sport=") }).flatMap({ Int($0.dropFirst(6)) }),
                          let mark = fields.first(where: { $0.hasPrefix("mark=") }).flatMap({ Int($0.dropFirst(5)) })
                    else { continue }
                    slots[sport] = mark
                }
                var out: [Int: (String, Int)] = [:]
                for (port, reply) in zip(ports, replies) {
                    guard let slot = slots[port!] else {
                        Issue.record("no conntrack entry for source port \(port!)")
                        continue
                    }
                    out[port!] = (reply, slot)
                }
                return out
            }

            try await SB.apply(net, manifests(net, backends: names))
            let before = try await observe()
            let oldTable = MaglevTable(backends: names.map(identity), size: size)
            for (port, flow) in before {
                #expect(identity(flow.backend) == oldTable.backend(forSlot: flow.slot), "port \(port) before")
            }

            try await SB.apply(net, manifests(net, backends: Array(names.dropLast())))
            let after = try await observe()
            let newTable = MaglevTable(backends: names.dropLast().map(identity), size: size)
            var stayed = 0, movedByTable = 0, fromRemoved = 0
            for (port, flow) in after {
                #expect(identity(flow.backend) == newTable.backend(forSlot: flow.slot), "port \(port) after")
                #expect(flow.backend != "b6")
                guard let old = before[port] else { continue }
                #expect(old.slot == flow.slot, "a flow's slot depends only on the flow")
                if old.backend == "b6" {
                    fromRemoved += 1
                } else if oldTable.backend(forSlot: old.slot) == newTable.backend(forSlot: old.slot) {
                    #expect(flow.backend == old.backend, "port \(port): its slot kept \(old.backend) but it moved")
                    stayed += 1
                } else {
                    movedByTable += 1
                }
            }
            let changed = newTable.changedSlotCount(from: oldTable)
            print("Maglev removal 6→5 (M=\(size)): \(changed) of \(size) slots changed; of \(before.count) flows, "
                  + "\(fromRemoved) were on the removed backend, \(stayed) others stayed, \(movedByTable) others moved with their slot")
            #expect(fromRemoved > 0 && stayed > 0)
            // The others that moved are exactly those whose slot Maglev reassigned.
            #expect(stayed + movedByTable + fromRemoved == after.count)
        }
    }
}

extension Range where Bound == Int {
    func asyncMap<T>(_ body: (Int) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for i in self { out.append(try await body(i)) }
        return out
    }
}
