import ArgumentParser
import SwitchboardCore

/// `run`'s flags for what it writes into the kernel at start, with kube-proxy's names, meanings and defaults
/// (the defaults apply in `NodeTuning` when neither a flag nor the config file gives a value).
struct TuningOptions: ParsableArguments {
    @Option(name: .customLong("conntrack-max-per-core"), help: "Conntrack entries per CPU core for nf_conntrack_max (default 32768; 0 leaves the limit and ignores --conntrack-min).")
    var maxPerCore: Int?

    @Option(name: .customLong("conntrack-min"), help: "Smallest nf_conntrack_max to set, whatever the per-core figure gives (default 131072).")
    var min: Int?

    @Option(name: .customLong("conntrack-tcp-timeout-established"), help: "Idle timeout of established TCP flows (Go duration, default 24h; 0 leaves it).")
    var tcpEstablishedTimeout: String?

    @Option(name: .customLong("conntrack-tcp-timeout-close-wait"), help: "Timeout of TCP flows in CLOSE_WAIT (Go duration, default 1h; 0 leaves it).")
    var tcpCloseWaitTimeout: String?

    @Flag(name: .customLong("conntrack-tcp-be-liberal"), help: "Set nf_conntrack_tcp_be_liberal to 1: out-of-window TCP packets are not marked INVALID.")
    var tcpBeLiberal = false

    @Option(name: .customLong("conntrack-udp-timeout"), help: "Idle timeout of unreplied UDP flows (Go duration; default and 0 leave it).")
    var udpTimeout: String?

    @Option(name: .customLong("conntrack-udp-timeout-stream"), help: "Idle timeout of assured UDP flows (Go duration; default and 0 leave it).")
    var udpStreamTimeout: String?

    // `.unconditional`: `--oom-score-adj -999` is a value, not a flag.
    @Option(name: .customLong("oom-score-adj"), parsing: .unconditional, help: "This process's oom_score_adj, within -1000...1000 (default -999: the OOM killer takes pods first).")
    var oomScoreAdj: Int?

    @Flag(name: .customLong("init-only"), help: "Write the conntrack settings, then exit, as kube-proxy's --init-only: run privileged once (e.g. as an init container) so the agent itself needs only CAP_NET_ADMIN.")
    var initOnly = false

    func validate() throws {
        let settings = try flagSettings()
        do {
            try settings.checkTuning()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The flags given, as settings (nil where a flag was not given).
    func flagSettings() throws -> ProxySettings {
        func duration(_ text: String?, _ flag: String) throws -> Duration? {
            guard let text else { return nil }
            guard let d = GoDuration.parse(text) else { throw ValidationError("\(flag): invalid duration \"\(text)\"") }
            return d
        }
        let conntrack = ConntrackSettings(
            maxPerCore: maxPerCore, min: min,
            tcpEstablishedTimeout: try duration(tcpEstablishedTimeout, "--conntrack-tcp-timeout-established"),
            tcpCloseWaitTimeout: try duration(tcpCloseWaitTimeout, "--conntrack-tcp-timeout-close-wait"),
            tcpBeLiberal: tcpBeLiberal ? true : nil, udpTimeout: try duration(udpTimeout, "--conntrack-udp-timeout"),
            udpStreamTimeout: try duration(udpStreamTimeout, "--conntrack-udp-timeout-stream"))
        return ProxySettings(conntrack: conntrack, oomScoreAdj: oomScoreAdj)
    }
}
