import Foundation
import NetworkTypes
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// The process helpers; no privileges needed.
@Suite("Shell", .exclusive)
struct ShellTests {
    @Test func capturesOutputAndExitCode() async throws {
        let result = try await Shell.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(result.stdout == "out\n")
        #expect(result.stderr == "err\n")
        #expect(result.status == ExitStatus(code: 3))
        #expect(!result.succeeded)
        #expect(throws: ShellError.self) { try result.checked() }
    }

    @Test func passesInput() async throws {
        let result = try await Shell.run(["cat"], input: "line\n").checked()
        #expect(result.stdout == "line\n")
    }

    @Test func stopsACommandAtItsTimeout() async throws {
        let start = ContinuousClock.now
        let result = try await Shell.run(["sleep", "30"], timeout: .milliseconds(200))
        #expect(result.timedOut)
        #expect(result.status == ExitStatus(code: SIGTERM, signaled: true))
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func reportsAMissingExecutable() async throws {
        await #expect(throws: ShellError.self) { try await Shell.run(["sbt-no-such-command"]) }
    }

    @Test func stopsABackgroundProcessWithSIGKILLWhenSIGTERMIsIgnored() async throws {
        let process = try Shell.start(["sh", "-c", "trap '' TERM; echo started; while :; do sleep 0.05; done"])
        while !process.output().stdout.contains("started") { try await Task.sleep(for: .milliseconds(5)) }
        #expect(process.isRunning)
        let status = await process.stop(grace: .milliseconds(200))
        #expect(status == ExitStatus(code: SIGKILL, signaled: true))
        #expect(!process.isRunning)
        #expect(kill(process.pid, 0) != 0)
    }
}

/// The test network itself, with plain routing and no Switchboard rules: if these fail, no end-to-end
/// result built on `Topology` means anything.
@Suite(
    "Topology: network namespaces with real traffic",
    .enabled(if: Skip.privilegedTestsAvailable, "needs root and `ip netns` (reason printed as SKIP)"),
    .exclusive
)
struct TopologyTests {
    static let oneNode = Topology.Builder()
        .node("n1").backend("b1", on: "n1").backend("b2", on: "n1").client("c1", attachedTo: "n1")

    static let families = IPFamily.allCases
    static let protocols = TransportProtocol.allCases

    @Test("a client reaches each backend directly and sees its reply", arguments: protocols, families)
    func clientReachesBackends(proto: TransportProtocol, family: IPFamily) async throws {
        try await withTopology(Self.oneNode) { net in
            try await net.startServer(on: "b1", proto: proto, port: 8080)
            try await net.startServer(on: "b2", proto: proto, port: 8080)
            for backend in ["b1", "b2"] {
                let address = net.backend(backend).address(family)
                let reply = try await net.request(from: "c1", to: address, port: 8080, proto: proto)
                #expect(reply == .success(backend), "c1 → \(backend) \(address)")
            }
            // Pod to pod on the same node is routed through the node namespace too.
            let podToPod = try await net.request(
                from: "b1",
                to: net.backend("b2").address(family),
                port: 8080,
                proto: proto
            )
            #expect(podToPod == .success("b2"))
        }
    }

    @Test("a closed port is refused", arguments: protocols, families)
    func closedPortIsRefused(proto: TransportProtocol, family: IPFamily) async throws {
        try await withTopology(Self.oneNode) { net in
            let result = try await net.request(
                from: "c1",
                to: net.backend("b1").address(family),
                port: 9,
                proto: proto
            )
            #expect(result == .failure(.refused))
        }
    }

    @Test("a service VIP without rules is forwarded into ext0 and times out", arguments: protocols)
    func unownedVIPTimesOut(proto: TransportProtocol) async throws {
        try await withTopology(Self.oneNode) { net in
            // A counter in the node's forward hook (the test's own namespace) proves the path.
            let node = net.node("n1").namespace
            try await Shell.run(
                ["nft", "-f", "-"],
                in: node,
                input: """
                    table inet probe {
                        chain forward {
                            type filter hook forward priority 0;
                            ip daddr 10.96.0.10 counter
                            ip6 daddr fd00:10:96::a counter
                            oifname "ext0" counter
                        }
                    }

                    """
            ).checked()
            for vip in ["10.96.0.10", "fd00:10:96::a"] {
                let start = ContinuousClock.now
                let result = try await net.request(
                    from: "c1",
                    to: vip,
                    port: 80,
                    proto: proto,
                    timeout: .milliseconds(300)
                )
                #expect(result == .failure(.timeout), "\(vip)")
                #expect(ContinuousClock.now - start < .seconds(3))
            }
            let listing = try await Shell.run(["nft", "list", "chain", "inet", "probe", "forward"], in: node)
                .checked().stdout
            let counted = listing.split(separator: "\n").filter { $0.contains("counter") }
            #expect(counted.count == 3)
            for line in counted {
                #expect(!line.contains("packets 0 "), "nothing forwarded: \(line)")
            }
        }
    }

