import BenchKit
import Foundation
import SwitchboardCore
import SwitchboardTesting

/// The two proxies as the peer and scale runs start them, each in a node namespace with `node.kubeconfig`
/// (user `system:kube-proxy`), and what they print. One place, so both runs measure the same command lines.
///
/// kube-proxy never touches the host: it runs under `ip netns exec`, with `--conntrack-max-per-core 0` (no
/// write to the global conntrack hash size in /sys/module), both conntrack timeouts 0 (left as they are),
/// `--oom-score-adj 0`, and a `modprobe` that refuses (it tries to load IPVS modules even in iptables mode).
/// The sysctls it does write (`route_localnet`) are per namespace.
enum ProxyLaunch {
    static var clusterCIDR: String {
        SyntheticCluster.nodeContext.clusterCIDRs.map(\.description).joined(separator: ",")
    }

    /// `switchboard run` against the bridged API, with the run's sync periods.
    static func switchboard(
        _ binary: String, plane: BenchControlPlane, churn: ChurnOptions, fullRebuildPeriod: Duration? = nil
    ) -> [String] {
        [
            binary, "run", "--kubeconfig", plane.nodeKubeconfig, "--hostname-override", SyntheticCluster.nodeName,
            "--cluster-cidr", clusterCIDR, "--min-sync-period", churn.minSyncPeriod.goText,
            "--sync-period", churn.syncPeriod.goText,
            "--healthz-bind-address", "127.0.0.1:10256", "--metrics-bind-address", "127.0.0.1:10249", "--v", "0",
        ] + (fullRebuildPeriod.map { ["--full-rebuild-period", $0.goText] } ?? [])
    }

    /// kube-proxy (iptables mode) against the bridged API, with the run's sync periods; `env PATH=...` puts
    /// the refusing `modprobe` first (`ip netns exec` then `env` exec in place: the pid is kube-proxy's).
    static func kubeProxy(plane: BenchControlPlane, churn: ChurnOptions) throws -> [String] {
        let fakeBin = plane.directory.appendingPathComponent("no-modprobe")
        try FileManager.default.createDirectory(at: fakeBin, withIntermediateDirectories: true)
        let modprobe = fakeBin.appendingPathComponent("modprobe")
        try "#!/bin/sh\n# switchboard-bench: kube-proxy must not load kernel modules on a shared machine\nexit 1\n"
            .write(to: modprobe, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: modprobe.path)
        let path = fakeBin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")
        let minSync = churn.minSyncPeriod.goText
        return [
            "env", "PATH=\(path)", plane.kubeProxyBinary, "--proxy-mode", "iptables",
            "--kubeconfig", plane.nodeKubeconfig, "--hostname-override", SyntheticCluster.nodeName,
            "--cluster-cidr", clusterCIDR, "--iptables-min-sync-period", minSync,
            "--iptables-sync-period", churn.syncPeriod.goText,
            "--conntrack-max-per-core", "0", "--conntrack-tcp-timeout-established", "0",
            "--conntrack-tcp-timeout-close-wait", "0", "--oom-score-adj", "0", "--bind-address", "127.0.0.1",
            "--healthz-bind-address", "127.0.0.1:10256", "--metrics-bind-address", "127.0.0.1:10249", "--v", "0",
        ]
    }

    /// The first line of `arguments` (`switchboard version`, `kube-proxy --version`), or "?".
    static func version(_ arguments: [String]) async -> String {
        (try? await Shell.run(arguments).stdout)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    }

    /// `kubeproxy_sync_proxy_rules_duration_seconds` `_count` and `_sum` from the proxy's /metrics in its
    /// namespace (both serve it on 127.0.0.1:10249), or nil.
    static func syncMetrics(in namespace: String) async -> (count: Int, meanMs: Double)? {
        guard let (count, sum) = try? await histogram("kubeproxy_sync_proxy_rules_duration_seconds", in: namespace),
            let count, let sum, count > 0
        else { return nil }
        return (Int(count), sum / count * 1000)
    }

    /// The unlabelled histogram `name`'s `_count` and `_sum` (seconds) from the proxy's /metrics in its
    /// namespace, each nil when the proxy does not serve it. Throws when /metrics cannot be read.
    static func histogram(_ name: String, in namespace: String) async throws -> (count: Double?, sum: Double?) {
        let r = try await Shell.run(["curl", "-s", "http://127.0.0.1:10249/metrics"], in: namespace).checked()
        var count: Double?
        var sum: Double?
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            // Unlabelled series only (switchboard's have no labels; kube-proxy 1.20's neither).
            if parts[0] == name + "_count" { count = value }
            if parts[0] == name + "_sum" { sum = value }
        }
        return (count, sum)
    }

    /// `switchboard` or `kube-proxy`: the program behind `ip netns exec NS [env PATH=...]`.
    static func label(_ process: BackgroundProcess) -> String {
        let program = process.command.dropFirst(4).first { $0 != "env" && !$0.contains("=") } ?? "?"
        return URL(fileURLWithPath: program).lastPathComponent
    }

    /// What the proxy complained about (klog's E/W lines, switchboard's warnings), for the reader.
    static func logComplaints(of process: BackgroundProcess, log: (String) -> Void) {
        let lines = process.output().stderr.split(separator: "\n").filter {
            $0.hasPrefix("E") || $0.hasPrefix("W") || $0.contains("warning") || $0.contains("error")
        }
        for line in lines.prefix(8) { log("  \(label(process)): \(line.prefix(300))") }
    }

    /// The last lines of its stderr, after a failure.
    static func logTail(of process: BackgroundProcess, log: (String) -> Void) {
        let tail = process.output().stderr.split(separator: "\n").suffix(15).joined(separator: "\n")
        log("  \(label(process)) stderr (last lines):\n\(tail)")
    }
}
