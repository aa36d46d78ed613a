/// What a sync does to our tables.
public enum SyncKind: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Replace our tables whole (repairs drift): the first sync, the periodic one and every retry.
    case full
    /// Plan from the last applied ruleset: only what changed.
    case partial

    public var description: String { rawValue }
}

/// When to sync, as a pure state machine: the controller reports what happened and when, and does what
/// the returned `Action` says. Nothing here sleeps or reads a clock; `C` only fixes the instant type.
///
/// The semantics are kube-proxy's `BoundedFrequencyRunner` (`--min-sync-period`, `--sync-period`):
///
/// - Nothing is synced before `initialSyncDone` (every informer delivered its first complete list); the
///   first sync is full.
/// - Syncs are spaced by a token bucket of `burst` syncs (kube-proxy's `burstSyncs`, 2) refilled at one per
///   `minSyncPeriod`: after a quiet spell, `burst` changes sync at once, back to back (a Service and its
///   EndpointSlice created together are programmed without waiting a `minSyncPeriod` between them); under
///   steady churn syncs start no sooner than `minSyncPeriod` apart, and changes arriving meanwhile are
///   batched into the next one. Unlike the Go runner, which takes its token when a sync starts, the token
///   is taken when a sync *finishes*, so a slow sync cannot be followed by a burst of slow ones. With a
///   burst of 1 a change syncs at once if `minSyncPeriod` has passed since the last sync finished, else
///   at `lastSync + minSyncPeriod`.
/// - A full sync runs at least every `syncPeriod`. Unlike the Go runner, whose periodic timer restarts
///   after any run, the period counts from the last successful *full* sync: under steady churn (a partial
///   sync every second) drift is still repaired within `syncPeriod`.
/// - A periodic full sync within `rebuildPeriod` of the last rebuild (a successful full sync) is first a
///   `.verify`: the controller checks that the kernel still holds our tables (their canary element) and
///   reports `verified(intact:at:)`. Intact, the sync runs as a partial one that satisfies the period;
///   lost, as a full one (a rebuild). At 10k Services a rebuild re-adds two million elements, so an intact
///   table is rebuilt whole only every `rebuildPeriod` (kube-proxy's nftables mode: 1 h). Retries and the
///   first sync are never verified: the kernel's state is unknown then.
/// - A failed sync is retried as a full sync after a backoff that starts at `minSyncPeriod` and doubles
///   up to `syncPeriod` (kube-proxy retries after `syncPeriod` at once). Changes do not cut the backoff
///   short: the retry includes them anyway. With `minSyncPeriod` zero the backoff starts at
///   `min(1 s, syncPeriod)`, so a kernel that keeps refusing cannot make the loop spin.
public struct SyncScheduler<C: Clock>: Sendable where C.Duration == Duration {
    public enum Action: Hashable, Sendable {
        /// Sync now, of this kind, then report `syncFinished`.
        case syncNow(SyncKind)
        /// Call `tick` at this instant (or earlier, on the next change).
        case syncAt(C.Instant)
        /// Nothing is scheduled: wait for the next event (only before the initial sync).
        case wait
        /// A periodic sync is due and the tables were rebuilt within `rebuildPeriod`: check whether the
        /// kernel still holds them intact, then report `verified(intact:at:)`.
        case verify
    }

    /// What the last `.verify` found, until the sync it leads to finishes.
    public enum Verdict: Hashable, Sendable {
        /// Our tables are there: the periodic sync runs as a partial one.
        case intact
        /// A table was flushed or deleted: the sync rebuilds them.
        case lost
    }

    public let minSyncPeriod: Duration
    public let syncPeriod: Duration
    /// How many syncs may run back to back after a quiet spell (kube-proxy: 2).
    public let burst: Int
    /// How long a rebuild vouches for intact tables: periodic syncs within it are verified first. nil:
    /// every periodic sync is a rebuild.
    public let rebuildPeriod: Duration?

    /// All informers delivered their first complete list.
    public private(set) var isInitialized = false
    /// When the last sync attempt finished, successful or not.
    public private(set) var lastSync: C.Instant?
    /// When the last successful full sync finished.
    public private(set) var lastFullSync: C.Instant?
    /// A change arrived that no successful sync has included yet.
    public private(set) var hasPendingChange = false
    /// Consecutive failed syncs.
    public private(set) var failures = 0
    /// Set after a failure: the full retry is due then.
    public private(set) var retryAt: C.Instant?
    /// The token bucket as a theoretical arrival time (GCRA): the bucket is full again at this instant,
    /// and a sync may start once `now >= full - (burst - 1) * minSyncPeriod`. nil: full.
    public private(set) var bucketFullAt: C.Instant?
    /// When the last rebuild (a successful full sync) finished.
    public private(set) var lastRebuild: C.Instant?
    /// Set by `verified(intact:at:)`, cleared when the sync it asked for finishes.
    public private(set) var verdict: Verdict?

