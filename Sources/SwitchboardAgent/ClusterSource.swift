import SwitchboardCore

/// The I/O edge for Kubernetes: a stream of `ClusterEvent`s, normally for as long as the agent runs.
///
/// The KubeAPI informers are one implementation (`KubeClusterSource`); SwitchboardTesting's
/// `FakeClusterSource` is the in-memory one for tests. An `AsyncStream<ClusterEvent>` (or a throwing one) is a
/// `ClusterSource` too, so a producer running as its own `Service` can feed the controller through a stream.
///
/// Contract: a `.synced` list for each of the three kinds comes before the agent applies anything. If the
/// sequence ends, the controller keeps the rules it has and goes on with periodic syncs; if it throws,
/// the controller stops with that error (the rules stay in place).
public protocol ClusterSource: AsyncSequence, Sendable where Element == ClusterEvent {}

extension AsyncStream: ClusterSource where Element == ClusterEvent {}
extension AsyncThrowingStream: ClusterSource where Element == ClusterEvent {}
