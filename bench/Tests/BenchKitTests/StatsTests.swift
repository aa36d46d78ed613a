import Testing

@testable import BenchKit

@Suite("Summary and LatencyHistogram")
struct StatsTests {
    @Test func emptySummaryIsAllZero() {
        #expect(Summary([]) == Summary(count: 0, min: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0))
    }

    @Test func oneSampleIsEveryPercentile() {
        let s = Summary([12.345])
        #expect(s.count == 1)
        #expect(s.min == 12.345 && s.max == 12.345 && s.mean == 12.345)
        #expect(s.p50 == 12.345 && s.p99 == 12.345)  // clamped to the exact extremes
    }

    /// 1..1000 ms: the histogram's percentiles are within its 3-significant-digit resolution of the
    /// nearest-rank ones, and min / max / mean are exact.
    @Test(arguments: [(50.0, 500.0), (90.0, 900.0), (99.0, 990.0)])
    func percentilesOfAUniformRun(percentile: Double, expected: Double) {
        var h = LatencyHistogram()
        for ms in (1...1000).shuffled() { h.record(milliseconds: Double(ms)) }
        let value = h.percentile(percentile)
        #expect(abs(value - expected) <= expected * 0.001 + 0.001, "p\(percentile) = \(value)")
        let s = h.summary
        #expect(s.count == 1000)
        #expect(s.min == 1 && s.max == 1000)
        #expect(s.mean == 500.5)
    }

    @Test func minAndMaxStayExactBelowTheResolution() {
        // 0.0004 ms and 0.0006 ms both round to whole microseconds in the histogram; the extremes don't.
        let s = Summary([0.0004, 0.0006, 250.1234567])
        #expect(s.min == 0.0004)
        #expect(s.max == 250.1234567)
        #expect(s.p99 <= s.max && s.p50 >= s.min)
    }

    @Test func tailPercentileSeesTheOutlier() {
        // 990 fast samples and 10 slow ones: p99 is the fast bulk's edge, max the slowest.
        let samples = Array(repeating: 0.05, count: 990) + Array(repeating: 40.0, count: 10)
        let s = Summary(samples)
        #expect(abs(s.p50 - 0.05) < 0.001)
        #expect(abs(s.p99 - 0.05) < 0.001)
        #expect(s.max == 40)
        let t = Summary(samples + [40.0])  // one more slow sample pushes p99 into the tail
        #expect(abs(t.p99 - 40) < 0.05)
    }

    @Test func nearestRankMedian() {
        #expect(median([3, 1, 2]) == 2)
        #expect(median([4, 1, 3, 2]) == 2)
        #expect(median([]) == 0)
    }
}

@Suite("procfs fields")
struct ProcFieldsTests {
    @Test func parsesMeminfoAndStatus() {
        let text = "MemTotal:       24576000 kB\nSlab:             123456 kB\nName:\tswitchboard-bench\n"
            + "VmHWM:\t  204800 kB\nVmRSS:\t   10240 kB\nThreads:\t4\nHugePages_Total:       0\n"
        let fields = procKiBFields(text)
        #expect(fields["Slab"] == 123_456 * 1024)
        #expect(fields["VmHWM"] == 204_800 * 1024)
        #expect(fields["VmRSS"] == 10240 * 1024)
        #expect(fields["Name"] == nil && fields["Threads"] == nil && fields["HugePages_Total"] == nil)
    }
}

@Suite("progress lines")
struct ProgressTests {
    @Test(arguments: [
        (0.44, "0.4 s"), (12.34, "12.3 s"), (245.0, "4m05s"), (3725.0, "1h02m"), (-1.0, "?"),
    ])
    func durations(seconds: Double, text: String) {
        #expect(durationText(seconds) == text)
    }

    @Test func lineWithETA() {
        #expect(progressLine(label: "size 1000 · single-change", done: 50, total: 200, elapsed: 10)
            == "size 1000 · single-change 50/200 · 10.0 s elapsed · ETA 30.0 s")
        #expect(progressLine(label: "x", done: 0, total: 3, elapsed: 1) == "x 0/3 · 1.0 s elapsed")
        #expect(progressLine(label: "x", done: 3, total: 3, elapsed: 2) == "x 3/3 · 2.0 s elapsed · done")
    }

    @Test func meterIsRateLimitedButAlwaysReportsTheEnd() {
        var meter = ProgressMeter(label: "p", total: 4, at: 100, interval: 5)
        #expect(meter.step(1, at: 101) == nil)
        #expect(meter.step(2, at: 106) == "p 2/4 · 6.0 s elapsed · ETA 6.0 s")
        #expect(meter.step(3, at: 107) == nil)
        #expect(meter.step(4, at: 108) == "p 4/4 · 8.0 s elapsed · done")
    }
}
