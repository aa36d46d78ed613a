import Testing

@testable import SwitchboardAgent

/// The scheduler as a table: each step is an event at a time (seconds since start) and the action expected.
@Suite struct SyncSchedulerTests {
    typealias Scheduler = SyncScheduler<ManualClock>
    typealias Action = Scheduler.Action

    enum Event: CustomStringConvertible {
        case initialSyncDone
        case changed
        case tick
        case finished(SyncKind, succeeded: Bool)
        case verified(intact: Bool)

        var description: String {
            switch self {
            case .verified(let intact): "verified(\(intact ? "intact" : "lost"))"
            case .initialSyncDone: "initialSyncDone"
            case .changed: "changed"
            case .tick: "tick"
            case .finished(let kind, let ok): "finished(\(kind), \(ok ? "ok" : "failed"))"
            }
        }
    }

    struct Step: CustomStringConvertible {
        var at: Double
        var event: Event
        var expect: Action
        var description: String { "\(event) at \(at)s → \(expect)" }
    }

    static func s(_ at: Double, _ event: Event, _ expect: Action) -> Step { Step(at: at, event: event, expect: expect) }

    static func at(_ seconds: Double) -> ManualClock.Instant { ManualClock.Instant(offset: .seconds(seconds)) }
    static func syncAt(_ seconds: Double) -> Action { .syncAt(at(seconds)) }

    /// Runs the steps in order with min 1 s, period 30 s and a burst of 1 unless given (most tables here are
    /// about the spacing; the burst has tables of its own).
    static func run(
        _ steps: [Step], min: Duration = .seconds(1), period: Duration = .seconds(30), burst: Int = 1,
        rebuild: Duration? = nil
    ) {
        var scheduler = Scheduler(minSyncPeriod: min, syncPeriod: period, burst: burst, rebuildPeriod: rebuild)
        for (index, step) in steps.enumerated() {
            let now = at(step.at)
            let action: Action =
                switch step.event {
                case .initialSyncDone: scheduler.initialSyncDone(at: now)
                case .changed: scheduler.changed(at: now)
                case .tick: scheduler.tick(at: now)
                case .finished(let kind, let ok): scheduler.syncFinished(kind, succeeded: ok, at: now)
                case .verified(let intact): scheduler.verified(intact: intact, at: now)
                }
            #expect(action == step.expect, "step \(index): \(step)")
        }
    }

