/// Exponential backoff with full jitter: the n-th consecutive failure waits a uniformly random time in
/// `0 ... min(maximum, initial · 2ⁿ)`.
///
/// Full jitter (rather than a fixed schedule) keeps a fleet of nodes, all disconnected by the same API server
/// restart, from reconnecting in lock-step; the cap bounds how stale a node gets while the server is away.
/// A value, advanced by the informer and reset after a healthy watch, so its arithmetic is tested directly.
public struct Backoff: Hashable, Sendable {
    public var initial: Duration
    public var maximum: Duration
    /// Consecutive failures so far.
    public private(set) var failures = 0

    public init(initial: Duration = .milliseconds(200), maximum: Duration = .seconds(30)) {
        precondition(initial > .zero && maximum >= initial, "Backoff: need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
    }

    /// The ceiling of the next delay: `initial · 2^failures`, capped.
    public var ceiling: Duration {
        // 2^failures overflows long before any sane cap is reached; stop doubling at 2^40.
        let factor = Double(1 << min(failures, 40))
        return min(maximum, initial * factor)
    }

    /// Records a failure and returns how long to wait before the next attempt: at most the ceiling, or `cap`
    /// if that is lower (the failures still count, so the ceiling keeps growing for later failures).
    public mutating func fail(using generator: inout some RandomNumberGenerator, cap: Duration? = nil) -> Duration {
        let ceiling = min(self.ceiling, cap ?? self.ceiling)
        failures += 1
        return ceiling * Double.random(in: 0...1, using: &generator)
    }

    /// Things work again: the next failure starts from `initial`.
    public mutating func reset() {
        failures = 0
    }
}