    /// kube-proxy's `burstSyncs`: a Service and its EndpointSlice, created together, are two syncs.
    public static var defaultBurst: Int { 2 }

    /// - Precondition: `0 ≤ minSyncPeriod ≤ syncPeriod`, `syncPeriod > 0`, `burst ≥ 1`.
    public init(
        minSyncPeriod: Duration = .seconds(1), syncPeriod: Duration = .seconds(30), burst: Int = defaultBurst,
        rebuildPeriod: Duration? = nil
    ) {
        precondition(syncPeriod > .zero, "syncPeriod must be positive")
        precondition(minSyncPeriod >= .zero && minSyncPeriod <= syncPeriod, "need 0 <= minSyncPeriod <= syncPeriod")
        precondition(burst >= 1, "burst must be at least 1")
        self.minSyncPeriod = minSyncPeriod
        self.syncPeriod = syncPeriod
        self.burst = burst
        self.rebuildPeriod = rebuildPeriod
    }

    /// Every informer has delivered its first complete list: syncing may begin.
    public mutating func initialSyncDone(at now: C.Instant) -> Action {
        isInitialized = true
        return next(at: now)
    }

    /// Something changed that the rules may depend on.
    public mutating func changed(at now: C.Instant) -> Action {
        hasPendingChange = true
        return next(at: now)
    }

    /// A deadline returned as `.syncAt` has come (extra ticks are harmless).
    public func tick(at now: C.Instant) -> Action {
        next(at: now)
    }

    /// The check that `.verify` asked for is done: `intact` when every table of ours still holds its canary.
    public mutating func verified(intact: Bool, at now: C.Instant) -> Action {
        verdict = intact ? .intact : .lost
        return next(at: now)
    }

    /// The sync that `.syncNow(kind)` asked for is done. Changes reported before the sync started are
    /// included in it; report later ones with `changed` after this call.
    /// `wrote`: the sync changed the kernel. One that did not (a periodic sync that found the tables intact
    /// and nothing to change) takes no token, so it cannot hold back the next change's burst.
    public mutating func syncFinished(_ kind: SyncKind, succeeded: Bool, at now: C.Instant, wrote: Bool = true) -> Action {
        lastSync = now
        // Take a token: the bucket refills one `minSyncPeriod` later than it would have.
        if wrote { bucketFullAt = max(bucketFullAt ?? now, now).advanced(by: minSyncPeriod) }
        if succeeded {
            hasPendingChange = false
            failures = 0
            retryAt = nil
            // A verified partial sync satisfies the period as a rebuild does.
            if kind == .full || verdict == .intact { lastFullSync = now }
            if kind == .full { lastRebuild = now }
        } else {
            failures += 1
            retryAt = now.advanced(by: retryDelay(afterFailures: failures))
        }
        verdict = nil
        return next(at: now)
    }

    /// The backoff before the full retry after `failures` consecutive failures.
    public func retryDelay(afterFailures failures: Int) -> Duration {
        let base = minSyncPeriod > .zero ? minSyncPeriod : min(.seconds(1), syncPeriod)
        var delay = base
        for _ in 1..<max(failures, 1) {
            delay = delay * 2
            if delay >= syncPeriod { return syncPeriod }
        }
        return min(delay, syncPeriod)
    }

    /// What to do at `now`, given everything reported so far.
    public func next(at now: C.Instant) -> Action {
        guard isInitialized else { return .wait }
        if let retryAt { return now >= retryAt ? .syncNow(.full) : .syncAt(retryAt) }
        guard lastSync != nil else { return .syncNow(.full) }
        if let verdict { return .syncNow(verdict == .intact ? .partial : .full) }
        // The first instant the bucket holds a token.
        let earliest = bucketFullAt.map { $0.advanced(by: minSyncPeriod * -(burst - 1)) } ?? now
        // Without a successful full sync yet, one is due as soon as allowed.
        let periodic = lastFullSync.map { max($0.advanced(by: syncPeriod), earliest) } ?? earliest
        let due = hasPendingChange ? earliest : periodic
        guard now >= due else { return .syncAt(due) }
        guard now >= periodic else { return .syncNow(.partial) }
        if let rebuildPeriod, let lastRebuild, now < lastRebuild.advanced(by: rebuildPeriod) { return .verify }
        return .syncNow(.full)
    }
}