    @Test("a fixed source port can be reused at once", arguments: protocols, families)
    func fixedSourcePortIsReusable(proto: TransportProtocol, family: IPFamily) async throws {
        try await withTopology(Self.oneNode) { net in
            try await net.startServer(on: "b1", proto: proto, port: 8080)
            let results = try await net.requests(
                from: "c1",
                to: net.backend("b1").address(family),
                port: 8080,
                proto: proto,
                sourcePorts: Array(repeating: 40_000, count: 5)
            )
            #expect(results == Array(repeating: .success("b1"), count: 5))
        }
    }

    @Test("two independent clusters with identical addresses do not interfere")
    func independentClustersWithSameAddresses() async throws {
        let spec = Topology.Builder().node("n1").backend("b1", on: "n1").client("c1", attachedTo: "n1")
        try await withTopology(spec) { a in
            try await withTopology(spec) { b in
                #expect(a.backend("b1").ipv4 == b.backend("b1").ipv4)
                #expect(a.client("c1").ipv6 == b.client("c1").ipv6)
                #expect(Set(a.namespaces).isDisjoint(with: b.namespaces))
                for proto in TransportProtocol.allCases {
                    try await a.startServer(on: "b1", proto: proto, port: 8080, reply: "A")
                    try await b.startServer(on: "b1", proto: proto, port: 8080, reply: "B")
                    for family in IPFamily.allCases {
                        let address = a.backend("b1").address(family)
                        // The same 5-tuple in both clusters.
                        let fromA = try await a.request(
                            from: "c1",
                            to: address,
                            port: 8080,
                            proto: proto,
                            sourcePort: 41_000
                        )
                        let fromB = try await b.request(
                            from: "c1",
                            to: address,
                            port: 8080,
                            proto: proto,
                            sourcePort: 41_000
                        )
                        #expect(fromA == .success("A"), "\(proto) \(family)")
                        #expect(fromB == .success("B"), "\(proto) \(family)")
                    }
                }
            }
        }
    }

    @Test("two nodes share a cluster network: pods on another node are routed to", arguments: families)
    func podsOnAnotherNode(family: IPFamily) async throws {
        let spec = Topology.Builder()
            .node("n1").node("n2")
            .backend("b1", on: "n1").backend("b2", on: "n2")
            .client("c1", attachedTo: "n1")
        try await withTopology(spec) { net in
            #expect(net.node("n2").podCIDRv4 == "10.244.2.0/24")
            #expect(net.backend("b2").ipv4 == "10.244.2.2")
            try await net.startServer(on: "b2", proto: .tcp, port: 8080)
            let address = net.backend("b2").address(family)
            // c1 → n1 → n2 → b2; the reply comes back b2 → n2 → c1 directly on the LAN.
            #expect(try await net.request(from: "c1", to: address, port: 8080, proto: .tcp) == .success("b2"))
            #expect(try await net.request(from: "b1", to: address, port: 8080, proto: .tcp) == .success("b2"))
            #expect(try await net.request(from: "n1", to: address, port: 8080, proto: .tcp) == .success("b2"))
            // Moving c1's gateway to n2 gives the other path to the same pod.
            try await net.setGateway(of: "c1", to: "n2")
            #expect(try await net.request(from: "c1", to: address, port: 8080, proto: .tcp) == .success("b2"))
        }
    }

    /// Not Switchboard's rules: a hand-written DNAT / REJECT / masquerade in the node namespace, to show that
    /// the topology gives service rules the paths they have on a real node.
    @Test("hand-written service rules in the node behave as on a real node", arguments: protocols, families)
    func handWrittenServiceRules(proto: TransportProtocol, family: IPFamily) async throws {
        try await withTopology(Self.oneNode) { net in
            let b1 = net.backend("b1")
            let (vip, closedVIP, nat, target) =
                family == .v4
                ? ("10.96.0.10", "10.96.0.11", "ip", "\(b1.ipv4):8080")
                : ("fd00:10:96::a", "fd00:10:96::b", "ip6", "[\(b1.ipv6)]:8080")
            let l4 = proto.rawValue
            try await Shell.run(
                ["nft", "-f", "-"],
                in: net.node("n1").namespace,
                input: """
                    table inet svc {
                        chain prerouting {
                            type nat hook prerouting priority dstnat;
                            \(nat) daddr \(vip) \(l4) dport 80 meta mark set 0x1 dnat \(nat) to \(target)
                        }
                        chain forward {
                            type filter hook forward priority 0;
                            \(nat) daddr \(closedVIP) reject
                        }
                        chain postrouting {
                            type nat hook postrouting priority srcnat;
                            meta mark 0x1 \(nat) saddr \(b1.address(family)) masquerade
                        }
                    }

                    """
            ).checked()
            try await net.startServer(on: "b1", proto: proto, port: 8080)
            #expect(try await net.request(from: "c1", to: vip, port: 80, proto: proto) == .success("b1"))
            // Hairpin: b1 reaches itself through the VIP only because the node masquerades it.
            #expect(try await net.request(from: "b1", to: vip, port: 80, proto: proto) == .success("b1"))
            #expect(try await net.request(from: "c1", to: closedVIP, port: 80, proto: proto) == .failure(.refused))
            // Without the masquerade, b1 drops its own address arriving from outside: no hairpin.
            try await Shell.run(["nft", "flush", "chain", "inet", "svc", "postrouting"], in: net.node("n1").namespace)
                .checked()
            let unmasqueraded = try await net.request(
                from: "b1",
                to: vip,
                port: 80,
                proto: proto,
                timeout: .milliseconds(300)
            )
            #expect(unmasqueraded == .failure(.timeout))
        }
    }

