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

extension BenchResults {
    /// The Markdown report of a churn / peer run.
    var churnMarkdown: String {
        func f(_ x: Double) -> String {
            x >= 100 ? String(Int(x.rounded())) : x >= 10 ? fixed(x, 1) : fixed(x, 2)
        }
        func table(_ header: [String], _ rows: [[String]]) -> String {
            func line(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |\n" }
            return line(header) + "|" + String(repeating: "---:|", count: header.count) + "\n"
                + rows.map(line).joined()
        }
        var md = "# switchboard-bench results: churn and peer\n\n"
        md += "Kernel \(machine.kernel), \(machine.cpus) CPUs, \(machine.nftVersion), "
        md += "\(machine.build) build, \(machine.date).\n\n"
        for c in churn ?? [] {
            md += "## Churn through the controller (\(c.source))\n\n"
            md += "\(c.services) Services × \(c.endpointsPerService) endpoints; \(c.rate) changes/s for \(c.seconds) s "
            md += "(add endpoint, remove endpoint, add Service, remove Service in turn); min-sync-period "
            md += "\(c.minSyncPeriod), sync-period \(c.syncPeriod). Initial sync \(f(c.initialSyncMs)) ms"
            if let s = c.apiCreateSeconds { md += "; cluster created through the API in \(fixed(s, 1)) s" }
            if let types = c.apiServiceTypes {
                md += " (" + types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")"
            }
            md += ". Pushes ran \(f(c.scheduleLagMs)) ms behind schedule at the end.\n\n"
            md += "Change made → committed (ms):\n\n"
            md += table(
                ["changes", "n", "p50", "p90", "p99", "max", "superseded", "not committed"],
                [["all", "\(c.committed)/\(c.pushed)", f(c.latency.p50), f(c.latency.p90), f(c.latency.p99),
                  f(c.latency.max), "\(c.superseded.values.reduce(0, +))", "\(c.notCommitted.values.reduce(0, +))"]]
                    + ChangeKind.allCases.map { kind in
                        let s = c.latencyByKind[kind.rawValue] ?? Summary([])
                        return [kind.rawValue, "\(s.count)", f(s.p50), f(s.p90), f(s.p99), f(s.max),
                                "\(c.superseded[kind.rawValue] ?? 0)", "\(c.notCommitted[kind.rawValue] ?? 0)"]
                    })
            md += "\nSuperseded: made to a Service that was removed before the change was committed.\n"
            if let w = c.apiWrite {
                md += "\nAPI write per change: p50 \(f(w.p50)) ms, p99 \(f(w.p99)) ms (included above).\n"
            }
            md += "\nSyncs: \(c.syncs) (\(c.fullSyncs) full, \(c.failedSyncs) failed); duration (ms):\n\n"
            md += table(
                ["syncs", "n", "p50", "p90", "p99", "max"],
                [("all", c.syncDuration), ("partial", c.partialSyncDuration), ("full", c.fullSyncDuration)].map {
                    [$0.0, "\($0.1.count)", f($0.1.p50), f($0.1.p90), f($0.1.p99), f($0.1.max)]
                })
            md += "\n"
        }
        if let p = peer {
            md += "## Peer: kube-proxy (iptables) vs `switchboard run`, through the API\n\n"
            md += "\(p.services) Services × \(p.endpointsPerService) endpoints created through the API in "
            md += "\(fixed(p.apiCreateSeconds, 1)) s ("
            md += p.apiServiceTypes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            md += "); then \(p.created) new Services at \(p.rate)/s, both proxies running. min-sync-period "
            md += "\(p.minSyncPeriod), sync-period \(p.syncPeriod) for both. API write per new Service: p50 "
            md += "\(f(p.apiWrite.p50)) ms, p99 \(f(p.apiWrite.p99)) ms.\n\n"
            md += "New Service: POST sent → cluster IP in the proxy's kernel (ms); cold: process start → all "
            md += "\(p.services) in the kernel:\n\n"
            md += table(
                ["proxy", "cold", "n", "p50", "p90", "p99", "max", "not seen", "poll p50", "poll p99", "syncs",
                 "mean sync"],
                [p.switchboard, p.kubeProxy].map { x in
                    ["\(x.name) (\(x.version))", f(x.coldMs), "\(x.latency.count)", f(x.latency.p50),
                     f(x.latency.p90), f(x.latency.p99), f(x.latency.max), "\(x.notSeen)", f(x.poll.p50),
                     f(x.poll.p99), x.syncs.map(String.init) ?? "?", x.meanSyncMs.map(f) ?? "?"]
                })
            md += "\nsyncs / mean sync: from each proxy's `kubeproxy_sync_proxy_rules_duration_seconds` at the end.\n"
            md += "\nswitchboard / kube-proxy: cold \(fixed(p.ratioCold, 2)), p50 \(fixed(p.ratioP50, 2)), "
            md += "p90 \(fixed(p.ratioP90, 2)), p99 \(fixed(p.ratioP99, 2)).\n"
        }
        return md
    }
}
