import Foundation
import SwitchboardTesting
import Testing

/// Runs the real `switchboard` binary inside a node's namespace, the way an operator would.
enum SB {
    static let clusterCIDRs = "10.244.0.0/16,fd00:10:244::/48"

    /// Whether the end-to-end suites can run; the reason is printed once by `Skip` or here.
    static let available: Bool = {
        if let reason = SwitchboardBinary.unavailableReason {
            print("SKIP end-to-end tests: \(reason)")
            return false
        }
        return Skip.privilegedTestsAvailable
    }()

    /// Writes `manifests` to a scratch file and runs `switchboard <command> -f FILE` in the node.
    @discardableResult
    static func run(
        _ command: String, _ net: Topology, node: String = "n1", manifests: [String], extra: [String] = []
    ) async throws -> ShellResult {
        let file = FileManager.default.temporaryDirectory
            .appendingPathComponent("sbt-\(UUID().uuidString.prefix(8)).yaml")
        try Manifest.stream(manifests).write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let args = [SwitchboardBinary.path!, command, "-f", file.path, "--hostname-override", node,
                    "--cluster-cidr", clusterCIDRs] + extra
        return try await Shell.run(args, in: net.node(node).namespace, timeout: .seconds(60))
    }

    /// `switchboard apply`, which must succeed.
    @discardableResult
    static func apply(
        _ net: Topology, node: String = "n1", _ manifests: [String], extra: [String] = []
    ) async throws -> ShellResult {
        let result = try await run("apply", net, node: node, manifests: manifests, extra: extra)
        #expect(result.status.code == 0, "apply failed: \(result.stderr)")
        return result
    }

    /// The Node object for a topology node (its InternalIPs are the node's LAN addresses).
    static func nodeManifest(_ net: Topology, _ name: String = "n1", zone: String? = nil) -> String {
        let node = net.node(name)
        return Manifest.node(name, internalIPs: [node.ipv4, node.ipv6], zone: zone,
                             podCIDRs: [node.podCIDRv4, node.podCIDRv6])
    }

    /// Distinct client source ports for distribution tests.
    static func sourcePorts(_ count: Int, from base: Int = 41000) -> [Int?] { (0..<count).map { base + $0 } }
}

extension Array where Element == RequestResult {
    /// The replies (backend names), failing the test for any request that failed.
    func replies(sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        map { result in
            switch result {
            case .success(let reply): return reply.trimmingCharacters(in: .whitespacesAndNewlines)
            case .failure(let error):
                Issue.record("request failed: \(error)", sourceLocation: sourceLocation)
                return "<\(error)>"
            }
        }
    }
}
