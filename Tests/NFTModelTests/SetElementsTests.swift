import Testing

@testable import NFTModel

/// Maglev tables held as `SlotTable`s read exactly like the same elements held one by one.
@Suite struct SetElementsTests {
    static let web = SlotTable(targets: ["10.0.0.1 . 80", "10.0.0.2 . 80"], slots: [0, 1, 1, 0, 1])
    static let api = SlotTable(targets: ["10.0.0.9 . 8080"], slots: [0, 0, 0])

    static func plain(_ prefix: String, _ table: SlotTable) -> [String: String] {
        Dictionary(uniqueKeysWithValues: (0..<table.count).map { ("\(prefix) . \($0)", table[$0]) })
    }

    static var compact: SetElements {
        var e = SetElements()
        e.setSlots("10.96.0.10 . tcp . 80", web)
        e.setSlots("10.96.0.9 . tcp . 8080", api)
        return e
    }

    static var expanded: SetElements {
        SetElements(plain("10.96.0.10 . tcp . 80", web).merging(plain("10.96.0.9 . tcp . 8080", api)) { a, _ in a })
    }

    @Test func readsLikeADictionary() {
        let e = Self.compact
        #expect(e.count == 8)
        #expect(e["10.96.0.10 . tcp . 80 . 1"] == "10.0.0.2 . 80")
        #expect(e["10.96.0.10 . tcp . 80 . 5"] == nil)
        #expect(e["10.96.0.10 . tcp . 80"] == nil)
        #expect(Set(e.keys) == Set(Self.expanded.keys))
        #expect(e.dictionary == Self.expanded.dictionary)
        #expect(Dictionary(uniqueKeysWithValues: e.map { ($0.key, $0.value) }) == Self.expanded.dictionary)
    }

    @Test func equalAcrossRepresentations() {
        #expect(Self.compact == Self.expanded)
        var other = Self.expanded
        other["10.96.0.9 . tcp . 8080 . 2"] = "10.0.0.1 . 80"
        #expect(Self.compact != other)
        other["10.96.0.9 . tcp . 8080 . 2"] = nil
        #expect(Self.compact != other)
    }

    @Test func sortedIsTheCanonicalOrderOfAllKeys() {
        // Prefixes chosen so that string order and canonical order disagree (80 < 8080, .9 < .10).
        var e = SetElements()
        let prefixes = ["10.96.0.10 . tcp . 80", "10.96.0.9 . tcp . 8080", "10.96.0.9 . tcp . 80", "fd00::a . udp . 53",
                        "fd00::1a . udp . 53", "10.96.0.1 . tcp . 8"]
        for (i, prefix) in prefixes.enumerated() {
            e.setSlots(prefix, SlotTable(targets: ["t\(i)"], slots: Array(repeating: 0, count: 13)))
        }
        let expected = e.dictionary.keys.sorted(by: canonicalOrder)
        #expect(e.sorted().map(\.key) == expected)
    }

    @Test func aWriteIntoATablesKeysTurnsItIntoPlainElements() {
        var e = Self.compact
        e["10.96.0.10 . tcp . 80 . 0"] = nil
        #expect(e.count == 7)
        #expect(e.slots("10.96.0.10 . tcp . 80") == nil)
        #expect(e["10.96.0.10 . tcp . 80 . 1"] == "10.0.0.2 . 80")
        #expect(e.slots("10.96.0.9 . tcp . 8080") == Self.api)
        e.setSlots("10.96.0.10 . tcp . 80", Self.web)
        #expect(e == Self.compact)
        #expect(e.plain.isEmpty)
    }

    @Test(arguments: ["a . b . 17", "10.96.0.1 . tcp . 80 . 0"])
    func splitsSlotKeys(key: String) {
        let (prefix, slot) = SetElements.split(key)!
        #expect(SlotTable.key(prefix, slot: slot) == key)
    }

    @Test(arguments: ["abc", " . 1", "a . b", "a . -1", "a .1"])
    func otherKeysAreNotSlotKeys(key: String) {
        #expect(SetElements.split(key) == nil)
    }

