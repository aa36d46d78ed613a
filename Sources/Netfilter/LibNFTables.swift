import CNFTables
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The only type that touches libnftables' C API: one `nft_ctx`, owned by one dedicated thread.
///
/// Every call is handed to that thread and the caller waits, so the context is never used by two
/// threads at once and blocking netlink I/O never runs on Swift's cooperative pool: from async code
/// use the `async` overloads (the compiler picks them there), which suspend until the worker is done.
///
/// With `networkNamespace`, the worker thread enters `/var/run/netns/<name>` (`setns(CLONE_NEWNET)`
/// affects only the calling thread) before it creates the context; libnftables 1.0.6 opens its netlink
/// socket in `nft_ctx_new`, so the socket, and every command, lives in that namespace while the rest of
/// the process stays where it is. Without a name the context works in the process's own namespace
/// (the CLI is started under `ip netns exec` when it should act elsewhere).
///
/// Nothing is exec'd: there is no `nft` process anywhere in product code.
public final class LibNFTables: Sendable {
    /// The namespace the context works in; nil for the process's own.
    public let networkNamespace: String?
    private let worker: ContextThread<OpaquePointer>

    /// Starts the worker thread, enters the namespace and creates the context; throws if any step fails
    /// (`.namespaceUnavailable` with `isNotFound` for a namespace that does not exist).
    ///
    /// Blocks for the thread start (well under a millisecond); call it once, at startup.
    public init(networkNamespace: String? = nil) throws(NetfilterError) {
        if let name = networkNamespace { try NetworkNamespace.validate(name) }
        self.networkNamespace = networkNamespace
        // The parser and the JSON printer run on the thread's stack; give large scripts room.
        self.worker = try ContextThread.start(
            name: "nft-" + (networkNamespace ?? "host"), stackSize: 16 << 20, stoppedMessage: "nft context is shut down",
            make: { Self.makeContext(networkNamespace: networkNamespace) }, free: { Self.freeContext($0) })
    }

    deinit {
        worker.stop()
    }

    /// Runs an nft script (any number of commands, separated by newlines or `;`) and returns what nft
    /// prints (empty for commands that print nothing).
    ///
    /// libnftables evaluates the whole buffer first and then sends every command in one netlink batch,
    /// which the kernel applies all or nothing; on any error nothing of the script is applied and the
    /// error carries libnftables' message verbatim. Blocks the calling thread: from async code, use the
    /// async overload.
    public func run(_ script: String) throws(NetfilterError) -> String {
        try worker.perform { ctx in Self.execute(ctx, script, flags: 0) }
    }

    /// Runs an nft script on the worker thread, suspending (not blocking) the caller. See `run(_:)`.
    public func run(_ script: String) async throws(NetfilterError) -> String {
        try await worker.performAsync { ctx in Self.execute(ctx, script, flags: 0) }
    }

    /// Runs a listing command (`list table ip switchboard`, `list ruleset`) with JSON output, as
    /// `nft -j` does. The output buffer grows as needed: listings of 100+ MB are fine.
    public func listJSON(_ command: String) throws(NetfilterError) -> String {
        try worker.perform { ctx in Self.execute(ctx, command, flags: Self.jsonFlags) }
    }

    /// Runs a listing command with JSON output on the worker thread. See `listJSON(_:)`.
    public func listJSON(_ command: String) async throws(NetfilterError) -> String {
        try await worker.performAsync { ctx in Self.execute(ctx, command, flags: Self.jsonFlags) }
    }

    /// A listing with JSON output and without set elements (`nft -j -t`): declarations and rules only,
    /// cheap even when a map holds millions of elements.
    public func listTerseJSON(_ command: String) async throws(NetfilterError) -> String {
        try await worker.performAsync { ctx in Self.execute(ctx, command, flags: Self.terseJSONFlags) }
    }

    /// Runs a listing command with text output that carries each rule's handle (`# handle N`), as
    /// `nft -a` does: what deleting a single rule needs.
    public func listWithHandles(_ command: String) async throws(NetfilterError) -> String {
        try await worker.performAsync { ctx in Self.execute(ctx, command, flags: Self.handleFlags) }
    }

    // MARK: - The C calls

    /// libnftables keeps some state in globals shared by all contexts (the interface cache that every
    /// `nft_run_cmd_from_buffer` rebuilds and releases, a non-atomic init-once flag in `nft_ctx_new`),
    /// so calls are serialized across all contexts of the process, not just per context.
    private static let library = Mutex(())

    private static let jsonFlags = UInt32(NFT_CTX_OUTPUT_JSON)
    private static let handleFlags = UInt32(NFT_CTX_OUTPUT_HANDLE)
    private static let terseJSONFlags = UInt32(NFT_CTX_OUTPUT_JSON) | UInt32(NFT_CTX_OUTPUT_TERSE)

