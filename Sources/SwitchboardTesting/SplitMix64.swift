/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fixed, the same sequence on every machine and in every
/// release, so a seed names one generated input for good. The one generator of the tests, the fuzzer and
/// the bench: property tests, fuzz corpora and bench runs are reproduced from their seeds.
///
/// Stable across releases: changing `next()` changes which cases every property test explores.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    /// A generator for one (run seed, iteration) pair, independent of every other iteration's.
    public init(seed: UInt64, iteration: Int) {
        var mixer = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: iteration) &* 0xd134_2543_de82_ef95))
        self.init(seed: mixer.next())
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    /// A uniform integer in `range`.
    public mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) * 0x1p-53 < p }

    /// One of `choices` (not empty), uniformly.
    public mutating func pick<T>(_ choices: [T]) -> T { choices.randomElement(using: &self)! }

    /// One of `choices`, each with probability proportional to its weight.
    public mutating func weighted<T>(_ choices: [(T, Double)]) -> T {
        var x = Double(next() >> 11) * 0x1p-53 * choices.reduce(0) { $0 + $1.1 }
        for (value, weight) in choices {
            if x < weight { return value }
            x -= weight
        }
        return choices[choices.count - 1].0
    }
}