    /// The planner turns only the slots that changed into commands, and the same whichever way the
    /// elements are held.
    @Test func theTransactionWritesOnlyChangedSlots() {
        let id = TableID(.ip, "t")
        func ruleset(_ elements: SetElements) -> Ruleset {
            var set = NFTSet(name: "backends", keyType: .types(["ipv4_addr", "inet_proto", "inet_service", "integer"]),
                             dataType: "ipv4_addr . inet_service")
            set.elements = elements
            return Ruleset(tables: [Table(id: id, sets: ["backends": set])])
        }
        var changed = Self.compact
        changed.setSlots("10.96.0.10 . tcp . 80", SlotTable(targets: ["10.0.0.1 . 80", "10.0.0.3 . 80"], slots: [0, 1, 1, 0, 0]))
        let expected = """
            delete element ip t backends { 10.96.0.10 . tcp . 80 . 1, 10.96.0.10 . tcp . 80 . 2, 10.96.0.10 . tcp . 80 . 4 }
            add element ip t backends { 10.96.0.10 . tcp . 80 . 1 : 10.0.0.3 . 80, 10.96.0.10 . tcp . 80 . 2 : 10.0.0.3 . 80, 10.96.0.10 . tcp . 80 . 4 : 10.0.0.1 . 80 }

            """
        #expect(ruleset(changed).transaction(from: ruleset(Self.compact)).description == expected)
        #expect(ruleset(changed).transaction(from: ruleset(Self.expanded)).description == expected)
        var scope = RulesetScope()
        scope.insertSlotTable("10.96.0.10 . tcp . 80", of: "backends", in: id)
        #expect(ruleset(changed).transaction(from: ruleset(Self.compact), scope: scope).description == expected)
        // A table that shrinks loses its last slots.
        var shrunk = Self.compact
        shrunk.setSlots("10.96.0.9 . tcp . 8080", SlotTable(targets: ["10.0.0.9 . 8080"], slots: [0, 0]))
        #expect(ruleset(shrunk).transaction(from: ruleset(Self.compact)).description
            == "delete element ip t backends { 10.96.0.9 . tcp . 8080 . 2 }\n")
    }
}

/// An element's comment is part of it (equality), not of its key or data (lookups, iteration).
@Suite struct SetElementCommentTests {
    @Test func commentsAreKeptBesideTheElement() {
        var e = SetElements(["10.96.0.1 . tcp . 80": ""], comments: ["10.96.0.1 . tcp . 80": "default/web:http"])
        #expect(e.comment("10.96.0.1 . tcp . 80") == "default/web:http")
        #expect(e["10.96.0.1 . tcp . 80"] == "")
        #expect(e.keys == ["10.96.0.1 . tcp . 80"])
        #expect(e != SetElements(["10.96.0.1 . tcp . 80": ""]))
        #expect(e != SetElements(["10.96.0.1 . tcp . 80": ""], comments: ["10.96.0.1 . tcp . 80": "default/web:www"]))
        // A write by key alone is an element without a comment; removing an element removes its comment.
        e["10.96.0.1 . tcp . 80"] = ""
        #expect(e.comment("10.96.0.1 . tcp . 80") == nil && e.comments.isEmpty)
        e.set("10.96.0.2 . tcp . 80", "", comment: "a/b")
        e.removeValue(forKey: "10.96.0.2 . tcp . 80")
        #expect(e.comments.isEmpty)
    }

    @Test func aSlotTableDropsThePlainElementsOfItsEntryWithTheirComments() {
        var e = SetElements()
        e.set("10.96.0.1 . tcp . 80 . 0", "10.0.0.1 . 80", comment: "stray")
        e.setSlots("10.96.0.1 . tcp . 80", SlotTable(targets: ["10.0.0.1 . 80"], slots: [0, 0]))
        #expect(e.comments.isEmpty && e.count == 2)
        // Held differently but equal: comments compare too.
        var plain = SetElements(
            ["10.96.0.1 . tcp . 80 . 0": "10.0.0.1 . 80", "10.96.0.1 . tcp . 80 . 1": "10.0.0.1 . 80"])
        #expect(plain == e)
        plain.set("x", "", comment: "c")
        e.set("x", "", comment: "d")
        #expect(plain != e)
    }
}
