import Foundation
import Testing

@testable import BenchKit

@Suite("churn and peer: options, JSON, Markdown")
struct ChurnTests {
    @Test func churnFlags() throws {
        let o = try Options.parse([
            "--churn", "--apiserver", "--churn-rate", "5", "--churn-seconds", "10", "--churn-services", "200",
            "--min-sync-period", "500ms", "--sync-period", "1m", "--k8s-up", "/k8s/up.sh", "--api-concurrency", "4",
        ])
        var expected = ChurnOptions()
        expected.churn = true
        expected.apiserver = true
        expected.rate = 5
        expected.seconds = 10
        expected.services = 200
        expected.minSyncPeriod = .milliseconds(500)
        expected.syncPeriod = .seconds(60)
        expected.k8sUp = "/k8s/up.sh"
        expected.apiConcurrency = 4
        #expect(o.churn == expected && o.churn.selected)
    }

    @Test(arguments: [
        (Duration.seconds(1), "1s"), (.milliseconds(500), "500ms"), (.seconds(60), "60s"), (.zero, "0s"),
        (.microseconds(1500), "1500us"), (.milliseconds(1500), "1500ms"),
    ])
    func goText(duration: Duration, text: String) {
        #expect(duration.goText == text)
    }

    @Test(arguments: [
        ([String](), "latest"), (["--quick"], "quick"), (["--churn"], "latest-churn"),
        (["--churn", "--apiserver"], "latest-churn-api"), (["--peer"], "latest-peer"),
        (["--churn", "--peer"], "latest-churn-peer"), (["--quick", "--churn"], "quick-churn"),
    ])
    func resultBaseName(arguments: [String], name: String) throws {
        #expect(try Options.parse(arguments).resultBaseName == name)
    }

    // `--apiserver` alone is the scale run now (ScaleTests).
    @Test(arguments: [
        ["--churn", "--churn-rate", "0"], ["--churn", "--min-sync-period", "1"],
        ["--churn", "--min-sync-period", "2s", "--sync-period", "1s"], ["--churn", "--sync-period", "0"],
        ["--peer", "--k8s-up"],
    ])
    func rejects(arguments: [String]) {
        #expect(throws: Options.UsageError.self) { try Options.parse(arguments) }
    }

    @Test func jsonRoundTripAndMarkdown() throws {
        let s = Summary([1, 2, 3, 40])
        var results = sampleResults()
        results.churn = [ChurnResult(
            source: "in-memory", services: 200, endpointsPerService: 10, rate: 20, seconds: 10,
            minSyncPeriod: "1s", syncPeriod: "30s", apiCreateSeconds: nil, apiServiceTypes: nil, initialSyncMs: 900,
            pushed: 200, committed: 199, notCommitted: [:], superseded: ["add-endpoint": 1], latency: s,
            latencyByKind: ["add-endpoint": s], apiWrite: nil, scheduleLagMs: 0.5, syncs: 12, fullSyncs: 1,
            failedSyncs: 0, syncDuration: s, partialSyncDuration: s, fullSyncDuration: Summary([900]))]
        let proxy = PeerResult.Proxy(
            name: "switchboard", version: "0.1", coldMs: 800, latency: s, notSeen: 0, poll: s, syncs: 9,
            meanSyncMs: 12)
        results.peer = PeerResult(
            services: 100, endpointsPerService: 10, rate: 20, seconds: 10, minSyncPeriod: "1s", syncPeriod: "30s",
            apiCreateSeconds: 3, apiServiceTypes: ["ClusterIP": 100], apiWrite: s, created: 200, switchboard: proxy,
            kubeProxy: proxy, ratioCold: 1, ratioP50: 1, ratioP90: 1, ratioP99: 1)
        let data = try JSONEncoder().encode(results)
        #expect(try JSONDecoder().decode(BenchResults.self, from: data) == results)

        let md = results.churnMarkdown
        #expect(md.contains("## Churn through the controller (in-memory)"))
        #expect(md.contains("## Peer: kube-proxy (iptables) vs `switchboard run`"))
        // One row per kind plus "all" in the latency table.
        for kind in ["all"] + ChangeKind.allCases.map(\.rawValue) { #expect(md.contains("| \(kind) |")) }
    }
}
