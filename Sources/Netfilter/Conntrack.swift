import CNetfilterConntrack
import Foundation
import NetworkTypes

#if canImport(Glibc)
import Glibc
#endif

/// The only type that touches libnetfilter_conntrack: one ctnetlink handle, owned by one `ContextThread`
/// (opened on it, inside `networkNamespace` when given, and closed on it).
///
/// `delete` dumps the conntrack table of one family (the kernel filters the dump by family) and deletes
/// the entries that match, in process: no `conntrack` exec. The netlink I/O blocks, so it runs on that
/// thread, never on Swift's cooperative pool; the socket belongs to the namespace it was opened in.
public final class Conntrack: ConntrackBackend, Sendable {
    private let worker: ContextThread<OpaquePointer>

    /// Opens a ctnetlink socket in `networkNamespace` or, when nil, in the process's own namespace.
    public init(networkNamespace: String? = nil) throws(NetfilterError) {
        if let name = networkNamespace { try NetworkNamespace.validate(name) }
        worker = try ContextThread.start(
            name: "ct-" + (networkNamespace ?? "host"), stackSize: 4 << 20, stoppedMessage: "conntrack handle is closed",
            make: {
                do throws(NetfilterError) {
                    if let name = networkNamespace { try NetworkNamespace.enter(name).get() }
                    return .success(try Self.open())
                } catch {
                    return .failure(error)
                }
            },
            free: { nfct_close($0) })
    }

    deinit {
        worker.stop()
    }

    /// Deletes every entry that matches `filter`; returns how many were deleted. Blocks.
    public func delete(_ filter: ConntrackFilter) throws(NetfilterError) -> Int {
        try delete([filter])
    }

    /// Deletes every entry that matches any of `filters` (one dump per family); returns how many were
    /// deleted. An entry that expired between the dump and its deletion is not counted and not an error.
    /// Blocks the calling thread.
    public func delete(_ filters: [ConntrackFilter]) throws(NetfilterError) -> Int {
        try worker.perform { handle in Self.delete(filters, handle) }
    }

    /// `delete(_:)` on the handle's thread; the calling task suspends.
    public func delete(_ filters: [ConntrackFilter]) async throws -> Int {
        try await worker.performAsync { handle in Self.delete(filters, handle) }
    }

    // MARK: - The C calls

    private static func delete(_ filters: [ConntrackFilter], _ handle: OpaquePointer) -> Result<Int, NetfilterError> {
        var deleted = 0
        for family in IPFamily.allCases {
            let mine = filters.filter { $0.family == family }
            if mine.isEmpty { continue }
            let matches: [OpaquePointer]
            switch dump(handle, family, { entry in
                mine.contains {
                    $0.matches(
                        family: family, protocol: entry.protocol, originalDestination: entry.originalDestination,
                        originalDestinationPort: entry.originalDestinationPort, replySource: entry.replySource)
                }
            }) {
            case .success(let found): matches = found
            case .failure(let error): return .failure(error)
            }
            defer { for ct in matches { nfct_destroy(ct) } }
            for ct in matches {
                if nfct_query(handle, NFCT_Q_DESTROY, UnsafeRawPointer(ct)) == 0 {
                    deleted += 1
                } else if errno != ENOENT {
                    return .failure(.system(.commandFailed, code: errno, "conntrack delete"))
                }
            }
        }
        return .success(deleted)
    }

    /// What a filter looks at in one entry.
    struct Entry {
        var `protocol`: L4Protocol
        var originalDestination: IPAddress
        var originalDestinationPort: Int
        var replySource: IPAddress
    }

    /// The state of one dump, reached from the C callback through its `data` pointer.
    private final class DumpState {
        let family: IPFamily
        let wanted: (Entry) -> Bool
        var matches: [OpaquePointer] = []

        init(family: IPFamily, wanted: @escaping (Entry) -> Bool) {
            self.family = family
            self.wanted = wanted
        }
    }

    /// Dumps one family's table; returns clones of the entries `wanted` accepts (the caller destroys
    /// them). Deleting inside the callback is not possible: the socket is busy with the dump.
    private static func dump(
        _ handle: OpaquePointer, _ family: IPFamily, _ wanted: @escaping (Entry) -> Bool
    ) -> Result<[OpaquePointer], NetfilterError> {
        let state = DumpState(family: family, wanted: wanted)
        let unmanaged = Unmanaged.passRetained(state)
        defer { unmanaged.release() }
        let callback: @convention(c) (nf_conntrack_msg_type, OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = {
            _, ct, data in
            guard let ct, let data else { return Int32(NFCT_CB_CONTINUE) }
            let state = Unmanaged<DumpState>.fromOpaque(data).takeUnretainedValue()
            if let entry = Conntrack.entry(ct, family: state.family), state.wanted(entry), let clone = nfct_clone(ct) {
                state.matches.append(clone)
            }
            return Int32(NFCT_CB_CONTINUE)
        }
        nfct_callback_register(handle, NFCT_T_ALL, callback, unmanaged.toOpaque())
        defer { nfct_callback_unregister(handle) }
        var l3: UInt32 = family == .v4 ? UInt32(AF_INET) : UInt32(AF_INET6)
        if nfct_query(handle, NFCT_Q_DUMP, &l3) != 0 {
            let code = errno
            for ct in state.matches { nfct_destroy(ct) }
            return .failure(.system(.commandFailed, code: code, "conntrack dump"))
        }
        return .success(state.matches)
    }

    /// The fields of a UDP, SCTP or TCP entry of the family; nil for anything else.
    private static func entry(_ ct: OpaquePointer, family: IPFamily) -> Entry? {
        let l3 = Int32(nfct_get_attr_u8(ct, ATTR_L3PROTO))
        guard l3 == (family == .v4 ? AF_INET : AF_INET6) else { return nil }
        let proto: L4Protocol
        switch Int32(nfct_get_attr_u8(ct, ATTR_L4PROTO)) {
        case Int32(IPPROTO_UDP): proto = .udp
        case Int32(IPPROTO_TCP): proto = .tcp
        case Int32(IPPROTO_SCTP): proto = .sctp
        default: return nil
        }
        func address(_ attribute: nf_conntrack_attr) -> IPAddress? {
            guard nfct_attr_is_set(ct, attribute) > 0, let raw = nfct_get_attr(ct, attribute) else { return nil }
            let count = family == .v4 ? 4 : 16
            return IPAddress(family: family, bytes: Array(UnsafeRawBufferPointer(start: raw, count: count)))
        }
        let v4 = family == .v4
        guard let destination = address(v4 ? ATTR_IPV4_DST : ATTR_IPV6_DST),
            let replySource = address(v4 ? ATTR_REPL_IPV4_SRC : ATTR_REPL_IPV6_SRC),
            nfct_attr_is_set(ct, ATTR_PORT_DST) > 0
        else { return nil }
        let port = Int(UInt16(bigEndian: nfct_get_attr_u16(ct, ATTR_PORT_DST)))
        return Entry(protocol: proto, originalDestination: destination, originalDestinationPort: port, replySource: replySource)
    }

    private static func open() throws(NetfilterError) -> OpaquePointer {
        guard let handle = switchboard_nfct_open() else {
            throw NetfilterError.system(.contextUnavailable, code: errno, "nfct_open (ctnetlink)")
        }
        return handle
    }
}
