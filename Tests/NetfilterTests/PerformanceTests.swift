import Foundation
import NFTModel
import Netfilter
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// Timings, printed rather than asserted: a map of 100k elements through one batch, and read back.
///
/// `SWITCHBOARD_LARGE_LISTING=<elements>` (e.g. 2500000) also lists a map big enough for a 100+ MB JSON
/// listing, to exercise libnftables' output buffer at that size (slow: tens of seconds, ~250 MB of
/// kernel memory).
@Suite(.serialized, .exclusive) struct PerformanceTests {
    static func maglevTable(elements: Int, backends: Int = 16) -> Ruleset {
        var table = Table(id: Fixture.table)
        for b in 0..<backends {
            table.add(Chain(name: "ep-\(b)", rules: [Rule("meta l4proto tcp dnat to 10.0.\(b).1:8080")]))
        }
        var map: [String: String] = [:]
        map.reserveCapacity(elements)
        for slot in 0..<elements { map[String(slot)] = "goto ep-\(slot % backends)" }
        let size = elements + 3
        table.add(NFTSet(name: "maglev", keyType: .hashSlot, dataType: "verdict", size: size, elements: map))
        table.add(Chain(name: "svc", rules: [Rule("jhash ip saddr . th sport mod \(size) seed 0x1234 vmap @maglev")]))
        return Ruleset(tables: [table])
    }

    @Test func hundredThousandElementsInOneBatch() async throws {
        try skipUnlessScratchNamespaces()
        try await measure(elements: 100_000, purpose: "perf")
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["SWITCHBOARD_LARGE_LISTING"] != nil,
                   "set SWITCHBOARD_LARGE_LISTING=<elements> to run"))
    func largeListing() async throws {
        try skipUnlessScratchNamespaces()
        let elements = Int(ProcessInfo.processInfo.environment["SWITCHBOARD_LARGE_LISTING"] ?? "") ?? 2_500_000
        try await measure(elements: elements, purpose: "large")
    }

    private func measure(elements: Int, purpose: String) async throws {
        let desired = Self.maglevTable(elements: elements)
        let tx = desired.transaction(from: .empty)
        let script = tx.description
        let clock = ContinuousClock()
        try await ScratchNamespace.with(purpose: purpose) { ns in
            let kernel = try KernelNFTables(networkNamespace: ns.name)
            let applied = try await clock.measure { try await kernel.apply(tx) }

            var json = ""
            let listed = try await clock.measure {
                json = try await kernel.library.listJSON("list table \(Fixture.table)")
            }
            #expect(json.utf8.count > elements * 20)
            // Independent check that every element arrived, without the JSON decoder.
            let slots = json.components(separatedBy: "{\"goto\": {\"target\": \"ep-").count - 1
            #expect(slots == elements)

            var decodeNote = ""
            do {
                var back = Ruleset()
                let read = try await clock.measure { back = try await kernel.read([Fixture.table]) }
                #expect(back == desired)
                decodeNote = "read (list + decode) \(read)"
            } catch let error as NetfilterError where error.kind == .invalidListing {
                decodeNote = "decode unavailable: \(error.message)"
            }

            let fake = FakeNFTables()
            let fakeApplied = try await clock.measure { try await fake.apply(tx) }

            print("""
                PERF \(elements) elements: script \(script.utf8.count / 1024) KiB, one batch applied in \(applied); \
                JSON listing \(json.utf8.count / 1024) KiB in \(listed); \(decodeNote); \
                FakeNFTables apply \(fakeApplied)
                """)
        }
    }
}
