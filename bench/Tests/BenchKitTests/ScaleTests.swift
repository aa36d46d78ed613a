import Foundation
import Testing

@testable import BenchKit

/// A scale result with two sizes, kube-proxy at the first.
func sampleScale() -> ScaleResult {
    func proxy(_ name: String, _ k: Double) -> ScaleResult.Proxy {
        ScaleResult.Proxy(
            name: name, version: "\(name) v1", coldMs: 3000 * k, poll: Summary([20, 30]),
            rssProgrammedBytes: Int(400 * k) << 20, rssSettledBytes: Int(300 * k) << 20,
            peakRSSBytes: Int(800 * k) << 20, slabDeltaBytes: Int(20 * k) << 20,
            sUnreclaimDeltaBytes: Int(18 * k) << 20,
            newService: Summary(count: 20, min: 900, p50: 1000 * k, p90: 1100, p99: 1200 * k, max: 1300, mean: 1050),
            notConnected: 0, syncs: 42, meanSyncMs: 12.5)
    }
    return ScaleResult(
        minSyncPeriod: "1s", syncPeriod: "30s", newServices: 20, settleSeconds: 5, newServiceGapMs: 2000,
        sizes: [
            .init(services: 1000, endpointsPerService: 10, apiCreateSeconds: 9.5, apiServiceTypes: ["ClusterIP": 1000],
                  sliceEndpoints: 10, switchboard: proxy("switchboard", 1), kubeProxy: proxy("kube-proxy", 2)),
            .init(services: 10000, endpointsPerService: 10, apiCreateSeconds: 95, apiServiceTypes: ["ClusterIP": 10000],
                  sliceEndpoints: 10, switchboard: proxy("switchboard", 10), kubeProxy: nil),
        ])
}

@Suite("scale run: options, probe lines, JSON, Markdown, chart")
struct ScaleTests {
    @Test func apiserverWithoutChurnIsTheScaleRun() throws {
        let o = try Options.parse(["--apiserver"])
        #expect(o.mode == .scale)
        #expect(o.sizes == [1000, 10000, 30000])
        #expect(o.scale == ScaleOptions() && o.scale.newServices == 20 && o.scale.settle == .seconds(5))
        #expect(o.resultBaseName == "latest-scale")
    }

    @Test func scaleFlags() throws {
        let o = try Options.parse([
            "--apiserver", "--sizes", "100,300", "--new-services", "5", "--settle", "2s", "--peer", "--endpoints", "50",
            "--output", "/tmp/scale-out", "--switchboard-bin", "/x/switchboard", "--rebuild-period", "90s",
        ])
        #expect(o.scale.rebuildPeriod == .seconds(90))
        #expect(try Options.parse(["--apiserver"]).scale.rebuildPeriod == nil)
        #expect(o.mode == .scale && o.churn.peer)
        #expect(o.sizes == [100, 300] && o.endpointsPerService == 50 && o.outputDirectory == "/tmp/scale-out")
        #expect(o.scale.newServices == 5 && o.scale.settle == .seconds(2))
        #expect(o.churn.switchboardBinary == "/x/switchboard")
        #expect(o.resultBaseName == "latest-scale")
    }

    @Test func quickScaleRun() throws {
        let o = try Options.parse(["--apiserver", "--quick"])
        #expect(o.mode == .scale && o.sizes == [100, 1000] && o.scale.newServices == 5)
        #expect(o.resultBaseName == "quick-scale")
        #expect(try Options.parse(["--apiserver", "--quick", "--new-services", "7"]).scale.newServices == 7)
    }

