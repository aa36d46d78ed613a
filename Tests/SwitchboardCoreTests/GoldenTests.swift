import Foundation
import NetworkTypes
import NFTModel
import SwitchboardCore
import Testing

/// The built-in example compiled to nft text, compared byte for byte with a file reviewed by hand.
/// To update after an intended change: `SWITCHBOARD_UPDATE_GOLDEN=1 swift test --filter GoldenTests`,
/// then read the diff of `Fixtures/golden/*.nft` before committing it.
@Suite struct GoldenTests {
    static let directory = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/golden")

    @Test func demoExample() throws {
        let input = try String(contentsOf: Self.directory.appendingPathComponent("demo.yaml"), encoding: .utf8)
        let decoded = ManifestDecoder.decode(input, source: "demo.yaml")
        #expect(decoded.diagnostics.isEmpty)
        let context = NodeContext(nodeName: "demo-node", clusterCIDRs: [CIDR("10.244.0.0/16")!])
        let result = compile(ClusterState(decoded.objects), for: context)
        #expect(result.diagnostics.isEmpty)
        let rendered = result.ruleset.script
        if ProcessInfo.processInfo.environment["SWITCHBOARD_UPDATE_GOLDEN"] == "1" {
            // Write into the source tree, not the copied bundle.
            let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/golden/demo.nft")
            try rendered.write(to: source, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOf: Self.directory.appendingPathComponent("demo.nft"), encoding: .utf8)
        let diff = UnifiedDiff(old: golden, new: rendered)
        #expect(diff.isEmpty, "\(diff.render(oldName: "golden/demo.nft", newName: "rendered"))")
    }
}
