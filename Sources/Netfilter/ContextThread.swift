import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Named network namespaces (`/var/run/netns/<name>`, as `ip netns` makes them), for the C libraries'
/// sockets: a thread that enters one stays in it, so each library opens its socket from a thread of
/// its own (`ContextThread`, or a short-lived one).
enum NetworkNamespace {
    /// Refuses names that are not a plain file name under `/var/run/netns`.
    static func validate(_ name: String) throws(NetfilterError) {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.utf8.contains(0) else {
            throw NetfilterError(kind: .invalidRequest, code: EINVAL, message: "invalid network namespace name \"\(name)\"")
        }
    }

    /// Moves the calling thread (only) into the namespace.
    static func enter(_ name: String) -> Result<Void, NetfilterError> {
        let path = "/var/run/netns/" + name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(.system(.namespaceUnavailable, code: errno, "open \(path)")) }
        defer { close(fd) }
        return enter(descriptor: fd, path)
    }

    /// A descriptor of the calling thread's own network namespace, to come back to after `enter`.
    static func current() -> Result<Int32, NetfilterError> {
        let fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return .failure(.system(.namespaceUnavailable, code: errno, "open /proc/thread-self/ns/net"))
        }
        return .success(fd)
    }

    /// When the calling thread is no longer in the namespace `home` refers to: `home` and a descriptor of
    /// the thread's namespace now. Otherwise nil, and `home` is closed.
    static func moved(from home: Int32?) -> (home: Int32, worker: Int32)? {
        guard let home else { return nil }
        guard case .success(let own) = current() else {
            close(home)
            return nil
        }
        var a = stat(), b = stat()
        if fstat(home, &a) == 0, fstat(own, &b) == 0, a.st_ino != b.st_ino || a.st_dev != b.st_dev {
            return (home, own)
        }
        close(home)
        close(own)
        return nil
    }

    /// Moves the calling thread (only) into the namespace `fd` refers to; `what` names it in errors.
    static func enter(descriptor fd: Int32, _ what: String) -> Result<Void, NetfilterError> {
        // `setns(2)` is declared only under `_GNU_SOURCE`, which Swift's Glibc module does not define, so
        // it is looked up in libc at run time.
        typealias SetNamespace = @convention(c) (Int32, Int32) -> Int32
        guard let libc = dlopen(nil, RTLD_NOW), let symbol = dlsym(libc, "setns") else {
            return .failure(.system(.namespaceUnavailable, code: ENOSYS, "setns not found in libc"))
        }
        let cloneNewNet: Int32 = 0x4000_0000  // <sched.h>
        guard unsafeBitCast(symbol, to: SetNamespace.self)(fd, cloneNewNet) == 0 else {
            return .failure(.system(.namespaceUnavailable, code: errno, "setns \(what)"))
        }
        return .success(())
    }
}

/// The dedicated thread that owns one C library context (an `nft_ctx`, a libipset session): created on
/// it (after entering the namespace, if any), used only by it, freed on it. Runs submitted jobs in
/// order until stopped. The thread exists for this context alone, so a namespace it entered never
/// leaks into a thread that runs anything else, and blocking netlink I/O never runs on Swift's
/// cooperative pool.
final class ContextThread<Context>: @unchecked Sendable {
    typealias Job = @Sendable (Context) -> Void

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var isStopping = false
    private let exited = DispatchSemaphore(value: 0)
    private let stopped: NetfilterError
    /// Set once by the thread before the first job: descriptors of the namespace the thread was started in
    /// and of the one `make` moved it to, when the two differ.
    private var namespaces: (home: Int32, worker: Int32)?

    private init(stopped: NetfilterError) { self.stopped = stopped }

    /// Starts the thread (named `name`, at most 15 bytes on Linux), which runs `make` and then serves
    /// jobs until `stop()`, then `free`s the context. Throws what `make` failed with.
    static func start(
        name: String, stackSize: Int, stoppedMessage: String,
        make: @escaping @Sendable () -> Result<Context, NetfilterError>,
        free: @escaping @Sendable (Context) -> Void
    ) throws(NetfilterError) -> ContextThread {
        let worker = ContextThread(
            stopped: NetfilterError(kind: .contextUnavailable, code: ESHUTDOWN, message: stoppedMessage))
        let started = Completion<Void>()
        let threadName = String(name.prefix(15))
        let thread = Thread {
            // Named from inside: corelibs Foundation does not apply a name set before `start()`, and a
            // new thread otherwise inherits its creator's name.
            Thread.current.name = threadName
            let home = try? NetworkNamespace.current().get()
            switch make() {
            case .failure(let error):
                if let home { close(home) }
                started.complete(.failure(error))
                worker.exited.signal()
            case .success(let context):
                worker.namespaces = NetworkNamespace.moved(from: home)
                started.complete(.success(()))
                worker.serve(context)
                free(context)
                if let (home, own) = worker.namespaces {
                    close(home)
                    close(own)
                }
                worker.exited.signal()
            }
        }
        thread.stackSize = stackSize
        thread.start()
        try started.wait().get()
        return worker
    }

    private func serve(_ context: Context) {
        while true {
            condition.lock()
            while jobs.isEmpty && !isStopping { condition.wait() }
            if jobs.isEmpty {  // stopping, and nothing left to do
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job(context)
        }
    }

    /// Asks the thread to finish the jobs it has, free the context and exit; waits until it has, so that
    /// the netlink socket is closed when the owner's deinit returns.
    func stop() {
        condition.lock()
        isStopping = true
        condition.signal()
        condition.unlock()
        exited.wait()
    }

    private func submit(_ job: @escaping Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !isStopping else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Runs `body` on the thread and blocks the calling thread until it is done.
    func perform<T: Sendable>(
        _ body: @escaping @Sendable (Context) -> Result<T, NetfilterError>
    ) throws(NetfilterError) -> T {
        let done = Completion<T>()
        guard submit({ context in done.complete(body(context)) }) else { throw stopped }
        return try done.wait().get()
    }

    /// Runs `body` on the thread; the calling task suspends until it is done.
    func performAsync<T: Sendable>(
        _ body: @escaping @Sendable (Context) -> Result<T, NetfilterError>
    ) async throws(NetfilterError) -> T {
        let stopped = self.stopped
        let result: Result<T, NetfilterError> = await withCheckedContinuation { continuation in
            guard submit({ context in
                let result = body(context)
                self.atHome { continuation.resume(returning: result) }
            }) else {
                continuation.resume(returning: .failure(stopped))
                return
            }
        }
        return try result.get()
    }

    /// Runs `body` on the worker thread back in the namespace it was started in. Resuming a continuation
    /// can make libdispatch start a thread of Swift's cooperative pool from the resuming thread, and a new
    /// thread inherits its creator's namespace: a pool thread started in a scratch namespace would run
    /// later tasks there (seen in `namespacesStayIsolated` under parallel tests).
    private func atHome(_ body: () -> Void) {
        guard let (home, own) = namespaces else { return body() }
        _ = NetworkNamespace.enter(descriptor: home, "back to the worker's starting namespace")
        body()
        _ = NetworkNamespace.enter(descriptor: own, "back into the worker's namespace")
    }
}

/// A one-shot result handed from a worker thread to a blocked caller.
final class Completion<T: Sendable>: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    // Written once before `signal`, read after `wait`: the semaphore orders the two.
    private var result: Result<T, NetfilterError>?

    func complete(_ result: Result<T, NetfilterError>) {
        self.result = result
        semaphore.signal()
    }

    func wait() -> Result<T, NetfilterError> {
        semaphore.wait()
        return result!
    }
}
