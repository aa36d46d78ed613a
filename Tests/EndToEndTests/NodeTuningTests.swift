import Foundation
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// What `switchboard run` writes into the kernel at start, read back from where it lands: the conntrack sysctls
/// of the network namespace it runs in, and the agent's own `/proc/<pid>/oom_score_adj`. Everything happens
/// in scratch namespaces; the host's own values are read (never written) before and after, and must not move.
/// `nf_conntrack_max` and the hash size are global: a test only ever asks for them from inside a namespace
/// where the kernel makes them read-only (checked first), to see the refusal logged and the start go on.
@Suite(
    "End to end: kernel settings at start (conntrack sysctls, OOM score)",
    .serialized,
    .enabled(if: SB.available, "needs root, `ip netns` and the switchboard binary (reason printed as SKIP)"),
    .exclusive
)
struct NodeTuningTests {
    static let perNamespace: [Tunable] = [
        .tcpTimeoutEstablished, .tcpTimeoutCloseWait, .tcpBeLiberal, .udpTimeout, .udpTimeoutStream,
    ]

    /// Values of `tunables` as seen from `namespace` (nil: the host's own namespace), read with `cat`, which
    /// `ip netns exec` runs with that namespace's view of /proc/sys/net.
    static func read(_ tunables: [Tunable], in namespace: String?) async throws -> [Tunable: Int] {
        let out = try await Shell.run(["cat"] + tunables.map(\.path), in: namespace).checked().stdout
        let values = out.split(separator: "\n").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == tunables.count else { throw SetupError("cat \(tunables.map(\.path)): \(out)") }
        return Dictionary(uniqueKeysWithValues: zip(tunables, values.map { $0 ?? Int.min }))
    }

    static func describe(_ values: [Tunable: Int]) -> String {
        perNamespace.map { "\($0.rawValue)=\(values[$0].map(String.init) ?? "?")" }.joined(separator: " ")
    }

    /// Why asking for an nf_conntrack_max of `wanted` from inside `namespace` is not safe, or nil: the limit
    /// must be read-only there (the kernel's rule for every namespace but the host's), and `wanted` must not
    /// call for bigger buckets (the hash size is a module parameter, with no per-namespace view at all).
    static func globalProbeUnsafe(_ namespace: String, wanted: Int, host: [Tunable: Int]) async throws -> String? {
        let mode = try await Shell.run(["stat", "-c", "%a", Tunable.conntrackMax.path], in: namespace).checked().stdout
        if mode.trimmingCharacters(in: .whitespacesAndNewlines) != "444" {
            return "nf_conntrack_max is not read-only inside a network namespace here (mode \(mode))"
        }
        if wanted / 4 > host[.conntrackHashsize]! { return "the host's hash size is below \(wanted / 4)" }
        return nil
    }

