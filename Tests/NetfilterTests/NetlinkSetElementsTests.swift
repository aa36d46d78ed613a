import Foundation
import NetworkTypes
import NFTModel
import Netfilter
import SwitchboardCore
import SwitchboardTesting
import Testing

#if canImport(Glibc)
import Glibc
import SwitchboardTestTraits
#endif

/// `NetlinkSetElements` against the kernel: the same elements written through libnftables in one scratch
/// namespace and through netlink in another must list identically; a batch with one bad element changes
/// nothing.
@Suite(.exclusive) struct NetlinkSetElementsTests {
    static let node = NodeContext(nodeName: "node-a")
    static let v4 = node.tableID(.v4)
    static let v6 = node.tableID(.v6)
    /// The compiler's tables for an empty cluster: every set the agent writes, declared as it declares them.
    static let skeleton = compile(ClusterState(), for: node).ruleset

    static func set(_ table: TableID, _ name: String) -> NFTSet {
        skeleton[table]!.sets[name]!.declarationOnly
    }

    static let protocols = ["tcp", "udp", "sctp"]

    /// `services` entry points of `slots` slots each: `vip . proto . port . slot : endpoint . port`.
    static func backends(
        _ family: IPFamily, services: Int, slots: Int, endpoints: Int = 7, base: Int = 0
    ) -> [Command.Element] {
        var elements: [Command.Element] = []
        elements.reserveCapacity(services * slots)
        for s in base..<(base + services) {
            let vip = address(family, service: s)
            let key = "\(vip) . \(protocols[s % 3]) . \(80 + s % 5)"
            for slot in 0..<slots {
                let endpoint = endpointAddress(family, (s + slot) % endpoints)
                elements.append(Command.Element(key: "\(key) . \(slot)", data: "\(endpoint) . \(8080 + slot % 3)"))
            }
        }
        return elements
    }

    static func address(_ family: IPFamily, service s: Int) -> String {
        family == .v4 ? "10.96.\(s / 250).\(s % 250 + 1)" : "fd00:10:96::\(String(s + 1, radix: 16))"
    }

    static func endpointAddress(_ family: IPFamily, _ e: Int) -> String {
        family == .v4 ? "10.244.\(e / 250).\(e % 250 + 1)" : "fd00:10:244::\(String(e + 1, radix: 16))"
    }

    /// Every kind of set the agent writes, for one family, one batch's worth: more than one message for
    /// `backends` (by count) and for a dispatch set with long comments (by bytes).
    static func groups(_ family: IPFamily) -> [NetlinkSetElements.Group] {
        let table = node.tableID(family)
        let n = RulesetNames.self
        let services = family == .v4 ? 40 : 10
        let comment = String(repeating: "c", count: 100)
        func group(_ name: String, _ elements: [Command.Element]) -> NetlinkSetElements.Group {
            (table, set(table, name), elements)
        }
        func element(_ key: String, _ data: String = "", comment: String? = nil) -> Command.Element {
            Command.Element(key: key, data: data, comment: comment)
        }
        let nodePorts = (0..<3).flatMap { p in
            (0..<61).map { slot in
                element("\(protocols[p]) . \(30000 + p) . \(slot)", "\(endpointAddress(family, slot % 4)) . 8080")
            }
        }
        let vips = (0..<services).map { s in
            element("\(address(family, service: s)) . \(protocols[s % 3]) . \(80 + s % 5)", comment: "ns/svc-\(s):http")
        }
        let hairpins = (0..<20).map { e in element("\(endpointAddress(family, e)) . \(endpointAddress(family, e))") }
        let longComments = (0..<1000).map { s in
            element("\(address(family, service: 1000 + s)) . tcp . 443", comment: "\(comment)-\(s)")
        }
        return [
            group(n.backends, backends(family, services: services, slots: 127)),
            group(n.nodePortBackends, nodePorts),
            group(n.serviceVIPs(127), vips),
            group(n.serviceVIPs(13), longComments),
            group(n.hairpin, hairpins),
            group(n.clusterIPs, (0..<services).map { element(address(family, service: $0)) }),
        ]
    }

