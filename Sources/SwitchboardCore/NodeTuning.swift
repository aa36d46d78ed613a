/// kube-proxy's `conntrack` settings (`--conntrack-*` flags, the config file's `conntrack` section), each nil
/// when the source does not give it. What stays nil after flags and file are layered takes kube-proxy's
/// default, in `NodeTuning`.
public struct ConntrackSettings: Hashable, Sendable {
    /// `--conntrack-max-per-core` / `conntrack.maxPerCore` (default 32768; 0 leaves `nf_conntrack_max`
    /// and the hash size alone, and `min` with them).
    public var maxPerCore: Int?
    /// `--conntrack-min` / `conntrack.min` (default 131072): the floor under `maxPerCore` × CPUs.
    public var min: Int?
    /// `--conntrack-tcp-timeout-established` / `conntrack.tcpEstablishedTimeout` (default 24h; 0 leaves it).
    public var tcpEstablishedTimeout: Duration?
    /// `--conntrack-tcp-timeout-close-wait` / `conntrack.tcpCloseWaitTimeout` (default 1h; 0 leaves it).
    public var tcpCloseWaitTimeout: Duration?
    /// `--conntrack-tcp-be-liberal` / `conntrack.tcpBeLiberal`: true sets `nf_conntrack_tcp_be_liberal` to 1;
    /// false (the default) leaves it.
    public var tcpBeLiberal: Bool?
    /// `--conntrack-udp-timeout` / `conntrack.udpTimeout` (unreplied UDP flows; unset or 0 leaves it).
    public var udpTimeout: Duration?
    /// `--conntrack-udp-timeout-stream` / `conntrack.udpStreamTimeout` (assured UDP flows; unset or 0 leaves it).
    public var udpStreamTimeout: Duration?

    public init(
        maxPerCore: Int? = nil, min: Int? = nil, tcpEstablishedTimeout: Duration? = nil,
        tcpCloseWaitTimeout: Duration? = nil, tcpBeLiberal: Bool? = nil, udpTimeout: Duration? = nil,
        udpStreamTimeout: Duration? = nil
    ) {
        self.maxPerCore = maxPerCore
        self.min = min
        self.tcpEstablishedTimeout = tcpEstablishedTimeout
        self.tcpCloseWaitTimeout = tcpCloseWaitTimeout
        self.tcpBeLiberal = tcpBeLiberal
        self.udpTimeout = udpTimeout
        self.udpStreamTimeout = udpStreamTimeout
    }

    /// These settings on top of `base`: every value set here wins, the rest comes from `base`.
    public func overriding(_ base: ConntrackSettings) -> ConntrackSettings {
        ConntrackSettings(
            maxPerCore: maxPerCore ?? base.maxPerCore, min: min ?? base.min,
            tcpEstablishedTimeout: tcpEstablishedTimeout ?? base.tcpEstablishedTimeout,
            tcpCloseWaitTimeout: tcpCloseWaitTimeout ?? base.tcpCloseWaitTimeout,
            tcpBeLiberal: tcpBeLiberal ?? base.tcpBeLiberal, udpTimeout: udpTimeout ?? base.udpTimeout,
            udpStreamTimeout: udpStreamTimeout ?? base.udpStreamTimeout)
    }

    /// kube-proxy's validation: no count or duration below zero, counts within Go's int32. One line naming
    /// the flag and the config file field.
    public func check() throws(ProxySettingsError) {
        for (value, name) in [(maxPerCore, "--conntrack-max-per-core (conntrack.maxPerCore)"),
                              (min, "--conntrack-min (conntrack.min)")] {
            if let value, value < 0 || value > Int(Int32.max) {
                throw ProxySettingsError("\(name): \(value) is not within 0...\(Int32.max)")
            }
        }
        let durations = [
            (tcpEstablishedTimeout, "--conntrack-tcp-timeout-established (conntrack.tcpEstablishedTimeout)"),
            (tcpCloseWaitTimeout, "--conntrack-tcp-timeout-close-wait (conntrack.tcpCloseWaitTimeout)"),
            (udpTimeout, "--conntrack-udp-timeout (conntrack.udpTimeout)"),
            (udpStreamTimeout, "--conntrack-udp-timeout-stream (conntrack.udpStreamTimeout)"),
        ]
        for (value, name) in durations {
            if let value, value < .zero { throw ProxySettingsError("\(name): must not be negative") }
        }
    }
}

