import CIPSet
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The only type that touches libipset's C API: one `struct ipset` (which owns an `ipset_session` and its
/// netlink socket), owned by one dedicated thread, like `LibNFTables`.
///
/// Commands are lines in `ipset restore` syntax (`create ...`, `add ...`, `swap ...`, `destroy ...`,
/// `list -t`), parsed and executed by libipset's own parser (`ipset_parse_line`); each is committed on
/// its own. libipset's printf-style callbacks (which Swift cannot implement, and whose defaults call
/// `exit()`) are replaced by the collecting ones in `CIPSet/shim.h`: every error text reaches the caller
/// verbatim as a `NetfilterError` of kind `.ipsetCommandFailed`.
///
/// With `networkNamespace`, the worker thread enters `/var/run/netns/<name>` before the session opens its
/// netlink socket (on the first command), so every command acts in that namespace. Nothing is exec'd.
public final class LibIPSet: Sendable {
    /// The namespace the session works in; nil for the process's own.
    public let networkNamespace: String?
    private let worker: ContextThread<Context>

    /// Starts the worker thread, enters the namespace and creates the session; throws if any step fails.
    public init(networkNamespace: String? = nil) throws(NetfilterError) {
        if let name = networkNamespace { try NetworkNamespace.validate(name) }
        self.networkNamespace = networkNamespace
        self.worker = try ContextThread.start(
            name: "ipset-" + (networkNamespace ?? "host"), stackSize: 4 << 20, stoppedMessage: "ipset session is shut down",
            make: { Self.makeContext(networkNamespace: networkNamespace) }, free: { Self.freeContext($0) })
    }

    deinit {
        worker.stop()
    }

    /// Runs one command line and returns what it printed (listings; empty for other commands).
    public func run(_ line: String) async throws(NetfilterError) -> String {
        try await worker.performAsync { context in Self.execute(context, line) }
    }

    /// Runs the lines in order on the worker thread and stops at the first that fails: its error carries
    /// libipset's message and the line (`script`, and its 1-based number in `lines`). Earlier lines stay applied.
    public func run(lines: [String]) async throws(NetfilterError) {
        try await worker.performAsync { context -> Result<Void, NetfilterError> in
            for (index, line) in lines.enumerated() {
                if case .failure(var error) = Self.execute(context, line) {
                    error.lines = [index + 1]
                    return .failure(error)
                }
            }
            return .success(())
        }
    }

    // MARK: - The C calls

    /// libipset keeps its set types in a process-wide list (loaded once, revision-checked lazily against the
    /// kernel), so calls are serialized across all sessions of the process.
    private static let library = Mutex(())
    private static let typesLoaded: Void = { ipset_load_types() }()

    fileprivate struct Context: @unchecked Sendable {
        let ipset: OpaquePointer
        let buffers: UnsafeMutablePointer<sb_ipset_buffers>
    }

    private static func execute(_ context: Context, _ line: String) -> Result<String, NetfilterError> {
        guard !line.utf8.contains(0), !line.contains("\n") else {
            return .failure(
                NetfilterError(kind: .invalidRequest, code: EINVAL, message: "an ipset command is one line", script: line))
        }
        return library.withLock { _ -> Result<String, NetfilterError> in
            sb_ipset_reset(context.ipset, context.buffers)
            var text = Array(line.utf8CString)
            let rc = text.withUnsafeMutableBufferPointer { ipset_parse_line(context.ipset, $0.baseAddress) }
            let buffers = context.buffers.pointee
            let output = buffers.output.map { String(cString: $0) } ?? ""
            let message = withUnsafeBytes(of: buffers.error) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            let failed = rc < 0 || buffers.failed != 0
            sb_ipset_reset(context.ipset, context.buffers)
            guard failed else { return .success(output) }
            return .failure(.ipset(message: message.isEmpty ? "ipset_parse_line returned \(rc)" : message, line: line))
        }
    }

    /// Enters the namespace (on the calling thread only) and creates the `struct ipset` with our callbacks.
    fileprivate static func makeContext(networkNamespace: String?) -> Result<Context, NetfilterError> {
        if let name = networkNamespace, case .failure(let error) = NetworkNamespace.enter(name) { return .failure(error) }
        return library.withLock { _ -> Result<Context, NetfilterError> in
            _ = typesLoaded
            guard let ipset = ipset_init() else {
                return .failure(NetfilterError(kind: .contextUnavailable, code: ENOMEM, message: "ipset_init failed"))
            }
            let buffers = UnsafeMutablePointer<sb_ipset_buffers>.allocate(capacity: 1)
            buffers.initialize(to: sb_ipset_buffers())
            guard sb_ipset_install(ipset, buffers) == 0 else {
                ipset_fini(ipset)
                buffers.deallocate()
                return .failure(
                    NetfilterError(kind: .contextUnavailable, code: ENOMEM, message: "cannot install ipset callbacks"))
            }
            return .success(Context(ipset: ipset, buffers: buffers))
        }
    }

    fileprivate static func freeContext(_ context: Context) {
        library.withLock { _ in
            ipset_fini(context.ipset)
            free(context.buffers.pointee.output)
            context.buffers.deallocate()
        }
    }
}

extension NetfilterError {
    /// libipset's messages for the POSIX conditions callers test for (`isNotFound`, ...).
    static let ipsetErrors: [(text: String, code: Int32)] = [
        ("does not exist", ENOENT),
        ("already exists", EEXIST),
        ("already added", EEXIST),
        ("in use by a kernel component", EBUSY),
        ("Operation not permitted", EPERM),
        ("type does not match", EINVAL),
    ]

    /// An error for an ipset command line that libipset rejected with `message`.
    static func ipset(message: String, line: String) -> NetfilterError {
        let code = ipsetErrors.first { message.contains($0.text) }?.code ?? 0
        return NetfilterError(
            kind: .ipsetCommandFailed, code: code, message: message.trimmingTrailingNewlines(),
            script: NetfilterError.excerpt(of: line, lines: []))
    }
}
