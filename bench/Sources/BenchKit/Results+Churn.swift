/// The four single changes the harness cycles through (the single-change part and the churn run).
public enum ChangeKind: String, Codable, CaseIterable, Sendable {
    case addEndpoint = "add-endpoint"
    case removeEndpoint = "remove-endpoint"
    case addService = "add-service"
    case removeService = "remove-service"
}

/// What a churn run measured (issue 4, part 3). Times in ms.
public struct ChurnResult: Codable, Sendable, Equatable {
    /// `in-memory` (FakeClusterSource) or `apiserver` (KubeClusterSource against ../shared/k8s).
    public var source: String
    public var services: Int
    public var endpointsPerService: Int
    public var rate: Int
    public var seconds: Int
    public var minSyncPeriod: String
    public var syncPeriod: String
    /// API mode: how long creating the cluster through the API took (s), and the Service types it got.
    public var apiCreateSeconds: Double?
    public var apiServiceTypes: [String: Int]?
    /// Controller start to the first successful (full) sync.
    public var initialSyncMs: Double
    public var pushed: Int
    public var committed: Int
    /// Changes never seen committed before the run ended, by kind.
    public var notCommitted: [String: Int]
    /// Changes to a Service that was removed before they were committed (so they never will be), by kind.
    public var superseded: [String: Int]
    /// Change made (sent) → transaction holding it committed.
    public var latency: Summary
    public var latencyByKind: [String: Summary]
    /// API mode: each change's requests, sent to answered.
    public var apiWrite: Summary?
    /// How late the pushes ran behind the schedule at the end (ms); a large value means the rate was not met.
    public var scheduleLagMs: Double
    public var syncs: Int
    public var fullSyncs: Int
    public var failedSyncs: Int
    public var syncDuration: Summary
    public var partialSyncDuration: Summary
    public var fullSyncDuration: Summary

    public init(
        source: String, services: Int, endpointsPerService: Int, rate: Int, seconds: Int, minSyncPeriod: String,
        syncPeriod: String, apiCreateSeconds: Double?, apiServiceTypes: [String: Int]?, initialSyncMs: Double,
        pushed: Int, committed: Int, notCommitted: [String: Int], superseded: [String: Int], latency: Summary,
        latencyByKind: [String: Summary], apiWrite: Summary?, scheduleLagMs: Double, syncs: Int, fullSyncs: Int,
        failedSyncs: Int, syncDuration: Summary, partialSyncDuration: Summary, fullSyncDuration: Summary
    ) {
        self.source = source
        self.services = services
        self.endpointsPerService = endpointsPerService
        self.rate = rate
        self.seconds = seconds
        self.minSyncPeriod = minSyncPeriod
        self.syncPeriod = syncPeriod
        self.apiCreateSeconds = apiCreateSeconds
        self.apiServiceTypes = apiServiceTypes
        self.initialSyncMs = initialSyncMs
        self.pushed = pushed
        self.committed = committed
        self.notCommitted = notCommitted
        self.superseded = superseded
        self.latency = latency
        self.latencyByKind = latencyByKind
        self.apiWrite = apiWrite
        self.scheduleLagMs = scheduleLagMs
        self.syncs = syncs
        self.fullSyncs = fullSyncs
        self.failedSyncs = failedSyncs
        self.syncDuration = syncDuration
        self.partialSyncDuration = partialSyncDuration
        self.fullSyncDuration = fullSyncDuration
    }
}

/// What the peer run measured (issue 4, part 4): kube-proxy (iptables) and `switchboard run` through one API
/// server. Times in ms.
public struct PeerResult: Codable, Sendable, Equatable {
    public struct Proxy: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        /// Process start → every one of the initial Services' cluster IPs in the kernel.
        public var coldMs: Double
        /// Service POST sent → its cluster IP seen in the kernel (end of the poll that saw it).
        public var latency: Summary
        /// New Services never seen before the run ended.
        public var notSeen: Int
        /// One poll of the kernel (process start, dump, parse): the resolution of `latency`.
        public var poll: Summary
        /// From the proxy's own /metrics at the end (`kubeproxy_sync_proxy_rules_duration_seconds`, the
        /// same name in both): how many syncs it ran and their mean duration.
        public var syncs: Int?
        public var meanSyncMs: Double?

        public init(
            name: String, version: String, coldMs: Double, latency: Summary, notSeen: Int, poll: Summary,
            syncs: Int?, meanSyncMs: Double?
        ) {
            self.name = name
            self.version = version
            self.coldMs = coldMs
            self.latency = latency
            self.notSeen = notSeen
            self.poll = poll
            self.syncs = syncs
            self.meanSyncMs = meanSyncMs
        }
    }

    public var services: Int
    public var endpointsPerService: Int
    public var rate: Int
    public var seconds: Int
    public var minSyncPeriod: String
    public var syncPeriod: String
    public var apiCreateSeconds: Double
    public var apiServiceTypes: [String: Int]
    /// One new Service during the churn: slice POST, Service POST (and status PATCH for a LoadBalancer).
    public var apiWrite: Summary
    public var created: Int
    public var switchboard: Proxy
    public var kubeProxy: Proxy
    /// switchboard / kube-proxy, on the same new Services.
    public var ratioCold: Double
    public var ratioP50: Double
    public var ratioP90: Double
    public var ratioP99: Double

    public init(
        services: Int, endpointsPerService: Int, rate: Int, seconds: Int, minSyncPeriod: String, syncPeriod: String,
        apiCreateSeconds: Double, apiServiceTypes: [String: Int], apiWrite: Summary, created: Int,
        switchboard: Proxy, kubeProxy: Proxy, ratioCold: Double, ratioP50: Double, ratioP90: Double,
        ratioP99: Double
    ) {
        self.services = services
        self.endpointsPerService = endpointsPerService
        self.rate = rate
        self.seconds = seconds
        self.minSyncPeriod = minSyncPeriod
        self.syncPeriod = syncPeriod
        self.apiCreateSeconds = apiCreateSeconds
        self.apiServiceTypes = apiServiceTypes
        self.apiWrite = apiWrite
        self.created = created
        self.switchboard = switchboard
        self.kubeProxy = kubeProxy
        self.ratioCold = ratioCold
        self.ratioP50 = ratioP50
        self.ratioP90 = ratioP90
        self.ratioP99 = ratioP99
    }
}

extension BenchResults {
    /// The Markdown report of a churn / peer run.
    public var churnMarkdown: String {
        func f(_ x: Double) -> String {
            x >= 100 ? String(Int(x.rounded())) : x >= 10 ? fixed(x, 1) : fixed(x, 2)
        }
        let table = markdownTable
        var md = "# switchboard-bench results: churn and peer\n\n"
        md += "Kernel \(machine.kernel), \(machine.cpus) CPUs, \(machine.nftVersion), "
        md += "libnftables \(machine.libnftables), "
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
