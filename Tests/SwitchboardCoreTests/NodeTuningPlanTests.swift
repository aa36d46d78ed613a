import SwitchboardCore
import Testing

/// What `run` writes into the kernel at start: kube-proxy's conntrack rules and defaults, and the OOM score,
/// decided from settings, CPUs and current values alone.
@Suite struct NodeTuningPlanTests {
    /// This machine's values in the host namespace (2 CPUs): limit and buckets already above kube-proxy's.
    static let host: [Tunable: Int] = [
        .conntrackMax: 262_144, .conntrackHashsize: 262_144, .tcpTimeoutEstablished: 432_000,
        .tcpTimeoutCloseWait: 60, .tcpBeLiberal: 0, .udpTimeout: 30, .udpTimeoutStream: 120,
    ]

    @Test("kube-proxy's getConntrackMax: maxPerCore × CPUs, at least min; maxPerCore 0 leaves the limit", arguments: [
        // (maxPerCore, min, cpus, expected)
        (Int?.none, Int?.none, 2, Int?.some(131_072)),
        (nil, nil, 4, 131_072),
        (nil, nil, 8, 262_144),
        (nil, nil, 0, 131_072),  // a CPU count of 0 counts as 1
        (0, nil, 64, nil),
        (0, 1_000_000, 64, nil),  // min is ignored with maxPerCore 0, as kube-proxy's help says
        (1000, nil, 1, 131_072),
        (65_536, 0, 1, 65_536),
        (10, 0, 3, 30),
        (32_768, 131_072, 4, 131_072),
        (32_768, 1_000_000, 4, 1_000_000),
        (Int.max, nil, 2, Int.max),  // unchecked settings do not trap
    ])
    func conntrackMax(perCore: Int?, min: Int?, cpus: Int, expected: Int?) {
        let tuning = NodeTuning(conntrack: ConntrackSettings(maxPerCore: perCore, min: min))
        #expect(tuning.conntrackMax(cpus: cpus) == expected)
    }

    @Test("the writes, in kube-proxy's order", arguments: [
        // Defaults on this machine: the limit and buckets are already higher (never lowered); timeouts differ.
        ("defaults, host values", ProxySettings(), 2, host,
         ["net.netfilter.nf_conntrack_tcp_timeout_established=86400",
          "net.netfilter.nf_conntrack_tcp_timeout_close_wait=3600", "oom_score_adj=-999"]),
        // A bigger node with a small table: the limit raised, the buckets to a quarter of it.
        ("defaults, 8 CPUs, small table", ProxySettings(), 8,
         [.conntrackMax: 65_536, .conntrackHashsize: 16_384, .tcpTimeoutEstablished: 86_400,
          .tcpTimeoutCloseWait: 3600],
         ["net.netfilter.nf_conntrack_max=262144", "nf_conntrack.hashsize=65536", "oom_score_adj=-999"]),
        // Buckets already enough for the new limit: only the limit.
        ("limit only", ProxySettings(), 8,
         [.conntrackMax: 65_536, .conntrackHashsize: 65_536, .tcpTimeoutEstablished: 86_400,
          .tcpTimeoutCloseWait: 3600],
         ["net.netfilter.nf_conntrack_max=262144", "oom_score_adj=-999"]),
        // Nothing could be read (no nf_conntrack yet): everything is attempted.
        ("nothing readable", ProxySettings(oomScoreAdj: 500), 2, [:],
         ["net.netfilter.nf_conntrack_max=131072", "nf_conntrack.hashsize=32768",
          "net.netfilter.nf_conntrack_tcp_timeout_established=86400",
          "net.netfilter.nf_conntrack_tcp_timeout_close_wait=3600", "oom_score_adj=500"]),
        // Everything left alone that can be: per-core 0, timeouts 0, OOM score as kube-proxy always writes it.
        ("all zero", ProxySettings(
            conntrack: ConntrackSettings(maxPerCore: 0, tcpEstablishedTimeout: .zero, tcpCloseWaitTimeout: .zero,
                                         tcpBeLiberal: false, udpTimeout: .zero, udpStreamTimeout: .zero),
            oomScoreAdj: 0), 2, [.conntrackMax: 1, .conntrackHashsize: 1], ["oom_score_adj=0"]),
        // Every setting, against values that differ, with Go's truncation to whole seconds.
        ("every setting", ProxySettings(
            conntrack: ConntrackSettings(maxPerCore: 100_000, min: 0, tcpEstablishedTimeout: .seconds(7200),
                                         tcpCloseWaitTimeout: .milliseconds(1999), tcpBeLiberal: true,
                                         udpTimeout: .seconds(45), udpStreamTimeout: .seconds(180)),
            oomScoreAdj: -1000), 2, host,
         // 100000 × 2 CPUs is below the 262144 the kernel has: the limit stays.
         ["net.netfilter.nf_conntrack_tcp_timeout_established=7200",
          "net.netfilter.nf_conntrack_tcp_timeout_close_wait=1", "net.netfilter.nf_conntrack_tcp_be_liberal=1",
          "net.netfilter.nf_conntrack_udp_timeout=45", "net.netfilter.nf_conntrack_udp_timeout_stream=180",
          "oom_score_adj=-1000"]),
        // Values the kernel already holds are not written again (only the OOM score is, always).
        ("already set", ProxySettings(
            conntrack: ConntrackSettings(tcpEstablishedTimeout: .seconds(432_000), tcpCloseWaitTimeout: .seconds(60),
                                         tcpBeLiberal: true, udpTimeout: .seconds(30),
                                         udpStreamTimeout: .seconds(120))),
         2, host.merging([.tcpBeLiberal: 1]) { $1 }, ["oom_score_adj=-999"]),
        // A limit higher than kube-proxy's is never lowered, and neither are the buckets.
        ("never lowered", ProxySettings(conntrack: ConntrackSettings(min: 1000)), 1,
         [.conntrackMax: 2_000_000, .conntrackHashsize: 500_000, .tcpTimeoutEstablished: 86_400,
          .tcpTimeoutCloseWait: 3600],
         ["oom_score_adj=-999"]),
    ])
    func plan(_ name: String, settings: ProxySettings, cpus: Int, current: [Tunable: Int], expected: [String]) {
        #expect(NodeTuning(settings).plan(cpus: cpus, current: current).map(\.description) == expected, "\(name)")
    }

