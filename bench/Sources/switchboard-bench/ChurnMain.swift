/// `--churn`: runs what was asked for.
func runChurnAndPeer(_ options: Options, log: @escaping @Sendable (String) -> Void) async throws -> [ChurnResult]? {
    guard options.churn.churn else { return nil }
    return [try await ChurnRun(options: options, log: log).run()]
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
        return md
    }
}
