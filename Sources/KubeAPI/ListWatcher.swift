/// The I/O edge under an informer: a complete list, and a watch from a resourceVersion.
///
/// `KubeClient` is the real one; tests drive `Informer` with a fake that replays canned lists and watch
/// streams (including broken connections, `410 Gone` and malformed objects) without a server.
public protocol ListWatcher: Sendable {
    /// Every object of `resource`, fetched `pageSize` at a time, and the version to watch from. `fromCache`
    /// lets the server answer from its watch cache (`resourceVersion=0`: fast, possibly a little stale,
    /// unpaged on servers before 1.27); otherwise the list is read from etcd, current and paged.
    func list(_ resource: KubeResource, pageSize: Int, fromCache: Bool) async throws -> ListResult

    /// The changes to `resource` after `resourceVersion`, with bookmarks, ending after about `timeoutSeconds`.
    func watch(
        _ resource: KubeResource, from resourceVersion: String, timeoutSeconds: Int
    ) async throws
        -> WatchEventStream
}
