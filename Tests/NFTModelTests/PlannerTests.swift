import NFTModel
import Testing
import SwitchboardTesting

private let t = TableID(.ip, "sb")

private func table(chains: [Chain] = [], sets: [NFTSet] = []) -> Ruleset {
    var table = Table(id: t)
    chains.forEach { table.add($0) }
    sets.forEach { table.add($0) }
    return Ruleset(tables: [table])
}

private func vmap(_ name: String, _ elements: [String: String]) -> NFTSet {
    NFTSet(name: name, keyType: .types(["ipv4_addr", "inet_proto", "inet_service"]), dataType: "verdict",
           elements: elements)
}

@Suite struct PlannerTests {
    @Test func equalRulesetsPlanNothing() {
        let r = table(chains: [Chain(name: "a", rules: ["accept"])], sets: [vmap("m", ["1.2.3.4 . tcp . 80": "goto a"])])
        #expect(r.transaction(from: r).isEmpty)
    }

    @Test func createFromEmptyDeclaresBeforeUse() {
        let r = table(
            chains: [
                Chain(name: "pre", base: BaseChain(type: .nat, hook: .prerouting, priority: -100), rules: ["jump svc"]),
                Chain(name: "svc", rules: ["ip daddr . meta l4proto . th dport vmap @m"]),
            ],
            sets: [vmap("m", ["10.96.0.1 . tcp . 80": "goto svc"])])
        #expect(r.transaction(from: .empty).description == """
            add table ip sb
            add map ip sb m { type ipv4_addr . inet_proto . inet_service : verdict; }
            add chain ip sb pre { type nat hook prerouting priority -100; policy accept; }
            add chain ip sb svc
            add rule ip sb pre jump svc
            add rule ip sb svc ip daddr . meta l4proto . th dport vmap @m
            add element ip sb m { 10.96.0.1 . tcp . 80 : goto svc }

            """)
    }

    @Test func elementChangesAreElementByElement() {
        let a = table(chains: [Chain(name: "x"), Chain(name: "y")],
                      sets: [vmap("m", ["1.1.1.1 . tcp . 80": "goto x", "2.2.2.2 . tcp . 80": "goto x", "3.3.3.3 . udp . 53": "goto y"])])
        let b = table(chains: [Chain(name: "x"), Chain(name: "y")],
                      sets: [vmap("m", ["1.1.1.1 . tcp . 80": "goto x", "2.2.2.2 . tcp . 80": "goto y", "4.4.4.4 . tcp . 443": "goto x"])])
        #expect(b.transaction(from: a).description == """
            delete element ip sb m { 2.2.2.2 . tcp . 80, 3.3.3.3 . udp . 53 }
            add element ip sb m { 2.2.2.2 . tcp . 80 : goto y, 4.4.4.4 . tcp . 443 : goto x }

            """)
    }

    @Test func changedChainIsFlushedAndRefilled() {
        let a = table(chains: [Chain(name: "c", rules: ["accept"]), Chain(name: "same", rules: ["drop"])])
        let b = table(chains: [Chain(name: "c", rules: ["drop", "accept"]), Chain(name: "same", rules: ["drop"])])
        #expect(b.transaction(from: a).description == """
            flush chain ip sb c
            add rule ip sb c drop
            add rule ip sb c accept

            """)
    }

    /// Deleting things the kernel still references fails the whole batch, so references go first:
    /// the rule using a map is flushed, then the map's elements (which jump to chains) are gone with
    /// the map, then the chains.
    @Test func deletesComeAfterReferencesAreGone() {
        let a = table(
            chains: [Chain(name: "svc", rules: ["jhash ip saddr mod 2 vmap @mg"]), Chain(name: "ep1"), Chain(name: "keep")],
            sets: [NFTSet(name: "mg", keyType: .hashSlot, dataType: "verdict", size: 2, elements: ["0": "goto ep1", "1": "goto ep1"])])
        let b = table(chains: [Chain(name: "keep")])
        #expect(b.transaction(from: a).description == """
            flush chain ip sb svc
            delete map ip sb mg
            delete chain ip sb ep1
            delete chain ip sb svc

            """)
    }

    @Test func changedDeclarationReplacesTheTable() {
        let a = table(sets: [NFTSet(name: "s", keyType: .types(["ipv4_addr"]))])
        let b = table(sets: [NFTSet(name: "s", keyType: .types(["ipv4_addr"]), flags: ["interval"])])
        let tx = b.transaction(from: a)
        #expect(tx.commands.prefix(3) == [.deleteTable(t), .addTable(t), .addSet(t, b[t]!.sets["s"]!)])
    }

    @Test func removedTableIsDeletedLast() {
        let other = TableID(.ip6, "sb")
        var both = table(chains: [Chain(name: "x")])
        both[other] = Table(id: other)
        let only = table(chains: [Chain(name: "x")])
        #expect(only.transaction(from: both).description == "delete table ip6 sb\n")
    }

    @Test func fullSyncReplacesEveryOwnedTable() {
        let r = table(chains: [Chain(name: "x", rules: ["accept"])])
        let stale = TableID(.ip6, "sb")
        #expect(r.replacing([t, stale]).description == """
            add table ip sb
            delete table ip sb
            add table ip sb
            add chain ip sb x
            add table ip6 sb
            delete table ip6 sb
            add rule ip sb x accept

            """)
    }

    @Test func scriptIsSortedAndQuotesComments() {
        var set = NFTSet(name: "m", keyType: .hashSlot, dataType: "verdict", size: 3,
                         comment: #"ns/x"; flush ruleset; "#,
                         elements: ["10": "goto b", "2": "goto a"])
        set.flags = []
        let r = table(chains: [Chain(name: "b"), Chain(name: "a", rules: ["accept"])], sets: [set])
        #expect(r.script == """
            table ip sb {
            \tmap m {
            \t\ttypeof numgen inc mod 3 : verdict
            \t\tsize 3
            \t\tcomment "ns/x_; flush ruleset; "
            \t\telements = { 2 : goto a,
            \t\t\t     10 : goto b }
            \t}

            \tchain a {
            \t\taccept
            \t}

            \tchain b {
            \t}
            }

            """)
    }
}

@Suite struct EscapingTests {
    @Test(arguments: [
        ("plain", "\"plain\""),
        (#"x"; flush ruleset; ""#, #""x_; flush ruleset; _""#),
        ("back\\slash\nnew", "\"back_slash_new\""),
        ("ünïcode", "\"_n_code\""),
    ])
    func quoted(input: String, expected: String) {
        #expect(nftQuoted(input) == expected)
    }

    @Test func quotedIsCapped() {
        #expect(nftQuoted(String(repeating: "a", count: 500)).utf8.count <= 129)
    }

    @Test(arguments: ["svc-abc-ns/name/tcp/http", "ep-x-a.b_c", "_x"])
    func validIdentifiers(name: String) { #expect(isValidNFTIdentifier(name)) }

    @Test(arguments: ["", "1abc", "a b", "a\"b", "a:b", "a;b"])
    func invalidIdentifiers(name: String) { #expect(!isValidNFTIdentifier(name)) }

    @Test(arguments: [(0, "0s"), (15, "15s"), (90, "1m30s"), (10800, "3h"), (93784, "1d2h3m4s"), (86400, "1d")])
    func durationsAsNftPrintsThem(seconds: Int, text: String) { #expect(nftDuration(seconds: seconds) == text) }
}

@Suite struct UnifiedDiffTests {
    @Test func equalTextsHaveNoDiff() {
        #expect(UnifiedDiff(old: "a\nb\n", new: "a\nb\n").isEmpty)
        #expect(UnifiedDiff(old: "a\nb\n", new: "a\nb\n").render(oldName: "x", newName: "y") == "")
    }

    @Test func rendersHunksWithContext() {
        let old = (1...10).map { "l\($0)" }.joined(separator: "\n")
        var newLines = (1...10).map { "l\($0)" }
        newLines[4] = "changed"
        newLines.append("l11")
        let diff = UnifiedDiff(old: old, new: newLines.joined(separator: "\n"))
        #expect(diff.render(oldName: "kernel", newName: "desired", context: 1) == """
            --- kernel
            +++ desired
            @@ -4,3 +4,3 @@
             l4
            -l5
            +changed
             l6
            @@ -10,1 +10,2 @@
             l10
            +l11

            """)
    }

    @Test(arguments: 0..<40)
    func randomDiffsReconstructBothSides(seed: Int) {
        // The seed is advanced once first, as the generator these cases were written with did.
        var rng = SplitMix64(seed: UInt64(seed) &+ 0x9E37_79B9_7F4A_7C15)
        let a = (0..<Int(rng.next() % 30)).map { _ in "x\(rng.next() % 6)" }
        let b = (0..<Int(rng.next() % 30)).map { _ in "x\(rng.next() % 6)" }
        let lines = UnifiedDiff(old: a, new: b).lines
        var oldSide: [String] = [], newSide: [String] = []
        for line in lines {
            switch line {
            case .same(let s): oldSide.append(s); newSide.append(s)
            case .removed(let s): oldSide.append(s)
            case .added(let s): newSide.append(s)
            }
        }
        #expect(oldSide == a)
        #expect(newSide == b)
    }
}


/// Element comments (the Service port of an entry point): part of the element, so a comment-only change is
/// a change, planned as delete + add because the kernel keeps an existing element's comment on `add element`.
@Suite struct ElementCommentPlannerTests {
    let key = "10.96.0.10 . tcp . 80"

    func ruleset(comment: String?, data: String = "goto a") -> Ruleset {
        var set = vmap("m", [:])
        set.elements.set(key, data, comment: comment)
        return table(chains: [Chain(name: "a")], sets: [set])
    }

    @Test(arguments: [("web:http", "web:www"), (nil, "web:http"), ("web:http", nil)] as [(String?, String?)])
    func commentOnlyChangeIsDeleteAndAdd(old: String?, new: String?) {
        let tx = ruleset(comment: new).transaction(from: ruleset(comment: old))
        let added = new.map { "\(key) comment \"\($0)\"" } ?? key
        #expect(tx.description == """
            delete element ip sb m { \(key) }
            add element ip sb m { \(added) : goto a }

            """)
        #expect(ruleset(comment: old) != ruleset(comment: new))
    }

    @Test func sameCommentPlansNothing() {
        #expect(ruleset(comment: "web:http").transaction(from: ruleset(comment: "web:http")).isEmpty)
    }

    @Test func changedDataKeepsTheNewComment() {
        let tx = ruleset(comment: "web:http", data: "goto b").transaction(from: ruleset(comment: "web:http"))
        #expect(tx.description.hasSuffix("add element ip sb m { \(key) comment \"web:http\" : goto b }\n"))
    }

    /// Over a scope, as the agent plans: the same commands.
    @Test func scopedPlanSeesTheComment() {
        var scope = RulesetScope()
        scope.insertElement(key, of: "m", in: t)
        let tx = ruleset(comment: "b").transaction(from: ruleset(comment: "a"), scope: scope)
        #expect(tx.elementChanges == 2)
        #expect(tx.description.contains(#"comment "b""#))
    }

    /// Created from empty, the comment is written with the element; a hostile comment is quoted harmlessly.
    @Test func createWritesCommentsQuoted() {
        let r = ruleset(comment: nftCommentText(#"x"; flush ruleset; ""#))
        #expect(r.transaction(from: .empty).description.hasSuffix(
            #"add element ip sb m { 10.96.0.10 . tcp . 80 comment "x_; flush ruleset; _" : goto a }"# + "\n"))
        #expect(r.script.contains(#"elements = { 10.96.0.10 . tcp . 80 comment "x_; flush ruleset; _" : goto a }"#))
    }
}
