import SwitchboardCore

/// Whether this node should receive load-balancer traffic, followed from the events about its own Node
/// object: what `/healthz` reports as `nodeEligible` (kube-proxy 1.31+), so that cloud load balancers
/// drain a node before it goes away. A plain value; the controller feeds it every event as it arrives.
///
/// - Until the Node is first seen (the agent starting, or a node not registered yet) it is eligible, as
///   kube-proxy is while it starts.
/// - While the Node exists: `Node.isEligibleForTraffic` (not being deleted, not tainted
///   `ToBeDeletedByClusterAutoscaler`).
/// - Once it is deleted (a delete event, or a complete list without it after it was seen): not eligible,
///   until it is created again. kube-proxy differs by release here: 1.33+ exits when its Node is deleted
///   (its health server stops answering, which load balancers treat as down), 1.31 and 1.32 keep the answer
///   of the deleted object's last state (deleted without finalizers: no deletion timestamp, so eligible).
///   A node whose Node object is gone is leaving the cluster; Switchboard drains it without exiting.
public struct NodeEligibility: Hashable, Sendable {
    /// This node's name (`--hostname-override`).
    public let nodeName: String
    /// The current answer.
    public private(set) var isEligible = true
    /// The Node has been seen (listed, added or updated) at least once.
    private var seen = false

    public init(nodeName: String) {
        self.nodeName = nodeName
    }

    /// Follows one event; returns the new answer when it changed, nil when it did not.
    public mutating func apply(_ event: ClusterEvent) -> Bool? {
        let before = isEligible
        switch event {
        case .synced(.nodes, let objects):
            if let node = ownNode(in: objects) {
                follow(node)
            } else if seen {
                isEligible = false
            }
        case .upsert(.node(let node)) where node.name == nodeName:
            follow(node)
        case .delete(.node(let node)) where node.name == nodeName:
            seen = true
            isEligible = false
        default:
            break
        }
        return isEligible == before ? nil : isEligible
    }

    private mutating func follow(_ node: Node) {
        seen = true
        isEligible = node.isEligibleForTraffic
    }

    private func ownNode(in objects: [KubeObject]) -> Node? {
        for case .node(let node) in objects where node.name == nodeName { return node }
        return nil
    }
}
