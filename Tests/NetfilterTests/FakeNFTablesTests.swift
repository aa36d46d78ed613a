import NFTModel
@testable import SwitchboardTesting
import Testing

/// What only the fake has: its reference scanner, fault injection, history, hand edits. Its kernel
/// semantics are pinned by the contract and semantics suites, which run against both backends.
@Suite struct FakeNFTablesTests {
    @Test(arguments: [
        ("ip daddr . meta l4proto . th dport vmap @service-ips", ["service-ips"], []),
        ("jhash ip saddr . th sport mod 7 seed 0x1234 vmap @maglev-x", ["maglev-x"], []),
        ("ip daddr @s accept", ["s"], []),
        ("jump services", [], ["services"]),
        ("goto svc-abc/1", [], ["svc-abc/1"]),
        ("tcp dport vmap { 80 : jump a, 443 : goto b }", [], ["a", "b"]),
        ("ip saddr @allowed,@more counter", ["allowed", "more"], []),
        ("meta l4proto tcp dnat to 10.0.0.5:8443", [], []),
        ("ip saddr 10.0.0.1 comment \"jump x @y\"", [], []),
    ] as [(String, [String], [String])])
    func findsReferences(text: String, sets: [String], chains: [String]) {
        let refs = NFTReferences(text)
        #expect(refs.sets == sets)
        #expect(refs.chains == chains)
    }

    @Test func commitsOnlyWholeTransactions() async throws {
        let fake = FakeNFTables()
        try await fake.apply(Fixture.a.transaction(from: .empty))
        #expect(await fake.committed.count == 1)

        let bad = Transaction([.addChain(Fixture.table, Chain(name: "x")), .deleteChain(Fixture.table, "nope")])
        do {
            try await fake.apply(bad)
            Issue.record("accepted")
        } catch let error as FakeNFTablesError {
            #expect(error.isNotFound)
            #expect(error.commandIndex == 1)
            #expect(error.command == "delete chain ip switchboard nope")
            #expect(error.message == """
                Error: Could not process rule: No such file or directory
                delete chain ip switchboard nope

                """)
        }
        #expect(await fake.ruleset == Fixture.a)
        #expect(await fake.committed.count == 1)
        #expect(await fake.applyCount == 2)

        try await fake.apply(Transaction())
        #expect(await fake.committed.count == 1)
    }

    @Test func injectedFailureLeavesStateAndPassesOnce() async throws {
        let fake = FakeNFTables(Fixture.a)
        await fake.failNextApply()
        await #expect(throws: FakeNFTablesError.self) { try await fake.apply(Fixture.b.transaction(from: Fixture.a)) }
        #expect(await fake.ruleset == Fixture.a)
        try await fake.apply(Fixture.b.transaction(from: Fixture.a))
        #expect(await fake.ruleset == Fixture.b)
    }

    @Test func handEditsBypassChecksAndShowAsDrift() async throws {
        let fake = FakeNFTables(Fixture.a)
        await fake.edit { $0[Fixture.table]!.chains["services"]!.rules = [] }
        let current = await fake.read([Fixture.table])
        let repair = Fixture.a.transaction(from: current)
        #expect(repair.description == """
            flush chain ip switchboard services
            add rule ip switchboard services ip daddr . meta l4proto . th dport vmap @service-ips
            add rule ip switchboard services fib daddr type local \
            ip daddr . meta l4proto . th dport vmap @service-nodeports

            """)
        try await fake.apply(repair)
        #expect(await fake.ruleset == Fixture.a)
    }

    /// Large transactions stay linear: the fake is used for benchmarks of the planner too.
    @Test func appliesALargeTransactionQuickly() async throws {
        var table = Table(id: Fixture.table)
        var elements: [String: String] = [:]
        for i in 0..<2_000 {
            table.add(Chain(name: "ep-\(i)", rules: [Rule("meta l4proto tcp dnat to 10.1.\(i / 256).\(i % 256):80")]))
            elements["\(i)"] = "goto ep-\(i)"
        }
        for i in 2_000..<50_000 { elements["\(i)"] = "goto ep-\(i % 2_000)" }
        table.add(NFTSet(name: "m", keyType: .hashSlot, dataType: "verdict", size: 50_021, elements: elements))
        let desired = Ruleset(tables: [table])
        let fake = FakeNFTables()
        let clock = ContinuousClock()
        let tx = desired.transaction(from: .empty)
        let took = try await clock.measure { try await fake.apply(tx) }
        #expect(await fake.ruleset == desired)
        #expect(took < .seconds(20))
        print("FakeNFTables: 2,000 chains + 50,000 elements applied in \(took)")
    }
}
