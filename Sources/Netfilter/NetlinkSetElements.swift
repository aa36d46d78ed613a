import CNFTNL
import Foundation
import NFTModel

#if canImport(Glibc)
import Glibc
#endif

/// Adds set and map elements through nf_tables netlink batches (libnftnl and libmnl), one level below
/// libnftables: for the bulk of a cold start, millions of Maglev slots, where libnftables' text parser costs
/// ~13 µs of user time per element and the kernel ~3 µs. Tables, chains, rules and set declarations stay with
/// `LibNFTables`; this type only adds elements to sets that exist (see `canWrite`).
///
/// The only type that touches libnftnl and libmnl: one `NETLINK_NETFILTER` socket, owned by one
/// `ContextThread` that opens it (inside `networkNamespace` when given, so the socket and every batch live
/// there, as with `LibNFTables`), uses it and closes it. Encoding and the blocking netlink I/O run on that
/// thread, never on Swift's cooperative pool.
public final class NetlinkSetElements: Sendable {
    /// One set's elements: the declaration says how its element text is encoded.
    public typealias Group = (table: TableID, set: NFTSet, elements: [Command.Element])

    /// The namespace the socket lives in; nil for the process's own.
    public let networkNamespace: String?
    private let worker: ContextThread<NetlinkConnection>

    /// Starts the worker thread, enters the namespace and opens the socket; throws if any step fails
    /// (`.namespaceUnavailable` with `isNotFound` for a namespace that does not exist).
    public init(networkNamespace: String? = nil) throws(NetfilterError) {
        if let name = networkNamespace { try NetworkNamespace.validate(name) }
        self.networkNamespace = networkNamespace
        self.worker = try ContextThread.start(
            name: "nl-" + (networkNamespace ?? "host"), stackSize: 1 << 20, stoppedMessage: "netlink socket is closed",
            make: { NetlinkConnection.open(networkNamespace: networkNamespace) }, free: { $0.close() })
    }

    deinit {
        worker.stop()
    }

    /// Whether `add` can encode elements of this declaration: no `interval` or `timeout` flag, not a verdict
    /// map, and key and data types among `ipv4_addr`, `ipv6_addr`, `inet_proto`, `inet_service`, `mark` and
    /// `integer` (the Maglev slot, `.types([..., "integer"])` or `.hashSlot`).
    public static func canWrite(_ set: NFTSet) -> Bool {
        SetElementLayout(set) != nil
    }

    /// Adds every element of every group in ONE nfnetlink batch: the kernel commits all of them or none.
    ///
    /// Elements are the canonical text nft lists (`Command.Element(key: "10.96.0.10 . tcp . 80 . 17",
    /// data: "10.244.1.5 . 8080")`, data `""` for a set; a key may end in `comment "..."`), encoded per the
    /// group's declaration (`set.elements` is ignored). As `add element` does, an element that exists with the
    /// same data is not an error; one with other data is (`EEXIST`, "File exists", as `nft add element` says).
    ///
    /// Throws `NetfilterError`: `.invalidRequest` (nothing sent) for a declaration `canWrite` refuses or an
    /// element whose text does not fit its types; `.commandFailed` with the kernel's errno for a rejected batch
    /// (the kernel then holds exactly what it held before), naming the set and, when the kernel points at
    /// it, the element. Groups without elements send nothing.
    public func add(_ groups: [Group]) async throws {
        try await worker.performAsync { connection in connection.add(groups) }
    }

    /// The sets of `table` as the kernel declares them, without a single element: one GETSET dump. nil when
    /// the table does not exist. (libnftables 1.0.6 fetches every element of every set for any listing that
    /// shows a set or a rule, `-t` or not: 3 s and 250 MB for 150k elements.)
    public func sets(of table: TableID) async throws -> [(name: String, isMap: Bool)]? {
        try await worker.performAsync { connection in connection.listSets(table) }
    }
}

// MARK: - The C calls

