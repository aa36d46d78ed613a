import Foundation
import SwitchboardCore
import SwitchboardTesting
import Synchronization
import Testing
import SwitchboardTestTraits

/// The real control plane of ../shared/k8s (kube-apiserver v1.20.2 + etcd), started inside the node's
/// namespace so the agent reaches it at 127.0.0.1, as its README describes.
/// `builder`'s topology with the control plane started in its node `node`; both are gone afterwards,
/// whatever happens.
func withControlPlane(
    in builder: Topology.Builder, node: String = "n1", _ body: (Topology, ControlPlane) async throws -> Void
) async throws {
    try await withTopology(builder) { net in
        let plane = try await ControlPlane.start(in: net.node(node).namespace)
        do {
            try await body(net, plane)
        } catch {
            await plane.stop()
            throw error
        }
        await plane.stop()
    }
}

struct ControlPlane {
    let directory: URL
    let namespace: String

    static var upScript: String? {
        if let path = ProcessInfo.processInfo.environment["SWITCHBOARD_K8S_UP"], FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        return nil
    }

    static var unavailableReason: String? {
        if upScript == nil { return "SWITCHBOARD_K8S_UP is not set to ../shared/k8s/up.sh" }
        if Shell.which("kubectl") == nil || Shell.which("etcd") == nil { return "kubectl or etcd missing" }
        return nil
    }

    static func start(in namespace: String) async throws -> ControlPlane {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbt-k8s-\(UUID().uuidString.prefix(8))")
        let up = try await Shell.run(Shell.detachingDaemons([upScript!, dir.path, namespace]), timeout: .seconds(120))
        guard up.succeeded else {
            _ = try? await Shell.run([downScript, dir.path])
            throw ShellError(code: .failed, command: up.command, message: up.stderr, status: up.status)
        }
        return ControlPlane(directory: dir, namespace: namespace)
    }

    static var downScript: String { URL(fileURLWithPath: upScript!).deletingLastPathComponent().appendingPathComponent("down.sh").path }

    func stop() async {
        _ = try? await Shell.run([Self.downScript, directory.path])
        try? FileManager.default.removeItem(at: directory)
    }

    var adminKubeconfig: String { directory.appendingPathComponent("kubeconfig").path }
    var nodeKubeconfig: String { directory.appendingPathComponent("node.kubeconfig").path }

    @discardableResult
    func kubectl(_ args: [String], input: String? = nil) async throws -> ShellResult {
        try await Shell.run(["kubectl", "--kubeconfig", adminKubeconfig] + args, in: namespace, input: input, timeout: .seconds(60)).checked()
    }

    func apply(_ manifests: [String]) async throws {
        try await kubectl(["apply", "-f", "-"], input: Manifest.stream(manifests))
    }

    /// A value up.sh wrote to DIR/env: `K8S_API_URL`, `K8S_NODE_TOKEN`, ...
    func env(_ key: String) throws -> String {
        let text = try String(contentsOf: directory.appendingPathComponent("env"), encoding: .utf8)
        for line in text.split(separator: "\n") where line.hasPrefix(key + "=") {
            return String(line.dropFirst(key.count + 1))
        }
        throw SetupError("no \(key) in \(directory.path)/env")
    }

    func apiURL() throws -> String { try env("K8S_API_URL") }