/// A kernel setting that `switchboard run` may write at start, as kube-proxy does.
///
/// The raw value is the name an operator knows it by (`sysctl` names, the module parameter as the kernel
/// command line spells it); `path` is the file. `conntrackMax` and `conntrackHashsize` are global: inside
/// any network namespace but the host's the kernel refuses to write them (`nf_conntrack_max` is read-only
/// there). The other conntrack sysctls belong to the network namespace they are written in.
public enum Tunable: String, Hashable, Sendable, CaseIterable {
    case conntrackMax = "net.netfilter.nf_conntrack_max"
    /// The hash table's bucket count (`nf_conntrack_buckets`), written as kube-proxy writes it: as the
    /// module parameter, which works on every kernel that has one.
    case conntrackHashsize = "nf_conntrack.hashsize"
    case tcpTimeoutEstablished = "net.netfilter.nf_conntrack_tcp_timeout_established"
    case tcpTimeoutCloseWait = "net.netfilter.nf_conntrack_tcp_timeout_close_wait"
    case tcpBeLiberal = "net.netfilter.nf_conntrack_tcp_be_liberal"
    case udpTimeout = "net.netfilter.nf_conntrack_udp_timeout"
    case udpTimeoutStream = "net.netfilter.nf_conntrack_udp_timeout_stream"
    /// This process's OOM score adjustment (-1000...1000): the lower, the later the OOM killer picks it.
    case oomScoreAdj = "oom_score_adj"

    /// The file that holds the value.
    public var path: String {
        switch self {
        case .conntrackHashsize: return "/sys/module/nf_conntrack/parameters/hashsize"
        case .oomScoreAdj: return "/proc/self/oom_score_adj"
        default: return "/proc/sys/" + rawValue.split(separator: ".").joined(separator: "/")
        }
    }

    /// Whether the value is one for the whole node, which only the host's network namespace may write.
    public var isGlobal: Bool { self == .conntrackMax || self == .conntrackHashsize }
}

/// One value to write into one tunable.
public struct TunableWrite: Hashable, Sendable, CustomStringConvertible {
    public var tunable: Tunable
    public var value: Int

    public init(_ tunable: Tunable, _ value: Int) {
        self.tunable = tunable
        self.value = value
    }

    public var description: String { "\(tunable.rawValue)=\(value)" }
}

/// What `switchboard run` writes into the kernel at start, with kube-proxy's (1.31–1.34) rules and defaults,
/// decided without touching anything: settings, the node's CPU count and the values the kernel holds now in;
/// the writes, in order, out. Applying them is one loop over a `TunablesBackend`, where a write the kernel
/// refuses is logged and skipped.
public struct NodeTuning: Hashable, Sendable {
    public static let defaultMaxPerCore = 32 * 1024
    public static let defaultMin = 128 * 1024
    public static let defaultTCPEstablishedTimeout = Duration.seconds(24 * 3600)
    public static let defaultTCPCloseWaitTimeout = Duration.seconds(3600)
    /// kube-proxy's (`qos.KubeProxyOOMScoreAdj`): below every pod, so the OOM killer takes workloads first.
    public static let defaultOOMScoreAdj = -999

    public var conntrack: ConntrackSettings
    /// The OOM score adjustment to write; nil writes none.
    public var oomScoreAdj: Int?

    public init(conntrack: ConntrackSettings = ConntrackSettings(), oomScoreAdj: Int? = nil) {
        self.conntrack = conntrack
        self.oomScoreAdj = oomScoreAdj
    }

    /// The tuning `settings` ask for. `initOnly` (`run --init-only`, a privileged one-shot before the agent
    /// proper) writes no OOM score, as kube-proxy's `--init-only` does not: it would apply to a process that
    /// is about to exit.
    public init(_ settings: ProxySettings, initOnly: Bool = false) {
        self.init(conntrack: settings.conntrack,
                  oomScoreAdj: initOnly ? nil : settings.oomScoreAdj ?? Self.defaultOOMScoreAdj)
    }

    /// The tunables `plan` compares with their current values: the conntrack ones it may write. The OOM score
    /// is written whatever it holds, as kube-proxy does.
    public var consulted: [Tunable] { plan(cpus: 1, current: [:]).map(\.tunable).filter { $0 != .oomScoreAdj } }

    /// kube-proxy's `getConntrackMax`: `maxPerCore` × `cpus`, but at least `min`; nil when `maxPerCore`
    /// is 0 (leave the limit as it is).
    public func conntrackMax(cpus: Int) -> Int? {
        let perCore = conntrack.maxPerCore ?? Self.defaultMaxPerCore
        guard perCore > 0 else { return nil }
        let floor = conntrack.min ?? Self.defaultMin
        // Unchecked settings must not trap: a product past Int.max is as good as Int.max.
        let (product, overflow) = perCore.multipliedReportingOverflow(by: Swift.max(cpus, 1))
        let scaled = overflow ? Int.max : product
        return scaled > floor ? scaled : floor
    }

