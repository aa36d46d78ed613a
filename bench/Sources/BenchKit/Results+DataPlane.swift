extension BenchResults {
    /// First-packet latency through the node's ruleset at one cluster size: a client on the node network
    /// opens fresh TCP connections (SYN → SYN-ACK → established, each a new conntrack entry, so each one's
    /// first packet goes through the nat chains and the Service lookup) to a ClusterIP whose endpoints are
    /// real listening pods. Times in ms, measured inside one long-lived client process.
    public struct DataPlane: Codable, Sendable, Equatable {
        /// Synthetic Services in the loaded ruleset (the measured Service comes on top).
        public var services: Int
        /// Set and map elements in the loaded ruleset.
        public var elements: Int
        /// Real listening pods behind the measured Service.
        public var backends: Int
        /// Connects attempted per path (ClusterIP and direct).
        public var connects: Int
        /// Connects that failed (refused, timed out); not in the summaries.
        public var failures: Int
        /// `connect()` to the ClusterIP: DNAT through Switchboard's ruleset.
        public var clusterIP: Summary
        /// `connect()` straight to a pod IP through the same node and ruleset (no Service lookup hit, no
        /// DNAT): the floor of the path, interleaved with the ClusterIP connects.
        public var direct: Summary
        /// clusterIP.p50 and .p99 divided by those of the smallest size in the run (1 for that size).
        public var ratioP50: Double
        public var ratioP99: Double

        public init(
            services: Int, elements: Int, backends: Int, connects: Int, failures: Int, clusterIP: Summary,
            direct: Summary, ratioP50: Double = 1, ratioP99: Double = 1
        ) {
            self.services = services
            self.elements = elements
            self.backends = backends
            self.connects = connects
            self.failures = failures
            self.clusterIP = clusterIP
            self.direct = direct
            self.ratioP50 = ratioP50
            self.ratioP99 = ratioP99
        }

        /// `rows` with ratioP50 / ratioP99 set relative to the row with the fewest Services.
        public static func relatingToSmallest(_ rows: [DataPlane]) -> [DataPlane] {
            guard let base = rows.min(by: { $0.services < $1.services }) else { return rows }
            return rows.map { row in
                var r = row
                r.ratioP50 = base.clusterIP.p50 > 0 ? row.clusterIP.p50 / base.clusterIP.p50 : 0
                r.ratioP99 = base.clusterIP.p99 > 0 ? row.clusterIP.p99 / base.clusterIP.p99 : 0
                return r
            }
        }
    }

    /// The data-plane section of the Markdown report (empty when the run measured none). In µs.
    public var dataPlaneMarkdown: String {
        guard !dataPlane.isEmpty else { return "" }
        func us(_ ms: Double) -> String { fixed(ms * 1000, ms * 1000 >= 100 ? 0 : 1) }
        let smallest = dataPlane.map(\.services).min() ?? 0
        var md = "\n## Data plane: TCP connect through a ClusterIP (µs)\n\n"
        md += "A fresh connection each time (SYN to established), from a client namespace through the node "
        md += "namespace holding the whole ruleset, to \(dataPlane[0].backends) listening pod(s); ratios are "
        md += "relative to \(smallest) Services. `direct` is the same path to a pod IP, without the Service.\n\n"
        md += markdownTable(
            ["Services", "elements", "connects", "failed", "ClusterIP p50", "p90", "p99", "min", "max",
             "direct p50", "direct p99", "ratio p50", "ratio p99"],
            dataPlane.map { d in
                ["\(d.services)", "\(d.elements)", "\(d.connects)", "\(d.failures)", us(d.clusterIP.p50),
                 us(d.clusterIP.p90), us(d.clusterIP.p99), us(d.clusterIP.min), us(d.clusterIP.max),
                 us(d.direct.p50), us(d.direct.p99), fixed(d.ratioP50, 2), fixed(d.ratioP99, 2)]
            }
        )
        return md
    }
}
