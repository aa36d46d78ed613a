import Foundation
import Testing

@testable import BenchKit

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// A small but complete result set: every section filled, two sizes.
func sampleResults() -> BenchResults {
    func s(_ base: Double) -> Summary {
        Summary(count: 200, min: base * 0.5, p50: base, p90: base * 1.5, p99: base * 2, max: base * 3, mean: base * 1.1)
    }
    var r = BenchResults(
        machine: .init(kernel: "6.1.0", cpus: 2, nftVersion: "nftables v1.0.6", libnftables: "1.0.6",
                       date: "2026-11-22T00:00:00Z", build: "release"),
        parameters: .init(sizes: [100, 10000], endpointsPerService: 10, changes: 200, quick: false, seed: 7)
    )
    for (i, size) in [100, 10000].enumerated() {
        let k = Double(i + 1)
        r.coldSync.append(.init(
            services: size, endpoints: size * 10, elements: size * 129, chains: size * 11, rules: size * 23,
            scriptBytes: size * 11_000, compileMs: 11 * k, planMs: 80 * k, renderMs: 8 * k,
            applyLibnftablesMs: 120 * k, applyExecMs: 160 * k, ratio: 0.75
        ))
        r.singleChange.append(.init(
            services: size, changes: 200, kinds: ["add-endpoint": 50, "remove-service": 50], total: s(20 * k),
            compile: s(8 * k), plan: s(9 * k), apply: s(4 * k), applyExec: s(30 * k), execFloor: s(7),
            ratioP50: 0.13, ratioP99: 0.2, meanCommands: 3.5
        ))
        r.dataPlane.append(.init(
            services: size, elements: size * 129, backends: 3, connects: 2000, failures: i,
            clusterIP: s(0.040 + 0.001 * k), direct: s(0.035)
        ))
        r.costs.append(.init(
            services: size, elements: size * 129, chains: size * 11, rules: size * 23, rssBeforeBytes: 20 << 20,
            peakRSSBytes: (40 << 20) * (i + 1), slabDeltaBytes: size * 20_000, sUnreclaimDeltaBytes: size * 18_000
        ))
    }
    r.dataPlane = BenchResults.DataPlane.relatingToSmallest(r.dataPlane)
    r.maglev = [.init(size: 251, backends: 10, repetitions: 101, medianMs: 0.01),
                .init(size: 4093, backends: 10, repetitions: 50, medianMs: 0.2)]
    return r
}

@Suite("results: JSON and Markdown")
struct ResultsTests {
    @Test func jsonRoundTrip() throws {
        let results = sampleResults()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(results)
        let decoded = try JSONDecoder().decode(BenchResults.self, from: data)
        #expect(decoded == results)
        #expect(try encoder.encode(decoded) == data)
        // The keys that outside readers (the README, a later kube-proxy comparison) rely on.
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["machine", "parameters", "coldSync", "singleChange", "maglev", "dataPlane", "costs"] {
            #expect(object[key] != nil, "missing \(key)")
        }
    }

    @Test func dataPlaneRatiosAreRelativeToTheSmallestSize() {
        let rows = sampleResults().dataPlane
        #expect(rows[0].ratioP50 == 1 && rows[0].ratioP99 == 1)
        #expect(abs(rows[1].ratioP50 - 0.042 / 0.041) < 1e-9)
        #expect(BenchResults.DataPlane.relatingToSmallest([]).isEmpty)
    }

    @Test func markdownTableShape() {
        let table = markdownTable(["a", "b", "c"], [["1", "2", "3"], ["x|y"], []])
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(Array(lines) == [
            "| a | b | c |",
            "|---:|---:|---:|",
            "| 1 | 2 | 3 |",
            "| x\\|y |  |  |",
            "|  |  |  |",
        ])
    }

    @Test func markdownHasEverySectionWithOneRowPerSize() {
        let md = sampleResults().markdown
        for heading in ["## Cold full sync", "## Single-change sync", "## Data plane", "## Cost per cluster size",
                        "## Maglev table build"] {
            #expect(md.contains(heading), "missing \(heading)")
        }
        #expect(md.contains("libnftables 1.0.6"))
        // Data-plane row for 10000 Services: p50 42.0 µs, ratio 1.02.
        #expect(md.contains("| 10000 | 1290000 | 2000 | 1 | 42.0 |"))
        // Cost row: 40 MiB peak at 100 Services.
        #expect(md.contains("| 100 | 12900 | 1100 | 2300 | 20.0 | 40.0 |"))
    }

    @Test func emptySectionsAreLeftOut() {
        var r = sampleResults()
        r.dataPlane = []
        r.costs = []
        #expect(!r.markdown.contains("## Data plane"))
        #expect(!r.markdown.contains("## Cost"))
    }

    @Test(arguments: [(0.0, 2, "0.00"), (1.005, 1, "1.0"), (12.0, 0, "12"), (0.125, 2, "0.13"), (.nan, 1, "n/a")])
    func fixedDecimals(value: Double, digits: Int, text: String) {
        #expect(fixed(value, digits) == text)
    }
}
