import NFTModel
import Netfilter
import SwitchboardCore
import SwitchboardTestTraits
import SwitchboardTesting
import Testing

/// The compiler's element comments in a real kernel (scratch namespaces): written through libnftables' text
/// and through libnftnl netlink batches, listed back by `nft -j` equal to the model, and changed by the
/// planner when a Service port is renamed or a contested entry point passes to another Service.
@Suite(.exclusive) struct ElementCommentKernelTests {
    let cluster = EntryPointCluster.self

    enum Writer: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// One libnftables batch (`Ruleset.replacing`): `add element ... { key comment "..." }`.
        case text
        /// The agent's cold start: bounded batches, those of element adds through `NetlinkSetElements`.
        case netlink
        var testDescription: String { rawValue }
    }

    @Test(arguments: Writer.allCases)
    func commentsReachTheKernelAndFollowChanges(writer: Writer) async throws {
        try skipUnlessScratchNamespaces()
        var state = cluster.state
        var compiler = IncrementalCompiler(node: cluster.node)
        compiler.update(state, changed: nil)
        let tables = Set(compiler.ruleset.tables.keys)
        try await ScratchNamespace.with(purpose: "cmt-\(writer.rawValue)") { ns in
            let kernel = try KernelNFTables(networkNamespace: ns.name)
            switch writer {
            case .text:
                try await kernel.apply(compiler.ruleset.replacing(tables))
            case .netlink:
                #expect(kernel.netlink != nil)
                let declarations = compiler.ruleset.setDeclarations
                var commentedThroughNetlink = 0
                // One claim per batch: batches with a verdict map (affinity) go through libnftables, the others
                // through netlink.
                for batch in compiler.coldStartBatches(tables, maxElements: 1) {
                    // What `applyBatch` sends through netlink: batches of element adds only, to sets it can encode.
                    var comments = 0
                    let viaNetlink = batch.commands.allSatisfy { command in
                        guard case .addElements(let id, let name, let elements) = command,
                            let set = declarations[id]?[name], NetlinkSetElements.canWrite(set)
                        else { return false }
                        comments += elements.filter { $0.comment != nil }.count
                        return true
                    }
                    if viaNetlink { commentedThroughNetlink += comments }
                    try await kernel.applyBatch(batch, declarations: declarations)
                }
                #expect(commentedThroughNetlink >= 5, "the commented dispatch elements went through netlink")
            }
            let back = try await kernel.read(tables)
            #expect(back == compiler.ruleset)
            #expect(compiler.ruleset.transaction(from: back).isEmpty)
            let listed = try ns.exec(["nft", "list", "set", "ip", "switchboard", "service-ips-m31"])
            #expect(listed.contains(#"10.96.0.10 . tcp . 80 comment "default/web:http""#), "\(listed)")
            let json = try ns.exec(["nft", "-j", "list", "map", "ip", "switchboard", "affinity-nodeports"])
            #expect(json.contains(#""comment": "default/lb""#), "\(json)")

            // A renamed port: only comments change, each element is deleted and added in one batch.
            var changed = state.upsert(
                cluster.service(
                    "default", "web", ip: "10.96.0.10", ports: [ServicePort(name: "www", port: 80)],
                    affinity: .clientIP(timeoutSeconds: 600)))
            changed.formUnion(
                state.upsert(cluster.slice("default", "web", ["10.244.1.1", "10.244.1.2", "10.244.1.3"], port: "www")))
            var change = compiler.update(state, changed: changed)
            try await kernel.apply(compiler.ruleset.transaction(from: change.before, scope: change.scope))
            var read = try await kernel.read(tables)
            #expect(read == compiler.ruleset)
            let web = read[cluster.table]?.sets["service-ips-m31"]?.elements.comment("10.96.0.10 . tcp . 80")
            #expect(web == "default/web:www")

            // The contested cluster IP port passes from a/first to b/second with its comment.
            let first = try #require(state.services[ObjectRef(namespace: "a", name: "first")])
            let removed = state.remove(.service(first))
            change = compiler.update(state, changed: removed)
            try await kernel.apply(compiler.ruleset.transaction(from: change.before, scope: change.scope))
            read = try await kernel.read(tables)
            #expect(read == compiler.ruleset)
            let contested = read[cluster.table]?.sets["service-ips-m31"]?.elements.comment(cluster.contested)
            #expect(contested == "b/second:http")
        }
    }
}