    @Test("teardown removes the namespaces and stops every server, even when the body throws")
    func teardownLeavesNothing() async throws {
        struct Boom: Error {}
        let captured = Captured()
        await #expect(throws: Boom.self) {
            try await withTopology(Self.oneNode) { net in
                let servers = [
                    try await net.startServer(on: "b1", proto: .tcp, port: 8080),
                    try await net.startServer(on: "b2", proto: .udp, port: 8080),
                    try await net.startServer(on: "n1", proto: .tcp, port: 10256),
                ]
                // Something started behind the topology's back inside one of its namespaces.
                let stray = try Shell.start(["sleep", "300"], in: net.backend("b1").namespace)
                captured.set(namespaces: net.namespaces, processes: servers + [stray], id: net.id)
                for namespace in net.namespaces {
                    #expect(FileManager.default.fileExists(atPath: "/run/netns/\(namespace)"))
                }
                throw Boom()
            }
        }
        let (namespaces, processes, id) = captured.get()
        #expect(namespaces.count == 5)
        for namespace in namespaces {
            #expect(namespace.hasPrefix("sbt-\(id)-"))
            #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(namespace)"), "\(namespace) left behind")
        }
        for process in processes {
            // The stray was SIGKILLed by teardown; it is our child, so reap it before looking.
            await process.wait()
            #expect(!process.isRunning)
            #expect(!FileManager.default.fileExists(atPath: "/proc/\(process.pid)"), "pid \(process.pid) still exists")
        }
        #expect(!FileManager.default.fileExists(atPath: "/run/switchboard-testing/\(id).json"))
    }

    @Test("leftovers of a dead test process are removed; live topologies and foreign namespaces are not")
    func removesOnlyDeadOwnersLeftovers() async throws {
        // A pid that is certainly gone: a process we started and reaped.
        let finished = try Shell.start(["true"])
        await finished.wait()
        let id = "z" + String(UInt32.random(in: 0..<0xffffff), radix: 36)
        let orphan = "sbt-\(id)-zz", foreign = "sbt-\(id)-foreign"
        for namespace in [orphan, foreign] { try await Shell.run(["ip", "netns", "add", namespace]).checked() }
        defer { _ = try? Shell.runBlocking(["ip", "netns", "del", foreign]) }
        let marker = "\(Topology.ownershipDirectory)/\(id).json"
        let content = #"{"pid": \#(finished.pid), "startTime": "1", "namespaces": ["\#(orphan)"]}"#
        try FileManager.default.createDirectory(atPath: Topology.ownershipDirectory, withIntermediateDirectories: true)
        try Data(content.utf8).write(to: URL(fileURLWithPath: marker))

        try await withTopology(Self.oneNode) { live in
            let removed = await Topology.removeLeftovers()
            #expect(removed.contains(orphan))
            #expect(!removed.contains(where: live.namespaces.contains))
            for namespace in live.namespaces {
                #expect(FileManager.default.fileExists(atPath: "/run/netns/\(namespace)"))
            }
        }
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(orphan)"))
        #expect(FileManager.default.fileExists(atPath: "/run/netns/\(foreign)"))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test("builder input is validated before anything is created")
    func rejectsBadNames() async throws {
        await #expect(throws: TopologyError.self) { try await Topology.Builder().node("Node_1").build() }
        await #expect(throws: TopologyError.self) { try await Topology.Builder().node("n1").node("n1").build() }
        await #expect(throws: TopologyError.self) {
            try await Topology.Builder().node("n1").backend("b1", on: "n9").build()
        }
        await #expect(throws: TopologyError.self) { try await Topology.Builder().node("lan").build() }
    }
}

/// Values handed out of a `withTopology` body for inspection after teardown.
private final class Captured: @unchecked Sendable {
    // `@unchecked Sendable`: guarded by `lock`.
    private let lock = NSLock()
    private var value: ([String], [BackgroundProcess], String) = ([], [], "")

    func set(namespaces: [String], processes: [BackgroundProcess], id: String) {
        lock.withLock { value = (namespaces, processes, id) }
    }

    func get() -> ([String], [BackgroundProcess], String) { lock.withLock { value } }
}
