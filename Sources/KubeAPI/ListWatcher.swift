/// The I/O edge under an informer: a complete list, and a watch from a resourceVersion.
///
/// `KubeClient` is the real one; tests drive `Informer` with a fake that replays canned lists and watch
/// streams (including broken connections, `410 Gone` and malformed objects) without a server.
public protocol ListWatcher: Sendable {
    /// Every object of `resource`, fetched `pageSize` at a time, and the version to watch from.
    func list(_ resource: KubeResource, pageSize: Int) async throws -> ListResult

    /// The changes to `resource` after `resourceVersion`, with bookmarks, ending after about `timeoutSeconds`.
    func watch(
        _ resource: KubeResource, from resourceVersion: String, timeoutSeconds: Int
    ) async throws
        -> WatchEventStream
}
