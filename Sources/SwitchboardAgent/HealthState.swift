import Foundation
import Synchronization

/// Whether the proxy rules keep up with the cluster, and whether this node should receive load-balancer
/// traffic: what `/healthz` and `/livez` answer.
///
/// kube-proxy's semantics (`pkg/proxy/healthcheck/proxy_health.go`): the controller calls `queuedUpdate`
/// when it sees a change that needs a sync and `updated` after every successful sync. The agent is
/// unhealthy while the oldest change that is still not synced was queued `healthzTimeout` (kube-proxy:
/// 2 × syncPeriod) or more ago; otherwise healthy. Separately, `setNodeEligible` records whether this node
/// should keep receiving load-balancer traffic (`NodeEligibility`); only `/healthz` takes that into account.
///
/// One deliberate difference: kube-proxy counts only changes queued after its informers synced, so an
/// agent that never gets its initial lists, or never manages a first sync, reports healthy forever. Here
/// the start itself counts as a queued update: healthy during the first `healthzTimeout`, then unhealthy
/// until the first sync succeeds.
public final class HealthState: Sendable {
    /// The answer at one moment.
    public struct Status: Hashable, Sendable {
        /// The rules keep up: what `/livez` answers (and a Service health check's `serviceProxyHealthy`).
        public var isHealthy: Bool
        /// This node should receive load-balancer traffic (true until its Node object says otherwise).
        /// `/healthz` answers 200 only when this holds too.
        public var nodeEligible: Bool
        /// When the last sync succeeded (the start time if none has).
        public var lastSynced: Date
        public var currentTime: Date
        /// When the oldest not yet synced change was queued, if any.
        public var oldestPendingUpdate: Date?

        /// What `/healthz` answers: healthy and eligible.
        public var isHealthzOK: Bool { isHealthy && nodeEligible }

        /// When the rules were last known to be current, as `/livez` reports it. As kube-proxy does (for
        /// compatibility with probes that check freshness), this is `currentTime` while healthy, else
        /// `lastSynced`. (`/healthz` does the same with `isHealthzOK`.)
        public var lastUpdated: Date { isHealthy ? currentTime : lastSynced }
    }

    private struct State {
        var lastUpdated: Date
        var oldestPending: Date?
        var nodeEligible = true
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

    /// Whether this node should receive load-balancer traffic (`NodeEligibility`). Eligible until told.
    public func setNodeEligible(_ eligible: Bool) {
        state.withLock { $0.nodeEligible = eligible }
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
                isHealthy: healthy, nodeEligible: state.nodeEligible, lastSynced: state.lastUpdated,
                currentTime: time, oldestPendingUpdate: state.oldestPending)
        }
    }
}
