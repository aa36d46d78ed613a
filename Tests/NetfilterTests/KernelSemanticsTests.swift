import NFTModel
import Netfilter
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// The kernel's answer to each kind of command the planner emits, in the situations that matter, pinned
/// for both backends: the fake must say what the kernel says.
@Suite(.exclusive) struct KernelSemanticsTests {
    static let t = TableID(.ip, "sem")

    /// Chain `a` jumps to `b` and uses set `s`; map `m` sends one element to `b` and one to `c`; `h` is a
    /// full hash map of size 2; `base` is a filter input chain; `d` is a chain nothing refers to.
    static let base: Ruleset = {
        var table = Table(id: t)
        table.add(Chain(name: "a", rules: ["jump b", "ip daddr @s accept"]))
        table.add(Chain(name: "b", rules: ["ip saddr 192.0.2.1 drop"]))
        table.add(Chain(name: "c"))
        table.add(Chain(name: "d", rules: ["ip saddr 192.0.2.2 drop"]))
        table.add(Chain(name: "base", base: BaseChain(type: .filter, hook: .input, priority: 0), rules: ["jump a"]))
        table.add(NFTSet(name: "s", keyType: .types(["ipv4_addr"]), elements: ["192.0.2.10": ""]))
        table.add(Fixture.vmap("m", ["10.0.0.1 . tcp . 80": "goto b", "10.0.0.2 . tcp . 80": "jump c"]))
        table.add(NFTSet(name: "h", keyType: .hashSlot, dataType: "verdict", size: 2,
                         elements: ["0": "goto b", "1": "goto c"]))
        return Ruleset(tables: [table])
    }()

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var commands: [Command]
        var outcome: Outcome
        /// For `.ok`: how the table should look afterwards (nil: unchanged).
        var after: (@Sendable (inout Table) -> Void)? = nil
        var tableGone = false
        var testDescription: String { name }
    }

    static func el(_ key: String, _ data: String = "") -> Command.Element { .init(key: key, data: data) }
    static let filterInput = BaseChain(type: .filter, hook: .input, priority: 0)

    static let cases: [Case] = [
        Case(name: "add table that exists", commands: [.addTable(t)], outcome: .ok),
        Case(name: "delete missing table", commands: [.deleteTable(TableID(.ip, "nope"))], outcome: .notFound),
        Case(name: "delete table with references inside", commands: [.deleteTable(t)], outcome: .ok, tableGone: true),
        Case(name: "add chain in missing table", commands: [.addChain(TableID(.ip, "nope"), Chain(name: "x"))],
             outcome: .notFound),
        Case(name: "add chain that exists", commands: [.addChain(t, Chain(name: "b"))], outcome: .ok),
        Case(name: "re-add regular chain as base chain",
             commands: [.addChain(t, Chain(name: "b", base: BaseChain(type: .filter, hook: .output, priority: 0)))],
             outcome: .notSupported),
        Case(name: "re-add base chain unchanged", commands: [.addChain(t, Chain(name: "base", base: filterInput))],
             outcome: .ok),
        Case(name: "re-add base chain without hook", commands: [.addChain(t, Chain(name: "base"))], outcome: .ok),
        Case(name: "re-add base chain with other policy",
             commands: [.addChain(t, Chain(name: "base", base: BaseChain(type: .filter, hook: .input, priority: 0,
                                                                          policy: .drop)))],
             outcome: .ok, after: { $0.chains["base"]!.base!.policy = .drop }),
        Case(name: "re-add base chain with other priority",
             commands: [.addChain(t, Chain(name: "base", base: BaseChain(type: .filter, hook: .input, priority: 10)))],
             outcome: .notSupported),
        Case(name: "re-add base chain with other type",
             commands: [.addChain(t, Chain(name: "base", base: BaseChain(type: .nat, hook: .input, priority: 0)))],
             outcome: .exists),
        Case(name: "add rule to missing chain", commands: [.addRule(t, chain: "nope", "accept")], outcome: .notFound),
        Case(name: "add rule using missing set", commands: [.addRule(t, chain: "d", "ip daddr @nope accept")],
             outcome: .notFound),
        Case(name: "add rule jumping to missing chain", commands: [.addRule(t, chain: "d", "goto nope")],
             outcome: .notFound),
        Case(name: "add rule", commands: [.addRule(t, chain: "d", "ip daddr @s goto c")], outcome: .ok,
             after: { $0.chains["d"]!.rules.append("ip daddr @s goto c") }),
        Case(name: "flush missing chain", commands: [.flushChain(t, "nope")], outcome: .notFound),
        Case(name: "flush chain", commands: [.flushChain(t, "a")], outcome: .ok, after: { $0.chains["a"]!.rules = [] }),
        Case(name: "delete missing chain", commands: [.deleteChain(t, "nope")], outcome: .notFound),
        Case(name: "delete chain a rule jumps to", commands: [.deleteChain(t, "b")], outcome: .busy),
        Case(name: "delete chain only a map element refers to",
             commands: [.flushChain(t, "a"), .flushChain(t, "base"), .deleteElements(t, set: "h", keys: ["1"]),
                        .deleteChain(t, "c")],
             outcome: .busy),
        Case(name: "delete chain after its references are gone",
             commands: [.deleteElements(t, set: "m", keys: ["10.0.0.2 . tcp . 80"]),
                        .deleteElements(t, set: "h", keys: ["1"]), .deleteChain(t, "c")],
             outcome: .ok,
             after: {
                 $0.chains["c"] = nil
                 $0.sets["m"]!.elements["10.0.0.2 . tcp . 80"] = nil
                 $0.sets["h"]!.elements["1"] = nil
             }),
        Case(name: "delete unreferenced chain that has rules", commands: [.deleteChain(t, "d")], outcome: .ok,
             after: { $0.chains["d"] = nil }),
        Case(name: "add set that exists with same declaration",
             commands: [.addSet(t, NFTSet(name: "s", keyType: .types(["ipv4_addr"])))], outcome: .ok),
        Case(name: "add set that exists with other key type",
             commands: [.addSet(t, NFTSet(name: "s", keyType: .types(["inet_service"])))], outcome: .exists),
        Case(name: "delete missing set", commands: [.deleteSet(t, name: "nope", isMap: false)], outcome: .notFound),
        Case(name: "delete set a rule uses", commands: [.deleteSet(t, name: "s", isMap: false)], outcome: .busy),
        Case(name: "delete set after flushing the rule that used it",
             commands: [.flushChain(t, "a"), .deleteSet(t, name: "s", isMap: false)], outcome: .ok,
             after: {
                 $0.chains["a"]!.rules = []
                 $0.sets["s"] = nil
             }),
        Case(name: "add element to missing set", commands: [.addElements(t, set: "nope", [el("192.0.2.1")])],
             outcome: .notFound),
        Case(name: "add element that exists with same data",
             commands: [.addElements(t, set: "m", [el("10.0.0.1 . tcp . 80", "goto b")])], outcome: .ok),
        Case(name: "add element that exists in a set", commands: [.addElements(t, set: "s", [el("192.0.2.10")])],
             outcome: .ok),
        Case(name: "add element that exists with other data",
             commands: [.addElements(t, set: "m", [el("10.0.0.1 . tcp . 80", "goto c")])], outcome: .exists),
        Case(name: "add element jumping to missing chain",
             commands: [.addElements(t, set: "m", [el("10.0.0.3 . tcp . 80", "goto nope")])], outcome: .notFound),
        Case(name: "add element to a full map", commands: [.addElements(t, set: "h", [el("0", "goto b")]),
                                                           .addElements(t, set: "s", [el("192.0.2.11")]),
                                                           .addElements(t, set: "h", [el("5", "goto c")])],
             outcome: .setFull),
        Case(name: "replace element data by delete and add",
             commands: [.deleteElements(t, set: "m", keys: ["10.0.0.1 . tcp . 80"]),
                        .addElements(t, set: "m", [el("10.0.0.1 . tcp . 80", "goto c")])],
             outcome: .ok, after: { $0.sets["m"]!.elements["10.0.0.1 . tcp . 80"] = "goto c" }),
        Case(name: "delete missing element", commands: [.deleteElements(t, set: "s", keys: ["192.0.2.99"])],
             outcome: .notFound),
        Case(name: "delete element from missing set", commands: [.deleteElements(t, set: "nope", keys: ["192.0.2.1"])],
             outcome: .notFound),
    ]

    @Test(arguments: BackendKind.allCases, cases)
    func command(kind: BackendKind, c: Case) async throws {
        try await withBackend(kind) { h in
            try await h.backend.apply(Self.base.transaction(from: .empty))
            let dumpBefore = try await h.dump()
            let tx = Transaction(c.commands)
            switch c.outcome {
            case .ok:
                try await h.backend.apply(tx)
                var expected = Self.base[Self.t]!
                c.after?(&expected)
                #expect(try await h.backend.read([Self.t]) == (c.tableGone ? .empty : Ruleset(tables: [expected])))
            case .rejected(let text):
                do {
                    try await h.backend.apply(tx)
                    Issue.record("\(kind) accepted:\n\(tx)")
                } catch {
                    expectError(error, says: text)
                }
                #expect(try await h.backend.read([Self.t]) == Self.base)
                #expect(try await h.dump() == dumpBefore)
            }
        }
    }
}