    /// With a rebuild period (the agent's `fullSyncPeriod`, here 100 s), a periodic sync within it is a canary
    /// check first: intact, it runs as a partial sync that satisfies the period; lost, as a rebuild. The first
    /// sync and retries are never verified, and a rebuild restarts the rebuild period.
    @Test func periodicSyncsAreVerifiedWithinTheRebuildPeriod() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(1, .finished(.full, succeeded: true), Self.syncAt(31)),
            Self.s(31, .tick, .verify),
            Self.s(31, .verified(intact: true), .syncNow(.partial)),
            Self.s(31, .finished(.partial, succeeded: true), Self.syncAt(61)),  // the period counts from here
            Self.s(61, .tick, .verify),
            Self.s(61, .verified(intact: false), .syncNow(.full)),  // flushed: rebuilt
            Self.s(62, .finished(.full, succeeded: true), Self.syncAt(92)),
            Self.s(92, .tick, .verify),
            Self.s(92, .verified(intact: true), .syncNow(.partial)),
            Self.s(92, .finished(.partial, succeeded: false), Self.syncAt(93)),  // a failure: retried whole
            Self.s(93, .tick, .syncNow(.full)),
            Self.s(94, .finished(.full, succeeded: true), Self.syncAt(124)),
            Self.s(124, .tick, .verify),  // rebuilt at 94: still within 100 s
            Self.s(124, .verified(intact: true), .syncNow(.partial)),
            Self.s(124, .finished(.partial, succeeded: true), Self.syncAt(154)),
            Self.s(150, .changed, .syncNow(.partial)),  // a change before the periodic sync: no check
            Self.s(150, .finished(.partial, succeeded: true), Self.syncAt(154)),
            Self.s(154, .tick, .verify),
            Self.s(154, .verified(intact: true), .syncNow(.partial)),
            Self.s(154, .finished(.partial, succeeded: true), Self.syncAt(184)),
            Self.s(200, .tick, .syncNow(.full)),  // 106 s since the rebuild at 94: rebuilt whole
        ], rebuild: .seconds(100))
    }

    @Test func withoutARebuildPeriodEveryPeriodicSyncIsFull() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(1, .finished(.full, succeeded: true), Self.syncAt(31)),
            Self.s(31, .tick, .syncNow(.full)),
        ])
    }

    @Test func nothingBeforeTheInitialLists() {
        Self.run([
            Self.s(0, .changed, .wait),
            Self.s(5, .changed, .wait),
            Self.s(100, .tick, .wait),
            Self.s(101, .initialSyncDone, .syncNow(.full)),
        ])
    }

    @Test func theFirstSyncIsFullThenPeriodic() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(0.5, .finished(.full, succeeded: true), Self.syncAt(30.5)),
            Self.s(10, .tick, Self.syncAt(30.5)),
            Self.s(30.5, .tick, .syncNow(.full)),
            Self.s(31, .finished(.full, succeeded: true), Self.syncAt(61)),
        ])
    }

    @Test func aChangeSyncsAtOnceWhenTheMinimumPeriodHasPassed() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(0, .finished(.full, succeeded: true), Self.syncAt(30)),
            Self.s(5, .changed, .syncNow(.partial)),
            Self.s(5.1, .finished(.partial, succeeded: true), Self.syncAt(30)),
        ])
    }

    @Test func changesWithinTheMinimumPeriodAreBatched() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(0, .finished(.full, succeeded: true), Self.syncAt(30)),
            Self.s(0.2, .changed, Self.syncAt(1)),
            Self.s(0.5, .changed, Self.syncAt(1)),
            Self.s(0.9, .tick, Self.syncAt(1)),
            Self.s(1, .tick, .syncNow(.partial)),
            Self.s(1.25, .finished(.partial, succeeded: true), Self.syncAt(30)),
            // The minimum counts from the end of the last sync.
            Self.s(1.5, .changed, Self.syncAt(2.25)),
        ])
    }

    @Test func partialSyncsDoNotPostponeTheFullOne() {
        // Steady churn: a partial sync every few seconds; the full sync still comes 30 s after the last one.
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(0, .finished(.full, succeeded: true), Self.syncAt(30)),
            Self.s(10, .changed, .syncNow(.partial)),
            Self.s(10, .finished(.partial, succeeded: true), Self.syncAt(30)),
            Self.s(29.5, .changed, .syncNow(.partial)),
            Self.s(29.5, .finished(.partial, succeeded: true), Self.syncAt(30.5)),
            Self.s(30.5, .tick, .syncNow(.full)),
            Self.s(30.5, .finished(.full, succeeded: true), Self.syncAt(60.5)),
        ])
    }

    @Test func aChangeDueAfterThePeriodIsFull() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(0, .finished(.full, succeeded: true), Self.syncAt(30)),
            Self.s(31, .changed, .syncNow(.full)),
        ])
    }

    @Test func aFailureIsRetriedAsFullWithBackoff() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(0, .finished(.full, succeeded: true), Self.syncAt(30)),
            Self.s(5, .changed, .syncNow(.partial)),
            Self.s(5, .finished(.partial, succeeded: false), Self.syncAt(6)),
            // Changes do not cut the backoff short.
            Self.s(5.5, .changed, Self.syncAt(6)),
            Self.s(6, .tick, .syncNow(.full)),
            Self.s(6, .finished(.full, succeeded: false), Self.syncAt(8)),
            Self.s(8, .tick, .syncNow(.full)),
            Self.s(8, .finished(.full, succeeded: false), Self.syncAt(12)),
            Self.s(12, .finished(.full, succeeded: false), Self.syncAt(20)),
            Self.s(20, .finished(.full, succeeded: false), Self.syncAt(36)),
            Self.s(36, .finished(.full, succeeded: false), Self.syncAt(66)),  // capped at syncPeriod
            Self.s(66, .finished(.full, succeeded: false), Self.syncAt(96)),
            // Success resets the backoff and restarts the period.
            Self.s(96, .finished(.full, succeeded: true), Self.syncAt(126)),
            Self.s(97, .changed, .syncNow(.partial)),
            Self.s(97, .finished(.partial, succeeded: false), Self.syncAt(98)),
        ])
    }

    @Test func aFailedInitialSyncIsRetried() {
        Self.run([
            Self.s(0, .initialSyncDone, .syncNow(.full)),
            Self.s(0, .finished(.full, succeeded: false), Self.syncAt(1)),
            Self.s(1, .tick, .syncNow(.full)),
            Self.s(1, .finished(.full, succeeded: true), Self.syncAt(31)),
        ])
    }

    @Test func withoutAMinimumPeriodChangesSyncImmediatelyAndFailuresStillBackOff() {
        Self.run(
            [
                Self.s(0, .initialSyncDone, .syncNow(.full)),
                Self.s(0, .finished(.full, succeeded: true), Self.syncAt(10)),
                Self.s(0, .changed, .syncNow(.partial)),
                Self.s(0, .finished(.partial, succeeded: true), Self.syncAt(10)),
                Self.s(0, .changed, .syncNow(.partial)),
                Self.s(0, .finished(.partial, succeeded: false), Self.syncAt(1)),
                Self.s(1, .finished(.full, succeeded: false), Self.syncAt(3)),
            ], min: .zero, period: .seconds(10))
    }

    @Test func theDefaultBurstIsKubeProxys() {
        #expect(Scheduler().burst == 2)
    }

    @Test func aServiceAndItsSliceSyncBackToBack() {
        // kube-proxy's BoundedFrequencyRunner with burstSyncs 2: after a quiet spell, two changes in quick
        // succession are both synced at once; a third waits for the bucket to refill (one per second).
        Self.run(
            [
                Self.s(0, .initialSyncDone, .syncNow(.full)),
                Self.s(2, .finished(.full, succeeded: true), Self.syncAt(32)),
                Self.s(10, .changed, .syncNow(.partial)),  // the Service
                Self.s(10.01, .finished(.partial, succeeded: true), Self.syncAt(32)),
                Self.s(10.02, .changed, .syncNow(.partial)),  // its EndpointSlice
                Self.s(10.03, .finished(.partial, succeeded: true), Self.syncAt(32)),
                Self.s(10.04, .changed, Self.syncAt(11.01)),
                Self.s(10.5, .changed, Self.syncAt(11.01)),
                Self.s(11.01, .tick, .syncNow(.partial)),
                Self.s(11.02, .finished(.partial, succeeded: true), Self.syncAt(32)),
                // Steady churn: one sync per minSyncPeriod.
                // (The bucket refills at one token per second from when the previous token was taken.)
                Self.s(11.03, .changed, Self.syncAt(12.01)),
                Self.s(12.01, .tick, .syncNow(.partial)),
                Self.s(12.1, .finished(.partial, succeeded: true), Self.syncAt(32)),
                // Quiet for two periods: the bucket is full again.
                Self.s(20, .changed, .syncNow(.partial)),
                Self.s(20, .finished(.partial, succeeded: true), Self.syncAt(32)),
                Self.s(20.1, .changed, .syncNow(.partial)),
            ], burst: 2)
    }

    @Test func theFirstChangesAfterTheInitialSyncAreNotHeldBack() {
        // The initial full sync takes a token; the burst's second one lets the first change through at once.
        Self.run(
            [
                Self.s(0, .initialSyncDone, .syncNow(.full)),
                Self.s(5, .finished(.full, succeeded: true), Self.syncAt(35)),
                Self.s(5.1, .changed, .syncNow(.partial)),
                Self.s(5.2, .finished(.partial, succeeded: true), Self.syncAt(35)),
                Self.s(5.3, .changed, Self.syncAt(6)),
            ], burst: 2)
    }

    @Test func aSyncThatWroteNothingTakesNoToken() {
        // A periodic sync that found the tables intact and applied nothing; then a Service and its slice.
        var scheduler = Scheduler(minSyncPeriod: .seconds(1), syncPeriod: .seconds(30), burst: 2)
        _ = scheduler.initialSyncDone(at: Self.at(0))
        _ = scheduler.syncFinished(.full, succeeded: true, at: Self.at(0))
        #expect(scheduler.tick(at: Self.at(30)) == .syncNow(.full))
        _ = scheduler.syncFinished(.full, succeeded: true, at: Self.at(30), wrote: false)
        #expect(scheduler.changed(at: Self.at(30.1)) == .syncNow(.partial))
        _ = scheduler.syncFinished(.partial, succeeded: true, at: Self.at(30.11))
        #expect(scheduler.changed(at: Self.at(30.12)) == .syncNow(.partial))
        // Had the periodic sync taken a token, this one would wait for 31.
        _ = scheduler.syncFinished(.partial, succeeded: true, at: Self.at(30.13))
        #expect(scheduler.changed(at: Self.at(30.14)) == Self.syncAt(31.11))
    }

    @Test(arguments: [1, 2, 3, 5])
    func aBurstOfNThenOnePerPeriod(burst: Int) {
        // From a full bucket, `burst` syncs start at once; then exactly one per minSyncPeriod.
        var scheduler = Scheduler(minSyncPeriod: .seconds(1), syncPeriod: .seconds(600), burst: burst)
        _ = scheduler.initialSyncDone(at: Self.at(0))
        _ = scheduler.syncFinished(.full, succeeded: true, at: Self.at(0))
        var now = 100.0
        var starts: [Double] = []
        for _ in 0..<(burst + 3) {
            switch scheduler.changed(at: Self.at(now)) {
            case .syncNow: break
            case .syncAt(let instant):
                now = Double(instant.offset.components.seconds) + Double(instant.offset.components.attoseconds) / 1e18
                #expect(scheduler.tick(at: instant) == .syncNow(.partial))
            case .wait: Issue.record("waiting after the initial sync")
            case .verify: Issue.record("a canary check without a rebuild period")
            }
            starts.append(now)
            _ = scheduler.syncFinished(.partial, succeeded: true, at: Self.at(now))
        }
        #expect(starts == Array(repeating: 100.0, count: burst) + [101, 102, 103])
    }

    @Test(arguments: [
        (Duration.seconds(1), Duration.seconds(30), [1, 2, 4, 8, 16, 30, 30]),
        (.milliseconds(500), .seconds(3), [0.5, 1, 2, 3, 3]),
        (.zero, .seconds(30), [1, 2, 4]),
        (.zero, .milliseconds(200), [0.2, 0.2]),
        (.seconds(5), .seconds(5), [5, 5]),
    ])
    func retryDelays(min: Duration, period: Duration, expected: [Double]) {
        let scheduler = Scheduler(minSyncPeriod: min, syncPeriod: period)
        let delays = (1...expected.count).map { scheduler.retryDelay(afterFailures: $0) }
        #expect(delays == expected.map { Duration.milliseconds(Int64($0 * 1000)) })
    }
}
