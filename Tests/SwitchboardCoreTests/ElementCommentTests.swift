import NetworkTypes
import NFTModel
import SwitchboardTesting
import Testing

@testable import SwitchboardCore

/// The comments that name a Service port on the elements standing for its entry points (issue 13, 3).
struct ElementCommentTests {
    let cluster = EntryPointCluster.self

    @Test func everyEntryPointSetCarriesItsServicePortAndNothingElseDoes() throws {
        let table = try #require(compile(cluster.state, for: cluster.node).ruleset[cluster.table])
        for (name, owners) in cluster.entryPointSets {
            let elements = try #require(table.sets[name]?.elements, "\(name)")
            #expect(!elements.isEmpty, "\(name)")
            #expect(elements.comments.count == elements.count, "\(name): an element without its Service port")
            #expect(Set(elements.comments.values) == owners, "\(name)")
        }
        // Maglev slots, hairpin pairs, cluster IPs, source ranges, the skeleton's own: no comments.
        for (name, set) in table.sets where cluster.entryPointSets[name] == nil {
            #expect(set.elements.comments.isEmpty, "\(name)")
        }
        for name in ["backends", "nodeport-backends", "local-backends", "local-nodeport-backends"] {
            let elements = try #require(table.sets[name]?.elements)
            #expect(!elements.slotTables.isEmpty && elements.plain.isEmpty, "\(name)")
        }
        for name in ["hairpin", "cluster-ips", "firewall-allow"] {
            #expect(table.sets[name]?.elements.isEmpty == false, "\(name)")
        }
        // The contested cluster IP port carries the claim winner's name.
        #expect(table.sets["service-ips-m31"]?.elements.comment(cluster.contested) == "a/first:http")
    }

    @Test func theScriptShowsTheComment() throws {
        let script = compile(cluster.state, for: cluster.node).ruleset.script
        #expect(script.contains(#"10.96.0.10 . tcp . 80 comment "default/web:http" : jump affinity-t600"#))
        #expect(script.contains(#"udp . 30053 comment "default/ext:dns""#))
        #expect(!script.contains(#"10.96.0.10 . tcp . 80 . 0 comment"#))
    }

    /// kube-proxy's ServicePortName: `namespace/name:port`, `namespace/name` for an unnamed port; the longest
    /// names Kubernetes allows (63 + 63 + 15) are cut to the kernel's 127 bytes.
    @Test(arguments: [
        ("default", "web", "http", "default/web:http"),
        ("default", "web", "", "default/web"),
        (String(repeating: "n", count: 63), String(repeating: "s", count: 63), String(repeating: "p", count: 15),
         String(repeating: "n", count: 63) + "/" + String(repeating: "s", count: 63)),
    ])
    func ownerIsTheServicePortName(namespace: String, name: String, port: String, expected: String) {
        let owner = ServiceCompiler.owner(ObjectRef(namespace: namespace, name: name), port: port)
        #expect(owner == expected)
        #expect(owner.utf8.count <= 127)
    }

    /// A Service that loses a contested entry point to another changes only the comment (and the slots) of its
    /// element; the plan over the incremental change deletes and re-adds the element with the new name.
    @Test func aClaimPassingToAnotherServiceTakesItsComment() throws {
        var state = cluster.state
        var compiler = IncrementalCompiler(node: cluster.node)
        compiler.update(state, changed: nil)
        let first = ObjectRef(namespace: "a", name: "first")
        let service = try #require(state.services[first])
        let changed = state.remove(.service(service))
        let change = compiler.update(state, changed: changed)
        let set = try #require(compiler.ruleset[cluster.table]?.sets["service-ips-m31"])
        #expect(set.elements.comment(cluster.contested) == "b/second:http")
        #expect(compiler.ruleset == compile(state, for: cluster.node).ruleset)
        let tx = compiler.ruleset.transaction(from: change.before, scope: change.scope)
        let text = tx.description
        #expect(text.contains("delete element ip switchboard service-ips-m31 { \(cluster.contested) }\n"))
        #expect(
            text.contains(
                #"add element ip switchboard service-ips-m31 { 10.96.0.50 . tcp . 80 comment "b/second:http" }"#))
    }

    /// Renaming a port changes nothing but the comments of its entry points: each is deleted and added again
    /// (the kernel keeps an element's comment on `add element`), and the Maglev slots are not touched.
    @Test func aRenamedPortIsACommentOnlyChange() throws {
        var state = cluster.state
        var compiler = IncrementalCompiler(node: cluster.node)
        compiler.update(state, changed: nil)
        var changed = state.upsert(
            cluster.service(
                "default", "web", ip: "10.96.0.10", ports: [ServicePort(name: "www", port: 80)],
                affinity: .clientIP(timeoutSeconds: 600)))
        changed.formUnion(
            state.upsert(cluster.slice("default", "web", ["10.244.1.1", "10.244.1.2", "10.244.1.3"], port: "www")))
        let change = compiler.update(state, changed: changed)
        let tx = compiler.ruleset.transaction(from: change.before, scope: change.scope)
        #expect(
            tx.description == """
                delete element ip switchboard affinity-services { 10.96.0.10 . tcp . 80 }
                delete element ip switchboard service-ips-m31 { 10.96.0.10 . tcp . 80 }
                add element ip switchboard affinity-services { 10.96.0.10 . tcp . 80 comment "default/web:www" : jump affinity-t600 }
                add element ip switchboard service-ips-m31 { 10.96.0.10 . tcp . 80 comment "default/web:www" }

                """)
        // The same from a full comparison.
        let before = compile(cluster.state, for: cluster.node).ruleset
        #expect(compiler.ruleset.transaction(from: before) == tx)
    }

    /// The fake kernel keeps an element's comment on a repeated `add element`, as the kernel does, so only the
    /// planner's delete + add changes it.
    @Test func theFakeKeepsACommentOnReAdd() async throws {
        let desired = compile(cluster.state, for: cluster.node).ruleset
        let fake = FakeNFTables()
        try await fake.apply(desired.transaction(from: .empty))
        #expect(await fake.ruleset == desired)
        let id = cluster.table
        try await fake.apply(Transaction([
            .addElements(id, set: "service-ips-m31", [.init(key: "10.96.0.10 . tcp . 80", data: "", comment: "x/y:z")])
        ]))
        #expect(await fake.ruleset == desired)
        var renamed = desired
        renamed[id]!.sets["service-ips-m31"]!.elements.set("10.96.0.10 . tcp . 80", "", comment: "x/y:z")
        try await fake.apply(renamed.transaction(from: desired))
        #expect(await fake.ruleset == renamed)
    }
}
