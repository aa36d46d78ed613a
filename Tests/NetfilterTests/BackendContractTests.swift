import NFTModel
import Netfilter
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// One contract, two implementations: every test runs against `FakeNFTables` and against the kernel
/// (libnftables in a scratch network namespace). If they disagree, the fake is wrong.
@Suite(.exclusive) struct BackendContractTests {
    private let ids: Set<TableID> = [Fixture.table]

    @Test(arguments: BackendKind.allCases)
    func applyFromEmptyReadsBackEqual(kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            #expect(try await h.backend.read(ids) == .empty)
            try await h.backend.apply(Fixture.a.transaction(from: .empty))
            let back = try await h.backend.read(ids)
            #expect(back == Fixture.a)
            #expect(back[Fixture.table]?.elementCount == 16)
            // Other tables are not reported, even when asked for: they do not exist.
            #expect(try await h.backend.read([Fixture.other]) == .empty)
            // Applying the same desired state again plans nothing.
            #expect(Fixture.a.transaction(from: back).isEmpty)
        }
    }

    /// One set or map on its own (the agent's canary check): what `read` reports for it, or nil.
    @Test(arguments: BackendKind.allCases)
    func readSetReturnsOneSetOrNil(kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            #expect(try await h.backend.readSet(Fixture.table, "service-ips") == nil, "no table yet")
            try await h.backend.apply(Fixture.a.transaction(from: .empty))
            let whole = try await h.backend.read(ids)[Fixture.table]!
            for name in whole.sets.keys.sorted() {
                #expect(try await h.backend.readSet(Fixture.table, name) == whole.sets[name], "\(name)")
            }
            #expect(try await h.backend.readSet(Fixture.table, "no-such-set") == nil)
            #expect(try await h.backend.readSet(Fixture.other, "service-ips") == nil)
        }
    }

    /// What the agent does on every sync: plan from what the kernel reports, apply, and end up exactly
    /// at the desired state.
    @Test(arguments: BackendKind.allCases)
    func planFromCurrentLeavesExactlyDesired(kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            var current = try await h.backend.read(ids)
            for desired in [Fixture.a, Fixture.b, Fixture.a, Fixture.skeleton, Fixture.b, .empty] {
                let tx = desired.transaction(from: current)
                try await h.backend.apply(tx)
                current = try await h.backend.read(ids)
                #expect(current == desired, "after\n\(tx)")
            }
        }
    }

    /// An element's comment: `add element` of a key the set holds (same data) keeps the element as it is,
    /// comment and all; the planner's delete + add in one batch changes it; read back, it is the new one.
    @Test(arguments: BackendKind.allCases)
    func elementCommentChangesOnlyByDeleteAndAdd(kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let key = "10.96.0.1 . tcp . 443"
            let data = try #require(Fixture.a[Fixture.table]?.sets["service-ips"]?.elements[key])
            var commented = Fixture.a
            commented[Fixture.table]!.sets["service-ips"]!.elements.set(key, data, comment: "default/web:http")
            try await h.backend.apply(commented.transaction(from: .empty))
            #expect(try await h.backend.read(ids) == commented)
            try await h.backend.apply(Transaction([
                .addElements(
                    Fixture.table, set: "service-ips", [.init(key: key, data: data, comment: "default/web:www")])
            ]))
            #expect(try await h.backend.read(ids) == commented, "add element of a held key keeps its comment")
            var renamed = commented
            renamed[Fixture.table]!.sets["service-ips"]!.elements.set(key, data, comment: "default/web:www")
            let tx = renamed.transaction(from: try await h.backend.read(ids))
            #expect(tx.elementChanges == 2)
            try await h.backend.apply(tx)
            let back = try await h.backend.read(ids)
            #expect(back == renamed)
            #expect(back[Fixture.table]?.sets["service-ips"]?.elements.comment(key) == "default/web:www")
            #expect(renamed.transaction(from: back).isEmpty)
        }
    }

    /// Deletes in the planner's order (elements and rules that refer to a chain or map first, then the
    /// map, then the chain) are accepted by the kernel's reference checks.
    @Test(arguments: BackendKind.allCases)
    func plannerDeleteOrderSatisfiesReferences(kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            try await h.backend.apply(Fixture.a.transaction(from: .empty))
            let tx = Fixture.skeleton.transaction(from: Fixture.a)
            let text = tx.description
            // The order that makes it work: nothing is deleted while something still refers to it.
            let flush = try #require(text.range(of: "flush chain ip switchboard svc-bbb"))
            let dropElements = try #require(text.range(of: "delete element ip switchboard service-ips"))
            let dropMap = try #require(text.range(of: "delete map ip switchboard maglev-bbb"))
            let dropEndpoint = try #require(text.range(of: "delete chain ip switchboard ep-bbb-1"))
            let dropService = try #require(text.range(of: "delete chain ip switchboard svc-bbb"))
            #expect(flush.lowerBound < dropMap.lowerBound)
            #expect(dropElements.lowerBound < dropService.lowerBound)
            #expect(dropMap.lowerBound < dropEndpoint.lowerBound)

            try await h.backend.apply(tx)
            #expect(try await h.backend.read(ids) == Fixture.skeleton)
        }
    }

    @Test(arguments: BackendKind.allCases)
    func emptyTransactionIsANoOp(kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            try await h.backend.apply(Transaction())
            #expect(try await h.backend.read(ids) == .empty)
            #expect(try await h.dump() == "")

            try await h.backend.apply(Fixture.a.transaction(from: .empty))
            let before = try await h.dump()
            try await h.backend.apply(Transaction())
            #expect(try await h.backend.read(ids) == Fixture.a)
            #expect(try await h.dump() == before)
        }
    }

    /// A batch the kernel rejects, at its last command, after valid changes: it throws with nft's
    /// message, and the kernel holds exactly what it held before (also in the full text listing).
    @Test(arguments: BackendKind.allCases, RejectedBatch.cases)
    func rejectedBatchChangesNothing(kind: BackendKind, batch: RejectedBatch) async throws {
        try await withBackend(kind) { h in
            try await h.backend.apply(Fixture.a.transaction(from: .empty))
            let before = try await h.backend.read([Fixture.table, Fixture.other])
            let dumpBefore = try await h.dump()

            let tx = Transaction(RejectedBatch.validPrefix + [batch.last])
            do {
                try await h.backend.apply(tx)
                Issue.record("\(kind) accepted:\n\(tx)")
            } catch {
                expectError(error, says: batch.says)
            }

            #expect(try await h.backend.read([Fixture.table, Fixture.other]) == before)
            #expect(try await h.dump() == dumpBefore)
            // And the backend still works afterwards.
            try await h.backend.apply(Fixture.b.transaction(from: before))
            #expect(try await h.backend.read(ids) == Fixture.b)
        }
    }

    /// Full sync over a table someone edited by hand (an extra chain, an extra element, a flushed chain,
    /// a rule appended to a base chain): `replacing` restores it exactly, and leaves other tables alone.
    @Test(arguments: BackendKind.allCases)
    func fullSyncRepairsHandEdits(kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            try await h.backend.apply(Fixture.a.transaction(from: .empty))
            let t = Fixture.table
            try await h.backend.apply(Transaction([
                .addChain(t, Chain(name: "intruder")),
                .addRule(t, chain: "intruder", "ip saddr 192.0.2.1 drop"),
                .addRule(t, chain: "filter-input", "jump intruder"),
                .addElements(t, set: "service-ips", [.init(key: "10.96.9.9 . tcp . 9", data: "goto svc-aaa")]),
                .flushChain(t, "ep-aaa-1"),
                .deleteElements(t, set: "maglev-bbb", keys: ["0"]),
                .addTable(Fixture.other),
                .addChain(Fixture.other, Chain(name: "keep", rules: [])),
                .addRule(Fixture.other, chain: "keep", "ip daddr 192.0.2.2 drop"),
            ]))
            let edited = try await h.backend.read([t])
            #expect(edited != Fixture.a)
            #expect(edited[t]?.chains["intruder"] != nil)

            try await h.backend.apply(Fixture.a.replacing([t]))
            #expect(try await h.backend.read([t]) == Fixture.a)
            let other = try await h.backend.read([Fixture.other])
            #expect(other[Fixture.other]?.chains["keep"]?.rules == ["ip daddr 192.0.2.2 drop"])

            // Also from nothing at all, and down to nothing.
            try await h.backend.apply(Transaction([.deleteTable(t)]))
            try await h.backend.apply(Fixture.b.replacing([t]))
            #expect(try await h.backend.read([t]) == Fixture.b)
            try await h.backend.apply(Ruleset.empty.replacing([t]))
            #expect(try await h.backend.read([t]) == .empty)
            #expect(try await h.backend.read([Fixture.other]) == other)
        }
    }
}

