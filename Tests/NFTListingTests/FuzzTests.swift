import Foundation
import NFTListing
import NFTModel
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// Hostile input never crashes (issue 11): the kernel's JSON listing, mutated. A listing is read back on
/// every sync, so what it decodes to is also planned against and rendered, as the agent does. See
/// README.md ("Fuzzing") for the long run.
@Suite(.serialized, .exclusive) struct FuzzTests {
    @Test("hostile input never crashes the decoder", arguments: Self.targets)
    func neverCrashes(_ target: FuzzTarget) {
        let report = Fuzzer.run(target)
        print(report.summary)
        #expect(report.findingCount == 0, "\(report)")
    }

    static let targets: [FuzzTarget] = [
        FuzzTarget(
            "nft-json",
            seeds: FuzzCorpus.load(Bundle.module.resourceURL!.appendingPathComponent("Fixtures/fuzz/nft-json")),
            dictionary: [
                "\"nftables\"", "\"table\"", "\"chain\"", "\"rule\"", "\"set\"", "\"map\"", "\"elem\"", "\"expr\"",
                "\"family\"", "\"inet\"", "\"ip6\"", "\"hook\"", "\"prio\"", "\"policy\"", "\"type\"", "\"flags\"",
                "\"match\"", "\"payload\"", "\"meta\"", "\"prefix\"", "\"range\"", "\"concat\"", "\"jump\"",
                "\"dnat\"", "\"snat\"", "\"masquerade\"", "\"counter\"", "\"comment\"", "\"vmap\"", "\"numgen\"",
                "\"jhash\"", "\"mark\"", "\"timeout\"", "\"interval\"", "\"ipv4_addr\"", "\"inet_service\"",
            ],
            iterations: 150
        ) { bytes in
            guard let ruleset = try? Ruleset(nftJSON: bytes) else { return }
            _ = ruleset.script
            _ = Ruleset().transaction(from: ruleset).description
            _ = ruleset.transaction(from: Ruleset()).description
        }
    ]
}