    /// The runs that existed before the scale run keep their meaning and their files.
    @Test(arguments: [
        ([String](), Options.Mode.sizes, "latest"), (["--peer"], .churnAndPeer, "latest-peer"),
        (["--churn", "--apiserver"], .churnAndPeer, "latest-churn-api"),
        (["--churn", "--apiserver", "--peer"], .churnAndPeer, "latest-churn-api-peer"),
        (["--churn"], .churnAndPeer, "latest-churn"), (["--apiserver", "--peer"], .scale, "latest-scale"),
    ])
    func modes(arguments: [String], mode: Options.Mode, name: String) throws {
        let o = try Options.parse(arguments)
        #expect(o.mode == mode && o.resultBaseName == name)
        if mode != .scale { #expect(o.sizes == [100, 1000, 10000, 30000]) }
    }

    @Test(arguments: [
        ["--new-services", "5"], ["--churn", "--apiserver", "--settle", "1s"], ["--peer", "--new-services", "3"],
        ["--apiserver", "--new-services", "0"], ["--apiserver", "--new-services", "1001"],
        ["--apiserver", "--settle", "soon"], ["--apiserver", "--sizes", "100,60001"], ["--apiserver", "--new-services"],
        ["--apiserver", "--rebuild-period", "0s"], ["--apiserver", "--rebuild-period", "hourly"],
        ["--rebuild-period", "60s"],
    ])
    func rejects(arguments: [String]) {
        #expect(throws: Options.UsageError.self) { try Options.parse(arguments) }
    }

    @Test func probeLines() {
        let output = "ready\n0 123456789 3\n1 -1 2400\nnoise\n2 99"
        #expect(ProbeOutcome.parse(output) == [
            ProbeOutcome(index: 0, connectedAtNanoseconds: 123_456_789, attempts: 3),
            ProbeOutcome(index: 1, connectedAtNanoseconds: nil, attempts: 2400),
        ])
        // A line still being written is not an outcome yet.
        #expect(ProbeOutcome.parse("ready\n0 5").isEmpty)
        #expect(ProbeOutcome.parse("").isEmpty)
        #expect(ProbeOutcome.parse("0 5 1\n").map(\.index) == [0])
    }

    @Test func jsonRoundTrip() throws {
        var results = sampleResults()
        results.scale = sampleScale()
        results.scale?.gaveOut = [.init(services: 30000, proxy: "switchboard", reason: "exited")]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(results)
        #expect(try JSONDecoder().decode(BenchResults.self, from: data) == results)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let scale = try #require(object["scale"] as? [String: Any])
        let sizes = try #require(scale["sizes"] as? [[String: Any]])
        #expect(sizes.count == 2 && sizes[1]["kubeProxy"] == nil)
        let switchboard = try #require(sizes[0]["switchboard"] as? [String: Any])
        for key in ["coldMs", "rssProgrammedBytes", "rssSettledBytes", "peakRSSBytes", "slabDeltaBytes",
                    "sUnreclaimDeltaBytes", "newService", "notConnected"] {
            #expect(switchboard[key] != nil, "missing \(key)")
        }
        // A result without a scale run has no "scale" key, as before.
        let plainData = try encoder.encode(sampleResults())
        let plain = try #require(try JSONSerialization.jsonObject(with: plainData) as? [String: Any])
        #expect(plain["scale"] == nil)
    }

    @Test func markdown() {
        var results = sampleResults()
        results.scale = sampleScale()
        let md = results.scaleMarkdown
        #expect(md.contains("## Cold start and memory (MiB)"))
        #expect(md.contains("## New Service → first TCP connect through its ClusterIP (ms)"))
        // One row per proxy and size: 1000 with both, 10000 with Switchboard only.
        #expect(md.contains(
            "| 1000 | 10 | 10 | 9.5 | switchboard (switchboard v1) | 3.00 | 400.0 | 300.0 | 800.0 | 20.0 | 18.0 |"))
        #expect(md.contains("| 1000 | 10 | 10 | 9.5 | kube-proxy (kube-proxy v1) | 6.00 | 800.0 | 600.0 | 1600.0 |"))
        #expect(md.contains("| 10000 | 10 | 10 | 95.0 | switchboard (switchboard v1) | 30.00 |"))
        #expect(!md.contains("| 10000 | 10 | 10 | 95.0 | kube-proxy"))
        #expect(md.contains("| 1000 | switchboard | 20 | 1000 | 1100 | 1200 | 1300 | 0 | 42 | 12.5 |"))
        #expect(md.contains("switchboard / kube-proxy at 1000 Services: cold start 0.50, RSS settled 0.50, "
            + "peak RSS 0.50, new Service p50 0.50, p99 0.50."))
        #expect(!md.contains("## Not measured"))
        #expect(!md.contains("## Full rebuild under traffic"))
        #expect(sampleResults().scaleMarkdown.isEmpty)

        results.scale?.sizes[1].switchboard.rebuild = .init(
            periodSeconds: 60, connections: 1500, failed: 2, connectionsDuring: 300, failedDuring: 0,
            rebuildMs: 5250, rebuilds: 1,
            rssBeforeBytes: 200 << 20, peakRSSBytes: 260 << 20, rssAfterBytes: 210 << 20)
        #expect(results.scaleMarkdown.contains("## Full rebuild under traffic"))
        #expect(results.scaleMarkdown.contains("| 10000 | 60.0 | 1 | 5250 | 300 | 0 | 1500 | 2 | 200.0 | 260.0 | 210.0 |"))

        results.scale?.gaveOut = [.init(
            services: 30000, proxy: "switchboard",
            reason: "switchboard exited (killed by signal 9) before programming every Service")]
        #expect(results.scaleMarkdown.contains(
            "## Not measured\n\n- 30000 Services, switchboard: switchboard exited (killed by signal 9) before "
                + "programming every Service\n"))
    }

    @Test func chartHasMemoryAndColdStartPanels() throws {
        var results = sampleResults()
        results.scale = sampleScale()
        let charts = results.scaleCharts()
        #expect(charts.count == 2)
        #expect(charts[0].series.map(\.name) == [
            "Switchboard RSS after settle", "Switchboard peak RSS", "kube-proxy RSS after settle",
            "kube-proxy peak RSS",
        ])
        #expect(charts[0].series[0].points == [.init(x: 1000, y: 300), .init(x: 10000, y: 3000)])
        // kube-proxy was measured at one size: a single point.
        #expect(charts[0].series[2].points == [.init(x: 1000, y: 600)])
        #expect(charts[1].series.map { $0.points.map(\.y) } == [[3, 30], [6]])

        let svg = stackedSVG(charts, title: "scale")
        let doc = try SVGInspector.inspect(svg)
        #expect(doc.elements["svg"] == 1)
        #expect(doc.elements["polyline"] == 6)
        #expect(doc.classes.filter { $0 == "panel" }.count == 2)
        for label in ["resident set (MiB)", "seconds", "Services (× 10 endpoints)"] {
            #expect(doc.texts.contains(label))
        }
        #expect(svg.contains("height=\"\(charts[0].height + charts[1].height)\""))
        #expect(stackedSVG(charts, title: "scale") == svg)  // deterministic

        // Without kube-proxy: Switchboard's lines only.
        results.scale?.sizes[0].kubeProxy = nil
        #expect(results.scaleCharts().map(\.series.count) == [2, 1])
    }
}
