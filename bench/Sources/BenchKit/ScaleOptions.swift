import SwitchboardCore

/// The flags of the scale run (issue 10, item 5): `--apiserver` without `--churn`. The real `switchboard run`
/// binary (and with `--peer` kube-proxy, at the first size) against the real API server, per size of
/// `--sizes`. Parsed by `Options.parse` like `ChurnOptions`, which keeps the flags both runs share
/// (`--apiserver`, `--peer`, the sync periods, `--k8s-up`, `--switchboard-bin`, `--api-concurrency`).
public struct ScaleOptions: Sendable, Equatable {
    /// `--new-services`: Services created one at a time after the cold start, each timed to its first
    /// TCP connect through the ClusterIP.
    public var newServices = 20
    /// `--settle`: how long after "every Service programmed" the agent's resident set is read again.
    public var settle: Duration = .seconds(5)
    /// `--rebuild-period`: run switchboard with `--full-rebuild-period` this long and, after the new
    /// Services, hold continuous connections through a ClusterIP until one full rebuild has run (nil: no).
    public var rebuildPeriod: Duration?

    public init() {}

    /// The API server's Service range is 10.96.0.0/16. The synthetic cluster's cluster IPs start at 10.96.1.0
    /// (`KubeJSON.apiClusterIP`) and the new Services' at 10.96.240.0, so S must stay below 61184 - 256; a
    /// round bound with room to spare.
    public static let maxServices = 60000
    /// The new Services' cluster IPs run from 10.96.240.0 and must stay inside the /16.
    public static let maxNewServices = 1000

    static let usage = """
          --apiserver             without --churn: the scale run. Per size of --sizes (default
                                  1000,10000,30000), a fresh control plane, S Services x --endpoints created
                                  through the API, the `switchboard run` binary timed from start until every
                                  Service is in its kernel, its RSS, then --new-services Services one at a
                                  time, each timed to its first TCP connect through the ClusterIP; with
                                  --peer, kube-proxy the same way at the first size. Writes latest-scale.*
          --new-services 20       (scale run) new Services per proxy and size
          --settle 5s             (scale run) RSS read again this long after the cold start
          --rebuild-period D      (scale run) switchboard with --full-rebuild-period D; then connections
                                  through a ClusterIP, back to back, until one full rebuild has run:
                                  failed connections, the rebuild's duration, the agent's peak RSS
        """

    /// Consumes `flag` if it is one of ours; `value` pops the flag's argument.
    public mutating func parse(_ flag: String, value: () throws -> String) throws -> Bool {
        switch flag {
        case "--new-services":
            let text = try value()
            guard let n = Int(text), n > 0, n <= Self.maxNewServices else {
                throw Options.UsageError(description: "\(flag): not an integer in 1...\(Self.maxNewServices): \(text)")
            }
            newServices = n
        case "--settle":
            let text = try value()
            guard let d = GoDuration.parse(text), d >= .zero else {
                throw Options.UsageError(description: "\(flag): not a duration (e.g. 5s, 500ms): \(text)")
            }
            settle = d
        case "--rebuild-period":
            let text = try value()
            guard let d = GoDuration.parse(text), d > .zero else {
                throw Options.UsageError(description: "\(flag): not a positive duration (e.g. 60s): \(text)")
            }
            rebuildPeriod = d
        default: return false
        }
        return true
    }
}
