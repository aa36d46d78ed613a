import Histogram

/// Durations in milliseconds and their order statistics. Percentiles come from an HdrHistogram recorded
/// in whole microseconds with 3 significant digits (so a percentile is within 0.1% or 1 µs of a recorded
/// value); `min`, `max` and `mean` are exact, from the samples themselves.
public struct Summary: Codable, Sendable, Equatable {
    public var count: Int
    public var min: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var max: Double
    public var mean: Double

    public init(count: Int, min: Double, p50: Double, p90: Double, p99: Double, max: Double, mean: Double) {
        self.count = count
        self.min = min
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.max = max
        self.mean = mean
    }

    /// Records `samples` (ms) into a `LatencyHistogram` and summarises it.
    public init(_ samples: [Double]) {
        var histogram = LatencyHistogram()
        for s in samples { histogram.record(milliseconds: s) }
        self = histogram.summary
    }

    /// Nearest-rank percentile of sorted samples: the smallest sample with at least `p` of the samples at
    /// or below it. Used for medians of a few repetitions, where a histogram adds nothing.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]
    }
}

/// Latencies recorded into an HdrHistogram (whole microseconds, 3 significant digits, auto-resizing),
/// plus the exact extremes and sum, which a histogram only knows to its bucket width.
public struct LatencyHistogram: Sendable {
    private var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three
    )
    private var minimum = Double.infinity
    private var maximum = -Double.infinity
    private var sum = 0.0
    public private(set) var count = 0

    public init() {
        histogram.autoResize = true
    }

    /// Records one duration in milliseconds; negative values count as 0.
    public mutating func record(milliseconds ms: Double) {
        let value = Swift.max(0, ms)
        _ = histogram.record(UInt64((value * 1000).rounded()))
        minimum = Swift.min(minimum, value)
        maximum = Swift.max(maximum, value)
        sum += value
        count += 1
    }

    /// The value at percentile `p` (0...100) in milliseconds, clamped to the exact [min, max].
    public func percentile(_ p: Double) -> Double {
        guard count > 0 else { return 0 }
        let micros = Double(histogram.valueAtPercentile(p)) / 1000
        return Swift.min(Swift.max(micros, minimum), maximum)
    }

    public var summary: Summary {
        guard count > 0 else { return Summary(count: 0, min: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0) }
        return Summary(
            count: count, min: minimum, p50: percentile(50), p90: percentile(90), p99: percentile(99),
            max: maximum, mean: sum / Double(count)
        )
    }
}

/// The nearest-rank median of `samples`.
public func median(_ samples: [Double]) -> Double { Summary.percentile(samples.sorted(), 0.5) }

extension Duration {
    public var milliseconds: Double {
        let c = components
        return Double(c.seconds) * 1e3 + Double(c.attoseconds) * 1e-15
    }
}

/// Times `body` on the continuous clock; returns its value and the elapsed milliseconds.
public func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try body()
    return (value, (clock.now - start).milliseconds)
}

public func timedAsync<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try await body()
    return (value, (clock.now - start).milliseconds)
}
