import SwitchboardCore

/// The flags of the churn and peer runs (issue 4, parts 3 and 4). Parsed by `Options.parse`, which hands
/// over every flag it does not know. Where the defaults come from the environment (`upScript()`,
/// `switchboardPath()`) lives in the executable: this is only what was asked for.
public struct ChurnOptions: Sendable, Equatable {
    /// `--churn`: changes through the real `Controller`, in process.
    public var churn = false
    /// `--apiserver`: the churn run's changes go through the real kube-apiserver of ../shared/k8s; without
    /// `--churn`, the scale run (`Options.mode`, ScaleOptions.swift).
    public var apiserver = false
    /// `--peer`: kube-proxy v1.20.2 (iptables) and `switchboard run`, side by side, through the API; in the
    /// scale run, kube-proxy measured like the agent at the first size.
    public var peer = false
    public var rate = 20
    public var seconds = 60
    public var services = 10000
    public var minSyncPeriod: Duration = .seconds(1)
    public var syncPeriod: Duration = .seconds(30)
    /// `up.sh` of ../shared/k8s; default: `SWITCHBOARD_K8S_UP`, else ../shared/k8s/up.sh from the working directory.
    public var k8sUp: String?
    /// The `switchboard` binary for `--peer` and the scale run; default: next to this executable.
    public var switchboardBinary: String?
    /// Concurrent requests while creating the cluster through the API.
    public var apiConcurrency = 16

    static let usage = """
          --churn                 churn through the real controller: --churn-rate changes/s for --churn-seconds
                                  against --churn-services Services (in memory; with --apiserver through
                                  the real kube-apiserver of ../shared/k8s)
          --peer                  kube-proxy v1.20.2 (iptables) vs `switchboard run`, through the real API:
                                  cold programming time of --churn-services Services, then new Services at
                                  --churn-rate for --churn-seconds, polled in each proxy's kernel
          --churn-rate 20  --churn-seconds 60  --churn-services 10000
          --min-sync-period 1s  --sync-period 30s   (both proxies; churn, peer and scale runs)
          --k8s-up PATH           ../shared/k8s/up.sh (default: $SWITCHBOARD_K8S_UP, else ../shared/k8s/up.sh)
          --switchboard-bin PATH  the switchboard binary for --peer and the scale run (default: next to
                                  switchboard-bench)
          --api-concurrency 16    concurrent requests while creating the cluster through the API
        """

    /// Consumes `flag` if it is one of ours; `value` pops the flag's argument.
    public mutating func parse(_ flag: String, value: () throws -> String) throws -> Bool {
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

    public func validate() throws {
        if syncPeriod <= .zero || minSyncPeriod > syncPeriod {
            throw Options.UsageError(description: "need 0 <= --min-sync-period <= --sync-period, --sync-period > 0")
        }
    }

    /// Whether the default runs (cold, single change, Maglev) are replaced by churn / peer runs (unless
    /// `Options.mode` says scale).
    public var selected: Bool { churn || peer }

    /// `-churn`, `-peer`, `-churn-peer` or empty: churn and peer runs never overwrite `latest.*`.
    public var resultSuffix: String {
        (churn ? (apiserver ? "-churn-api" : "-churn") : "") + (peer ? "-peer" : "")
    }
}

extension Duration {
    /// `1s`, `500ms`, `1500us`: Go's duration syntax, exact (integer arithmetic: the flags go to kube-proxy and
    /// `switchboard run` as this text, and into reports).
    public var goText: String {
        let c = components
        let nanoseconds = c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        if nanoseconds % 1_000 == 0 { return "\(nanoseconds / 1_000)us" }
        return "\(nanoseconds)ns"
    }
}