    /// The writes, in kube-proxy's order, given the values the kernel holds now (a tunable missing from
    /// `current` could not be read, and is written):
    /// - `nf_conntrack_max` only ever raised to `conntrackMax(cpus:)`, never lowered: a limit set higher
    ///   on the node stays (kube-proxy since kubernetes#142035; 1.29–1.35 wrote any other value);
    /// - then, with a limit to reach, the hash size raised to a quarter of it when smaller;
    /// - each timeout, when positive, in whole seconds (truncated, as kube-proxy's `int(d / time.Second)`),
    ///   written when it differs from the kernel's; `tcpBeLiberal` as 1 when asked for;
    /// - last the OOM score adjustment, whatever the kernel holds.
    public func plan(cpus: Int, current: [Tunable: Int]) -> [TunableWrite] {
        var writes: [TunableWrite] = []
        func set(_ tunable: Tunable, _ value: Int) {
            if current[tunable] != value { writes.append(TunableWrite(tunable, value)) }
        }
        func raise(_ tunable: Tunable, _ value: Int) {
            if current[tunable].map({ $0 < value }) ?? true { writes.append(TunableWrite(tunable, value)) }
        }
        func seconds(_ tunable: Tunable, _ timeout: Duration?) {
            guard let timeout, timeout > .zero else { return }
            set(tunable, Int(timeout.components.seconds))
        }
        if let max = conntrackMax(cpus: cpus) {
            raise(.conntrackMax, max)
            raise(.conntrackHashsize, max / 4)
        }
        seconds(.tcpTimeoutEstablished, conntrack.tcpEstablishedTimeout ?? Self.defaultTCPEstablishedTimeout)
        seconds(.tcpTimeoutCloseWait, conntrack.tcpCloseWaitTimeout ?? Self.defaultTCPCloseWaitTimeout)
        if conntrack.tcpBeLiberal == true { set(.tcpBeLiberal, 1) }
        seconds(.udpTimeout, conntrack.udpTimeout)
        seconds(.udpTimeoutStream, conntrack.udpStreamTimeout)
        if let oomScoreAdj { writes.append(TunableWrite(.oomScoreAdj, oomScoreAdj)) }
        return writes
    }

    /// The number of CPUs in a kernel CPU list such as `/sys/devices/system/cpu/online` holds (`0-3,8,10-11`);
    /// nil when the text is not one. kube-proxy sizes `nf_conntrack_max` by the node's CPUs, not by the ones
    /// this process may run on.
    public static func cpuCount(cpuList text: String) -> Int? {
        var count = 0
        for range in text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }) {
            let bounds = range.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2, let low = Int(bounds[0]), let high = Int(bounds.last!), low >= 0, low <= high
            else { return nil }
            count += high - low + 1
        }
        return count > 0 ? count : nil
    }
}

/// Reads and writes kernel tunables: the files under `/proc` and `/sys` (`KernelTunables`), or values in
/// memory (`FakeTunables`). Calls are synchronous: each is one small read or write of a pseudo-file, made
/// once at start.
public protocol TunablesBackend: Sendable {
    /// The node's online CPUs (at least 1).
    func onlineCPUs() -> Int
    func read(_ tunable: Tunable) throws(TunableError) -> Int
    func write(_ value: Int, to tunable: Tunable) throws(TunableError)
}

/// A tunable that could not be read or written, with the kernel's own words.
public struct TunableError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: Hashable, Sendable {
        /// Not writable here: read-only in this network namespace (`EACCES`), no capability (`EPERM`), or a
        /// read-only `/proc/sys` or `/sys` (`EROFS`, as in an unprivileged container).
        case denied
        /// No such file: the module (`nf_conntrack`) is not loaded, or the kernel has no such setting.
        case notFound
        /// The kernel refused the value itself (`EINVAL`, `EIO`, `EOPNOTSUPP`, ...).
        case refused
        /// The file does not hold an integer.
        case unreadable
    }

    public var code: Code
    public var tunable: Tunable
    /// The error as the system words it, e.g. `Permission denied (errno 13)`.
    public var message: String

    public init(_ code: Code, _ tunable: Tunable, _ message: String) {
        self.code = code
        self.tunable = tunable
        self.message = message
    }

    public var isDenied: Bool { code == .denied }
    public var isNotFound: Bool { code == .notFound }

    public var description: String { "\(tunable.path): \(message)" }
}
