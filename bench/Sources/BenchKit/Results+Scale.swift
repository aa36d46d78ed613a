/// What the scale run measured (issue 10, item 5): the `switchboard run` binary, and with `--peer` kube-proxy
/// at the first size, against the real API server, one fresh control plane per cluster size. Times in ms,
/// memory in bytes.
public struct ScaleResult: Codable, Sendable, Equatable {
    /// One proxy process at one size.
    /// One full rebuild of the intact ruleset (`--full-rebuild-period`) while connections run back to back
    /// through a ClusterIP from the node namespace.
    public struct Rebuild: Codable, Sendable, Equatable {
        public var periodSeconds: Double
        /// Connections made (each a fresh TCP connect, request and reply) and how many failed, in all.
        public var connections: Int
        public var failed: Int
        /// The same, in the rounds of 100 that overlap the rebuild (its span widened by half a second each
        /// side); the others are the baseline of the harness itself.
        public var connectionsDuring: Int
        public var failedDuring: Int
        /// The rebuild's own duration (the full-sync histogram's sum over the rebuilds seen).
        public var rebuildMs: Double
        public var rebuilds: Int
        /// The agent's `VmRSS` before the traffic, its `VmHWM` (reset just before) after, and `VmRSS` after.
        public var rssBeforeBytes: Int
        public var peakRSSBytes: Int
        public var rssAfterBytes: Int

        public init(
            periodSeconds: Double, connections: Int, failed: Int, connectionsDuring: Int, failedDuring: Int,
            rebuildMs: Double, rebuilds: Int, rssBeforeBytes: Int, peakRSSBytes: Int, rssAfterBytes: Int
        ) {
            self.connectionsDuring = connectionsDuring
            self.failedDuring = failedDuring
            self.periodSeconds = periodSeconds
            self.connections = connections
            self.failed = failed
            self.rebuildMs = rebuildMs
            self.rebuilds = rebuilds
            self.rssBeforeBytes = rssBeforeBytes
            self.peakRSSBytes = peakRSSBytes
            self.rssAfterBytes = rssAfterBytes
        }
    }

    public struct Proxy: Codable, Sendable, Equatable {
        /// `switchboard` or `kube-proxy`.
        public var name: String
        public var version: String
        /// Process start → every Service's cluster IP in its kernel (the end of the poll that saw the last one).
        public var coldMs: Double
        /// One poll of the kernel during the cold start (process start, dump, parse): the resolution of `coldMs`.
        public var poll: Summary
        /// The process's `VmRSS` right after the poll that saw every Service.
        public var rssProgrammedBytes: Int
        /// Its `VmRSS` after the settle time.
        public var rssSettledBytes: Int
        /// Its `VmHWM` after the settle time, and at least every `VmRSS` read: the peak resident set since it
        /// started.
        public var peakRSSBytes: Int
        /// Machine-wide `/proc/meminfo` `Slab` after the settle time minus just before the process started.
        /// Anything else on the machine is in it too (the API server answering the list, for one).
        public var slabDeltaBytes: Int
        /// The unreclaimable part (`SUnreclaim`), where nftables and iptables objects live.
        public var sUnreclaimDeltaBytes: Int
        /// Service POST sent → the first TCP connect to its ClusterIP:port that completed, from inside the node
        /// namespace (a new attempt every 5 ms). The EndpointSlice was created just before the Service.
        public var newService: Summary
        /// New Services with no completed connect within the limit (left out of `newService`).
        public var notConnected: Int
        /// From the proxy's own /metrics at the end (`kubeproxy_sync_proxy_rules_duration_seconds`): how many
        /// syncs it ran and their mean duration.
        public var syncs: Int?
        public var meanSyncMs: Double?
        /// `--rebuild-period`: one full rebuild under continuous connections (switchboard only).
        public var rebuild: Rebuild?

        public init(
            name: String, version: String, coldMs: Double, poll: Summary, rssProgrammedBytes: Int,
            rssSettledBytes: Int, peakRSSBytes: Int, slabDeltaBytes: Int, sUnreclaimDeltaBytes: Int,
            newService: Summary, notConnected: Int, syncs: Int?, meanSyncMs: Double?
        ) {
            self.name = name
            self.version = version
            self.coldMs = coldMs
            self.poll = poll
            self.rssProgrammedBytes = rssProgrammedBytes
            self.rssSettledBytes = rssSettledBytes
            self.peakRSSBytes = peakRSSBytes
            self.slabDeltaBytes = slabDeltaBytes
            self.sUnreclaimDeltaBytes = sUnreclaimDeltaBytes
            self.newService = newService
            self.notConnected = notConnected
            self.syncs = syncs
            self.meanSyncMs = meanSyncMs
        }
    }

    /// One cluster size, in its own control plane.
    public struct Size: Codable, Sendable, Equatable {
        public var services: Int
        public var endpointsPerService: Int
        /// Creating the S Services and their EndpointSlices through the API (s), and the types they got.
        public var apiCreateSeconds: Double
        public var apiServiceTypes: [String: Int]
        /// The endpoints of one Service's EndpointSlice as the API server returns it: all E in one slice.
        public var sliceEndpoints: Int
        public var switchboard: Proxy
        /// With `--peer`, at the first size only.
        public var kubeProxy: Proxy?