    /// Above this size the output buffer is given back after a call: libnftables only ever grows it,
    /// and an agent should not keep a listing's worth of memory for its lifetime.
    private static let bufferReleaseThreshold = 16 << 20

    private static func execute(
        _ ctx: OpaquePointer, _ script: String, flags: UInt32
    ) -> Result<String, NetfilterError> {
        guard !script.utf8.contains(0) else {
            return .failure(NetfilterError(kind: .invalidRequest, code: EINVAL, message: "script contains a NUL byte"))
        }
        return library.withLock { _ -> Result<String, NetfilterError> in
            // Flags are per call: with JSON output set, libnftables also tries to parse the *input* as
            // JSON before falling back to nft syntax, which only listings should pay for.
            nft_ctx_output_set_flags(ctx, flags)
            let rc = nft_run_cmd_from_buffer(ctx, script)
            let savedErrno = errno
            let output = String(cString: nft_ctx_get_output_buffer(ctx))
            let errors = String(cString: nft_ctx_get_error_buffer(ctx))
            if output.utf8.count > bufferReleaseThreshold {
                nft_ctx_unbuffer_output(ctx)
                nft_ctx_buffer_output(ctx)
            }
            if errors.utf8.count > bufferReleaseThreshold {
                nft_ctx_unbuffer_error(ctx)
                nft_ctx_buffer_error(ctx)
            }
            guard rc == 0 else {
                if errors.isEmpty {
                    // Some paths print to the process's stderr instead of the buffer (e.g. "you must be root").
                    var error = NetfilterError.system(
                        .commandFailed, code: savedErrno, "nft_run_cmd_from_buffer returned \(rc)")
                    error.script = NetfilterError.excerpt(of: script, lines: [])
                    return .failure(error)
                }
                return .failure(.commandFailed(message: errors, script: script, lines: failingLines(ctx, script)))
            }
            return .success(output)
        }
    }

    /// The lines of a rejected script that nft's errors point at.
    ///
    /// For buffer input, libnftables 1.0.6 prints the buffer's *first* line under every error, whatever
    /// line failed, and no line number; for file input it prints `file:line:columns:`. So when a script of
    /// several lines failed, it is checked again from an unlinked temporary file in dry-run mode (the
    /// kernel validates the batch and, without the batch-end message, aborts it: nothing changes) and the
    /// line numbers are read from those messages. Only on the error path; `message` stays the original.
    private static func failingLines(_ ctx: OpaquePointer, _ script: String) -> [Int] {
        let trimmed = script.trimmingTrailingNewlines()
        guard trimmed.contains("\n") else { return trimmed.isEmpty ? [] : [1] }
        guard let file = tmpfile() else { return [] }
        defer { fclose(file) }
        guard fputs(script, file) >= 0, fflush(file) == 0 else { return [] }
        let path = "/proc/self/fd/\(fileno(file))"
        nft_ctx_set_dry_run(ctx, true)
        defer { nft_ctx_set_dry_run(ctx, false) }
        nft_ctx_output_set_flags(ctx, 0)
        _ = nft_run_cmd_from_filename(ctx, path)
        _ = nft_ctx_get_output_buffer(ctx)
        let errors = String(cString: nft_ctx_get_error_buffer(ctx))
        var lines: [Int] = []
        for line in errors.split(separator: "\n") where line.hasPrefix(path + ":") {
            let number = line.dropFirst(path.count + 1).prefix { $0.isNumber }
            if let n = Int(number), !lines.contains(n) { lines.append(n) }
        }
        return lines
    }

    /// Enters the namespace (on the calling thread only) and creates a buffered context.
    private static func makeContext(networkNamespace: String?) -> Result<OpaquePointer, NetfilterError> {
        if let name = networkNamespace, case .failure(let error) = NetworkNamespace.enter(name) { return .failure(error) }
        // libnftables 1.0.6 calls exit() when it cannot open its netlink socket; find that out first.
        let probe = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkNetfilter)
        guard probe >= 0 else {
            return .failure(.system(.contextUnavailable, code: errno, "netlink socket (NETLINK_NETFILTER)"))
        }
        close(probe)
        return library.withLock { _ -> Result<OpaquePointer, NetfilterError> in
            guard let ctx = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
                return .failure(NetfilterError(kind: .contextUnavailable, code: ENOMEM, message: "nft_ctx_new failed"))
            }
            guard nft_ctx_buffer_output(ctx) == 0, nft_ctx_buffer_error(ctx) == 0 else {
                nft_ctx_free(ctx)
                return .failure(
                    NetfilterError(kind: .contextUnavailable, code: ENOMEM, message: "cannot buffer nft output"))
            }
            return .success(ctx)
        }
    }

    private static func freeContext(_ ctx: OpaquePointer) {
        library.withLock { _ in nft_ctx_free(ctx) }
    }

    /// `NETLINK_NETFILTER` from <linux/netlink.h>.
    private static let netlinkNetfilter: Int32 = 12

}
