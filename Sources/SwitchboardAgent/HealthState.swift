import Foundation
import Synchronization

/// Whether the proxy rules keep up with the cluster: what `/healthz` and `/livez` answer.
///
/// kube-proxy's semantics (`pkg/proxy/healthcheck/proxier_health.go`): the controller calls `queuedUpdate`
/// when it sees a change that needs a sync and `updated` after every successful sync. The agent is
/// unhealthy while the oldest change that is still not synced was queued `healthzTimeout` (kube-proxy:
/// 2 × syncPeriod) or more ago; otherwise healthy.
///
/// One deliberate difference: kube-proxy counts only changes queued after its informers synced, so an
/// agent that never gets its initial lists, or never manages a first sync, reports healthy forever. Here
/// the start itself counts as a queued update: healthy during the first `healthzTimeout`, then unhealthy
/// until the first sync succeeds.
public final class HealthState: Sendable {
    /// The answer at one moment.
    public struct Status: Hashable, Sendable {
        public var isHealthy: Bool
        /// When the rules were last known to be current. As kube-proxy does (for compatibility with
        /// probes that check freshness), this is `currentTime` while healthy; else the last successful sync
        /// (the start time if there was none).
        public var lastUpdated: Date
        public var currentTime: Date
        /// When the oldest not yet synced change was queued, if any.
        public var oldestPendingUpdate: Date?
    }

    private struct State {
        var lastUpdated: Date
        var oldestPending: Date?
    }

    /// How long a queued change may stay unsynced before the agent reports unhealthy.
    public let healthzTimeout: Duration
    private let now: @Sendable () -> Date
    private let state: Mutex<State>

    /// - Parameters:
    ///   - healthzTimeout: kube-proxy uses 2 × syncPeriod.
    ///   - now: the wall clock (injected by tests).
    public init(healthzTimeout: Duration, now: @escaping @Sendable () -> Date = { Date() }) {
        self.healthzTimeout = healthzTimeout
        self.now = now
        let start = now()
        state = Mutex(State(lastUpdated: start, oldestPending: start))
    }

    /// A change arrived that the rules do not reflect yet.
    public func queuedUpdate() {
        let time = now()
        state.withLock { state in
            if state.oldestPending == nil { state.oldestPending = time }
        }
    }

    /// A sync succeeded: the rules reflect everything queued before it started.
    public func updated() {
        let time = now()
        state.withLock { state in
            state.oldestPending = nil
            state.lastUpdated = time
        }
    }

    /// The current answer.
    public var status: Status {
        let time = now()
        return state.withLock { state in
            var healthy = true
            if let pending = state.oldestPending, time.timeIntervalSince(pending) >= healthzTimeout.seconds {
                healthy = false
            }
            return Status(
                isHealthy: healthy, lastUpdated: healthy ? time : state.lastUpdated, currentTime: time,
                oldestPendingUpdate: state.oldestPending)
        }
    }
}