        public init(
            services: Int, endpointsPerService: Int, apiCreateSeconds: Double, apiServiceTypes: [String: Int],
            sliceEndpoints: Int, switchboard: Proxy, kubeProxy: Proxy?
        ) {
            self.services = services
            self.endpointsPerService = endpointsPerService
            self.apiCreateSeconds = apiCreateSeconds
            self.apiServiceTypes = apiServiceTypes
            self.sliceEndpoints = sliceEndpoints
            self.switchboard = switchboard
            self.kubeProxy = kubeProxy
        }

        /// The proxies measured at this size, Switchboard first.
        public var proxies: [Proxy] { [switchboard] + (kubeProxy.map { [$0] } ?? []) }
    }

    public var minSyncPeriod: String
    public var syncPeriod: String
    public var newServices: Int
    public var settleSeconds: Double
    /// A proxy that exited or never programmed every Service at some size (the OOM killer, at a size the
    /// machine cannot hold), and why: a result, not a failed run.
    public struct GaveOut: Codable, Sendable, Equatable {
        public var services: Int
        public var proxy: String
        public var reason: String

        public init(services: Int, proxy: String, reason: String) {
            self.services = services
            self.proxy = proxy
            self.reason = reason
        }
    }

    /// The pause between one new Service's first connect and the next one's POST.
    public var newServiceGapMs: Double
    public var sizes: [Size]
    /// Where a proxy gave out. Once Switchboard has, no later size is measured.
    public var gaveOut: [GaveOut]

    public init(
        minSyncPeriod: String, syncPeriod: String, newServices: Int, settleSeconds: Double, newServiceGapMs: Double,
        sizes: [Size], gaveOut: [GaveOut] = []
    ) {
        self.minSyncPeriod = minSyncPeriod
        self.syncPeriod = syncPeriod
        self.newServices = newServices
        self.settleSeconds = settleSeconds
        self.newServiceGapMs = newServiceGapMs
        self.sizes = sizes
        self.gaveOut = gaveOut
    }
}