    /// Writes a kubeconfig for this API server with `token`; `cluster` is its TLS setting (this plane's CA by
    /// default). Returns its path.
    func writeKubeconfig(_ name: String, token: String, cluster: String? = nil) throws -> String {
        let ca = try Data(contentsOf: directory.appendingPathComponent("pki/ca.crt")).base64EncodedString()
        let path = directory.appendingPathComponent(name).path
        try """
            apiVersion: v1
            kind: Config
            clusters:
            - name: local
              cluster:
                server: \(try apiURL())
                \(cluster ?? "certificate-authority-data: \(ca)")
            users:
            - name: user
              user:
                token: \(token)
            contexts:
            - name: local
              context: {cluster: local, user: user}
            current-context: local
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func restartAPIServer(pause seconds: Int) throws -> BackgroundProcess {
        let script = URL(fileURLWithPath: Self.upScript!).deletingLastPathComponent().appendingPathComponent("restart-apiserver.sh").path
        return try Shell.start(Shell.detachingDaemons([script, directory.path, String(seconds)]))
    }
}

/// A test's own setup went wrong (not what it tests).
struct SetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `switchboard run` against the real kube-apiserver, in a node namespace, with real traffic.
@Suite(
    "End to end: the node agent against a real kube-apiserver",
    .serialized,
    .enabled(if: SB.available && ControlPlane.unavailableReason == nil,
             "needs root, `ip netns`, the binary and ../shared/k8s (SWITCHBOARD_K8S_UP); reason printed as SKIP"),
    .exclusive
)
struct AgentTests {
    static let topology = Topology.Builder()
        .node("n1").backend("b1", on: "n1").backend("b2", on: "n1").client("c1", attachedTo: "n1")

    /// `switchboard run` in node n1; `periods` replaces the sync flags (and may add others, e.g.
    /// `--full-rebuild-period`).
    private func startAgent(
        _ net: Topology, _ plane: ControlPlane, kubeconfig: String? = nil,
        periods: [String] = ["--min-sync-period", "100ms", "--sync-period", "2s", "--v", "2"]
    ) throws -> BackgroundProcess {
        let agent = try Shell.start([
            SwitchboardBinary.path!, "run", "--kubeconfig", kubeconfig ?? plane.nodeKubeconfig, "--hostname-override", "n1",
            "--cluster-cidr", SB.clusterCIDRs,
        ] + periods, in: net.node("n1").namespace)
        net.adopt(agent)
        return agent
    }

    /// A server on b1:8080, this node's Node, and Service `web` (10.96.0.10:80) with b1 as its endpoint.
    private func webOnB1(_ net: Topology, _ plane: ControlPlane) async throws {
        try await net.startServer(on: "b1", proto: .tcp, port: 8080)
        try await plane.apply([SB.nodeManifest(net), service("web", ip: "10.96.0.10"),
                               slice("web-1", service: "web", net, ["b1"])])
    }

    private func service(_ name: String, ip: String) -> String {
        Manifest.service(name, clusterIPs: [ip], ports: [.init(name: "http", port: 80, targetPort: "8080")])
    }

    fileprivate func slice(_ name: String, service: String, _ net: Topology, _ backends: [String]) -> String {
        Manifest.slice(name, service: service, apiVersion: "discovery.k8s.io/v1beta1", ports: [("http", "TCP", 8080)],
                       endpoints: backends.map { .init(address: net.backend($0).ipv4) })
    }

    /// Polls until `check` holds or `deadline` passes; returns the time it took, or nil.
    private func eventually(within deadline: Duration, _ check: () async throws -> Bool) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < deadline {
            if try await check() { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// The backend that answered, or nil when the request failed. A client process that could not be
    /// run or observed (a harness problem, not a network outcome) is retried once.
    private func reply(_ net: Topology, _ vip: String, port: Int = 41000) async throws -> String? {
        do {
            return try await net.request(from: "c1", to: vip, port: 80, proto: .tcp, sourcePort: port,
                                         timeout: .milliseconds(300)).reply
        } catch {
            print("agent test: client process problem (retrying once): \(String(describing: error).prefix(200))")
            return try await net.request(from: "c1", to: vip, port: 80, proto: .tcp, sourcePort: port,
                                         timeout: .milliseconds(300)).reply
        }
    }

    /// A topology with the control plane in its node n1; both are gone afterwards, whatever happens.
    private func withNodeAndControlPlane(_ body: (Topology, ControlPlane) async throws -> Void) async throws {
        try await withControlPlane(in: Self.topology, body)
    }

    @Test("Services through the API: create, move, delete; API restart, agent restart, drift repair, healthz, metrics")
    func agentScenario() async throws {
        try await withNodeAndControlPlane { net, plane in try await scenario(net, plane) }
    }

    private func scenario(_ net: Topology, _ plane: ControlPlane) async throws {
        for b in ["b1", "b2"] { try await net.startServer(on: b, proto: .tcp, port: 8080) }
        try await plane.apply([SB.nodeManifest(net)])
        var agent = try startAgent(net, plane)
        let ns = net.node("n1").namespace
        // Wait for the agent's first sync (its table exists). A probe sent before any rule for the VIP
        // leaves an un-NATed SYN_SENT conntrack entry for its fixed source port, which later probes from
        // that port would keep hitting for two minutes (TCP entries are not cleaned, as in kube-proxy).
        let synced = try await eventually(within: .seconds(15)) {
            try await Shell.run(["nft", "list", "tables"], in: ns).stdout.contains("ip switchboard")
        }
        #expect(synced != nil, "the agent never synced; it said:\n\(agent.output().stderr.suffix(4000))")

        // 1. A Service created through the API answers.
        let start = ContinuousClock.now
        try await plane.apply([service("web", ip: "10.96.0.10"), slice("web-1", service: "web", net, ["b1"])])
        let created = try await eventually(within: .seconds(15)) { try await reply(net, "10.96.0.10") == "b1" }
        #expect(created != nil, "the Service never answered; the agent said:\n\(agent.output().stderr.suffix(6000))")
        print("agent: kubectl apply → first successful request: \(ContinuousClock.now - start)")

        // 2. An EndpointSlice update moves traffic.
        try await plane.apply([slice("web-1", service: "web", net, ["b2"])])
        let moved = try await eventually(within: .seconds(10)) { try await reply(net, "10.96.0.10", port: 41001) == "b2" }
        #expect(moved != nil, "traffic did not move to b2")
        print("agent: EndpointSlice update → traffic moved: \(moved.map { "\($0)" } ?? "never")")

        // 3. healthz and metrics over HTTP.
        let healthz = try await Shell.run(["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", "http://127.0.0.1:10256/healthz"], in: ns)
        #expect(healthz.stdout == "200")
        #expect(healthz.stderr.contains("\"lastUpdated\"") && healthz.stderr.contains("\"currentTime\""))
        let metrics = try await Shell.run(["curl", "-s", "http://127.0.0.1:10249/metrics"], in: ns).checked().stdout
        for name in ["kubeproxy_sync_proxy_rules_duration_seconds", "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                     "kubeproxy_network_programming_duration_seconds", "switchboard_sync_total"] {
            #expect(metrics.contains(name), "\(name) missing from /metrics")
        }
        #expect(try await Shell.run(["curl", "-s", "http://127.0.0.1:10249/proxyMode"], in: ns).stdout == "nftables")

        // 4. The API server goes away and comes back: traffic never stops; changes apply after.
        let restart = try plane.restartAPIServer(pause: 2)
        var failures = 0
        for i in 0..<15 {
            if try await reply(net, "10.96.0.10", port: 41100 + i) != "b2" { failures += 1 }
            try await Task.sleep(for: .milliseconds(150))
        }
        _ = await restart.wait()
        #expect(failures == 0, "\(failures) requests failed while the API server was down")
        let back = ContinuousClock.now
        try await plane.apply([slice("web-1", service: "web", net, ["b1"])])
        let afterRestart = try await eventually(within: .seconds(30)) { try await reply(net, "10.96.0.10", port: 41002) == "b1" }
        #expect(afterRestart != nil, "a change after the API server's return never applied")
        print("agent: API server back → change applied: \(ContinuousClock.now - back)")
        // Issue 11: within 3 s of its return (an unreachable server is retried within 2 s, however long it was away).
        #expect(afterRestart.map { $0 <= .seconds(3) } ?? false, "the change after the restart took \(String(describing: afterRestart))")

        // 5. The agent is killed: traffic keeps flowing; on restart it resyncs without a gap.
        #expect(agent.signal(SIGKILL))
        _ = await agent.wait()
        for i in 0..<5 { #expect(try await reply(net, "10.96.0.10", port: 41200 + i) == "b1", "traffic stopped with the agent") }
        agent = try startAgent(net, plane)
        for i in 0..<10 {
            #expect(try await reply(net, "10.96.0.10", port: 41300 + i) == "b1", "traffic stopped while the agent restarted")
            try await Task.sleep(for: .milliseconds(100))
        }

        // 6. The ruleset flushed by hand (a firewall reload): restored within syncPeriod (2 s), found by
        // the tables' canary. (A flush of rules only keeps the canary; it is repaired by the hourly rebuild.)
        try await Shell.run(["nft", "flush", "ruleset"], in: ns).checked()
        #expect(try await reply(net, "10.96.0.10", port: 41400) == nil, "the flush did not take effect")
        let repaired = try await eventually(within: .seconds(8)) { try await reply(net, "10.96.0.10", port: 41401) == "b1" }
        #expect(repaired != nil, "the flushed ruleset was not restored")
        print("agent: ruleset flushed by hand → restored after \(repaired.map { "\($0)" } ?? "never")")

        // 7. A deleted Service stops answering.
        try await plane.kubectl(["delete", "service", "web"])
        let deleted = try await eventually(within: .seconds(10)) { try await reply(net, "10.96.0.10", port: 41003) == nil }
        #expect(deleted != nil, "the deleted Service still answers")

        // Graceful stop leaves the rules in place.
        try await plane.apply([service("kept", ip: "10.96.0.20"), slice("kept-1", service: "kept", net, ["b2"])])
        _ = try await eventually(within: .seconds(10)) { try await reply(net, "10.96.0.20") == "b2" }
        let status = await agent.stop(grace: .seconds(10))
        #expect(status == ExitStatus(code: 0), "SIGTERM should stop the agent cleanly: \(status)")
        #expect(try await reply(net, "10.96.0.20", port: 41500) == "b2", "rules were flushed on stop")
    }

    /// Issue 11, resources: a long-running agent's descriptors, threads and RSS stay flat over 10k syncs,
    /// and start → sync → SIGTERM ends with exit 0 and the rules in place, 100 times in a row.
    @Test("resources: descriptors, threads and RSS flat over 10k syncs; SIGTERM after a sync exits 0, 100 times")
    func resourcesAndRepeatedShutdown() async throws {
        try await withNodeAndControlPlane { net, plane in
            try await webOnB1(net, plane)
            let ns = net.node("n1").namespace

            // Periodic syncs every 10 ms (each reads the tables' canary through libnftables).
            let agent = try startAgent(net, plane, periods: ["--min-sync-period", "0s", "--sync-period", "10ms", "--v", "0"])
            func syncs() async throws -> Int {
                let metrics = try await Shell.run(["curl", "-s", "http://127.0.0.1:10249/metrics"], in: ns)
                let line = metrics.stdout.split(separator: "\n")
                    .first { $0.hasPrefix("kubeproxy_sync_proxy_rules_duration_seconds_count ") }
                return line.flatMap { Double($0.split(separator: " ")[1]) }.map { Int($0) } ?? 0
            }
            func counts() throws -> (fds: Int, threads: Int, rssKB: Int) {
                let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd").count
                let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/task").count
                let status = try String(contentsOfFile: "/proc/\(agent.pid)/status", encoding: .utf8)
                let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
                    .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
                return (fds, threads, rss)
            }
            #expect(try await eventually(within: .seconds(30)) { try await syncs() >= 200 } != nil, "no syncs")
            let early = try counts()
            let earlySyncs = try await syncs()
            #expect(try await eventually(within: .seconds(900)) { try await syncs() >= earlySyncs + 10_000 } != nil,
                    "10k more syncs did not happen")
            let late = try counts()
            print("agent: after \(earlySyncs) syncs \(early.fds) fds / \(early.threads) threads / RSS \(early.rssKB) kB; "
                + "after \(try await syncs()) syncs \(late.fds) fds / \(late.threads) threads / RSS \(late.rssKB) kB")
            // A leak of 1.6 kB per sync would pass this bound; the figure printed is what the README reports.
            #expect(late.rssKB <= early.rssKB + 16_384, "RSS grew: \(early.rssKB) kB → \(late.rssKB) kB")
            #expect(late.fds == early.fds, "descriptors grew: \(early.fds) → \(late.fds)")
            // libdispatch starts and retires worker threads by itself; a leak would grow with the 2000 syncs.
            #expect(late.threads <= early.threads + 4, "threads grew: \(early.threads) → \(late.threads)")
            #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))

            // Start, first sync, SIGTERM: 100 times.
            var failures: [String] = []
            // Each probe from its own source port: a SYN that races the cold start's batches can leave an
            // un-NATed conntrack entry that would fail every later probe from its port for two minutes.
            var probe = 52000
            for round in 1...100 {
                _ = try await Shell.run(["nft", "delete", "table", "ip", "switchboard"], in: ns)  // each start is cold
                let run = try startAgent(net, plane)
                let synced = try await eventually(within: .seconds(20)) {
                    probe += 1
                    return try await reply(net, "10.96.0.10", port: probe) == "b1"
                }
                let status = await run.stop(grace: .seconds(10))
                if synced == nil || status != ExitStatus(code: 0) {
                    failures.append("round \(round): synced \(synced != nil), \(status)\n\(run.output().stderr.suffix(2000))")
                }
                if try await reply(net, "10.96.0.10", port: 43000 + round) != "b1" {
                    failures.append("round \(round): rules not in place after SIGTERM")
                }
            }
            #expect(failures.isEmpty, "\(failures.count) of 100 rounds failed; first: \(failures.first ?? "")")
        }
    }

    /// Issue 11, kernel faults: our ruleset damaged out of band while traffic flows. A deleted table or a
    /// flushed ruleset loses the canary and is rebuilt at the next periodic sync; a flushed chain or a
    /// removed element keeps it, and is repaired by the next full rebuild (`--full-rebuild-period`, 1h by
    /// default, 4 s here). The times printed are the README's "Failure behaviour" figures.
    @Test("kernel faults: table deleted, ruleset flushed 5 times, chain flushed, element removed: each repaired")
    func kernelFaultsAreRepaired() async throws {
        try await withNodeAndControlPlane { net, plane in
            try await webOnB1(net, plane)
            let ns = net.node("n1").namespace
            let agent = try startAgent(
                net, plane, periods: ["--min-sync-period", "100ms", "--sync-period", "1s", "--full-rebuild-period", "4s", "--v", "2"])
            var port = 44000
            func answers() async throws -> Bool {
                port += 1
                return try await reply(net, "10.96.0.10", port: port) == "b1"
            }
            #expect(try await eventually(within: .seconds(20)) { try await answers() } != nil, "never synced")

            func fault(_ name: String, _ command: [String], within limit: Duration) async throws {
                try await Shell.run(command, in: ns).checked()
                #expect(try await !answers(), "\(name): the fault did not break the Service")
                let repaired = try await eventually(within: limit) { try await answers() }
                #expect(repaired != nil, "\(name): not repaired within \(limit)")
                print("agent fault: \(name) → traffic back after \(repaired.map { "\($0)" } ?? "never")")
            }
            try await fault("table deleted", ["nft", "delete", "table", "ip", "switchboard"], within: .seconds(5))
            for round in 1...5 {
                try await fault("nft flush ruleset (\(round) of 5)", ["nft", "flush", "ruleset"], within: .seconds(5))
                try await Task.sleep(for: .seconds(1))
            }
            try await fault("chain services flushed", ["nft", "flush", "chain", "ip", "switchboard", "services"],
                            within: .seconds(12))
            try await fault("cluster IP's dispatch element removed",
                            // Whichever dispatch set (per Maglev table size) holds it.
                            ["bash", "-c", "for m in 13 31 61 127 251 509 1021; do nft delete element ip switchboard "
                                + "service-ips-m$m '{ 10.96.0.10 . tcp . 80 }' 2>/dev/null && exit 0; done; exit 1"],
                            within: .seconds(12))
            #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))
        }
    }

    /// Issue 11, kernel faults: the agent SIGKILLed in the middle of the cold sync of 2000 Services (10
    /// endpoints each: about 278k elements, which the agent writes in bounded batches, so a kill can land
    /// between two of them), at several points of it. Each time, a restarted agent ends with exactly the
    /// ruleset the cluster calls for (`switchboard diff` exits 0) and the Service answers.
    @Test("SIGKILL during a cold sync of 2000 Services, then a restart: the ruleset ends exactly right")
    func killedDuringColdSync() async throws {
        try await withNodeAndControlPlane { net, plane in
            try await webOnB1(net, plane)
            let ns = net.node("n1").namespace
            // 2000 Services beside `web`, each with a slice of 10 endpoints (addresses nothing answers on:
            // only `web` carries traffic), created 500 objects at a time.
            var objects: [String] = []
            for i in 0..<2000 {
                let ip = "10.96.\(20 + i / 250).\(1 + i % 250)"
                objects.append(service("bulk-\(i)", ip: ip))
                objects.append(Manifest.slice(
                    "bulk-\(i)-1", service: "bulk-\(i)", apiVersion: "discovery.k8s.io/v1beta1",
                    ports: [("http", "TCP", 8080)],
                    endpoints: (1...10).map { .init(address: "10.244.\(i / 20).\((i % 20) * 10 + $0)") }))
            }
            for start in stride(from: 0, to: objects.count, by: 500) {
                try await plane.kubectl(["create", "-f", "-"], input: Manifest.stream(Array(objects[start..<min(start + 500, objects.count)])))
            }
            let diff = [SwitchboardBinary.path!, "diff", "--kubeconfig", plane.nodeKubeconfig, "--hostname-override", "n1",
                        "--cluster-cidr", SB.clusterCIDRs]
            /// What the kernel holds: no table, a table without its canary (a cold sync cut short: the
            /// canary goes in with the last batch), or a table with it.
            func kernelState() async throws -> String {
                let canary = try await Shell.run(["nft", "list", "set", "ip", "switchboard", "canary"], in: ns,
                                                 timeout: .seconds(60))
                if !canary.succeeded { return "no table" }
                return canary.stdout.contains("elements = { 1 }") ? "complete" : "partial (no canary)"
            }
            func synced(_ agent: BackgroundProcess) -> Bool { agent.output().stderr.contains(" synced") }

            /// Our table exists (its first batch is in): `list chains` is cheap, unlike any listing of sets.
            func tableExists() async throws -> Bool {
                try await Shell.run(["nft", "list", "chains", "ip"], in: ns).stdout.contains("table ip switchboard")
            }

            // One cold sync, undisturbed, to learn how long its batches take (from the table's first batch
            // to the log's "synced").
            let first = try startAgent(net, plane)
            let appeared = try #require(try await eventually(within: .seconds(120)) { try await tableExists() },
                                        "the cold sync never created the table")
            // (`eventually` counts from its own start: this is the time from the table's appearance.)
            let cold = try await eventually(within: .seconds(120)) { synced(first) }
            let batches = try #require(cold, "the cold sync of 2000 Services did not finish")
            #expect(first.output().stderr.contains("batches="), "the cold sync was not batched: nothing to cut")
            #expect(await first.stop(grace: .seconds(10)) == ExitStatus(code: 0))
            print("agent: cold sync of 2000 Services (10 endpoints each): table \(appeared) after the start, synced \(batches) later")

            // Killed once the table is there, at 0, 0.4 and 0.8 of the batches' time; restarted over what it left.
            var partial = 0
            for (round, fraction) in [0.0, 0.4, 0.8].enumerated() {
                _ = try await Shell.run(["nft", "delete", "table", "ip", "switchboard"], in: ns)
                let doomed = try startAgent(net, plane)
                _ = try await eventually(within: .seconds(120)) { try await tableExists() }
                try await Task.sleep(for: batches * fraction)
                #expect(doomed.signal(SIGKILL))
                _ = await doomed.wait()
                let left = try await kernelState()
                if left.hasPrefix("partial") { partial += 1 }
                let agent = try startAgent(net, plane)
                let resynced = try await eventually(within: .seconds(120)) { synced(agent) }
                let check = try await Shell.run(diff, in: ns, timeout: .seconds(120))
                let answers = try await reply(net, "10.96.0.10", port: 47000 + round)
                print("agent: SIGKILL at \(fraction) of the cold sync's batches left \(left); restarted, synced after "
                    + "\(resynced.map { "\($0)" } ?? "never"); diff exit \(check.status.code); web answered by \(answers ?? "nobody")")
                #expect(resynced != nil, "kill at \(fraction): no sync after the restart\n\(agent.output().stderr.suffix(3000))")
                #expect(check.status.code == 0,
                        "kill at \(fraction): the kernel differs from the cluster\n\(check.stdout.prefix(3000))\(check.stderr.prefix(2000))")
                #expect(answers == "b1", "kill at \(fraction): web did not answer")
                #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))
            }
            #expect(partial > 0, "no kill landed in the middle of the cold sync (a table without its canary)")
        }
    }

    /// Issue 11, API faults: the API server frozen (SIGSTOP: its socket accepts, nothing answers) for 30 s
    /// while traffic flows. Rules stay, the agent stays healthy (nothing is waiting to be synced), and a
    /// change made as soon as the server is back is programmed within 3 s.
    @Test("API server frozen for 30 s: traffic unaffected, healthz 200, a change after it programmed within 3 s")
    func frozenAPIServer() async throws {
        try await withNodeAndControlPlane { net, plane in
            try await net.startServer(on: "b2", proto: .tcp, port: 8080)
            try await webOnB1(net, plane)
            let ns = net.node("n1").namespace
            let agent = try startAgent(net, plane)
            #expect(try await eventually(within: .seconds(20)) { try await reply(net, "10.96.0.10") == "b1" } != nil)
            let pids = try String(contentsOf: plane.directory.appendingPathComponent("pids"), encoding: .utf8)
            let lines = pids.split(separator: "\n")
            let apiserver = try #require(lines.count >= 2 ? Int32(lines[1]) : nil, "no API server pid in \(pids)")
            #expect(kill(apiserver, SIGSTOP) == 0)
            var failed = 0, made = 0
            let frozen = ContinuousClock.now
            do {
                while ContinuousClock.now - frozen < .seconds(30) {
                    made += 1
                    if try await reply(net, "10.96.0.10", port: 45000 + made) != "b1" { failed += 1 }
                    try await Task.sleep(for: .milliseconds(200))
                }
                let healthz = try await Shell.run(
                    ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:10256/healthz"], in: ns)
                #expect(healthz.stdout == "200", "healthz while the API is frozen with nothing to sync")
            } catch {
                kill(apiserver, SIGCONT)
                throw error
            }
            #expect(kill(apiserver, SIGCONT) == 0)
            #expect(failed == 0, "\(failed) of \(made) connections failed while the API server was frozen")
            #expect(agent.isRunning)
            // Back: move the Service to b2; programmed within 3 s of the change.
            try await plane.apply([slice("web-1", service: "web", net, ["b2"])])
            let applied = ContinuousClock.now
            let moved = try await eventually(within: .seconds(10)) { try await reply(net, "10.96.0.10", port: 46000) == "b2" }
            print("agent: API frozen 30 s (\(made) connections, \(failed) failed) → change after it programmed in "
                + "\(moved.map { "\($0)" } ?? "never") (from the apply's return: \(ContinuousClock.now - applied))")
            #expect(moved != nil && moved! <= .seconds(3), "the change after the freeze took \(String(describing: moved))")
            #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))
        }
    }

    // MARK: - API faults through a fault-injecting proxy

    /// What one fault did to the agent, with traffic flowing and a Service changing every second.
    private struct FaultOutcome {
        var connections = 0
        /// When and how each failed connection failed, from the start of the traffic.
        var failures: [String] = []
        var failed: Int { failures.count }
        var timeline: [String] = []
        var healthzSamples = 0
        var healthzNot200: [String] = []
        var churnChanges = 0
        var rssBeforeKB = 0, rssAfterKB = 0
        /// From the moment the fault says the agent could see the API again to the first connection through
        /// the backend the change moved `web` to.
        var programmed: Duration?
        var log = ""

        /// The agent's log lines about its watches.
        var watchLines: [Substring] {
            log.split(separator: "\n").filter { $0.contains("watch interrupted") || $0.contains("410 Gone") }
        }
    }

    /// Tells the background loops of a fault test to finish.
    private final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
        func set() { flag.store(true, ordering: .relaxed) }
    }

    /// What a fault gets to work with.
    private struct FaultContext {
        let net: Topology
        let plane: ControlPlane
        let proxy: FaultProxy
        let tests: AgentTests

        /// Moves `web` from b1 to b2; `padding` bytes of annotation make its watch event that much larger.
        func moveWeb(padding: Int = 0) async throws {
            var manifest = tests.slice("web-1", service: "web", net, ["b2"])
            if padding > 0 {
                let annotation = "switchboard.test/padding: \"\(String(repeating: "x", count: padding))\""
                manifest = manifest.replacingOccurrences(
                    of: "  labels:\n", with: "  annotations: {\(annotation)}\n  labels:\n")
            }
            try await plane.apply([manifest])
        }
    }

    /// The agent's resident memory, in kB (`VmRSS` of /proc/PID/status).
    private func residentKB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        return line.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }

    /// The API server's port, from the kubeconfig up.sh wrote (`server: https://127.0.0.1:PORT`).
    private func apiPort(_ plane: ControlPlane) throws -> Int {
        let text = try String(contentsOfFile: plane.nodeKubeconfig, encoding: .utf8)
        let server = try #require(text.split(separator: "\n").first { $0.contains("server: https://127.0.0.1:") })
        return try #require(Int(server.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)))
    }

    /// Service `web` (10.96.0.10) on b1, Service `churn` (10.96.0.40) changing its port every second, and the
    /// agent reaching the API only through a `FaultProxy`, with connections through `web` flowing (one every
    /// ~150 ms, from source ports `ports` on) and /healthz sampled every second. `fault` injects the fault,
    /// moves `web` to b2 and returns the moment the agent could see the API again; the outcome has how long
    /// the move then took to program, what the agent logged, and its memory before and after. Expects no
    /// failed connection, healthz 200 throughout, and RSS growth under 50 MB.
    private func underAPIFault(
        _ name: String, agentFlags: [String] = [], ports: Int,
        _ fault: (FaultContext) async throws -> ContinuousClock.Instant
    ) async throws -> FaultOutcome {
        var outcome = FaultOutcome()
        try await withNodeAndControlPlane { net, plane in
            try await net.startServer(on: "b2", proto: .tcp, port: 8080)
            try await webOnB1(net, plane)
            try await plane.apply([service("churn", ip: "10.96.0.40"), slice("churn-1", service: "churn", net, ["b2"])])
            let ns = net.node("n1").namespace
            let upstream = try apiPort(plane)
            let proxy = try FaultProxy(namespace: ns, upstreamPort: upstream)
            defer { proxy.close() }
            let kubeconfig = plane.directory.appendingPathComponent("proxied.kubeconfig").path
            try String(contentsOfFile: plane.nodeKubeconfig, encoding: .utf8)
                .replacingOccurrences(of: "https://127.0.0.1:\(upstream)", with: "https://127.0.0.1:\(proxy.port)")
                .write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            let agent = try startAgent(
                net, plane, kubeconfig: kubeconfig,
                periods: ["--min-sync-period", "100ms", "--sync-period", "2s", "--v", "2"] + agentFlags)
            #expect(try await eventually(within: .seconds(20)) { try await reply(net, "10.96.0.10") == "b1" } != nil,
                    "\(name): never synced; the agent said:\n\(agent.output().stderr.suffix(4000))")

            let stop = StopFlag()
            let origin = ContinuousClock.now
            let traffic = Task {
                var made = 0
                var failures: [String] = []
                while !stop.isSet {
                    let result = try await net.request(from: "c1", to: "10.96.0.10", port: 80, proto: .tcp,
                                                       sourcePort: ports + made % 990, timeout: .milliseconds(300))
                    if case .failure(let error) = result { failures.append("at \(ContinuousClock.now - origin): \(error)") }
                    made += 1
                    try await Task.sleep(for: .milliseconds(150))
                }
                return (made, failures)
            }
            let churn = Task {
                var changes = 0
                while !stop.isSet {
                    let port = 81 + changes % 2
                    let patch = #"{"spec":{"ports":[{"name":"http","protocol":"TCP","port":\#(port),"targetPort":8080}]}}"#
                    let command = ["patch", "service", "churn", "--type", "merge", "-p", patch]
                    // Fails while the API server restarts; the loop goes on.
                    if (try? await plane.kubectl(command)) != nil {
                        changes += 1
                    }
                    try await Task.sleep(for: .seconds(1))
                }
                return changes
            }
            let healthz = Task {
                var samples = 0
                var bad: [String] = []
                while !stop.isSet {
                    let code = try await Shell.run(
                        ["curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:10256/healthz"],
                        in: ns
                    ).stdout
                    samples += 1
                    if code != "200" { bad.append(code) }
                    try await Task.sleep(for: .seconds(1))
                }
                return (samples, bad)
            }
            // The baseline after a few seconds of churn, traffic and probes.
            try await Task.sleep(for: .seconds(4))
            outcome.rssBeforeKB = residentKB(agent.pid)
            do {
                outcome.timeline.append("fault at \(ContinuousClock.now - origin)")
                let back = try await fault(FaultContext(net: net, plane: plane, proxy: proxy, tests: self))
                outcome.timeline.append("API back for the agent at \(back - origin)")
                let moved = try await eventually(within: .seconds(30)) {
                    try await reply(net, "10.96.0.10", port: ports + 995) == "b2"
                }
                outcome.programmed = moved == nil ? nil : ContinuousClock.now - back
                // Traffic, churn and probes go on a little after the recovery.
                try await Task.sleep(for: .seconds(4))
            } catch {
                stop.set()
                _ = await (traffic.result, churn.result, healthz.result)
                throw error
            }
            stop.set()
            (outcome.connections, outcome.failures) = try await traffic.value
            outcome.churnChanges = try await churn.value
            (outcome.healthzSamples, outcome.healthzNot200) = try await healthz.value
            outcome.rssAfterKB = residentKB(agent.pid)
            outcome.log = agent.output().stderr
            #expect(agent.isRunning, "\(name): the agent exited:\n\(outcome.log.suffix(4000))")
            #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))
        }
        print("agent API fault: \(name): \(outcome.connections) connections, \(outcome.failed) failed; "
            + "\(outcome.churnChanges) churn changes; healthz 200 in \(outcome.healthzSamples - outcome.healthzNot200.count)"
            + " of \(outcome.healthzSamples) probes; the change programmed \(outcome.programmed.map { "\($0)" } ?? "never")"
            + " after the fault's end; RSS \(outcome.rssBeforeKB) → \(outcome.rssAfterKB) kB\n"
            + outcome.watchLines.map { "  log: \($0.prefix(500))" }.joined(separator: "\n"))
        #expect(outcome.connections > 0 && outcome.failed == 0,
                "\(name): \(outcome.failed) of \(outcome.connections) connections failed: \(outcome.failures); \(outcome.timeline)")
        #expect(outcome.churnChanges > 0, "\(name): the churn Service never changed")
        #expect(outcome.healthzNot200.isEmpty, "\(name): healthz answered \(outcome.healthzNot200)")
        #expect(outcome.rssAfterKB - outcome.rssBeforeKB < 50 << 10,
                "\(name): RSS grew \(outcome.rssBeforeKB) → \(outcome.rssAfterKB) kB")
        return outcome
    }

    /// Issue 11, API faults: a watch cut in the middle of an event. The EndpointSlice that moves `web` carries
    /// a 40 kB annotation, so its event spans several TLS records; the proxy forwards the first 24 kB of it (a
    /// record and a half: part of the JSON frame arrives) and resets the connection. The watch resumes from
    /// its last resourceVersion and gets the whole event again.
    @Test("a watch cut in the middle of an event, under traffic: 0 failed, the change programmed within 3 s")
    func watchCutMidFrame() async throws {
        let outcome = try await underAPIFault("watch cut mid-event", ports: 47000) { fault in
            #expect(fault.proxy.cut(after: 24_000) >= 3, "the agent's watches are not all through the proxy")
            try await fault.moveWeb(padding: 40_000)
            let applied = ContinuousClock.now
            #expect(try await eventually(within: .seconds(10)) { fault.proxy.cuts >= 1 } != nil, "nothing was cut")
            return applied
        }
        #expect(outcome.programmed != nil && outcome.programmed! <= .seconds(3),
                "the change whose event was cut took \(String(describing: outcome.programmed))")
        #expect(outcome.watchLines.contains { $0.contains("EndpointSlice watch interrupted") },
                "no log line for the cut EndpointSlice watch")
    }

    /// Issue 11, API faults: a response that never ends. The proxy stops forwarding the server's bytes on
    /// every open connection (they stay open), and `web` is moved meanwhile. With `--api-read-timeout 6s`
    /// (90 s by default) the silent watches are cut as dead and resumed on new connections.
    @Test("a watch that goes silent (connection open, nothing forwarded): noticed after the read timeout, the change programmed")
    func stalledWatch() async throws {
        let readTimeout = Duration.seconds(6)
        let outcome = try await underAPIFault("response that never ends", agentFlags: ["--api-read-timeout", "6s"],
                                              ports: 48000) { fault in
            let stalled = ContinuousClock.now
            #expect(fault.proxy.stall() >= 3, "the agent's watches are not all through the proxy")
            try await fault.moveWeb()
            // The agent is away until its read timeout notices the silence (at most 6 s after the stall).
            return stalled + readTimeout
        }
        print("agent API fault: response that never ends → the change made during it programmed "
            + "\(outcome.programmed.map { "\(readTimeout + $0)" } ?? "never") after the stall began")
        #expect(outcome.programmed != nil && outcome.programmed! <= .seconds(3),
                "the change made during the stall took \(String(describing: outcome.programmed)) after the read timeout")
        #expect(outcome.watchLines.contains { $0.contains("no data for 6.0 seconds") },
                "no log line naming the read timeout")
    }

    /// Issue 11, API faults: `410 Gone`. The proxy holds the agent's connections (nothing forwarded, new ones
    /// never answered) while the Service keeps changing and the API server restarts: the new server's watch
    /// cache starts at etcd's current revision, older than nothing the agent has. When the proxy lets go, the
    /// agent's resumed watches are refused with 410 ("too old resource version"), it lists again, and the
    /// change made while it was away is programmed.
    @Test("410 Gone after an API server restart the agent missed: re-listed, the change programmed within 3 s")
    func goneAfterMissedRestart() async throws {
        let outcome = try await underAPIFault("410 Gone", ports: 49000) { fault in
            let held = ContinuousClock.now
            #expect(fault.proxy.hold() >= 3, "the agent's watches are not all through the proxy")
            try await Task.sleep(for: .seconds(2))  // churn the agent does not see
            let restart = try fault.plane.restartAPIServer(pause: 0)
            #expect(await restart.wait() == ExitStatus(code: 0), "the API server did not come back")
            try await fault.moveWeb()
            let back = ContinuousClock.now
            print("agent API fault: 410 Gone: the agent was cut off for \(back - held), the API server restarted meanwhile")
            #expect(fault.proxy.release() >= 3)
            return back
        }
        #expect(outcome.programmed != nil && outcome.programmed! <= .seconds(3),
                "the change made while the agent was away took \(String(describing: outcome.programmed))")
        #expect(outcome.watchLines.contains { $0.contains("resourceVersion expired (410 Gone); re-listing") },
                "no 410 in the agent's log")
    }

    /// kube-proxy's health checks for `externalTrafficPolicy: Local`: the agent serves the Service's
    /// healthCheckNodePort on the node, and the answer follows this node's ready endpoints.
    @Test("healthCheckNodePort: 200 with a local endpoint, 503 without, closed when the policy or the Service goes")
    func healthCheckNodePorts() async throws {
        try await withNodeAndControlPlane { net, plane in try await healthCheckScenario(net, plane) }
    }

    private func healthCheckScenario(_ net: Topology, _ plane: ControlPlane) async throws {
        try await plane.apply([SB.nodeManifest(net)])
        // `run --config` alone: kubeconfig, node name and periods from the file (had it not been read,
        // the agent would look for an in-cluster service account and exit).
        let config = plane.directory.appendingPathComponent("switchboard-config.yaml")
        try """
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            clientConnection: {kubeconfig: "\(plane.nodeKubeconfig)"}
            hostnameOverride: n1
            clusterCIDR: "\(SB.clusterCIDRs)"
            nftables: {minSyncPeriod: 100ms, syncPeriod: 2s}
            logging: {verbosity: 2}
            """.write(to: config, atomically: true, encoding: .utf8)
        let agent = try Shell.start([SwitchboardBinary.path!, "run", "--config", config.path], in: net.node("n1").namespace)
        net.adopt(agent)
        let ns = net.node("n1").namespace
        let url = "http://\(net.node("n1").ipv4):32100/healthz"
        func loadBalancer(policy: String) -> String {
            """
            apiVersion: v1
            kind: Service
            metadata:
              name: lb
              namespace: default
            spec:
              type: LoadBalancer
              clusterIP: "10.96.0.30"
              ports:
              - {name: http, protocol: TCP, port: 80, targetPort: 8080}
              externalTrafficPolicy: \(policy)
            \(policy == "Local" ? "  healthCheckNodePort: 32100\n" : "")
            """
        }
        func slice(on node: String) -> String {
            Manifest.slice("lb-1", service: "lb", apiVersion: "discovery.k8s.io/v1beta1", ports: [("http", "TCP", 8080)],
                           endpoints: [.init(address: net.backend("b1").ipv4, nodeName: node)])
        }
        /// curl in the node: status ("000": no connection), content type and body.
        func probe() async throws -> (status: String, type: String, body: String) {
            let r = try await Shell.run(
                ["curl", "-s", "-m", "2", "-o", "/dev/stderr", "-w", "%{http_code} %{content_type}", url], in: ns)
            let parts = r.stdout.split(separator: " ", maxSplits: 1).map(String.init)
            return (parts.first ?? "", parts.count > 1 ? parts[1] : "", r.stderr)
        }

        // A ready endpoint on this node: 200, one local endpoint.
        try await plane.apply([loadBalancer(policy: "Local"), slice(on: "n1")])
        var last = (status: "", type: "", body: "")
        let opened = try await eventually(within: .seconds(15)) {
            last = try await probe()
            return last.status == "200"
        }
        #expect(opened != nil, "no 200 from the health check: \(last)")
        #expect(last.type == "application/json")
        #expect(last.body.contains("\"namespace\": \"default\"") && last.body.contains("\"name\": \"lb\""), "\(last.body)")
        #expect(last.body.contains("\"localEndpoints\": 1,") && last.body.contains("\"serviceProxyHealthy\": true"), "\(last.body)")
        print("agent: health check answered 200 after \(opened.map { "\($0)" } ?? "never"): \(last.body.debugDescription)")

        // The endpoint moves to another node: 503, none local.
        try await plane.apply([slice(on: "n2")])
        let moved = try await eventually(within: .seconds(10)) {
            last = try await probe()
            return last.status == "503"
        }
        #expect(moved != nil, "no 503 after the endpoint moved: \(last)")
        #expect(last.body.contains("\"localEndpoints\": 0,"), "\(last.body)")

        // Back on this node, then the policy switches to Cluster: the port refuses connections.
        try await plane.apply([slice(on: "n1")])
        #expect(try await eventually(within: .seconds(10)) { try await probe().status == "200" } != nil)
        try await plane.apply([loadBalancer(policy: "Cluster")])
        let closed = try await eventually(within: .seconds(10)) { try await probe().status == "000" }
        #expect(closed != nil, "the health check still answers with policy Cluster")

        // Local again: it reopens; the Service is deleted: closed again.
        try await plane.apply([loadBalancer(policy: "Local")])
        #expect(try await eventually(within: .seconds(10)) { try await probe().status == "200" } != nil, "no reopen")
        try await plane.kubectl(["delete", "service", "lb"])
        let deleted = try await eventually(within: .seconds(10)) { try await probe().status == "000" }
        #expect(deleted != nil, "the health check still answers after the Service was deleted")

        let status = await agent.stop(grace: .seconds(10))
        #expect(status == ExitStatus(code: 0), "SIGTERM should stop the agent cleanly: \(status)\n\(agent.output().stderr.suffix(6000))")
    }

    /// Issue 11, "least privilege, proven": deploy/switchboard.yaml's RBAC applied to the real API server, and
    /// the agent run in-cluster (its service-account directory bind-mounted in a private mount namespace, a
    /// TokenRequest token of deploy/'s ServiceAccount, no kubeconfig). With the role it programs Services; the
    /// role has read verbs only; with any one rule, or any one verb of a rule, taken away, the agent logs one
    /// error naming the missing permission, keeps retrying, and says so once the permission is back.
    @Test("deploy/'s RBAC, in-cluster with a TokenRequest token: programs Services; each rule or verb removed is named")
    func rbacFromDeploy() async throws {
        try await withNodeAndControlPlane { net, plane in try await rbacScenario(net, plane) }
    }

    /// deploy/switchboard.yaml's ServiceAccount, ClusterRole and ClusterRoleBinding, and the role's rules.
    private struct DeployRBAC {
        struct Rule: CustomStringConvertible {
            var groups: [String]
            var resources: [String]
            var verbs: [String]
            /// `endpointslices.discovery.k8s.io`, `services`: as the agent's errors and `kubectl auth can-i` name it.
            var resource: String { resources[0] + (groups[0].isEmpty ? "" : ".\(groups[0])") }
            var yaml: String {
                func list(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
                return "- {apiGroups: \(list(groups)), resources: \(list(resources)), verbs: \(list(verbs))}"
            }
            var description: String { "\(verbs.joined(separator: ",")) \(resource)" }
        }

        var documents: [String]
        var serviceAccount: (name: String, namespace: String)
        var roleName: String
        var rules: [Rule]

        init() throws {
            let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("deploy/switchboard.yaml").path
            let text = try String(contentsOfFile: path, encoding: .utf8)
            var documents: [String] = []
            var account: (String, String)?
            var role: (String, [Rule])?
            for raw in text.components(separatedBy: "\n---\n") {
                guard let value = try JSONValue.documents(yaml: raw).first?.content.get() else { continue }
                guard case .string(let kind)? = value["kind"], case .string(let name)? = value["metadata"]?["name"]
                else { continue }
                switch kind {
                case "ServiceAccount":
                    guard case .string(let namespace)? = value["metadata"]?["namespace"] else { continue }
                    account = (name, namespace)
                case "ClusterRole":
                    guard case .array(let items)? = value["rules"] else { continue }
                    role = (name, try items.map { item in
                        func strings(_ key: String) throws -> [String] {
                            guard case .array(let values)? = item[key] else { throw SetupError("a rule without \(key)") }
                            return values.compactMap { if case .string(let s) = $0 { s } else { nil } }
                        }
                        return Rule(groups: try strings("apiGroups"), resources: try strings("resources"),
                                    verbs: try strings("verbs"))
                    })
                case "ClusterRoleBinding": break
                default: continue
                }
                documents.append(raw)
            }
            self.documents = documents
            serviceAccount = try #require(account, "no ServiceAccount in \(path)")
            (roleName, rules) = try #require(role, "no ClusterRole in \(path)")
        }

        /// The ClusterRole with these rules instead.
        func role(_ rules: [Rule]) -> String {
            """
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata:
              name: \(roleName)
            rules:
            \(rules.isEmpty ? "[]" : rules.map(\.yaml).joined(separator: "\n"))
            """
        }
    }

    private func rbacScenario(_ net: Topology, _ plane: ControlPlane) async throws {
        let rbac = try DeployRBAC()
        #expect(rbac.documents.count == 3, "ServiceAccount, ClusterRole, ClusterRoleBinding")
        // "It never writes to the API": the role grants read verbs only, on named resources (no wildcards),
        // and the agent works under it (below); `ReadOnlyClientTests` shows the client only sends GET.
        for rule in rbac.rules {
            #expect(Set(rule.verbs).isSubset(of: ["get", "list", "watch"]), "a write verb in \(rule)")
            #expect(!rule.verbs.contains("*") && !rule.resources.contains("*") && !rule.groups.contains("*"), "\(rule)")
            #expect(rule.groups.count == 1 && rule.resources.count == 1, "one resource per rule, so each is tested: \(rule)")
        }
        try await plane.apply(rbac.documents)

        // A token for the ServiceAccount from the TokenRequest API, as the kubelet projects one into a pod.
        let (account, namespace) = rbac.serviceAccount
        let token = try await plane.kubectl(["create", "token", account, "-n", namespace, "--duration", "1h"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.split(separator: ".").count == 3, "not a JWT: \(token.prefix(40))")
        let secrets = plane.directory.appendingPathComponent("serviceaccount")
        try FileManager.default.createDirectory(at: secrets, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: plane.directory.appendingPathComponent("pki/ca.crt"),
                                         to: secrets.appendingPathComponent("ca.crt"))
        try token.write(to: secrets.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try namespace.write(to: secrets.appendingPathComponent("namespace"), atomically: true, encoding: .utf8)
        let kubeconfig = try plane.writeKubeconfig("switchboard.kubeconfig", token: token)

        // The role allows what the agent needs, and not more.
        func kubectl(_ args: [String]) async throws -> ShellResult {
            try await Shell.run(["kubectl", "--kubeconfig", kubeconfig] + args, in: plane.namespace)
        }
        #expect(try await kubectl(["get", "endpointslices", "-A"]).succeeded)
        let secretList = try await kubectl(["get", "secrets", "-A"])
        #expect(!secretList.succeeded && secretList.stderr.contains("forbidden"), "\(secretList.stderr)")
        let write = try await kubectl(["create", "service", "clusterip", "x", "--tcp=80:80"])
        #expect(!write.succeeded && write.stderr.contains("forbidden"), "\(write.stderr)")

        try await webOnB1(net, plane)
        let agent = try startInClusterAgent(net, plane, serviceAccount: secrets.path)
        let answered = try await eventually(within: .seconds(15)) { try await reply(net, "10.96.0.10") == "b1" }
        #expect(answered != nil, "the in-cluster agent did not program the Service:\n\(agent.output().stderr.suffix(4000))")
        #expect(!agent.output().stderr.contains("missing permission"), "\(agent.output().stderr.suffix(4000))")

        // `diff --kubeconfig`: the operator's dry run lists the cluster once and compares with the
        // kernel: equal to what the agent applied (exit 0), different once the cluster changed (exit 1).
        let diffArgs = [SwitchboardBinary.path!, "diff", "--kubeconfig", kubeconfig, "--hostname-override", "n1",
                        "--cluster-cidr", SB.clusterCIDRs]
        let same = try await Shell.run(diffArgs, in: plane.namespace, timeout: .seconds(60))
        #expect(same.status.code == 0, "\(same.stdout)\(same.stderr)")
        #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))
        try await plane.apply([service("web2", ip: "10.96.0.11")])
        let changed = try await Shell.run(diffArgs + ["--transaction"], in: plane.namespace, timeout: .seconds(60))
        #expect(changed.status.code == 1, "\(changed.stderr)")
        #expect(
            changed.stdout.contains(
                #"add element ip switchboard no-endpoint-services { 10.96.0.11 . tcp . 80 comment "default/web2:http" }"#),
            "\(changed.stdout)")

        // Each rule taken away, then each verb of a rule: the agent names what is missing (the first request
        // for a resource is its list), keeps retrying, and notices when the full role is back.
        var variants: [(rules: [DeployRBAC.Rule], missing: String)] = []
        for (index, rule) in rbac.rules.enumerated() {
            var rules = rbac.rules
            rules.remove(at: index)
            variants.append((rules, "list \(rule.resource)"))
        }
        for (index, rule) in rbac.rules.enumerated() {
            for verb in rule.verbs {
                var rules = rbac.rules
                rules[index].verbs.removeAll { $0 == verb }
                variants.append((rules, "\(verb) \(rule.resource)"))
            }
        }
        let user = "system:serviceaccount:\(namespace):\(account)"
        func allowed(_ permission: String) async throws -> Bool {
            let words = permission.split(separator: " ").map(String.init)
            return try await Shell.run(["kubectl", "--kubeconfig", plane.adminKubeconfig, "auth", "can-i", words[0],
                                        words[1], "--all-namespaces", "--as", user], in: plane.namespace).succeeded
        }
        var figures: [String] = []
        for variant in variants {
            try await plane.kubectl(["replace", "-f", "-"], input: rbac.role(variant.rules))
            #expect(try await eventually(within: .seconds(10)) { try await !allowed(variant.missing) } != nil)
            let started = ContinuousClock.now
            let run = try startInClusterAgent(net, plane, serviceAccount: secrets.path)
            let line = "missing permission: cannot \(variant.missing) at cluster scope"
            let named = try await eventually(within: .seconds(15)) { run.output().stderr.contains(line) }
            #expect(named != nil, "no '\(line)' from the agent:\n\(run.output().stderr.suffix(4000))")
            // Back: the full role again; the agent's next retry succeeds and says so.
            try await plane.kubectl(["replace", "-f", "-"], input: rbac.role(rbac.rules))
            let restored = ContinuousClock.now
            let granted = try await eventually(within: .seconds(20)) {
                run.output().stderr.contains("permission granted: \(variant.missing) at cluster scope")
            }
            #expect(granted != nil, "the agent did not notice the permission back:\n\(run.output().stderr.suffix(4000))")
            let stderr = run.output().stderr
            #expect(stderr.components(separatedBy: line).count == 2, "the error is logged once:\n\(stderr.suffix(4000))")
            if figures.isEmpty {
                for said in stderr.split(separator: "\n") where said.contains(line) || said.contains("permission granted") {
                    print("agent rbac: the agent said: \(said)")
                }
            }
            #expect(await run.stop(grace: .seconds(10)) == ExitStatus(code: 0), "\(stderr.suffix(4000))")
            figures.append("\(variant.missing): named after \(named.map { "\($0)" } ?? "never") from the agent's start, "
                + "permission back noticed after \(granted.map { "\($0)" } ?? "never") (restored \(restored - started) in)")
        }
        for figure in figures { print("agent rbac: \(figure)") }
    }

    /// `switchboard run` in node n1 as in a pod: no kubeconfig; `KUBERNETES_SERVICE_HOST`/`PORT` name the API
    /// server, and `serviceAccount` (ca.crt, token, namespace) is bind-mounted on
    /// /var/run/secrets/kubernetes.io/serviceaccount in a private mount namespace. The mount point is made
    /// inside a tmpfs on /run, private to the agent: nothing appears on the host.
    private func startInClusterAgent(
        _ net: Topology, _ plane: ControlPlane, serviceAccount: String
    ) throws -> BackgroundProcess {
        let url = try #require(URL(string: try plane.apiURL()))
        let script = "mount -t tmpfs -o size=1m switchboard-test /run "
            + "&& mkdir -p /run/secrets/kubernetes.io/serviceaccount "
            + "&& mount --bind \"$0\" /var/run/secrets/kubernetes.io/serviceaccount && exec \"$@\""
        let agent = try Shell.start([
            "unshare", "--mount", "--propagation", "private", "sh", "-c", script, serviceAccount,
            "env", "KUBERNETES_SERVICE_HOST=\(url.host!)", "KUBERNETES_SERVICE_PORT=\(url.port!)",
            SwitchboardBinary.path!, "run", "--hostname-override", "n1", "--cluster-cidr", SB.clusterCIDRs,
            "--min-sync-period", "100ms", "--sync-period", "2s", "--v", "2",
        ], in: net.node("n1").namespace)
        net.adopt(agent)
        return agent
    }

    /// Issue 11, TLS: a server certificate from another CA is refused with an error saying so (`diff` at once,
    /// `run` at its discovery deadline; both exit 2); `insecure-skip-tls-verify` works, with one warning line
    /// at start.
    @Test("TLS: another CA is refused with a clear error; insecure-skip-tls-verify works with a warning")
    func tlsVerification() async throws {
        try await withNodeAndControlPlane { net, plane in
            try await webOnB1(net, plane)
            let ns = net.node("n1").namespace
            let token = try plane.env("K8S_NODE_TOKEN")
            let other = plane.directory.appendingPathComponent("other-ca")
            try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
            try await Shell.run([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another-ca",
                "-keyout", other.appendingPathComponent("ca.key").path, "-out", other.appendingPathComponent("ca.crt").path,
            ]).checked()
            let otherCA = try Data(contentsOf: other.appendingPathComponent("ca.crt")).base64EncodedString()
            let wrongCA = try plane.writeKubeconfig("wrong-ca.kubeconfig", token: token,
                                                    cluster: "certificate-authority-data: \(otherCA)")
            let insecure = try plane.writeKubeconfig("insecure.kubeconfig", token: token,
                                                     cluster: "insecure-skip-tls-verify: true")
            let flags = ["--hostname-override", "n1", "--cluster-cidr", SB.clusterCIDRs]
            let refused = "TLS: the API server's certificate was refused: it is not signed by the trusted certificate authority"

            // Another CA: `diff` and `run` stop at once, saying why.
            var started = ContinuousClock.now
            let diff = try await Shell.run([SwitchboardBinary.path!, "diff", "--kubeconfig", wrongCA] + flags, in: ns,
                                           timeout: .seconds(60))
            let diffTook = ContinuousClock.now - started
            #expect(diff.status.code == 2 && diff.stderr.contains(refused), "\(diff.status) \(diff.stderr)")
            #expect(diffTook < .seconds(3), "diff took \(diffTook) to refuse the certificate")
            started = ContinuousClock.now
            let run = try await Shell.run([SwitchboardBinary.path!, "run", "--kubeconfig", wrongCA] + flags, in: ns,
                                          timeout: .seconds(60))
            let runTook = ContinuousClock.now - started
            #expect(run.status.code == 2 && run.stderr.contains(refused), "\(run.status) \(run.stderr)")
            // `run` keeps AsyncHTTPClient's connection retries (quick reconnects after an API server restart),
            // so it reports the refused certificate at the discovery deadline, 10 s.
            #expect(runTook < .seconds(20), "run took \(runTook) to refuse the certificate")
            print("agent tls: another CA refused by diff in \(diffTook), by run in \(runTook): "
                + "\(run.stderr.split(separator: "\n").last ?? "")")

            // insecure-skip-tls-verify: it works, and says once that nothing is verified.
            let warning = "insecure-skip-tls-verify is set: the API server's certificate is not verified"
            let insecureDiff = try await Shell.run(
                [SwitchboardBinary.path!, "diff", "--kubeconfig", insecure] + flags, in: ns, timeout: .seconds(60))
            #expect(insecureDiff.status.code == 1, "\(insecureDiff.stderr)")  // nothing applied yet
            #expect(insecureDiff.stdout.contains("10.96.0.10"), "\(insecureDiff.stdout)")
            #expect(insecureDiff.stderr.components(separatedBy: warning).count == 2, "\(insecureDiff.stderr)")
            #expect(insecureDiff.stderr.contains("switchboard: warning: kubeconfig \(insecure)"), "\(insecureDiff.stderr)")
            let agent = try startAgent(net, plane, kubeconfig: insecure)
            let answered = try await eventually(within: .seconds(15)) { try await reply(net, "10.96.0.10") == "b1" }
            #expect(answered != nil, "the agent did not program the Service:\n\(agent.output().stderr.suffix(4000))")
            let stderr = agent.output().stderr
            #expect(stderr.components(separatedBy: warning).count == 2, "\(stderr.suffix(4000))")
            let line = stderr.split(separator: "\n").first { $0.contains(warning) }
            #expect(line?.contains("warning") == true, "\(stderr.suffix(4000))")
            print("agent tls: run with insecure-skip-tls-verify said: \(line ?? "nothing")")
            #expect(await agent.stop(grace: .seconds(10)) == ExitStatus(code: 0))
        }
    }
}