    @Test("run --init-only in a namespace: per-namespace sysctls written and read back; nf_conntrack_max refused, logged once, exit 0; the host's values untouched")
    func initOnly() async throws {
        try await ScratchNamespace.with(purpose: "tuning") { ns in
            let ns = ns.name
            guard (try? await Self.read(Self.perNamespace, in: ns)) != nil else {
                print("SKIP NodeTuningTests.initOnly: no nf_conntrack sysctls in a new namespace (module not loaded)")
                return
            }
            let global: [Tunable] = [.conntrackMax, .conntrackHashsize]
            let hostBefore = try await Self.read(global + Self.perNamespace, in: nil)
            // One above the host's limit: a raise, which only the host's namespace could make.
            let wanted = hostBefore[.conntrackMax]! + 1
            let unsafe = try await Self.globalProbeUnsafe(ns, wanted: wanted, host: hostBefore)
            if let unsafe { print("NodeTuningTests.initOnly: not asking for a higher nf_conntrack_max: \(unsafe)") }
            let flags = (unsafe == nil ? ["--conntrack-min", String(wanted)] : ["--conntrack-max-per-core", "0"]) + [
                "--conntrack-tcp-timeout-established", "2h", "--conntrack-tcp-timeout-close-wait", "30m",
                "--conntrack-tcp-be-liberal", "--conntrack-udp-timeout", "45s", "--conntrack-udp-timeout-stream", "3m",
            ]
            let command = [SwitchboardBinary.path!, "run", "--init-only", "--hostname-override", "n1"] + flags
            let first = try await Shell.run(command, in: ns, timeout: .seconds(30))
            #expect(first.status.code == 0, "\(first.stderr)")
            let values = try await Self.read(Self.perNamespace, in: ns)
            print("tuning: read back in \(ns): \(Self.describe(values))")
            #expect(values == [.tcpTimeoutEstablished: 7200, .tcpTimeoutCloseWait: 1800, .tcpBeLiberal: 1,
                               .udpTimeout: 45, .udpTimeoutStream: 180])
            let lines = first.stderr.split(separator: "\n")
            for tunable in Self.perNamespace {
                let line = "set \(tunable.rawValue) to \(values[tunable]!)"
                #expect(lines.contains { $0.contains(" notice ") && $0.contains(line) }, "not logged: \(first.stderr)")
            }
            let warnings = lines.filter { $0.contains(" warning ") }
            if unsafe == nil {
                #expect(warnings.count == 1, "\(first.stderr)")
                #expect(warnings.first?.contains("cannot set net.netfilter.nf_conntrack_max to \(wanted)") == true)
                #expect(warnings.first?.hasSuffix("; continuing") == true)
                print("tuning: \(warnings.first.map { String($0) } ?? "")")
            } else {
                #expect(warnings.isEmpty, "\(first.stderr)")
            }
            #expect(!lines.contains { $0.contains("oom_score_adj") }, "--init-only writes no OOM score")

            // Again: nothing left to change in the namespace, so nothing written; the limit is still refused.
            let second = try await Shell.run(command, in: ns, timeout: .seconds(30))
            #expect(second.status.code == 0, "\(second.stderr)")
            #expect(!second.stderr.contains(" notice set "), "\(second.stderr)")
            #expect(second.stderr.split(separator: "\n").filter { $0.contains(" warning ") }.count == warnings.count)

