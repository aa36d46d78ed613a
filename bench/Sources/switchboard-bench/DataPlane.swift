import BenchKit
import Foundation
import NetworkTypes
import NFTModel
import Netfilter
import SwitchboardCore
import SwitchboardTesting

/// First-packet latency through a ClusterIP with the whole cluster's ruleset loaded.
///
/// ```
///  client c1 ── LAN ── node n1 (ruleset: S synthetic Services + the probe) ── veth ── pods b1 b2 b3 :8080
/// ```
/// One long-lived Python process in the client namespace makes every connect and times each `connect()`
/// itself (SYN → SYN-ACK → established), so process start-up is never measured. Each connect is a new flow
/// (a fresh ephemeral port, closed with RST so no TIME_WAIT piles up), hence a new conntrack entry whose
/// first packet goes through the nat hook and the Service lookup. Connects to the probe ClusterIP alternate
/// with connects straight to a pod IP (same path, no Service hit): the floor, measured under the same noise.
struct DataPlaneBench {
    var options: Options
    var log: (String) -> Void

    /// Outside the synthetic ClusterIPs (10.96.0.1 upwards); the node routes it like any Service VIP.
    static let probeClusterIP = "10.111.255.1"
    static let servicePort = 80
    static let targetPort = 8080
    static let backendCount = 3
    static let warmup = 50

    func run(size: Int) async throws -> BenchResults.DataPlane {
        var builder = Topology.Builder().node("n1").client("c1", attachedTo: "n1")
        for i in 1...Self.backendCount { builder = builder.backend("b\(i)", on: "n1") }
        return try await withTopology(builder) { net in
            for pod in net.backends {
                try await net.startServer(on: pod.name, proto: .tcp, port: Self.targetPort, family: .v4)
            }
            var cluster = SyntheticCluster(services: size, endpointsPerService: options.endpointsPerService)
            cluster.addProbeService(
                clusterIP: IPAddress(Self.probeClusterIP)!, port: Self.servicePort, targetPort: Self.targetPort,
                endpoints: net.backends.map { IPAddress($0.ipv4)! }
            )
            let node = SyntheticCluster.nodeContext
            var compiler = IncrementalCompiler(node: node)
            compiler.update(cluster.state, changed: nil)
            guard compiler.diagnostics.isEmpty else {
                throw Bench.BenchError(description: "data-plane cluster: \(compiler.diagnostics.prefix(3))")
            }
            let ruleset = compiler.ruleset
            let backend = try KernelNFTables(networkNamespace: net.node("n1").namespace)
            let (_, loadMs) = try await timedAsync {
                if ruleset.elementCount > options.coldBatchesAbove {
                    let declarations = ruleset.setDeclarations
                    for batch in compiler.coldStartBatches(node.tableIDs, maxElements: Bench.coldBatchElements) {
                        try await backend.applyBatch(batch, declarations: declarations)
                    }
                } else {
                    _ = try await backend.library.run(ruleset.replacing(node.tableIDs).description)
                }
            }
            log("  data plane: loaded \(ruleset.elementCount) elements into the node in \(fixed(loadMs, 0)) ms; "
                + "\(options.connects) connects per path")

            let (run, runMs) = try await timedAsync {
                try await Shell.run(
                    [Self.python, "-I", "-c", Self.clientScript, Self.probeClusterIP, String(Self.servicePort),
                     net.backends.map(\.ipv4).joined(separator: ","), String(Self.targetPort),
                     String(options.connects), String(Self.warmup)],
                    in: net.client("c1").namespace,
                    timeout: .seconds(60 + options.connects / 50)
                ).checked()
            }
            var viaService = LatencyHistogram(), direct = LatencyHistogram()
            var failures = 0
            for line in run.stdout.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 2, let ns = Int(fields[1]) else { continue }
                if ns < 0 {
                    failures += 1
                    continue
                }
                let ms = Double(ns) / 1e6
                if fields[0] == "c" { viaService.record(milliseconds: ms) } else { direct.record(milliseconds: ms) }
            }
            guard viaService.count > 0 else {
                throw Bench.BenchError(description: "no connect to \(Self.probeClusterIP) succeeded: \(run.stderr)")
            }
            let result = BenchResults.DataPlane(
                services: size, elements: ruleset.elementCount, backends: Self.backendCount,
                connects: options.connects, failures: failures, clusterIP: viaService.summary, direct: direct.summary
            )
            log("  data plane: ClusterIP p50 \(fixed(result.clusterIP.p50 * 1000, 1)) µs, "
                + "p99 \(fixed(result.clusterIP.p99 * 1000, 1)) µs; "
                + "direct p50 \(fixed(result.direct.p50 * 1000, 1)) µs; "
                + "\(failures) failed; \(fixed(runMs / 1000, 1)) s")
            return result
        }
    }

    /// The system interpreter first: a version-manager shim is a shell script (only its start-up would
    /// cost, and that is outside the timing, but it may pick another Python).
    static let python: String =
        ["/usr/bin/python3", "/usr/local/bin/python3"]
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "python3"

    // argv: vip vport pod-ips(comma-separated) pod-port connects warmup
    // Prints "c <ns>" per ClusterIP connect and "d <ns>" per direct one, after the run (printing while timing
    // would add noise); a failed connect prints "-<errno>" as its time.
    static let clientScript = #"""
        import socket, struct, sys, time
        vip, vport, pods = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
        pport, n, warm = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        linger = struct.pack("ii", 1, 0)
        clock = time.perf_counter_ns

        def connect(addr, port):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # RST on close: no TIME_WAIT on either end, however many connects
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.settimeout(2.0)
            try:
                t0 = clock()
                s.connect((addr, port))
                return clock() - t0
            except OSError as e:
                return -(e.errno or 1)
            finally:
                s.close()

        for i in range(warm):
            connect(vip, vport)
            connect(pods[i % len(pods)], pport)
        out = []
        for i in range(n):
            out.append("c %d" % connect(vip, vport))
            out.append("d %d" % connect(pods[i % len(pods)], pport))
        print("\n".join(out), flush=True)
        """#
}
