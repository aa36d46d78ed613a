import Logging
import NetworkTypes
import Synchronization
import SwitchboardCore

/// kube-proxy's stale-conntrack cleanup for UDP and SCTP, after every successful sync.
///
/// A UDP "connection" lives in conntrack as long as datagrams keep coming, and its DNAT decision lives
/// with it: a client that keeps sending from the same port would go on reaching a removed endpoint
/// (black-holed if the pod is gone), and one whose first datagrams were rejected while the Service had
/// no endpoints may keep an entry that never reaches the new ones. So once the new rules are in the
/// kernel, the entries that rules would no longer produce are deleted (see
/// `ConntrackSummary.staleFilters(from:to:)`); the next datagram is then NATed afresh.
///
/// Deletes per IP family, each timed and counted (`kubeproxy_conntrack_reconciler_*{ip_family}`; kube-proxy
/// 1.33+ reconciles the whole table per family instead, deleting what no rule would produce).
///
/// Keeps its own summary of what the previous call saw. A failure is logged and counted; the summary
/// still moves on (as kube-proxy, which does not retry a cleanup), and the agent never stops for it.
public final class ConntrackCleaner: SyncFollower {
    private let backend: any ConntrackBackend
    private let metrics: AgentMetrics?
    private let logger: Logger
    private let previous = Mutex(ConntrackSummary())

    public init(backend: any ConntrackBackend, metrics: AgentMetrics?, logger: Logger) {
        self.backend = backend
        self.metrics = metrics
        self.logger = logger
    }

    public func synced(_ state: ClusterState, changed: Set<ObjectRef>?) async {
        let fresh = ConntrackSummary(state, services: changed)
        // Called from the controller's task only, one call at a time: reading and replacing under two
        // lock scopes is not a race.
        let old = previous.withLock { $0.restricted(to: changed) }
        previous.withLock { $0.replace(changed, with: fresh) }
        let filters = ConntrackSummary.staleFilters(from: old, to: fresh)
        // One deletion per IP family, so that each is timed and counted under its own `ip_family`, as
        // kube-proxy's per-family reconcilers are.
        for family in IPFamily.allCases {
            let familyFilters = filters.filter { $0.family == family }
            if !familyFilters.isEmpty { await delete(familyFilters, family: family) }
        }
    }

    private func delete(_ filters: [ConntrackFilter], family: IPFamily) async {
        let started = ContinuousClock.now
        do {
            let deleted = try await backend.delete(filters)
            metrics?.countConntrackDeleted(deleted)
            metrics?.recordConntrackCleanup(family, deleted: deleted, duration: started.duration(to: .now))
            let metadata: Logger.Metadata = [
                "deleted": "\(deleted)", "filters": "\(filters.count)", "family": "\(family.rawValue)",
            ]
            if deleted > 0 {
                logger.info("deleted stale conntrack entries", metadata: metadata)
            } else {
                logger.debug("no stale conntrack entries", metadata: metadata)
            }
            for filter in filters { logger.trace("conntrack filter", metadata: ["filter": "\(filter)"]) }
        } catch {
            metrics?.recordConntrackCleanup(family, deleted: 0, duration: started.duration(to: .now))
            metrics?.countConntrackCleanupError()
            logger.error(
                "conntrack cleanup failed; stale UDP/SCTP flows may keep their old endpoint until they go idle",
                metadata: ["error": "\(error)", "filters": "\(filters.count)", "family": "\(family.rawValue)"])
        }
    }
}