            // The host's own values did not move.
            #expect(try await Self.read(global + Self.perNamespace, in: nil) == hostBefore)
        }
    }

    @Test(
        "the agent: --oom-score-adj 500 in /proc/<pid>/oom_score_adj, conntrack sysctls in its namespace; the default -999, where refused, is one line and the agent syncs on",
        .enabled(if: ControlPlane.unavailableReason == nil, "needs ../shared/k8s (SWITCHBOARD_K8S_UP)"))
    func agent() async throws {
        try await ScratchNamespace.with(purpose: "tuning-agent") { scratch in
            let ns = scratch.name
            guard (try? await Self.read(Self.perNamespace, in: ns)) != nil else {
                print("SKIP NodeTuningTests.agent: no nf_conntrack sysctls in a new namespace (module not loaded)")
                return
            }
            let global: [Tunable] = [.conntrackMax, .conntrackHashsize]
            let hostBefore = try await Self.read(global + Self.perNamespace, in: nil)
            // The defaults ask for kube-proxy's limit for this node: harmless from in here if it is read-only
            // (and no write is planned at all where the host's limit is higher already, as on this machine).
            let cpus = NodeTuning.cpuCount(cpuList: (try? String(contentsOfFile: "/sys/devices/system/cpu/online",
                                                                 encoding: .utf8)) ?? "") ?? 1
            let wanted = NodeTuning(ProxySettings()).conntrackMax(cpus: cpus)!
            var guardFlags: [String] = []
            if wanted > hostBefore[.conntrackMax]!,
                let unsafe = try await Self.globalProbeUnsafe(ns, wanted: wanted, host: hostBefore)
            {
                print("NodeTuningTests.agent: --conntrack-max-per-core 0: \(unsafe)")
                guardFlags = ["--conntrack-max-per-core", "0"]
            }
            let plane = try await ControlPlane.start(in: ns)
            let processes = Processes()
            do {
                try await agentScenario(ns, plane, guardFlags, processes)
            } catch {
                await processes.stopAll()
                await plane.stop()
                throw error
            }
            await processes.stopAll()
            await plane.stop()
            #expect(try await Self.read(global + Self.perNamespace, in: nil) == hostBefore)
        }
    }

    /// The agents a test started, stopped whatever happens before their namespace goes.
    final class Processes: @unchecked Sendable {
        var all: [BackgroundProcess] = []

        func stopAll() async {
            for process in all where process.isRunning { _ = await process.stop(grace: .seconds(5)) }
        }
    }

    private func agentScenario(
        _ ns: String, _ plane: ControlPlane, _ guardFlags: [String], _ processes: Processes
    ) async throws {
        func start(_ extra: [String]) throws -> BackgroundProcess {
            let agent = try Shell.start([
                SwitchboardBinary.path!, "run", "--kubeconfig", plane.nodeKubeconfig, "--hostname-override", "n1",
                "--min-sync-period", "100ms", "--sync-period", "1s",
            ] + guardFlags + extra, in: ns)
            processes.all.append(agent)
            return agent
        }
        /// Deletes the agent's table, then waits for the agent to put it back: proof that it syncs.
        func syncs(_ agent: BackgroundProcess) async throws -> Bool {
            _ = try await Shell.run(["nft", "delete", "table", "ip", "switchboard"], in: ns)
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let tables = try await Shell.run(["nft", "list", "tables"], in: ns).stdout
                if tables.contains("ip switchboard") { return true }
                if !agent.isRunning { return false }
                try await Task.sleep(for: .milliseconds(100))
            }
            return false
        }
        func oomScore(_ agent: BackgroundProcess) throws -> Int? {
            let comm = try String(contentsOfFile: "/proc/\(agent.pid)/comm", encoding: .utf8)
            guard comm.hasPrefix("switchboard") else { throw SetupError("pid \(agent.pid) is \(comm), not the agent") }
            return Int(try String(contentsOfFile: "/proc/\(agent.pid)/oom_score_adj", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))
        }

        // 1. A positive score, which this sandbox allows; conntrack timeouts in the agent's namespace.
        var agent = try start(["--oom-score-adj", "500", "--conntrack-tcp-timeout-established", "3h",
                               "--conntrack-udp-timeout", "50s"])
        #expect(try await syncs(agent), "the agent did not sync: \(agent.output().stderr.suffix(3000))")
        let score = try oomScore(agent)
        let values = try await Self.read(Self.perNamespace, in: ns)
        print("tuning: agent pid \(agent.pid) oom_score_adj=\(score.map(String.init) ?? "?") in \(ns): "
            + Self.describe(values))
        #expect(score == 500)
        #expect(values[.tcpTimeoutEstablished] == 10800 && values[.udpTimeout] == 50)
        #expect(values[.tcpTimeoutCloseWait] == 3600, "kube-proxy's default close-wait timeout")
        #expect(agent.output().stderr.contains("set oom_score_adj to 500"))
        #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))

        // 2. kube-proxy's default, -999. Where the kernel refuses it (this sandbox refuses a negative value even
        // to root: no CAP_SYS_RESOURCE), one warning line, and the agent runs and syncs as before.
        agent = try start([])
        #expect(try await syncs(agent), "the agent did not sync: \(agent.output().stderr.suffix(3000))")
        let defaultScore = try oomScore(agent)
        let refusals = agent.output().stderr.split(separator: "\n").filter {
            $0.contains(" warning ") && $0.contains("cannot set oom_score_adj to -999")
        }
        if defaultScore == -999 {
            #expect(refusals.isEmpty)
            print("tuning: oom_score_adj -999 accepted here")
        } else {
            #expect(refusals.count == 1, "\(agent.output().stderr.suffix(3000))")
            print("tuning: default: oom_score_adj=\(defaultScore.map(String.init) ?? "?"); "
                + "logged: \(refusals.first.map(String.init) ?? "")")
        }
        try await Task.sleep(for: .seconds(2))
        #expect(agent.isRunning, "the agent stopped: \(agent.output().stderr.suffix(3000))")
        #expect(try await syncs(agent), "the agent stopped syncing after the refusal")
        #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))
    }
}
