import BenchKit
import Foundation
import SwitchboardTesting

#if canImport(Glibc)
    import Glibc
#endif

/// Finds when a ClusterIP starts to answer, from inside a node namespace: one long-lived Python process takes
/// the targets (`ip:port`) in order and, for each, starts a fresh non-blocking TCP connect every `every` until
/// one completes, then prints `<index> <CLOCK_MONOTONIC ns> <attempts>` (`ProbeOutcome`) and moves on to the
/// next target at once. The caller creates target k's Service after it has seen target k-1's line, and
/// compares its own `CLOCK_MONOTONIC` reading at the Service's POST with the printed one (one clock for both
/// processes, so nothing but the proxy's work is between the two readings; Python's start-up is not).
///
/// Why a fresh connect each time: a SYN sent before the proxy's rules exist creates a conntrack entry
/// without NAT, and its retransmits follow that entry into the void forever. Each attempt uses a new
/// ephemeral port, hence a new flow that meets the rules as they are now. Attempts with no answer after
/// `patience` are dropped (the node routes unknown addresses into a sink, so they would never complete).
/// Sockets close with RST (SO_LINGER 0), so nothing waits in TIME_WAIT.
final class ConnectProber: Sendable {
    let process: BackgroundProcess

    private init(process: BackgroundProcess) { self.process = process }

    /// Starts the prober in `namespace` and waits until it runs; it is already probing target 0 then.
    /// `limit` bounds the probing of one target (from when the previous one connected).
    static func start(
        targets: [(ip: String, port: Int)], in namespace: String, every: Duration, patience: Duration,
        limit: Duration
    ) async throws -> ConnectProber {
        let process = try Shell.start(
            [DataPlaneBench.python, "-I", "-c", script]
                + [limit, every, patience].map { fixed($0.milliseconds / 1000, 4) }
                + [targets.map { "\($0.ip):\($0.port)" }.joined(separator: ",")],
            in: namespace)
        let prober = ConnectProber(process: process)
        let deadline = ContinuousClock.now + .seconds(10)
        while !process.output().stdout.hasPrefix("ready\n") {
            if let status = process.exitStatus {
                throw ScaleRun.Failure(description: "connect prober exited (\(status)): \(process.output().stderr)")
            }
            if ContinuousClock.now > deadline {
                await process.stop()
                throw ScaleRun.Failure(description: "connect prober did not start")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return prober
    }

    /// Waits for target `index`'s line (the prober gives up on a target by itself after its `limit`).
    func outcome(_ index: Int) async throws -> ProbeOutcome {
        while true {
            if let found = ProbeOutcome.parse(process.output().stdout).first(where: { $0.index == index }) {
                return found
            }
            if let status = process.exitStatus {
                throw ScaleRun.Failure(
                    description: "connect prober exited (\(status)) before target \(index): \(process.output().stderr)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds: the clock Python's `time.monotonic_ns()` reads.
    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    // argv: limit-seconds every-seconds patience-seconds targets(ip:port,...)
    static let script = #"""
        import errno, select, socket, struct, sys, time
        limit, every, patience = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
        targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in sys.argv[4].split(",")]
        linger = struct.pack("ii", 1, 0)
        print("ready", flush=True)
        for k, target in enumerate(targets):
            poller = select.epoll()
            pending = {}  # fd -> (socket, started)
            connected, attempts = -1, 0
            start = time.monotonic()
            next_attempt = start
            while connected < 0 and time.monotonic() - start < limit:
                if time.monotonic() >= next_attempt:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    s.setblocking(False)
                    err = s.connect_ex(target)
                    attempts += 1
                    next_attempt = time.monotonic() + every
                    if err == 0:
                        connected = time.monotonic_ns()
                        s.close()
                        break
                    if err != errno.EINPROGRESS:
                        s.close()
                    else:
                        pending[s.fileno()] = (s, time.monotonic())
                        poller.register(s.fileno(), select.EPOLLOUT)
                for fd, _ in poller.poll(max(0.0, next_attempt - time.monotonic())):
                    s, _ = pending.pop(fd)
                    poller.unregister(fd)
                    if connected < 0 and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        connected = time.monotonic_ns()
                    s.close()
                now = time.monotonic()
                for fd in [fd for fd, (_, t) in pending.items() if now - t > patience]:
                    s, _ = pending.pop(fd)
                    poller.unregister(fd)
                    s.close()
            for s, _ in pending.values():
                s.close()
            poller.close()
            print("%d %d %d" % (k, connected, attempts), flush=True)
        """#
}