    /// A namespace with the skeleton's tables, created through libnftables.
    static func withSkeleton(
        purpose: String, _ body: (ScratchNamespace, KernelNFTables) async throws -> Void
    ) async throws {
        try await ScratchNamespace.with(purpose: purpose) { ns in
            let kernel = try KernelNFTables(networkNamespace: ns.name)
            try await kernel.apply(skeleton.transaction(from: .empty))
            try await body(ns, kernel)
        }
    }

    static func libnftablesTransaction(_ groups: [NetlinkSetElements.Group]) -> Transaction {
        Transaction(groups.map { .addElements($0.table, set: $0.set.name, $0.elements) })
    }

    /// Both families in one batch each way; the kernels must list the same tables, in JSON and in text.
    @Test func writesWhatLibNFTablesWrites() async throws {
        try skipUnlessScratchNamespaces()
        let groups = Self.groups(.v4) + Self.groups(.v6)
        try await Self.withSkeleton(purpose: "nl-lib") { _, viaText in
            try await Self.withSkeleton(purpose: "nl-net") { ns, viaNetlink in
                try await viaText.apply(Self.libnftablesTransaction(groups))
                let netlink = try NetlinkSetElements(networkNamespace: ns.name)
                #expect(netlink.networkNamespace == ns.name)
                try await netlink.add(groups)
                // The socket is in the namespace; the worker thread went back to the process's namespace.
                let inode = try namespaceInode("/var/run/netns/" + ns.name)
                let worker = String("nl-\(ns.name)".prefix(15))
                let threads = try threadNamespaces()
                #expect(threads.contains { $0.name == worker })
                #expect(!threads.contains { $0.name == worker && $0.namespace == inode })

                let tables: Set<TableID> = [Self.v4, Self.v6]
                let expected = try await viaText.read(tables)
                let got = try await viaNetlink.read(tables)
                #expect(got == expected)
                // And what was asked for, element by element, comments included.
                for group in groups {
                    let elements = try #require(got[group.table]?.sets[group.set.name]?.elements)
                    #expect(elements.count == group.elements.count, "\(group.set.name)")
                    var want: [String: Command.Element] = [:]
                    for element in group.elements { want[element.key] = element }
                    var mismatches = 0
                    elements.forEachSorted { key, data in
                        if want[key]?.data != data || want[key]?.comment != elements.comment(key) { mismatches += 1 }
                    }
                    #expect(mismatches == 0, "\(group.table) \(group.set.name)")
                    #expect(elements.comments.count == group.elements.filter { $0.comment != nil }.count)
                }
                for table in tables {
                    let text = try await viaText.library.run("list table \(table)")
                    #expect(try await viaNetlink.library.run("list table \(table)") == text)
                }
            }
        }
    }

    /// The staged rebuild's view of a table: every chain (no rules) and every set's name and map-ness, from a
    /// GETSET dump and `list chains`, without fetching the elements (libnftables would fetch all of them).
    @Test func declarationsListNamesWithoutElements() async throws {
        try skipUnlessScratchNamespaces()
        try await Self.withSkeleton(purpose: "nl-decl") { ns, kernel in
            let netlink = try NetlinkSetElements(networkNamespace: ns.name)
            try await netlink.add(Self.groups(.v4))
            for table in [Self.v4, Self.v6] {
                let declared = try #require(try await kernel.readDeclarations(table))
                let wanted = Self.skeleton[table]!
                #expect(Set(declared.chains.keys) == Set(wanted.chains.keys))
                #expect(declared.chains.values.allSatisfy { $0.rules.isEmpty })
                #expect(declared.chains.mapValues(\.base) == wanted.chains.mapValues(\.base))
                #expect(declared.sets.mapValues(\.isMap) == wanted.sets.mapValues(\.isMap))
                #expect(declared.sets.values.allSatisfy { $0.elements.isEmpty })
            }
            #expect(try await kernel.readDeclarations(TableID(.ip, "no-such-table")) == nil)
            #expect(try await netlink.sets(of: TableID(.ip6, "no-such-table")) == nil)
            // A set created since is seen at once (nothing cached).
            try await kernel.apply(Transaction([.addSet(Self.v4, NFTSet(name: "extra", keyType: .types(["ipv4_addr"])))]))
            let names = try #require(try await netlink.sets(of: Self.v4)).map(\.name)
            #expect(names.contains("extra") && names.count == Self.skeleton[Self.v4]!.sets.count + 1)
        }
    }