extension BenchResults {
    /// The Markdown report of a scale run (empty without one).
    public var scaleMarkdown: String {
        guard let scale else { return "" }
        func f(_ x: Double) -> String {
            x >= 100 ? String(Int(x.rounded())) : x >= 10 ? fixed(x, 1) : fixed(x, 2)
        }
        func mib(_ bytes: Int) -> String { fixed(Double(bytes) / 1_048_576, 1) }
        var md = "# switchboard-bench results: scale through the API server\n\n"
        md += "Kernel \(machine.kernel), \(machine.cpus) CPUs, \(machine.nftVersion), "
        md += "libnftables \(machine.libnftables), \(machine.build) build, \(machine.date).\n\n"
        md += "Each size in a fresh control plane (etcd + kube-apiserver v1.20): the Services and their "
        md += "EndpointSlices created through the API, then the proxy binary started in a node namespace "
        md += "(min-sync-period \(scale.minSyncPeriod), sync-period \(scale.syncPeriod)). Cold start: process "
        md += "start → every cluster IP in its kernel. RSS of the proxy process right then and "
        md += "\(fixed(scale.settleSeconds, 1)) s later; peak is its `VmHWM`; slab Δ is machine-wide, from "
        md += "just before the start to after the settle.\n\n"
        md += "## Cold start and memory (MiB)\n\n"
        md += markdownTable(
            ["Services", "endpoints", "slice endpoints", "API create (s)", "proxy", "cold start (s)",
             "RSS programmed", "RSS settled", "peak RSS", "slab Δ", "SUnreclaim Δ"],
            scale.sizes.flatMap { s in
                s.proxies.map { p in
                    ["\(s.services)", "\(s.endpointsPerService)", "\(s.sliceEndpoints)", fixed(s.apiCreateSeconds, 1),
                     "\(p.name) (\(p.version))", fixed(p.coldMs / 1000, 2), mib(p.rssProgrammedBytes),
                     mib(p.rssSettledBytes), mib(p.peakRSSBytes), mib(p.slabDeltaBytes), mib(p.sUnreclaimDeltaBytes)]
                }
            })
        md += "\n## New Service → first TCP connect through its ClusterIP (ms)\n\n"
        md += "\(scale.newServices) new Services one at a time, each with an EndpointSlice of 3 listening pods "
        md += "(the slice POSTed first, then the Service), \(f(scale.newServiceGapMs)) ms apart; timed from the "
        md += "Service POST to the first completed connect from the node namespace (a fresh attempt every 5 ms).\n\n"
        md += markdownTable(
            ["Services", "proxy", "n", "p50", "p90", "p99", "max", "not connected", "syncs", "mean sync"],
            scale.sizes.flatMap { s in
                s.proxies.map { p in
                    ["\(s.services)", p.name, "\(p.newService.count)", f(p.newService.p50), f(p.newService.p90),
                     f(p.newService.p99), f(p.newService.max), "\(p.notConnected)", p.syncs.map(String.init) ?? "?",
                     p.meanSyncMs.map(f) ?? "?"]
                }
            })
        md += "\nsyncs / mean sync: from each proxy's `kubeproxy_sync_proxy_rules_duration_seconds` at the end.\n"
        let rebuilds = scale.sizes.compactMap { s in s.switchboard.rebuild.map { (s.services, $0) } }
        if !rebuilds.isEmpty {
            md += "\n## Full rebuild under traffic\n\n"
            md += "switchboard run with `--full-rebuild-period`; after the new Services, TCP connections back to back "
            md += "(a fresh connect, request and reply each) from the node namespace through a new Service's "
            md += "ClusterIP to its 3 pods, until a full rebuild of the intact ruleset (a staged rebuild) has run "
            md += "and one more round after it. Peak: the agent's `VmHWM`, reset just before the traffic. \"Around it\": "
            md += "the rounds of 100 connections that overlap the rebuild (±0.5 s); the rest are the harness's own "
            md += "baseline (a Python client and three single-process Python servers at several hundred "
            md += "connections a second).\n\n"
            md += markdownTable(
                ["Services", "period (s)", "rebuilds", "rebuild (ms)", "connections around it", "failed around it",
                 "connections in all", "failed in all", "RSS before (MiB)", "peak RSS (MiB)", "RSS after (MiB)"],
                rebuilds.map { services, r in
                    ["\(services)", f(r.periodSeconds), "\(r.rebuilds)", f(r.rebuildMs), "\(r.connectionsDuring)",
                     "\(r.failedDuring)", "\(r.connections)", "\(r.failed)", mib(r.rssBeforeBytes),
                     mib(r.peakRSSBytes), mib(r.rssAfterBytes)]
                })
        }
        if !scale.gaveOut.isEmpty {
            md += "\n## Not measured\n\n"
            for g in scale.gaveOut { md += "- \(g.services) Services, \(g.proxy): \(g.reason)\n" }
        }
        for s in scale.sizes {
            guard let k = s.kubeProxy else { continue }
            func r(_ a: Double, _ b: Double) -> String { b > 0 ? fixed(a / b, 2) : "n/a" }
            let sb = s.switchboard
            md += "\nswitchboard / kube-proxy at \(s.services) Services: cold start \(r(sb.coldMs, k.coldMs)), "
            md += "RSS settled \(r(Double(sb.rssSettledBytes), Double(k.rssSettledBytes))), "
            md += "peak RSS \(r(Double(sb.peakRSSBytes), Double(k.peakRSSBytes))), "
            md += "new Service p50 \(r(sb.newService.p50, k.newService.p50)), "
            md += "p99 \(r(sb.newService.p99, k.newService.p99)).\n"
        }
        return md
    }

    /// The scale run's charts against cluster size: the proxies' memory (RSS after the settle, peak), and
    /// their cold start. kube-proxy, measured at one size, shows as single points.
    public func scaleCharts() -> [LineChart] {
        let sizes = (scale?.sizes ?? []).sorted { $0.services < $1.services }
        func series(
            _ name: String, _ proxy: (ScaleResult.Size) -> ScaleResult.Proxy?, dashed: Bool = false,
            _ value: (ScaleResult.Proxy) -> Double
        ) -> ChartSeries {
            let points = sizes.compactMap { s in proxy(s).map { (Double(s.services), value($0)) } }
            return ChartSeries(name: name, points, dashed: dashed)
        }
        func mib(_ bytes: Int) -> Double { Double(bytes) / 1_048_576 }
        let switchboard: (ScaleResult.Size) -> ScaleResult.Proxy? = { $0.switchboard }
        let kubeProxy: (ScaleResult.Size) -> ScaleResult.Proxy? = { $0.kubeProxy }
        let endpoints = sizes.first.map { " (× \($0.endpointsPerService) endpoints)" } ?? ""
        var memory = [
            series("Switchboard RSS after settle", switchboard) { mib($0.rssSettledBytes) },
            series("Switchboard peak RSS", switchboard, dashed: true) { mib($0.peakRSSBytes) },
        ]
        var cold = [series("Switchboard", switchboard) { $0.coldMs / 1000 }]
        if sizes.contains(where: { $0.kubeProxy != nil }) {
            memory += [
                series("kube-proxy RSS after settle", kubeProxy) { mib($0.rssSettledBytes) },
                series("kube-proxy peak RSS", kubeProxy, dashed: true) { mib($0.peakRSSBytes) },
            ]
            cold.append(series("kube-proxy v1.20 (iptables)", kubeProxy) { $0.coldMs / 1000 })
        }
        return [
            LineChart(
                title: "Proxy memory through the API server", xLabel: "Services\(endpoints)",
                yLabel: "resident set (MiB)", series: memory),
            LineChart(
                title: "Cold start: process start to every Service in the kernel", xLabel: "Services\(endpoints)",
                yLabel: "seconds", series: cold),
        ]
    }
}
