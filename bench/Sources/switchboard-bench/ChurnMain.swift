import BenchKit
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT / SIGTERM; read by the watcher in `runChurnAndPeer`.
nonisolated(unsafe) private var interrupted: sig_atomic_t = 0

/// `--churn` and `--peer`: runs what was asked for, in that order.
///
/// These runs own processes (the control plane, socat bridges, both proxies) and namespaces for minutes, so
/// SIGINT and SIGTERM cancel the work instead of killing the harness: every run then stops what it started
/// on its way out. A second signal exits at once. (A plain C handler rather than a Dispatch signal source:
/// the latter needs the signal ignored, and an ignored signal stays ignored in every child we exec.)
func runChurnAndPeer(_ options: Options, log: @escaping @Sendable (String) -> Void) async throws
    -> (churn: [ChurnResult]?, peer: PeerResult?)
{
    let work = Task {
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
                work.cancel()
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
    return try await work.value
}
