import Foundation
import NFTModel
import Netfilter
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// The hourly rebuild of a large intact table (`Ruleset.stagedRebuild`) with real connections flowing
/// through a ClusterIP the whole time: none may fail, and every reply comes from one of the Service's pods.
@Suite(
    "End to end: staged rebuild under traffic",
    .serialized,
    .enabled(if: SB.available, "needs root, `ip netns` and the switchboard binary (reason printed as SKIP)"),
    .exclusive
)
struct StagedRebuildTrafficTests {
    @Test("connections through a ClusterIP never fail while the table is rebuilt out of place, twice")
    func noConnectionFailsDuringAStagedRebuild() async throws {
        let builder = Topology.Builder().node("n1").client("c1", attachedTo: "n1").backend("b1", on: "n1").backend("b2", on: "n1")
        try await withTopology(builder) { net in
            for name in ["b1", "b2"] { try await net.startServer(on: name, proto: .tcp, port: 8080) }
            // 300 more Services whose endpoints do not exist: enough elements for dozens of batches.
            var manifests = [
                SB.nodeManifest(net),
                Manifest.service("web", clusterIPs: ["10.96.0.80"], ports: [.init(name: "http", port: 80, targetPort: "8080")]),
                Manifest.slice("web-1", service: "web", ports: [("http", "TCP", 8080)],
                               endpoints: ["b1", "b2"].map { .init(address: net.backend($0).ipv4) }),
            ]
            for i in 0..<300 {
                manifests.append(Manifest.service(
                    "filler-\(i)", clusterIPs: ["10.97.\(i / 200).\(i % 200 + 1)"], ports: [.init(name: "http", port: 80, targetPort: "8080")]))
                manifests.append(Manifest.slice(
                    "filler-\(i)-1", service: "filler-\(i)", ports: [("http", "TCP", 8080)],
                    endpoints: (1...3).map { .init(address: "10.250.\(i / 80).\(i % 80 * 3 + $0)") }))
            }
            try await SB.apply(net, manifests)
            let kernel = try KernelNFTables(networkNamespace: net.node("n1").namespace)
            let ids: Set<TableID> = [TableID(.ip, "switchboard"), TableID(.ip6, "switchboard")]
            let desired = try await kernel.read(ids).withoutPacketPathElements()
            #expect(desired.elementCount > 10_000)
            let pods = Set(["b1", "b2"])

            var names = KernelNames.identity
            for round in 1...2 {
                let traffic = Task {
                    try await net.requests(from: "c1", to: "10.96.0.80", port: 80, proto: .tcp,
                                           sourcePorts: Array(repeating: nil, count: 400))
                }
                var batches = 0
                for id in ids.sorted() {
                    let declared = try #require(try await kernel.readDeclarations(id))
                    let large = Set(desired[id]!.sets.filter { $0.value.elements.count > 500 }.keys)
                    let rebuild = desired.stagedRebuild(id, kernel: declared, names: names, staging: large, maxElements: 1_000)
                    for batch in rebuild {
                        try await kernel.apply(batch)
                        batches += 1
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    names = names.with(id, sets: rebuild.names.sets[id] ?? [], chains: rebuild.names.chains[id] ?? [])
                }
                let results = try await traffic.value
                let failures = results.filter { if case .failure = $0 { true } else { false } }
                #expect(batches > 10, "round \(round): \(batches) batches")
                #expect(failures.isEmpty, "round \(round): \(failures.count) of \(results.count) connections failed")
                let replies = results.compactMap { if case .success(let reply) = $0 { reply } else { nil } }
                #expect(Set(replies.map { String($0.split(separator: " ")[0]) }).isSubset(of: pods), "\(Set(replies))")
                let (held, found) = KernelNames.fromKernel(try await kernel.read(ids))
                #expect(found == names)
                #expect(held.withoutPacketPathElements() == desired, "round \(round): the table differs after the rebuild")
                if round == 1 {
                    // The maps now have their other names; `switchboard diff` reads them in the ruleset's: no
                    // difference.
                    #expect(!names.isIdentity)
                    let diff = try await SB.run("diff", net, node: "n1", manifests: manifests)
                    #expect(diff.succeeded, "\(diff.stdout)\(diff.stderr)")
                }
            }
        }
    }
}