/// The socket and the buffers of one `NetlinkSetElements`, used only on its thread. Internal, not private, only
/// so that its acknowledgement code can live in NetlinkConnection+Acknowledgements.swift; nothing else uses it.
final class NetlinkConnection {
    /// `struct nfgenmsg` (family, version, resource id: 4 bytes, kernel ABI), from <linux/netfilter/nfnetlink.h>,
    /// which the shim cannot include (see CNFTNL/shim.h).
    static let nfgenmsgSize = 4
    /// Elements per NEWSETELEM message, as nft sends them; also bounded by `messageElementBytes`.
    static let messageElementLimit = 1000
    /// The elements' bytes per message: the list is one nested attribute, whose length is 16 bits.
    static let messageElementBytes = 65_000
    /// Room for one message: headers, table and set names (at most 256 bytes each), the element list.
    static let messageCapacity = 16 + 4 + 2 * (4 + 256) + 4 + messageElementBytes + 512
    /// Above this the batch buffer is given back after a call, as `LibNFTables` does with its output buffer.
    static let bufferReleaseThreshold = 16 << 20
    static let receiveBufferSize = 64 << 10
    /// Upper bound of a socket buffer's requested size (the kernel doubles it and keeps it in an `int`).
    static let socketBufferLimit = Int(Int32.max / 2)

    let socket: OpaquePointer
    let descriptor: Int32
    /// One libnftnl element, refilled for every element and serialised into the current message.
    let element: OpaquePointer
    /// Key (64 bytes), data (64) and comment (up to 129 with its NUL) of the element being encoded.
    let scratch: UnsafeMutableRawPointer
    let receiveBuffer: UnsafeMutableRawPointer
    var batch = ByteBuffer()
    var sequence: UInt32
    var sendBufferSize = 0
    var receiveBufferSizeSet = 0

