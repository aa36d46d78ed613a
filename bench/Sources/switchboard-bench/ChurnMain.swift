import BenchKit
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT / SIGTERM; read by the watcher in `interruptible`.
nonisolated(unsafe) private var interrupted: sig_atomic_t = 0

/// `--churn` and `--peer`: runs what was asked for, in that order, under `interruptible`.
func runChurnAndPeer(_ options: Options, log: @escaping @Sendable (String) -> Void) async throws
    -> (churn: [ChurnResult]?, peer: PeerResult?)
{
    try await interruptible(log: log) {
        var churn: [ChurnResult]?
        var peer: PeerResult?
        if options.churn.churn {
            churn = [try await ChurnRun(options: options, log: log).run()]
        }
        if options.churn.peer {
            peer = try await PeerRun(options: options, log: log).run()
        }
        return (churn, peer)
    }
}

/// Runs `work` so that SIGINT and SIGTERM cancel it instead of killing the harness.
///
/// The churn, peer and scale runs own processes (the control plane, socat bridges, the proxies) and
/// namespaces for minutes: cancelled, every run stops what it started on its way out. A second signal exits
/// at once. (A plain C handler rather than a Dispatch signal source: the latter needs the signal ignored, and
/// an ignored signal stays ignored in every child we exec.)
func interruptible<T: Sendable>(
    log: @escaping @Sendable (String) -> Void, _ work: @escaping @Sendable () async throws -> T
) async throws -> T {
    let task = Task { try await work() }
    let handler: @convention(c) (Int32) -> Void = { _ in
        if interrupted != 0 { _exit(130) }
        interrupted = 1
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    let watcher = Task {
        while !Task.isCancelled {
            if interrupted != 0 {
                log("interrupted: stopping and cleaning up (again to exit at once)")
                task.cancel()
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
    defer {
        watcher.cancel()
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
    return try await task.value
}
