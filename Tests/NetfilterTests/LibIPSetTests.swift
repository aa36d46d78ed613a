import NFTModel
import SwitchboardTesting
import Testing

@testable import Netfilter
import SwitchboardTestTraits

/// libipset in a scratch namespace: commands, listings, and libipset's error text in `NetfilterError`.
@Suite(
    "LibIPSet / KernelIPSets in a scratch namespace", .serialized,
    .enabled(if: ScratchNamespace.isAvailable, "needs root and `ip netns` (reason printed as SKIP)"), .exclusive)
struct LibIPSetTests {
    @Test("A plan is applied; headers and members read back; the host's sets are not touched")
    func appliesAndReads() async throws {
        try await ScratchNamespace.with(purpose: "ipset") { ns in
            let kernel = try KernelIPSets(networkNamespace: ns.name)
            let set = IPSet(name: "KUBE-CLUSTER-IP", type: .hashIPPort, family: .inet, entries: ["10.96.0.10,tcp:80"])
            let plan = IPSetPlan(desired: [set], written: [:], kernel: try await kernel.headers())
            for step in plan.steps { try await kernel.run(step.commands) }
            #expect(try await kernel.headers() == ["KUBE-CLUSTER-IP": set.header])
            #expect(try await kernel.read(["KUBE-CLUSTER-IP", "KUBE-NONE"]) == ["KUBE-CLUSTER-IP": set])
            let listed = try ns.exec(["ipset", "list", "KUBE-CLUSTER-IP"])
            #expect(listed.contains("Members:\n10.96.0.10,tcp:80"))
        }
    }

    @Test("libipset's error text reaches the caller, with the failing line; later lines are not run")
    func errorsCarryMessage() async throws {
        try await ScratchNamespace.with(purpose: "ipset-err") { ns in
            let lib = try LibIPSet(networkNamespace: ns.name)
            do throws(NetfilterError) {
                try await lib.run(lines: ["create a bitmap:port range 0-65535", "destroy missing", "create b bitmap:port range 0-65535"])
                Issue.record("expected a failure")
            } catch {
                #expect(error.kind == .ipsetCommandFailed)
                #expect(error.isNotFound, "\(error)")
                #expect(error.message.contains("does not exist"), "\(error.message)")
                #expect(error.lines == [2])
                #expect(error.script == "destroy missing")
            }
            #expect(try await lib.run("list -n") == "a\n")
            do throws(NetfilterError) {
                _ = try await lib.run("add a notaport")
                Issue.record("expected a failure")
            } catch {
                #expect(!error.message.isEmpty)
            }
            // The session is still usable after errors.
            #expect(try await lib.run("list -n") == "a\n")
        }
    }
}