    private init(socket: OpaquePointer, element: OpaquePointer) {
        self.socket = socket
        self.descriptor = mnl_socket_get_fd(socket)
        self.element = element
        self.scratch = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
        self.receiveBuffer = UnsafeMutableRawPointer.allocate(byteCount: Self.receiveBufferSize, alignment: 16)
        self.sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    /// Enters the namespace (on the calling thread only) and opens and binds the socket, with extended ACKs
    /// (the kernel points at the element it refused) capped to their headers (an error does not echo the
    /// whole message back).
    ///
    /// A netlink socket belongs to the namespace it was opened in for good, and this one is the only thing
    /// opened here, so the thread goes back to its own namespace right after. A thread that another thread
    /// starts is in that thread's namespace, and resuming a task's continuation from this thread can make
    /// libdispatch start a new thread of Swift's cooperative pool from it: a pool thread left in a scratch
    /// namespace would run later tasks there (seen in `namespacesStayIsolated` as threads named
    /// `oot.default-qos` in the test's namespaces).
    static func open(networkNamespace: String?) -> Result<NetlinkConnection, NetfilterError> {
        var home: Int32 = -1
        if let name = networkNamespace {
            switch NetworkNamespace.current() {
            case .success(let fd): home = fd
            case .failure(let error): return .failure(error)
            }
            if case .failure(let error) = NetworkNamespace.enter(name) {
                Glibc.close(home)
                return .failure(error)
            }
        }
        defer {
            if home >= 0 {
                _ = NetworkNamespace.enter(descriptor: home, "back to the worker's own namespace")
                Glibc.close(home)
            }
        }
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else {
            return .failure(.system(.contextUnavailable, code: errno, "netlink socket (NETLINK_NETFILTER)"))
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(socket)
            return .failure(.system(.contextUnavailable, code: code, "bind netlink socket"))
        }
        let fd = mnl_socket_get_fd(socket)
        for option in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            var on: Int32 = 1
            _ = setsockopt(fd, solNetlink, option, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        guard let element = nftnl_set_elem_alloc() else {
            mnl_socket_close(socket)
            return .failure(
                NetfilterError(kind: .contextUnavailable, code: ENOMEM, message: "nftnl_set_elem_alloc failed"))
        }
        return .success(NetlinkConnection(socket: socket, element: element))
    }

    func close() {
        nftnl_set_elem_free(element)
        mnl_socket_close(socket)
        scratch.deallocate()
        receiveBuffer.deallocate()
        batch.release()
    }

    /// `SOL_NETLINK` from <linux/socket.h>.
    private static let solNetlink: Int32 = 270

    // MARK: Building the batch

    /// One NEWSETELEM message of the batch: which elements it carries and where it starts in `batch`.
    struct Message {
        var group: Int
        var firstElement: Int
        var count: Int
        var offset: Int
    }

    func add(_ groups: [NetlinkSetElements.Group]) -> Result<Void, NetfilterError> {
        defer {
            if batch.capacity > Self.bufferReleaseThreshold { batch.release() }
        }
        var layouts: [SetElementLayout] = []
        for group in groups {
            guard let layout = SetElementLayout(group.set) else {
                return .failure(
                    NetfilterError(
                        kind: .invalidRequest, code: EINVAL,
                        message:
                            "\(group.set.keyword) \(group.table) \(group.set.name) cannot be written through netlink "
                            + "(interval or timeout flags, verdict data, or a type other than ipv4_addr, ipv6_addr, "
                            + "inet_proto, inet_service, mark, integer)"))
            }
            for name in [group.table.name, group.set.name]
            where name.isEmpty || name.utf8.count > 255 || name.utf8.contains(0) {
                return .failure(
                    NetfilterError(kind: .invalidRequest, code: EINVAL, message: "invalid name \"\(name)\""))
            }
            layouts.append(layout)
        }
        guard groups.contains(where: { !$0.elements.isEmpty }) else { return .success(()) }

        let first = sequence
        var messages: [Message] = []
        batch.count = 0
        batch.reserve(64)
        _ = nftnl_batch_begin(batch.tail, first)
        batch.count += Self.batchControlLength
        for (index, group) in groups.enumerated() where !group.elements.isEmpty {
            if case .failure(let error) = appendMessages(
                group, index: index, layout: layouts[index], firstSequence: first, messages: &messages)
            {
                return .failure(error)
            }
        }
        let last = first &+ UInt32(messages.count) &+ 1
        batch.reserve(64)
        _ = nftnl_batch_end(batch.tail, last)
        batch.count += Self.batchControlLength
        sequence = last &+ 1

        if case .failure(let error) = send(messages: messages.count) { return .failure(error) }
        let replies: Replies
        switch receive(first: first, last: last, expected: messages.count) {
        case .success(let r): replies = r
        case .failure(let error): return .failure(error)
        }
        if let failure = replies.errors.min(by: { $0.sequence &- first < $1.sequence &- first }) {
            return .failure(error(for: failure, first: first, messages: messages, groups: groups))
        }
        guard replies.acknowledged == messages.count else {
            return .failure(
                NetfilterError(
                    kind: .commandFailed, code: EIO,
                    message: "the kernel acknowledged \(replies.acknowledged) of \(messages.count) netlink messages"))
        }
        return .success(())
    }

    /// `nftnl_batch_begin` / `nftnl_batch_end`: a header and an nfgenmsg.
    static let batchControlLength = 20

    // MARK: Listing set declarations

    /// A GETSET dump of one table: names and whether each is a map (`NFT_SET_MAP`). nil for no such table.
    func listSets(_ table: TableID) -> Result<[(name: String, isMap: Bool)]?, NetfilterError> {
        guard !table.name.isEmpty, table.name.utf8.count <= 255, !table.name.utf8.contains(0) else {
            return .failure(NetfilterError(kind: .invalidRequest, code: EINVAL, message: "invalid name \"\(table.name)\""))
        }
        sequence &+= 1
        let request = sequence
        batch.count = 0
        batch.reserve(512)
        let header = nftnl_nlmsg_build_hdr(
            batch.tail, UInt16(NFT_MSG_GETSET.rawValue), Self.familyNumber(table.family),
            UInt16(NLM_F_DUMP | NLM_F_ACK), request)!
        mnl_attr_put_strz(header, UInt16(NFTA_SET_TABLE.rawValue), table.name)
        let length = Int(header.pointee.nlmsg_len)
        guard mnl_socket_sendto(socket, header, length) == length else {
            return .failure(.system(.commandFailed, code: errno, "send GETSET dump request"))
        }
        var sets: [(name: String, isMap: Bool)] = []
        let headerLength = MemoryLayout<nlmsghdr>.size
        while true {
            var descriptorPoll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptorPoll, 1, 30_000) > 0 else {
                return .failure(NetfilterError(kind: .commandFailed, code: ETIMEDOUT, message: "no GETSET dump reply after 30 s"))
            }
            let n = recv(descriptor, receiveBuffer, Self.receiveBufferSize, 0)
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.system(.commandFailed, code: errno, "read GETSET dump"))
            }
            var offset = 0
            while offset + headerLength <= n {
                let message = (receiveBuffer + offset).assumingMemoryBound(to: nlmsghdr.self)
                let size = Int(message.pointee.nlmsg_len)
                guard size >= headerLength, offset + size <= n else { break }
                defer { offset += (size + 3) & ~3 }
                guard message.pointee.nlmsg_seq == request else { continue }
                switch Int32(message.pointee.nlmsg_type) {
                case NLMSG_DONE:
                    return .success(sets)
                case NLMSG_ERROR:
                    let code = -(receiveBuffer + offset + headerLength).load(as: Int32.self)
                    if code == 0 { continue }
                    if code == ENOENT { return .success(nil) }
                    return .failure(.system(.commandFailed, code: code, "GETSET dump of \(table)"))
                default:
                    // A fresh object per message: parsing into a used one keeps attributes the message lacks
                    // (a set without flags would inherit the previous map's).
                    guard let parsed = nftnl_set_alloc() else {
                        return .failure(
                            NetfilterError(kind: .contextUnavailable, code: ENOMEM, message: "nftnl_set_alloc failed"))
                    }
                    defer { nftnl_set_free(parsed) }
                    guard nftnl_set_nlmsg_parse(message, parsed) >= 0,
                        let name = nftnl_set_get_str(parsed, UInt16(NFTNL_SET_NAME.rawValue))
                    else { continue }
                    let flags = nftnl_set_get_u32(parsed, UInt16(NFTNL_SET_FLAGS.rawValue))
                    sets.append((String(cString: name), flags & UInt32(NFT_SET_MAP.rawValue) != 0))
                }
            }
        }
    }

    private func appendMessages(
        _ group: NetlinkSetElements.Group, index: Int, layout: SetElementLayout, firstSequence: UInt32,
        messages: inout [Message]
    ) -> Result<Void, NetfilterError> {
        let family = Self.familyNumber(group.table.family)
        let keyBytes = scratch
        let dataBytes = scratch + 64
        let commentBytes = scratch + 128
        let keyLength = layout.key.length
        let dataLength = layout.data?.length ?? 0
        let fixedSize =
            Self.attributeSize(Self.attributeSize(Self.attributeSize(keyLength)))
            + (layout.data == nil ? 0 : Self.attributeSize(Self.attributeSize(dataLength)))
        var hasComment = false
        nftnl_set_elem_unset(element, UInt16(NFTNL_SET_ELEM_USERDATA))
        nftnl_set_elem_unset(element, UInt16(NFTNL_SET_ELEM_DATA))

        var nlh: UnsafeMutablePointer<nlmsghdr>?
        var nest: UnsafeMutablePointer<nlattr>?
        var inMessage = 0
        var bytesInMessage = 0

        func finishMessage() {
            guard let header = nlh else { return }
            mnl_attr_nest_end(header, nest)
            batch.count += Int(header.pointee.nlmsg_len)
            messages[messages.count - 1].count = inMessage
            nlh = nil
        }

        let keyLayout = layout.key
        let dataLayout = layout.data
        let elements = group.elements
        for position in elements.indices {
            // Encode first: a text error sends nothing.
            let commentLength = Self.encode(elements[position], keyLayout, dataLayout, into: scratch)
            if commentLength == Self.notEncoded {
                return .failure(Self.textError(elements[position], group, layout))
            }

            // A comment is nft's element user data: one TLV, type NFTNL_UDATA_SET_ELEM_COMMENT, NUL-terminated.
            let userDataLength = commentLength < 0 ? 0 : 2 + commentLength + 1
            let size = Self.attributeSize(fixedSize + (userDataLength == 0 ? 0 : Self.attributeSize(userDataLength)))
            if nlh != nil && (inMessage == Self.messageElementLimit || bytesInMessage + size > Self.messageElementBytes)
            {
                finishMessage()
            }
            if nlh == nil {
                batch.reserve(Self.messageCapacity)
                let sequence = firstSequence &+ UInt32(messages.count) &+ 1
                messages.append(Message(group: index, firstElement: position, count: 0, offset: batch.count))
                // NLM_F_CREATE without NLM_F_EXCL, as `add element`: an element that exists with the same data is
                // no error.
                let (type, flags) = (UInt16(NFT_MSG_NEWSETELEM.rawValue), UInt16(NLM_F_CREATE | NLM_F_ACK))
                let header = nftnl_nlmsg_build_hdr(batch.tail, type, family, flags, sequence)!
                mnl_attr_put_strz(header, UInt16(NFTA_SET_ELEM_LIST_TABLE.rawValue), group.table.name)
                mnl_attr_put_strz(header, UInt16(NFTA_SET_ELEM_LIST_SET.rawValue), group.set.name)
                nest = mnl_attr_nest_start(header, UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue))
                nlh = header
                inMessage = 0
                bytesInMessage = 0
            }

            nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), keyBytes, UInt32(keyLength))
            if dataLayout != nil {
                nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_DATA), dataBytes, UInt32(dataLength))
            }
            if commentLength >= 0 {
                guard let userData = nftnl_udata_buf_alloc(UInt32(NFT_USERDATA_MAXLEN)) else {
                    return .failure(
                        NetfilterError(kind: .commandFailed, code: ENOMEM, message: "nftnl_udata_buf_alloc failed"))
                }
                nftnl_udata_put(
                    userData, UInt8(NFTNL_UDATA_SET_ELEM_COMMENT.rawValue), UInt32(commentLength + 1), commentBytes)
                nftnl_set_elem_set(
                    element, UInt16(NFTNL_SET_ELEM_USERDATA), nftnl_udata_buf_data(userData),
                    nftnl_udata_buf_len(userData))
                nftnl_udata_buf_free(userData)
                hasComment = true
            } else if hasComment {
                nftnl_set_elem_unset(element, UInt16(NFTNL_SET_ELEM_USERDATA))
                hasComment = false
            }
            // The kernel does not look at the attribute type of a list entry; nft numbers them, any will do.
            _ = nftnl_set_elem_nlmsg_build(nlh, element, Int32(NFTA_LIST_ELEM.rawValue))
            inMessage += 1
            bytesInMessage += size
        }
        finishMessage()
        return .success(())
    }

    /// `encode`'s result for an element whose text does not fit its set's types.
    static let notEncoded = -2

    /// Writes one element's key (at `scratch`), data (at `scratch + 64`) and comment (at `scratch + 128`, with a
    /// NUL) and returns the comment's length: -1 for none, `notEncoded` for text that does not fit. The comment is
    /// `element.comment`, or else one at the end of the key's text.
    static func encode(
        _ element: Command.Element, _ key: ValueLayout, _ data: ValueLayout?, into scratch: UnsafeMutableRawPointer
    ) -> Int {
        var keyText = element.key
        var givenComment = -1
        if var comment = element.comment {
            givenComment = comment.withUTF8 { text -> Int in
                guard text.count <= elementCommentLimit, !text.contains(0x22), !text.contains(0) else {
                    return notEncoded
                }
                if let base = text.baseAddress { (scratch + 128).copyMemory(from: base, byteCount: text.count) }
                (scratch + 128).storeBytes(of: 0, toByteOffset: text.count, as: UInt8.self)
                return text.count
            }
            guard givenComment != notEncoded else { return notEncoded }
        }
        let commentLength = keyText.withUTF8 { text -> Int in
            guard let base = text.baseAddress else { return notEncoded }
            var valueLength = text.count
            var commentLength = givenComment
            // A comment in the key's text (`... comment "x"`, as nft takes it) when the element has none beside.
            let start = givenComment >= 0 ? -1 : commentStart(base, count: text.count)
            if start >= 0 {
                guard let range = checkComment(base, count: text.count, start: start) else { return notEncoded }
                (scratch + 128).copyMemory(from: base + range.lowerBound, byteCount: range.count)
                (scratch + 128).storeBytes(of: 0, toByteOffset: range.count, as: UInt8.self)
                valueLength = start
                commentLength = range.count
            }
            return key.encode(base, count: valueLength, into: scratch) == ValueLayout.encoded
                ? commentLength : notEncoded
        }
        guard commentLength != notEncoded else { return notEncoded }
        var dataText = element.data
        if let data {
            let encoded = dataText.withUTF8 { text -> Bool in
                guard let base = text.baseAddress else { return false }
                return data.encode(base, count: text.count, into: scratch + 64) == ValueLayout.encoded
            }
            guard encoded else { return notEncoded }
        } else if !dataText.isEmpty {
            return notEncoded
        }
        return commentLength
    }

    /// The error for an element `encode` refused.
    static func textError(
        _ element: Command.Element, _ group: NetlinkSetElements.Group, _ layout: SetElementLayout
    ) -> NetfilterError {
        NetfilterError(
            kind: .invalidRequest, code: EINVAL,
            message:
                "cannot encode element \"\(element.text)\" of \(group.set.keyword) \(group.table) \(group.set.name) "
                + "(\(layout.typeDescription)): \(explain(element, layout))",
            script: "add element \(group.table) \(group.set.name) { \(element.text) }")
    }

    /// What is wrong with an element `encode` refused: its text is parsed again, saying where it fails.
    static func explain(_ element: Command.Element, _ layout: SetElementLayout) -> String {
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        defer { scratch.deallocate() }
        if let comment = element.comment,
            comment.utf8.count > elementCommentLimit || comment.utf8.contains(0x22) || comment.utf8.contains(0)
        {
            return ElementTextError.comment.describe(types: [])
        }
        var key = element.key
        let keyResult = key.withUTF8 { text in
            Result { () throws(ElementTextError) in
                let valueLength = try splitComment(text).valueLength
                try layout.key.encode(UnsafeBufferPointer(rebasing: text[..<valueLength]), into: scratch)
            }
        }
        if case .failure(let error) = keyResult { return error.describe(types: layout.key.typeNames) }
        guard let dataLayout = layout.data else {
            return element.data.isEmpty
                ? "does not fit the set's types" : ElementTextError.data(expected: false).describe(types: [])
        }
        if element.data.isEmpty { return ElementTextError.data(expected: true).describe(types: []) }
        var data = element.data
        let dataResult = data.withUTF8 { text in
            Result { () throws(ElementTextError) in try dataLayout.encode(text, into: scratch) }
        }
        if case .failure(let error) = dataResult { return "data " + error.describe(types: dataLayout.typeNames) }
        return "does not fit the set's types"
    }

    /// An attribute's header and its payload, padded to 4 bytes (`NLA_ALIGN`).
    static func attributeSize(_ payload: Int) -> Int { 4 + (payload + 3) & ~3 }

    static func familyNumber(_ family: Family) -> UInt16 {
        switch family {
        case .ip: UInt16(SWITCHBOARD_NFPROTO_IPV4)
        case .ip6: UInt16(SWITCHBOARD_NFPROTO_IPV6)
        case .inet: UInt16(SWITCHBOARD_NFPROTO_INET)
        }
    }
}

/// A growable byte buffer that a batch is built in. It may move only between messages: libmnl writes
/// through the pointer to the message being built.
struct ByteBuffer {
    private(set) var base: UnsafeMutableRawPointer? = nil
    private(set) var capacity = 0
    var count = 0

    var tail: UnsafeMutablePointer<CChar> { (base! + count).assumingMemoryBound(to: CChar.self) }

    mutating func reserve(_ additional: Int) {
        guard count + additional > capacity else { return }
        let newCapacity = max(capacity * 2, count + additional, 1 << 16)
        guard let grown = realloc(base, newCapacity) else { fatalError("out of memory for a netlink batch") }
        base = grown
        capacity = newCapacity
    }

    mutating func release() {
        free(base)
        base = nil
        capacity = 0
        count = 0
    }
}
