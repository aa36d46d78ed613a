/// Everything one run measured, as written to `<output>/latest.json` (or `quick.json`). Times in ms.
public struct BenchResults: Codable, Sendable, Equatable {
    public struct Machine: Codable, Sendable, Equatable {
        public var kernel: String
        public var cpus: Int
        public var nftVersion: String
        /// `pkg-config --modversion libnftables`: the library linked in process.
        public var libnftables: String
        public var date: String
        public var build: String

        public init(
            kernel: String, cpus: Int, nftVersion: String, libnftables: String, date: String, build: String
        ) {
            self.kernel = kernel
            self.cpus = cpus
            self.nftVersion = nftVersion
            self.libnftables = libnftables
            self.date = date
            self.build = build
        }
    }

    public struct Parameters: Codable, Sendable, Equatable {
        public var sizes: [Int]
        public var endpointsPerService: Int
        public var changes: Int
        public var quick: Bool
        public var seed: UInt64
        /// `--cold-batches-above` (absent in older results).
        public var coldBatchesAbove: Int?

        public init(
            sizes: [Int], endpointsPerService: Int, changes: Int, quick: Bool, seed: UInt64, coldBatchesAbove: Int? = nil
        ) {
            self.coldBatchesAbove = coldBatchesAbove
            self.sizes = sizes
            self.endpointsPerService = endpointsPerService
            self.changes = changes
            self.quick = quick
            self.seed = seed
        }
    }

    public struct ColdSync: Codable, Sendable, Equatable {
        public var services: Int
        public var endpoints: Int
        public var elements: Int
        public var chains: Int
        public var rules: Int
        public var scriptBytes: Int
        public var compileMs: Double
        public var planMs: Double
        /// Rendering the transaction to nft text (`Transaction.description`).
        public var renderMs: Double
        /// The rendered text as one libnftables batch (`nft_run_cmd_from_buffer`), in process.
        public var applyLibnftablesMs: Double
        /// `ip netns exec NS nft -f -` with the same text: process start, parse, commit.
        public var applyExecMs: Double
        /// applyLibnftablesMs / applyExecMs.
        public var ratio: Double
        /// Batches the cold sync was written in: 1 (absent in older results) is one transaction; more is the
        /// agent's bounded cold start (`IncrementalCompiler.coldStartBatches`), both paths batch by batch,
        /// each element-only batch through netlink on the in-process path, as the agent writes them.
        public var batches: Int?

        public init(
            services: Int, endpoints: Int, elements: Int, chains: Int, rules: Int, scriptBytes: Int,
            compileMs: Double, planMs: Double, renderMs: Double, applyLibnftablesMs: Double, applyExecMs: Double,
            ratio: Double, batches: Int? = nil
        ) {
            self.batches = batches
            self.services = services
            self.endpoints = endpoints
            self.elements = elements
            self.chains = chains
            self.rules = rules
            self.scriptBytes = scriptBytes
            self.compileMs = compileMs
            self.planMs = planMs
            self.renderMs = renderMs
            self.applyLibnftablesMs = applyLibnftablesMs
            self.applyExecMs = applyExecMs
            self.ratio = ratio
        }
    }

    public struct SingleChange: Codable, Sendable, Equatable {
        public var services: Int
        public var changes: Int
        public var kinds: [String: Int]
        /// Event to committed: state update, incremental compile of the touched Services, scoped plan, apply (libnftables).
        public var total: Summary
        public var compile: Summary
        public var plan: Summary
        public var apply: Summary
        /// The same transaction through a fresh `ip netns exec NS nft -f -` process.
        public var applyExec: Summary
        /// `ip netns exec NS true`: the process-start floor included in applyExec.
        public var execFloor: Summary
        /// apply.p50 / applyExec.p50 and apply.p99 / applyExec.p99.
        public var ratioP50: Double
        public var ratioP99: Double
        public var meanCommands: Double

        public init(
            services: Int, changes: Int, kinds: [String: Int], total: Summary, compile: Summary, plan: Summary,
            apply: Summary, applyExec: Summary, execFloor: Summary, ratioP50: Double, ratioP99: Double,
            meanCommands: Double
        ) {
            self.services = services
            self.changes = changes
            self.kinds = kinds
            self.total = total
            self.compile = compile
            self.plan = plan
            self.apply = apply
            self.applyExec = applyExec
            self.execFloor = execFloor
            self.ratioP50 = ratioP50
            self.ratioP99 = ratioP99
            self.meanCommands = meanCommands
        }
    }

    public struct MaglevBuild: Codable, Sendable, Equatable {
        public var size: Int
        public var backends: Int
        public var repetitions: Int
        public var medianMs: Double

