import NFTModel
import Netfilter
import SwitchboardTesting
import Testing

/// The two implementations of `NFTablesBackend` that the contract suite runs against.
enum BackendKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case fake, kernel
    var testDescription: String { rawValue }
}

/// A backend under test plus a verbatim dump of everything it holds, to prove "nothing changed" beyond
/// what `read` shows.
struct Harness: Sendable {
    let backend: any NFTablesBackend
    /// Kernel: `nft list ruleset` text. Fake: the ruleset rendered as a script.
    let dump: @Sendable () async throws -> String
}

/// Runs `body` against a fresh, empty backend of the given kind. The kernel variant works in its own
/// scratch namespace (deleted afterwards, also on failure) and is skipped, with the reason printed, where
/// namespaces cannot be made.
func withBackend(_ kind: BackendKind, _ body: (Harness) async throws -> Void) async throws {
    switch kind {
    case .fake:
        let fake = FakeNFTables()
        try await body(Harness(backend: fake, dump: { await fake.ruleset.script }))
    case .kernel:
        try skipUnlessScratchNamespaces()
        try await ScratchNamespace.with(purpose: "nf") { ns in
            let kernel = try KernelNFTables(networkNamespace: ns.name)
            try await body(Harness(backend: kernel, dump: { try await kernel.listRuleset() }))
        }
    }
}

/// Cancels (skips) the current test or test case when scratch namespaces cannot be made; the reason is
/// printed once and carried by every cancellation.
func skipUnlessScratchNamespaces() throws {
    if let reason = ScratchNamespace.unavailableReason {
        _ = printSkipReason
        try Test.cancel("needs root and `ip netns`: \(reason)")
    }
}

private let printSkipReason: Void = {
    print("SKIP kernel variants of NetfilterTests: \(ScratchNamespace.unavailableReason ?? "")")
}()

/// What both backends' errors have in common: nft's message and the errno predicates.
protocol BackendError: Error {
    var message: String { get }
    var isNotFound: Bool { get }
    var isAlreadyExists: Bool { get }
    var isBusy: Bool { get }
    var isSetFull: Bool { get }
}

extension NetfilterError: BackendError {}
extension FakeNFTablesError: BackendError {}

/// How a command or transaction is expected to end.
enum Outcome: Sendable, Equatable, CustomStringConvertible {
    case ok
    /// Rejected with this `strerror` text in nft's message.
    case rejected(String)

    static let notFound = Outcome.rejected("No such file or directory")
    static let exists = Outcome.rejected("File exists")
    static let busy = Outcome.rejected("Device or resource busy")
    static let notSupported = Outcome.rejected("Operation not supported")
    static let setFull = Outcome.rejected("Too many open files in system")

    var description: String {
        switch self {
        case .ok: "ok"
        case .rejected(let text): "rejected: \(text)"
        }
    }
}

/// Checks that `error` is a backend error whose message names `text` and whose predicates agree.
func expectError(_ error: any Error, says text: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = error as? any BackendError else {
        Issue.record("not a backend error: \(error)", sourceLocation: sourceLocation)
        return
    }
    #expect(error.message.contains(text), "message: \(error.message.prefix(600))", sourceLocation: sourceLocation)
    #expect(error.isNotFound == (text == "No such file or directory"), sourceLocation: sourceLocation)
    #expect(error.isAlreadyExists == (text == "File exists"), sourceLocation: sourceLocation)
    #expect(error.isBusy == (text == "Device or resource busy"), sourceLocation: sourceLocation)
    #expect(error.isSetFull == (text == "Too many open files in system"), sourceLocation: sourceLocation)
}

// MARK: - Fixtures

/// Rulesets in the compiler's shape, every rule in the canonical text `nft list` prints.
enum Fixture {
    static let table = TableID(.ip, "switchboard")
    static let other = TableID(.ip, "someone-else")

    static func vmap(_ name: String, _ elements: [String: String]) -> NFTSet {
        NFTSet(name: name, keyType: .types(["ipv4_addr", "inet_proto", "inet_service"]), dataType: "verdict",
               elements: elements)
    }

    static func maglev(_ name: String, size: Int, backends: [String]) -> NFTSet {
        var elements: [String: String] = [:]
        for slot in 0..<size { elements[String(slot)] = "goto " + backends[slot % backends.count] }
        return NFTSet(name: name, keyType: .hashSlot, dataType: "verdict", size: size, elements: elements)
    }

    static func serviceChain(_ name: String, map: String, size: Int) -> Chain {
        Chain(name: name, rules: [Rule("jhash ip saddr . th sport mod \(size) seed 0x1234 vmap @\(map)")])
    }

