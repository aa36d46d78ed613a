extension BenchResults {
    /// Single-change sync latency (p50) against cluster size, one line per system. `more` adds systems
    /// measured elsewhere (a kube-proxy peer run), so every system lands in the same chart.
    public func syncLatencyChart(more: [ChartSeries] = []) -> LineChart {
        let rows = singleChange.sorted { $0.services < $1.services }
        let x = rows.map { Double($0.services) }
        let series = [
            ChartSeries(name: "Switchboard, event → committed (libnftables)", Array(zip(x, rows.map(\.total.p50)))),
            ChartSeries(name: "Switchboard, apply only (libnftables)", Array(zip(x, rows.map(\.apply.p50))),
                        dashed: true),
            ChartSeries(name: "nft -f exec path, same transaction", Array(zip(x, rows.map(\.applyExec.p50)))),
        ] + more
        return LineChart(
            title: "Single-change sync latency, p50",
            xLabel: "Services (× \(parameters.endpointsPerService) endpoints)", yLabel: "latency (ms)", series: series
        )
    }

    /// First-packet latency through a ClusterIP against cluster size: p50 and p99, and the direct-to-pod floor.
    public func dataPlaneChart(more: [ChartSeries] = []) -> LineChart {
        let rows = dataPlane.sorted { $0.services < $1.services }
        let x = rows.map { Double($0.services) }
        let series = [
            ChartSeries(name: "ClusterIP via Switchboard, p50", Array(zip(x, rows.map { $0.clusterIP.p50 * 1000 }))),
            ChartSeries(name: "ClusterIP via Switchboard, p99", Array(zip(x, rows.map { $0.clusterIP.p99 * 1000 })),
                        dashed: true),
            ChartSeries(name: "pod IP direct (no Service), p50", Array(zip(x, rows.map { $0.direct.p50 * 1000 }))),
        ] + more
        return LineChart(
            title: "TCP connect (SYN to established) through a ClusterIP", xLabel: "Services in the ruleset",
            yLabel: "connect time (µs)", series: series, xScale: .log, yScale: .linear
        )
    }
}
