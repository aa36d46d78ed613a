/// Everything one run measured, as written to `<output>/latest.json` (or `quick.json`). Times in ms.
struct BenchResults: Codable, Sendable {
    struct Machine: Codable, Sendable {
        var kernel: String
        var cpus: Int
        var nftVersion: String
        var date: String
        var build: String
    }

    struct Parameters: Codable, Sendable {
        var sizes: [Int]
        var endpointsPerService: Int
        var changes: Int
        var quick: Bool
        var seed: UInt64
    }

    struct ColdSync: Codable, Sendable {
        var services: Int
        var endpoints: Int
        var elements: Int
        var chains: Int
        var rules: Int
        var scriptBytes: Int
        var compileMs: Double
        var planMs: Double
        /// Rendering the transaction to nft text (`Transaction.description`).
        var renderMs: Double
        /// The rendered text as one libnftables batch (`nft_run_cmd_from_buffer`), in process.
        var applyLibnftablesMs: Double
        /// `ip netns exec NS nft -f -` with the same text: process start, parse, commit.
        var applyExecMs: Double
        /// applyLibnftablesMs / applyExecMs.
        var ratio: Double
    }

    struct SingleChange: Codable, Sendable {
        var services: Int
        var changes: Int
        var kinds: [String: Int]
        /// Event to committed: state update, whole-cluster compile, plan, apply (libnftables).
        var total: Summary
        var compile: Summary
        var plan: Summary
        var apply: Summary
        /// The same transaction through a fresh `ip netns exec NS nft -f -` process.
        var applyExec: Summary
        /// `ip netns exec NS true`: the process-start floor included in applyExec.
        var execFloor: Summary
        /// apply.p50 / applyExec.p50 and apply.p99 / applyExec.p99.
        var ratioP50: Double
        var ratioP99: Double
        var meanCommands: Double
    }

    struct MaglevBuild: Codable, Sendable {
        var size: Int
        var backends: Int
        var repetitions: Int
        var medianMs: Double
    }

    var machine: Machine
    var parameters: Parameters
    var coldSync: [ColdSync] = []
    var singleChange: [SingleChange] = []
    var maglev: [MaglevBuild] = []
    /// Churn and peer runs (ChurnRun.swift, PeerRun.swift); absent unless asked for.
    var churn: [ChurnResult]? = nil
    var peer: PeerResult? = nil
}

extension BenchResults {
    var markdown: String {
        func f(_ x: Double) -> String {
            x >= 100 ? String(Int(x.rounded())) : x >= 10 ? fixed(x, 1) : fixed(x, 2)
        }
        var md = "# switchboard-bench results\n\n"
        md += "Kernel \(machine.kernel), \(machine.cpus) CPUs, \(machine.nftVersion), "
        md += "\(machine.build) build, \(machine.date).\n"
        md += "\(parameters.endpointsPerService) endpoints per Service, \(parameters.changes) single changes per size"
        md += parameters.quick ? " (quick run).\n\n" : ".\n\n"

        md += "## Cold full sync (ms)\n\n"
        md += table(
            ["Services", "elements", "chains", "rules", "script KiB", "compile", "plan", "render",
             "apply (libnftables)", "apply (`nft -f`)", "libnftables / exec"],
            coldSync.map { c in
                ["\(c.services)", "\(c.elements)", "\(c.chains)", "\(c.rules)", "\(c.scriptBytes / 1024)",
                 f(c.compileMs), f(c.planMs), f(c.renderMs), f(c.applyLibnftablesMs), f(c.applyExecMs),
                 fixed(c.ratio, 2)]
            }
        )

        md += "\n## Single-change sync, event to committed (ms)\n\n"
        md += "Compile is whole-cluster on every change (what the agent does today).\n\n"
        md += table(
            ["Services", "n", "total p50", "p90", "p99", "max", "compile p50", "plan p50", "apply p50", "apply p99",
             "`nft -f` p50", "`nft -f` p99", "exec floor p50", "ratio p50", "ratio p99"],
            singleChange.map { s in
                ["\(s.services)", "\(s.changes)", f(s.total.p50), f(s.total.p90), f(s.total.p99), f(s.total.max),
                 f(s.compile.p50), f(s.plan.p50), f(s.apply.p50), f(s.apply.p99), f(s.applyExec.p50),
                 f(s.applyExec.p99), f(s.execFloor.p50), fixed(s.ratioP50, 2), fixed(s.ratioP99, 2)]
            }
        )

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

    /// A Markdown table with right-aligned (numeric) columns.
    private func table(_ header: [String], _ rows: [[String]]) -> String {
        func line(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |\n" }
        return line(header) + "|" + String(repeating: "---:|", count: header.count) + "\n"
            + rows.map(line).joined()
    }
}

/// `x` with `digits` decimals, without Foundation's format strings.
func fixed(_ x: Double, _ digits: Int) -> String {
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