    /// One bad element anywhere makes the kernel refuse the whole batch, and it holds what it held.
    @Test func aBadElementChangesNothing() async throws {
        try skipUnlessScratchNamespaces()
        try await Self.withSkeleton(purpose: "nl-atomic") { ns, kernel in
            let netlink = try NetlinkSetElements(networkNamespace: ns.name)
            let backends = Self.set(Self.v4, RulesetNames.backends)
            let existing = Self.backends(.v4, services: 1, slots: 13)
            try await netlink.add([(Self.v4, backends, existing)])
            let tables: Set<TableID> = [Self.v4, Self.v6]
            let before = try await kernel.read(tables)
            let beforeText = try await kernel.listRuleset()
            #expect(before[Self.v4]?.sets[RulesetNames.backends]?.elements.count == 13)

            let many = Self.backends(.v4, services: 40, slots: 127, base: 1)  // 5080 elements: 6 messages
            let hairpin = Self.set(Self.v4, RulesetNames.hairpin)
            var missing = hairpin
            missing.name = "no-such-set"

            // A set that does not exist, after thousands of good elements.
            let notFound = try await #require(throws: NetfilterError.self) {
                try await netlink.add([
                    (Self.v4, backends, many),
                    (Self.v4, missing, [Command.Element(key: "10.244.0.1 . 10.244.0.1", data: "")]),
                ])
            }
            #expect(notFound.kind == .commandFailed)
            #expect(notFound.isNotFound)
            #expect(notFound.message.contains("set ip switchboard no-such-set"))
            #expect(notFound.message.contains("No such file or directory"))

            // An existing key with other data, in the middle of a later message: EEXIST (as `nft add element`
            // says, "File exists"), pointing at that element.
            var clash = existing[5]
            clash.data = "10.244.9.9 . 9999"
            let clashing = try await #require(throws: NetfilterError.self) {
                try await netlink.add([(Self.v4, backends, Array(many[..<3000]) + [clash] + many[3000...])])
            }
            #expect(clashing.isAlreadyExists)
            #expect(clashing.script == "add element \(Self.v4) backends { \(clash.text) }")
            #expect(
                clashing.message
                    == "Could not add elements to map ip switchboard backends: File exists\n\(clashing.script)")

            // Two different data for one new key inside the batch: also refused.
            var twin = many[10]
            twin.data = "10.244.9.9 . 9999"
            let duplicate = try await #require(throws: NetfilterError.self) {
                try await netlink.add([(Self.v4, backends, Array(many[..<100])), (Self.v4, backends, [twin])])
            }
            #expect(duplicate.isAlreadyExists)
            #expect(duplicate.script == "add element \(Self.v4) backends { \(twin.text) }")

            // An IPv6 element in an IPv4 table's set fails before anything is sent.
            let invalid = try await #require(throws: NetfilterError.self) {
                try await netlink.add([
                    (Self.v4, backends, many),
                    (Self.v4, hairpin, [Command.Element(key: "fd00::1 . fd00::1", data: "")]),
                ])
            }
            #expect(invalid.kind == .invalidRequest)
            #expect(invalid.message.contains("field 1 \"fd00::1\" is not a valid ipv4_addr"))

            #expect(try await kernel.read(tables) == before)
            #expect(try await kernel.listRuleset() == beforeText)

            // As with `add element`, an element that exists with the same data is no error.
            try await netlink.add([(Self.v4, backends, existing)])
            #expect(try await kernel.read(tables) == before)
        }
    }

    /// The data path: `backends` written through netlink, the rest of the compiled ruleset through libnftables;
    /// every connection to the cluster IP reaches a backend. The kernel's jhash picks the slot in host byte
    /// order, so a slot encoded in any other order would miss the map and the connections would fail.
    @Test func connectionsReachBackendsThroughNetlinkWrittenSlots() async throws {
        if let reason = Skip.privilegedTestsUnavailableReason {
            try Test.cancel("needs root, ip netns and python3: \(reason)")
        }
        let names = ["b1", "b2", "b3"]
        var builder = Topology.Builder().node("n1").client("c1", attachedTo: "n1")
        for name in names { builder = builder.backend(name, on: "n1") }
        try await withTopology(builder) { net in
            for name in names { try await net.startServer(on: name, proto: .tcp, port: 8080) }
            let context = NodeContext(nodeName: "n1", clusterCIDRs: [CIDR("10.244.0.0/16")!])
            let web = ObjectRef(namespace: "default", name: "web")
            let state = ClusterState([
                .service(
                    Service(
                        ref: web, clusterIPs: [IPAddress("10.96.0.80")!],
                        ports: [ServicePort(name: "http", port: 80, targetPort: .number(8080))])),
                .endpointSlice(
                    EndpointSlice(
                        ref: ObjectRef(namespace: "default", name: "web-1"), serviceName: "web",
                        ports: [EndpointPort(name: "http", port: 8080)],
                        endpoints: names.map { Endpoint(addresses: [IPAddress(net.backend($0).ipv4)!], ready: true) })),
            ])
            var desired = compile(state, for: context).ruleset
            let table = context.tableID(.v4)
            let backends = try #require(desired[table]?.sets[RulesetNames.backends])
            var slots: [Command.Element] = []
            backends.elements.forEachSorted { key, data in slots.append(Command.Element(key: key, data: data)) }
            #expect(slots.count == MaglevTable.size(forBackendCount: names.count))
            desired[table]!.sets[RulesetNames.backends]!.elements = [:]

            let namespace = net.node("n1").namespace
            let kernel = try KernelNFTables(networkNamespace: namespace)
            try await kernel.apply(desired.transaction(from: .empty))
            try await NetlinkSetElements(networkNamespace: namespace).add([(table, backends.declarationOnly, slots)])
            #expect(try await kernel.readSet(table, RulesetNames.backends) == backends)

            let results = try await net.requests(
                from: "c1", to: "10.96.0.80", port: 80, proto: .tcp, sourcePorts: (0..<20).map { 41000 + $0 })
            let replies = results.compactMap(\.reply).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(replies.count == results.count, "\(results)")
            #expect(Set(replies).count >= 2 && Set(replies).isSubset(of: names), "\(replies)")
        }
    }

    @Test func refusesDeclarationsItCannotEncode() async throws {
        try skipUnlessScratchNamespaces()
        try await Self.withSkeleton(purpose: "nl-refuse") { ns, kernel in
            let netlink = try NetlinkSetElements(networkNamespace: ns.name)
            let before = try await kernel.listRuleset()
            for name in [RulesetNames.podCIDRs, RulesetNames.affinityServices, RulesetNames.affinity] {
                #expect(!NetlinkSetElements.canWrite(Self.set(Self.v4, name)))
                let error = try await #require(throws: NetfilterError.self) {
                    try await netlink.add([
                        (Self.v4, Self.set(Self.v4, name), [Command.Element(key: "10.0.0.0/8", data: "")])
                    ])
                }
                #expect(error.kind == .invalidRequest)
                #expect(error.message.contains(name))
            }
            let backends = Self.set(Self.v4, RulesetNames.backends)
            #expect(NetlinkSetElements.canWrite(backends))
            let noData = try await #require(throws: NetfilterError.self) {
                try await netlink.add([
                    (Self.v4, backends, [Command.Element(key: "10.96.0.1 . tcp . 80 . 1", data: "")])
                ])
            }
            #expect(noData.message.contains("a map element needs data"))
            let badData = try await #require(throws: NetfilterError.self) {
                try await netlink.add([
                    (Self.v4, backends, [Command.Element(key: "10.96.0.1 . tcp . 80 . 1", data: "10.244.1 . 80")])
                ])
            }
            #expect(
                badData.message == """
                    cannot encode element "10.96.0.1 . tcp . 80 . 1 : 10.244.1 . 80" of map ip switchboard backends \
                    (ipv4_addr . inet_proto . inet_service . integer : ipv4_addr . inet_service): \
                    data field 1 "10.244.1" is not a valid ipv4_addr
                    """)
            #expect(
                badData.script == "add element ip switchboard backends { 10.96.0.1 . tcp . 80 . 1 : 10.244.1 . 80 }")
            // Nothing to add sends nothing.
            try await netlink.add([])
            try await netlink.add([(Self.v4, backends, [])])
            #expect(try await kernel.listRuleset() == before)
        }
    }

    @Test func missingNamespaceFailsAtInit() {
        let missing = "sbt-does-not-exist-\(UInt32.random(in: 0...UInt32.max))"
        let error = #expect(throws: NetfilterError.self) { _ = try NetlinkSetElements(networkNamespace: missing) }
        #expect(error?.kind == .namespaceUnavailable)
        #expect(error?.isNotFound == true)
    }

    /// Elements per second through netlink and through libnftables (the same elements, a prebuilt script, so
    /// only libnftables itself is timed), printed. `SWITCHBOARD_NETLINK_ELEMENTS` sets the count (default
    /// 100k). Process CPU time is split into user and system: the kernel's share is the same both ways.
    @Test func throughput() async throws {
        try skipUnlessScratchNamespaces()
        let count = Int(ProcessInfo.processInfo.environment["SWITCHBOARD_NETLINK_ELEMENTS"] ?? "") ?? 100_000
        let services = max(1, count / 127)
        let elements = Self.backends(.v4, services: services, slots: 127, endpoints: 50)
        let backends = Self.set(Self.v4, RulesetNames.backends)
        let script = Self.libnftablesTransaction([(Self.v4, backends, elements)]).description
        var report: [String] = []
        try await Self.withSkeleton(purpose: "nl-perf-lib") { _, kernel in
            let (wall, user, system) = try await Self.timed { _ = try await kernel.library.run(script) }
            report.append(Self.line("libnftables", elements.count, wall, user, system))
            #expect(try await kernel.readSet(Self.v4, RulesetNames.backends)?.elements.count == elements.count)
        }
        try await Self.withSkeleton(purpose: "nl-perf-net") { ns, kernel in
            let netlink = try NetlinkSetElements(networkNamespace: ns.name)
            let (wall, user, system) = try await Self.timed { try await netlink.add([(Self.v4, backends, elements)]) }
            report.append(Self.line("netlink", elements.count, wall, user, system))
            #expect(try await kernel.readSet(Self.v4, RulesetNames.backends)?.elements.count == elements.count)
        }
        // The same into a map declared with a `size`: the kernel sizes its hash table once instead of growing it
        // while the batch is inserted (which, in the runs above, is most of the kernel's time).
        try await Self.withSkeleton(purpose: "nl-perf-size") { ns, kernel in
            var sized = backends
            sized.name = "backends-sized"
            sized.size = 2 * elements.count
            try await kernel.apply(Transaction([.addSet(Self.v4, sized)]))
            let netlink = try NetlinkSetElements(networkNamespace: ns.name)
            let (wall, user, system) = try await Self.timed { try await netlink.add([(Self.v4, sized, elements)]) }
            report.append(Self.line("netlink, map with size \(sized.size!)", elements.count, wall, user, system))
            #expect(try await kernel.readSet(Self.v4, sized.name)?.elements.count == elements.count)
        }
        print("PERF backends elements: " + report.joined(separator: "; "))
    }

    static func line(_ what: String, _ n: Int, _ wall: Double, _ user: Double, _ system: Double) -> String {
        let rate = Int(Double(n) / wall)
        return String(
            format: "%@ %d in %.2f s = %d/s (user %.2f µs, system %.2f µs per element)", what, n, wall, rate,
            user / Double(n) * 1e6, system / Double(n) * 1e6)
    }

    /// Wall time and the process's user and system CPU time of `body`, in seconds.
    static func timed(_ body: () async throws -> Void) async throws -> (Double, Double, Double) {
        func cpu() -> (Double, Double) {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
            return (seconds(usage.ru_utime), seconds(usage.ru_stime))
        }
        let (u0, s0) = cpu()
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        let (u1, s1) = cpu()
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (wall, u1 - u0, s1 - s0)
    }
}