/// A batch that starts with valid changes and ends with a command the kernel refuses.
struct RejectedBatch: Sendable, CustomTestStringConvertible {
    var name: String
    var last: Command
    var says: String
    var testDescription: String { name }

    /// Valid on `Fixture.a`: a new chain, a new element, a flushed chain, a deleted element.
    static let validPrefix: [Command] = [
        .addChain(Fixture.table, Chain(name: "new-chain")),
        .addRule(Fixture.table, chain: "new-chain", "ip daddr 192.0.2.3 drop"),
        .addElements(Fixture.table, set: "service-ips", [.init(key: "10.96.0.77 . tcp . 77", data: "goto new-chain")]),
        .flushChain(Fixture.table, "ep-aaa-1"),
        .deleteElements(Fixture.table, set: "no-endpoints", keys: ["10.96.0.20 . tcp . 80"]),
        .addTable(Fixture.other),
    ]

    static let cases: [RejectedBatch] = [
        // Caught by libnftables' evaluation, before anything is sent.
        RejectedBatch(name: "rule in a missing chain",
                      last: .addRule(Fixture.table, chain: "no-such-chain", "accept"),
                      says: "No such file or directory"),
        RejectedBatch(name: "rule using a missing map",
                      last: .addRule(Fixture.table, chain: "services", "ip daddr . meta l4proto . th dport vmap @nope"),
                      says: "No such file or directory"),
        RejectedBatch(name: "delete a missing table",
                      last: .deleteTable(TableID(.ip, "no-such-table")), says: "No such file or directory"),
        // Refused by the kernel, after the earlier commands of the batch were already processed by it.
        RejectedBatch(name: "element with other data",
                      last: .addElements(Fixture.table, set: "service-ips",
                                         [.init(key: "10.96.0.1 . tcp . 443", data: "goto svc-bbb")]),
                      says: "File exists"),
        RejectedBatch(name: "delete a missing element",
                      last: .deleteElements(Fixture.table, set: "service-ips", keys: ["10.9.9.9 . udp . 9"]),
                      says: "No such file or directory"),
        RejectedBatch(name: "delete a chain a map still jumps to",
                      last: .deleteChain(Fixture.table, "svc-bbb"), says: "Device or resource busy"),
        RejectedBatch(name: "delete a map a rule still uses",
                      last: .deleteSet(Fixture.table, name: "maglev-aaa", isMap: true),
                      says: "Device or resource busy"),
        RejectedBatch(name: "element beyond the map's size",
                      last: .addElements(Fixture.table, set: "maglev-aaa", [.init(key: "7", data: "goto ep-aaa-1")]),
                      says: "Too many open files in system"),
    ]
}
