extension BenchResults {
    /// What one cluster size costs in memory, measured around its cold full sync.
    public struct Cost: Codable, Sendable, Equatable {
        public var services: Int
        public var elements: Int
        public var chains: Int
        public var rules: Int
        /// The bench process's resident set just before the cold sync (`VmRSS`).
        public var rssBeforeBytes: Int
        /// The bench process's peak resident set over compile + plan + render + libnftables apply of the
        /// whole cluster (`VmHWM`, reset through `/proc/self/clear_refs` before compiling). This is the
        /// in-process pipeline the agent runs, not the `switchboard` agent binary itself.
        public var peakRSSBytes: Int
        /// Machine-wide kernel slab (`/proc/meminfo` `Slab`) after minus before the libnftables apply. Other
        /// processes on the machine add noise; small sizes can even come out negative.
        public var slabDeltaBytes: Int
        /// The unreclaimable part (`SUnreclaim`), where nftables objects live.
        public var sUnreclaimDeltaBytes: Int

        public init(
            services: Int, elements: Int, chains: Int, rules: Int, rssBeforeBytes: Int, peakRSSBytes: Int,
            slabDeltaBytes: Int, sUnreclaimDeltaBytes: Int
        ) {
            self.services = services
            self.elements = elements
            self.chains = chains
            self.rules = rules
            self.rssBeforeBytes = rssBeforeBytes
            self.peakRSSBytes = peakRSSBytes
            self.slabDeltaBytes = slabDeltaBytes
            self.sUnreclaimDeltaBytes = sUnreclaimDeltaBytes
        }

        /// SUnreclaim delta per kernel object (elements + chains + rules), in bytes.
        public var kernelBytesPerObject: Double {
            let objects = elements + chains + rules
            return objects > 0 ? Double(sUnreclaimDeltaBytes) / Double(objects) : 0
        }
    }

    /// The cost section of the Markdown report (empty when the run measured none).
    public var costMarkdown: String {
        guard !costs.isEmpty else { return "" }
        func mib(_ bytes: Int) -> String { fixed(Double(bytes) / 1_048_576, 1) }
        var md = "\n## Cost per cluster size (MiB)\n\n"
        md += "Peak RSS is the bench process's own high-water mark (`VmHWM`, reset before each size) over "
        md += "compile, plan, render and the libnftables apply: the agent's pipeline in process, not the "
        md += "agent binary. Kernel memory is the machine-wide `/proc/meminfo` delta around the apply.\n\n"
        md += markdownTable(
            ["Services", "elements", "chains", "rules", "RSS before", "peak RSS", "slab Δ", "SUnreclaim Δ",
             "bytes / object"],
            costs.map { c in
                ["\(c.services)", "\(c.elements)", "\(c.chains)", "\(c.rules)", mib(c.rssBeforeBytes),
                 mib(c.peakRSSBytes), mib(c.slabDeltaBytes), mib(c.sUnreclaimDeltaBytes),
                 fixed(c.kernelBytesPerObject, 0)]
            }
        )
        return md
    }
}