        public init(size: Int, backends: Int, repetitions: Int, medianMs: Double) {
            self.size = size
            self.backends = backends
            self.repetitions = repetitions
            self.medianMs = medianMs
        }
    }

    public var machine: Machine
    public var parameters: Parameters
    public var coldSync: [ColdSync] = []
    public var singleChange: [SingleChange] = []
    public var maglev: [MaglevBuild] = []
    public var dataPlane: [DataPlane] = []
    public var costs: [Cost] = []
    /// Churn and peer runs (Results+Churn.swift); absent unless asked for.
    public var churn: [ChurnResult]? = nil
    public var peer: PeerResult? = nil
    /// The scale run (Results+Scale.swift); absent unless asked for.
    public var scale: ScaleResult? = nil

    public init(
        machine: Machine, parameters: Parameters, coldSync: [ColdSync] = [], singleChange: [SingleChange] = [],
        maglev: [MaglevBuild] = [], dataPlane: [DataPlane] = [], costs: [Cost] = [], churn: [ChurnResult]? = nil,
        peer: PeerResult? = nil, scale: ScaleResult? = nil
    ) {
        self.machine = machine
        self.parameters = parameters
        self.coldSync = coldSync
        self.singleChange = singleChange
        self.maglev = maglev
        self.dataPlane = dataPlane
        self.costs = costs
        self.churn = churn
        self.peer = peer
        self.scale = scale
    }
}

extension BenchResults {
    public var markdown: String {
        func f(_ x: Double) -> String {
            x >= 100 ? String(Int(x.rounded())) : x >= 10 ? fixed(x, 1) : fixed(x, 2)
        }
        var md = "# switchboard-bench results\n\n"
        md += "Kernel \(machine.kernel), \(machine.cpus) CPUs, \(machine.nftVersion), "
        md += "libnftables \(machine.libnftables), "
        md += "\(machine.build) build, \(machine.date).\n"
        md += "\(parameters.endpointsPerService) endpoints per Service, \(parameters.changes) single changes per size"
        md += parameters.quick ? " (quick run).\n\n" : ".\n\n"

        md += "## Cold full sync (ms)\n\n"
        md += "One transaction up to \(parameters.coldBatchesAbove ?? 2_000_000) elements; above that, the agent's bounded "
        md += "cold start (batches of whole entry points, element-only batches through netlink in process, every "
        md += "batch's text through `nft -f` on the exec path).\n\n"
        md += table(
            ["Services", "elements", "chains", "rules", "batches", "script KiB", "compile", "plan", "render",
             "apply (libnftables)", "apply (`nft -f`)", "libnftables / exec"],
            coldSync.map { c in
                ["\(c.services)", "\(c.elements)", "\(c.chains)", "\(c.rules)", "\(c.batches ?? 1)", "\(c.scriptBytes / 1024)",
                 f(c.compileMs), f(c.planMs), f(c.renderMs), f(c.applyLibnftablesMs), f(c.applyExecMs),
                 fixed(c.ratio, 2)]
            }
        )

        md += "\n## Single-change sync, event to committed (ms)\n\n"
        md += "Compile is incremental (only the touched Services) and the plan covers only what they touched, as in the agent.\n\n"
        md += table(
            ["Services", "n", "total p50", "p90", "p99", "max", "compile p50", "plan p50", "apply p50", "apply p99",
             "`nft -f` p50", "`nft -f` p99", "exec floor p50", "ratio p50", "ratio p99"],
            singleChange.map { s in
                ["\(s.services)", "\(s.changes)", f(s.total.p50), f(s.total.p90), f(s.total.p99), f(s.total.max),
                 f(s.compile.p50), f(s.plan.p50), f(s.apply.p50), f(s.apply.p99), f(s.applyExec.p50),
                 f(s.applyExec.p99), f(s.execFloor.p50), fixed(s.ratioP50, 2), fixed(s.ratioP99, 2)]
            }
        )

        md += dataPlaneMarkdown + costMarkdown
        md += "\n## Maglev table build, median (ms)\n\n"
        let sizes = Array(Set(maglev.map(\.size))).sorted()
        let counts = Array(Set(maglev.map(\.backends))).sorted()
        md += table(
            ["M \\ N"] + counts.map { "\($0)" },
            sizes.map { m in
                ["\(m)"] + counts.map { n in
                    maglev.first { $0.size == m && $0.backends == n }.map { f($0.medianMs) } ?? ""
                }
            }
        )
        return md
    }

    private func table(_ header: [String], _ rows: [[String]]) -> String { markdownTable(header, rows) }
}

/// `x` with `digits` decimals, without Foundation's format strings.
public func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "n/a" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (x * scale).rounded() / scale
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
        if digits == 0 { s = String(s[..<dot]) }
    }
    return s
}