    static func endpointChain(_ name: String, _ address: String, port: Int, proto: String = "tcp") -> Chain {
        Chain(name: name, rules: [
            Rule("ip saddr \(address) meta mark set meta mark | 0x00004000"),
            Rule("meta l4proto \(proto) dnat to \(address):\(port)"),
        ])
    }

    static func ruleset(chains: [Chain], sets: [NFTSet]) -> Ruleset {
        var t = Table(id: table)
        chains.forEach { t.add($0) }
        sets.forEach { t.add($0) }
        return Ruleset(tables: [t])
    }

    static let baseChains: [Chain] = [
        Chain(name: "prerouting", base: BaseChain(type: .nat, hook: .prerouting, priority: -100),
              rules: ["jump services"]),
        Chain(name: "output", base: BaseChain(type: .nat, hook: .output, priority: -100), rules: ["jump services"]),
        Chain(name: "postrouting", base: BaseChain(type: .nat, hook: .postrouting, priority: 100), rules: [
            "meta mark & 0x00004000 == 0x00004000 masquerade",
        ]),
        Chain(name: "services", rules: [
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "fib daddr type local ip daddr . meta l4proto . th dport vmap @service-nodeports",
        ]),
    ]

    static func filterInput(_ extra: [Rule] = []) -> Chain {
        Chain(name: "filter-input", base: BaseChain(type: .filter, hook: .input, priority: 0), rules: [
            "ct state invalid drop",
            "ip daddr . meta l4proto . th dport @no-endpoints reject",
        ] + extra)
    }

    /// Two services: `aaa` (two endpoints, Maglev size 7) and `bbb` (one endpoint, size 5).
    static let a = ruleset(
        chains: baseChains + [
            filterInput(),
            serviceChain("svc-aaa", map: "maglev-aaa", size: 7),
            serviceChain("svc-bbb", map: "maglev-bbb", size: 5),
            endpointChain("ep-aaa-1", "10.0.0.5", port: 8443),
            endpointChain("ep-aaa-2", "10.0.0.6", port: 8443),
            endpointChain("ep-bbb-1", "10.0.1.7", port: 53, proto: "udp"),
        ],
        sets: [
            vmap("service-ips", ["10.96.0.1 . tcp . 443": "goto svc-aaa", "10.96.0.10 . udp . 53": "goto svc-bbb"]),
            vmap("service-nodeports", ["10.1.0.2 . tcp . 30443": "goto svc-aaa"]),
            maglev("maglev-aaa", size: 7, backends: ["ep-aaa-1", "ep-aaa-2"]),
            maglev("maglev-bbb", size: 5, backends: ["ep-bbb-1"]),
            NFTSet(name: "no-endpoints", keyType: .types(["ipv4_addr", "inet_proto", "inet_service"]),
                   elements: ["10.96.0.20 . tcp . 80": ""]),
        ])

    /// `a` after churn: `bbb` is gone, `aaa` swapped endpoint 2 for 3, `ccc` is new, the set of
    /// services without endpoints changed, and the input filter gained a rule.
    static let b = ruleset(
        chains: baseChains + [
            filterInput(["ip daddr 10.96.0.99 drop"]),
            serviceChain("svc-aaa", map: "maglev-aaa", size: 7),
            serviceChain("svc-ccc", map: "maglev-ccc", size: 3),
            endpointChain("ep-aaa-1", "10.0.0.5", port: 8443),
            endpointChain("ep-aaa-3", "10.0.0.8", port: 8443),
            endpointChain("ep-ccc-1", "10.0.2.9", port: 8080),
        ],
        sets: [
            vmap("service-ips", ["10.96.0.1 . tcp . 443": "goto svc-aaa", "10.96.0.30 . tcp . 8080": "goto svc-ccc"]),
            vmap("service-nodeports", ["10.1.0.2 . tcp . 30443": "goto svc-aaa"]),
            maglev("maglev-aaa", size: 7, backends: ["ep-aaa-1", "ep-aaa-3"]),
            maglev("maglev-ccc", size: 3, backends: ["ep-ccc-1"]),
            NFTSet(name: "no-endpoints", keyType: .types(["ipv4_addr", "inet_proto", "inet_service"]),
                   elements: ["10.96.0.21 . udp . 5353": ""]),
        ])

    /// Only the skeleton: every service gone.
    static let skeleton = ruleset(
        chains: baseChains + [filterInput()],
        sets: [
            vmap("service-ips", [:]),
            vmap("service-nodeports", [:]),
            NFTSet(name: "no-endpoints", keyType: .types(["ipv4_addr", "inet_proto", "inet_service"])),
        ])
}