    @Test("--init-only writes no OOM score; the default is kube-proxy's -999")
    func oomScore() {
        #expect(NodeTuning(ProxySettings()).oomScoreAdj == -999)
        #expect(NodeTuning(ProxySettings(oomScoreAdj: 500)).oomScoreAdj == 500)
        #expect(NodeTuning(ProxySettings(oomScoreAdj: 500), initOnly: true).oomScoreAdj == nil)
        #expect(NodeTuning(ProxySettings(), initOnly: true).plan(cpus: 2, current: Self.host).map(\.tunable) == [
            .tcpTimeoutEstablished, .tcpTimeoutCloseWait,
        ])
    }

    @Test("consulted: exactly the conntrack tunables a plan may write")
    func consulted() {
        #expect(NodeTuning(ProxySettings()).consulted == [
            .conntrackMax, .conntrackHashsize, .tcpTimeoutEstablished, .tcpTimeoutCloseWait,
        ])
        let none = ConntrackSettings(maxPerCore: 0, tcpEstablishedTimeout: .zero, tcpCloseWaitTimeout: .zero)
        #expect(NodeTuning(conntrack: none, oomScoreAdj: -999).consulted == [])
        let udp = ConntrackSettings(maxPerCore: 0, tcpEstablishedTimeout: .zero, tcpCloseWaitTimeout: .zero,
                                    tcpBeLiberal: true, udpTimeout: .seconds(1), udpStreamTimeout: .seconds(2))
        #expect(NodeTuning(conntrack: udp).consulted == [.tcpBeLiberal, .udpTimeout, .udpTimeoutStream])
    }

    @Test("paths: sysctls under /proc/sys, the hash size as the module parameter, the OOM score of this process")
    func paths() {
        #expect(Tunable.conntrackMax.path == "/proc/sys/net/netfilter/nf_conntrack_max")
        #expect(Tunable.udpTimeoutStream.path == "/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream")
        #expect(Tunable.conntrackHashsize.path == "/sys/module/nf_conntrack/parameters/hashsize")
        #expect(Tunable.oomScoreAdj.path == "/proc/self/oom_score_adj")
        #expect(Tunable.allCases.filter(\.isGlobal) == [.conntrackMax, .conntrackHashsize])
    }

    @Test("CPU lists as /sys/devices/system/cpu/online writes them", arguments: [
        ("0-1\n", Int?.some(2)), ("0", 1), ("0-3,8,10-11", 7), ("0-63\n", 64), ("", nil), ("\n", nil),
        ("a", nil), ("3-1", nil), ("0-", nil), ("-1", nil), ("0-1-2", nil),
    ])
    func cpuList(text: String, expected: Int?) {
        #expect(NodeTuning.cpuCount(cpuList: text) == expected)
    }

    @Test("kube-proxy's validation: counts 0...Int32.max, timeouts not negative, OOM score -1000...1000", arguments: [
        (ProxySettings(), true),
        (ProxySettings(conntrack: ConntrackSettings(maxPerCore: 0, min: 0), oomScoreAdj: -1000), true),
        (ProxySettings(conntrack: ConntrackSettings(maxPerCore: Int(Int32.max)), oomScoreAdj: 1000), true),
        (ProxySettings(conntrack: ConntrackSettings(maxPerCore: -1)), false),
        (ProxySettings(conntrack: ConntrackSettings(min: Int(Int32.max) + 1)), false),
        (ProxySettings(conntrack: ConntrackSettings(tcpCloseWaitTimeout: .seconds(-1))), false),
        (ProxySettings(conntrack: ConntrackSettings(udpStreamTimeout: .milliseconds(-1))), false),
        (ProxySettings(oomScoreAdj: -1001), false),
        (ProxySettings(oomScoreAdj: 1001), false),
    ])
    func validation(settings: ProxySettings, valid: Bool) {
        if valid {
            #expect(throws: Never.self) { try settings.checkTuning() }
        } else {
            #expect(throws: ProxySettingsError.self) { try settings.checkTuning() }
        }
    }

    @Test("flags over the file, field by field")
    func layering() {
        let file = ProxySettings(
            conntrack: ConntrackSettings(maxPerCore: 0, min: 5, tcpBeLiberal: true, udpTimeout: .seconds(9)),
            oomScoreAdj: 100)
        let flags = ProxySettings(conntrack: ConntrackSettings(min: 7, udpStreamTimeout: .seconds(3)), oomScoreAdj: -5)
        let merged = flags.overriding(file)
        #expect(merged.conntrack == ConntrackSettings(
            maxPerCore: 0, min: 7, tcpBeLiberal: true, udpTimeout: .seconds(9), udpStreamTimeout: .seconds(3)))
        #expect(merged.oomScoreAdj == -5)
    }
}
