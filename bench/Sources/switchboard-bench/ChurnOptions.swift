import Foundation
import SwitchboardCore

/// The flags of the churn and peer runs (issue 4, parts 3 and 4). Parsed by `Options.parse`, which hands
/// over every flag it does not know.
struct ChurnOptions: Sendable {
    /// `--churn`: changes through the real `Controller`, in process.
    var churn = false
    /// `--apiserver`: the churn run's changes go through the real kube-apiserver of ../shared/k8s.
    var apiserver = false
    /// `--peer`: kube-proxy v1.20.2 (iptables) and `switchboard run`, side by side, through the API.
    var peer = false
    var rate = 20
    var seconds = 60
    var services = 10000
    var minSyncPeriod: Duration = .seconds(1)
    var syncPeriod: Duration = .seconds(30)
    /// `up.sh` of ../shared/k8s; default: `SWITCHBOARD_K8S_UP`, else ../shared/k8s/up.sh from the working directory.
    var k8sUp: String?
    /// The `switchboard` binary for `--peer`; default: next to this executable.
    var switchboardBinary: String?
    /// Concurrent requests while creating the cluster through the API.
    var apiConcurrency = 16

    static let usage = """
          --churn                 churn through the real controller: --churn-rate changes/s for --churn-seconds
                                  against --churn-services Services (in memory; with --apiserver through
                                  the real kube-apiserver of ../shared/k8s)
          --peer                  kube-proxy v1.20.2 (iptables) vs `switchboard run`, through the real API:
                                  cold programming time of --churn-services Services, then new Services at
                                  --churn-rate for --churn-seconds, polled in each proxy's kernel
          --churn-rate 20  --churn-seconds 60  --churn-services 10000
          --min-sync-period 1s  --sync-period 30s   (both proxies, both runs)
          --k8s-up PATH           ../shared/k8s/up.sh (default: $SWITCHBOARD_K8S_UP, else ../shared/k8s/up.sh)
          --switchboard-bin PATH  the switchboard binary for --peer (default: next to switchboard-bench)
          --api-concurrency 16    concurrent requests while creating the cluster through the API
        """

    /// Consumes `flag` if it is one of ours; `value` pops the flag's argument.
    mutating func parse(_ flag: String, value: () throws -> String) throws -> Bool {
        func positive() throws -> Int {
            let text = try value()
            guard let n = Int(text), n > 0 else {
                throw Options.UsageError(description: "\(flag): not a positive integer: \(text)")
            }
            return n
        }
        func duration() throws -> Duration {
            let text = try value()
            guard let d = GoDuration.parse(text), d >= .zero else {
                throw Options.UsageError(description: "\(flag): not a duration (e.g. 1s, 500ms): \(text)")
            }
            return d
        }
        switch flag {
        case "--churn": churn = true
        case "--apiserver": apiserver = true
        case "--peer": peer = true
        case "--churn-rate": rate = try positive()
        case "--churn-seconds": seconds = try positive()
        case "--churn-services": services = try positive()
        case "--min-sync-period": minSyncPeriod = try duration()
        case "--sync-period": syncPeriod = try duration()
        case "--k8s-up": k8sUp = try value()
        case "--switchboard-bin": switchboardBinary = try value()
        case "--api-concurrency": apiConcurrency = try positive()
        default: return false
        }
        return true
    }

    func validate() throws {
        if apiserver && !churn && !peer {
            throw Options.UsageError(description: "--apiserver goes with --churn")
        }
        if syncPeriod <= .zero || minSyncPeriod > syncPeriod {
            throw Options.UsageError(description: "need 0 <= --min-sync-period <= --sync-period, --sync-period > 0")
        }
    }

    /// Whether the default runs (cold, single change, Maglev) are replaced by churn / peer runs.
    var selected: Bool { churn || peer }

    /// `-churn`, `-peer`, `-churn-peer` or empty: churn and peer runs never overwrite `latest.*`.
    var resultSuffix: String {
        (churn ? (apiserver ? "-churn-api" : "-churn") : "") + (peer ? "-peer" : "")
    }

    /// The script that starts the control plane, or nil with the reason.
    func upScript() -> (path: String?, reason: String) {
        let candidates = [k8sUp, ProcessInfo.processInfo.environment["SWITCHBOARD_K8S_UP"], "../shared/k8s/up.sh"]
        for case let path? in candidates where !path.isEmpty {
            if FileManager.default.isExecutableFile(atPath: path) {
                return (URL(fileURLWithPath: path).standardizedFileURL.path, "")
            }
        }
        return (nil, "no executable up.sh (tried --k8s-up, $SWITCHBOARD_K8S_UP, ../shared/k8s/up.sh)")
    }

    /// The `switchboard` binary: `--switchboard-bin`, `$SWITCHBOARD_BIN`, or the one built next to us.
    func switchboardPath() -> String? {
        if let switchboardBinary { return switchboardBinary }
        if let env = ProcessInfo.processInfo.environment["SWITCHBOARD_BIN"], !env.isEmpty { return env }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("switchboard").path
        return FileManager.default.isExecutableFile(atPath: beside) ? beside : nil
    }
}

extension Duration {
    /// `1s`, `500ms`: for reports.
    var goText: String {
        let ms = milliseconds
        if ms >= 1000 && ms.truncatingRemainder(dividingBy: 1000) == 0 { return "\(Int(ms / 1000))s" }
        return "\(fixed(ms, ms.rounded() == ms ? 0 : 1))ms"
    }
}
