import Foundation
import Logging
import SwitchboardCore
import SwitchboardTesting
import Synchronization
import Testing

@testable import SwitchboardAgent

/// `KernelTunables` and `FakeTunables` keep one contract; `NodeTuner` writes the plan through either, logs one
/// line per write or refusal, and never stops the start.
@Suite struct NodeTunerTests {
    /// A `KernelTunables` rooted in a scratch directory of plain files laid out as /proc and /sys are, and the
    /// values it starts with.
    final class ScratchTree: @unchecked Sendable {
        let root: URL

        init(_ values: [Tunable: String], cpuList: String? = "0-5\n") throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("sbt-tunables-\(UUID().uuidString)")
            for (tunable, text) in values { try write(text, at: tunable.path) }
            if let cpuList { try write(cpuList, at: "/sys/devices/system/cpu/online") }
        }

        func write(_ text: String, at path: String) throws {
            let url = root.appendingPathComponent(String(path.dropFirst()))
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: false, encoding: .utf8)
        }

        var backend: KernelTunables { KernelTunables(root: root.path) }

        deinit { try? FileManager.default.removeItem(at: root) }
    }

    /// The contract both implementations keep, for a backend holding `.tcpTimeoutEstablished` = 432000 and
    /// `.oomScoreAdj` = 0, and nothing for `.udpTimeout`.
    static func checkContract(_ backend: some TunablesBackend) throws {
        #expect(try backend.read(.tcpTimeoutEstablished) == 432_000)
        try backend.write(7200, to: .tcpTimeoutEstablished)
        #expect(try backend.read(.tcpTimeoutEstablished) == 7200)
        try backend.write(-999, to: .oomScoreAdj)
        #expect(try backend.read(.oomScoreAdj) == -999)
        // A setting the kernel does not have (no nf_conntrack module): not found, read or written; nothing created.
        #expect { try backend.read(.udpTimeout) } throws: { ($0 as? TunableError)?.isNotFound == true }
        #expect { try backend.write(30, to: .udpTimeout) } throws: { ($0 as? TunableError)?.isNotFound == true }
        #expect { try backend.read(.udpTimeout) } throws: { ($0 as? TunableError)?.isNotFound == true }
        #expect(backend.onlineCPUs() == 6)
    }

    @Test("contract: FakeTunables")
    func fakeContract() throws {
        try Self.checkContract(FakeTunables(cpus: 6, values: [.tcpTimeoutEstablished: 432_000, .oomScoreAdj: 0]))
    }

    @Test("contract: KernelTunables on files laid out as /proc and /sys")
    func kernelContract() throws {
        let tree = try ScratchTree([.tcpTimeoutEstablished: "432000\n", .oomScoreAdj: "0\n"])
        try Self.checkContract(tree.backend)
        // Written as kube-proxy writes them: the decimal number alone.
        let file = tree.root.appendingPathComponent(String(Tunable.tcpTimeoutEstablished.path.dropFirst()))
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(text == "7200")
    }

    @Test("KernelTunables: a file that holds no integer; the CPU count without a CPU list")
    func kernelOddities() throws {
        let tree = try ScratchTree([.conntrackMax: "lots\n"], cpuList: nil)
        #expect { try tree.backend.read(.conntrackMax) } throws: { ($0 as? TunableError)?.code == .unreadable }
        #expect(tree.backend.onlineCPUs() >= 1)
        try tree.write("0-1,4\n", at: "/sys/devices/system/cpu/online")
        #expect(tree.backend.onlineCPUs() == 3)
    }

    /// Inside a network namespace: the per-namespace sysctls are written, the global limit is refused with one
    /// warning naming it, and the OOM score is written.
    @Test("in a network namespace: nf_conntrack_max refused and logged once, everything else written")
    func namespace() {
        let fake = FakeTunables(
            cpus: 2,
            values: [.conntrackMax: 262_144, .conntrackHashsize: 262_144, .tcpTimeoutEstablished: 432_000,
                     .tcpTimeoutCloseWait: 60, .tcpBeLiberal: 0, .udpTimeout: 30, .udpTimeoutStream: 120,
                     .oomScoreAdj: 0],
            denied: [.conntrackMax], refused: [.conntrackHashsize])
        let log = LogLines()
        let settings = ProxySettings(
            conntrack: ConntrackSettings(min: 300_000, tcpEstablishedTimeout: .seconds(7200), tcpBeLiberal: true,
                                         udpTimeout: .seconds(45)),
            oomScoreAdj: 500)
        let outcomes = NodeTuner.apply(NodeTuning(settings), backend: fake, logger: log.logger)
        #expect(outcomes.filter { $0.error != nil }.map(\.write.tunable) == [.conntrackMax])
        #expect(fake.writes.map(\.description) == [
            "net.netfilter.nf_conntrack_tcp_timeout_established=7200",
            "net.netfilter.nf_conntrack_tcp_timeout_close_wait=3600", "net.netfilter.nf_conntrack_tcp_be_liberal=1",
            "net.netfilter.nf_conntrack_udp_timeout=45", "oom_score_adj=500",
        ])
        let warnings = log.lines.filter { $0.hasPrefix("warning ") }
        #expect(warnings == [
            "warning cannot set net.netfilter.nf_conntrack_max to 300000 (was 262144): "
                + "/proc/sys/net/netfilter/nf_conntrack_max: Permission denied (fake) "
                + "(node-wide: only a privileged process in the host's network namespace may change it); continuing",
        ])
        #expect(log.lines.contains(
            "notice set net.netfilter.nf_conntrack_tcp_timeout_established to 7200 (was 432000)"))
        #expect(log.lines.filter { $0.hasPrefix("notice ") }.count == 5)
    }

    /// Without `CAP_SYS_RESOURCE` (this sandbox's root too) the kernel refuses a negative `oom_score_adj`.
    @Test("a refused OOM score is one warning, as is each conntrack setting without the module; nothing throws")
    func refusedOOMScore() {
        let fake = FakeTunables(
            cpus: 2, values: [.tcpTimeoutEstablished: 86_400, .tcpTimeoutCloseWait: 3600, .oomScoreAdj: 0],
            denied: [.oomScoreAdj])
        let log = LogLines()
        let outcomes = NodeTuner.apply(NodeTuning(ProxySettings()), backend: fake, logger: log.logger)
        // nf_conntrack_max and the hash size cannot be read here (the fake has none): attempted, not found, logged.
        #expect(outcomes.map { "\($0.write.tunable.rawValue) \($0.error.map { "\($0.code)" } ?? "ok")" } == [
            "net.netfilter.nf_conntrack_max notFound", "nf_conntrack.hashsize notFound", "oom_score_adj denied",
        ])
        #expect(fake.writes == [])
        #expect(log.lines.filter { $0.hasPrefix("warning ") }.count == 3)
        #expect(log.lines.contains {
            $0 == "warning cannot set oom_score_adj to -999: /proc/self/oom_score_adj: Permission denied (fake); "
                + "continuing"
        })
    }

    @Test("--init-only: the conntrack settings only")
    func initOnly() {
        let fake = FakeTunables(
            cpus: 2, values: [.conntrackMax: 262_144, .conntrackHashsize: 262_144, .tcpTimeoutEstablished: 1,
                              .tcpTimeoutCloseWait: 1, .oomScoreAdj: 0])
        NodeTuner.apply(NodeTuning(ProxySettings(oomScoreAdj: 500), initOnly: true), backend: fake,
                        logger: LogLines().logger)
        #expect(fake.values[.oomScoreAdj] == 0)
        #expect(fake.writes.map(\.tunable) == [.tcpTimeoutEstablished, .tcpTimeoutCloseWait])
    }
}

/// Log lines as `level message`, for tests that check what an operator reads.
final class LogLines: Sendable {
    private let storage = Mutex<[String]>([])

    var lines: [String] { storage.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "test") { _ in Handler(sink: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ line: String) { storage.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let sink: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            sink.append("\(event.level) \(event.message)")
        }
    }
}
