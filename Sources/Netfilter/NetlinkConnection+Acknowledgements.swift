import CNFTNL
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// Sending a batch and reading the kernel's acknowledgements: which messages it applied, and which element it
// refused and why.
extension NetlinkConnection {
    /// Sends the whole batch in one `sendto`: nfnetlink applies a batch only if it arrives in one piece, so
    /// the socket's send buffer is grown to hold it (`SO_SNDBUFFORCE`, which needs CAP_NET_ADMIN, as any
    /// write does). The kernel processes the batch before `sendto` returns and queues one ACK per message,
    /// so the receive buffer is grown for all of them.
    func send(messages: Int) -> Result<Void, NetfilterError> {
        let length = batch.count
        if length + 4096 > sendBufferSize {
            let size = min(Self.socketBufferLimit, max(length + 4096, 1 << 20))
            if case .failure(let error) = setBuffer(SO_SNDBUFFORCE, SO_SNDBUF, size) { return .failure(error) }
            sendBufferSize = size
        }
        // An ACK is a small skb; its truesize, what the receive buffer counts, is about 1 KiB (the kernel doubles
        // the size asked for, too).
        let wanted = min(Self.socketBufferLimit, messages * 2048 + (256 << 10))
        if wanted > receiveBufferSizeSet {
            if case .failure(let error) = setBuffer(SO_RCVBUFFORCE, SO_RCVBUF, wanted) { return .failure(error) }
            receiveBufferSizeSet = wanted
        }
        let sent = mnl_socket_sendto(socket, batch.base, length)
        guard sent == length else {
            let code = sent < 0 ? errno : EMSGSIZE
            return .failure(.system(.commandFailed, code: code, "send netlink batch (\(length) bytes)"))
        }
        return .success(())
    }

    private func setBuffer(_ force: Int32, _ plain: Int32, _ size: Int) -> Result<Void, NetfilterError> {
        var value = Int32(size)
        let length = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(descriptor, SOL_SOCKET, force, &value, length) == 0 { return .success(()) }
        // Without CAP_NET_ADMIN the limit is net.core.[rw]mem_max; the write fails later with a clear errno.
        if setsockopt(descriptor, SOL_SOCKET, plain, &value, length) == 0 { return .success(()) }
        return .failure(.system(.commandFailed, code: errno, "set netlink socket buffer to \(size) bytes"))
    }

    struct Reply {
        var sequence: UInt32
        var code: Int32
        /// Where in the original message the kernel found the fault (`NLMSGERR_ATTR_OFFS`), when it said.
        var offset: Int?
    }

    struct Replies {
        var acknowledged = 0
        var errors: [Reply] = []
    }

    /// Reads replies to sequence numbers `first...last` until every message is acknowledged or an error
    /// came and nothing more is queued. Replies to older batches (none, unless one timed out) are skipped.
    func receive(first: UInt32, last: UInt32, expected: Int) -> Result<Replies, NetfilterError> {
        var replies = Replies()
        while true {
            let n = recv(descriptor, receiveBuffer, Self.receiveBufferSize, Int32(MSG_DONTWAIT))
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    if !replies.errors.isEmpty || replies.acknowledged >= expected { return .success(replies) }
                    // Not expected (the batch is handled inside `sendto`), but do not report an outcome early.
                    var descriptorPoll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                    if poll(&descriptorPoll, 1, 30_000) == 0 {
                        return .failure(
                            NetfilterError(
                                kind: .commandFailed, code: ETIMEDOUT,
                                message:
                                    "no netlink acknowledgement after 30 s (\(replies.acknowledged) of \(expected))"))
                    }
                    continue
                }
                // ENOBUFS: ACKs were dropped, so whether the batch was committed is unknown.
                return .failure(.system(.commandFailed, code: code, "read netlink acknowledgements"))
            }
            parse(count: n, first: first, last: last, into: &replies)
        }
    }

    private func parse(count: Int, first: UInt32, last: UInt32, into replies: inout Replies) {
        let headerLength = MemoryLayout<nlmsghdr>.size
        var offset = 0
        while offset + headerLength <= count {
            let header = receiveBuffer.load(fromByteOffset: offset, as: nlmsghdr.self)
            let length = Int(header.nlmsg_len)
            guard length >= headerLength, offset + length <= count else { return }
            defer { offset += (length + 3) & ~3 }
            guard header.nlmsg_type == UInt16(NLMSG_ERROR), length >= headerLength + 4 + headerLength else { continue }
            let code = -receiveBuffer.load(fromByteOffset: offset + headerLength, as: Int32.self)
            let original = receiveBuffer.load(fromByteOffset: offset + headerLength + 4, as: nlmsghdr.self)
            guard original.nlmsg_seq &- first <= last &- first else { continue }
            if code == 0 {
                replies.acknowledged += 1
                continue
            }
            var reply = Reply(sequence: original.nlmsg_seq, code: code, offset: nil)
            if Int32(header.nlmsg_flags) & NLM_F_ACK_TLVS != 0 {
                // The TLVs follow the echoed request: only its header when the ACK is capped.
                let echoed = Int32(header.nlmsg_flags) & NLM_F_CAPPED != 0 ? headerLength : Int(original.nlmsg_len)
                var tlv = offset + headerLength + 4 + ((echoed + 3) & ~3)
                while tlv + 4 <= offset + length {
                    let tlvLength = Int(receiveBuffer.load(fromByteOffset: tlv, as: UInt16.self))
                    let type = receiveBuffer.load(fromByteOffset: tlv + 2, as: UInt16.self)
                    guard tlvLength >= 4 else { break }
                    if type == UInt16(NLMSGERR_ATTR_OFFS.rawValue), tlvLength >= 8 {
                        reply.offset = Int(receiveBuffer.load(fromByteOffset: tlv + 4, as: UInt32.self))
                    }
                    tlv += (tlvLength + 3) & ~3
                }
            }
            replies.errors.append(reply)
        }
    }

    /// The error for the first refused message: the set, and the element the kernel points at.
    func error(
        for reply: Reply, first: UInt32, messages: [Message], groups: [NetlinkSetElements.Group]
    ) -> NetfilterError {
        let reason = String(cString: strerror(reply.code))
        let index = Int(reply.sequence &- first) - 1
        guard index >= 0, index < messages.count else {
            let sets = groups.filter { !$0.elements.isEmpty }.map { "\($0.set.keyword) \($0.table) \($0.set.name)" }
            return NetfilterError(
                kind: .commandFailed, code: reply.code,
                message: "netlink batch adding elements to \(sets.joined(separator: ", ")) rejected: \(reason)")
        }
        let message = messages[index]
        let group = groups[message.group]
        let target = "\(group.set.keyword) \(group.table) \(group.set.name)"
        let command: String
        if let offset = reply.offset, let position = elementPosition(in: message, at: offset) {
            let refused = group.elements[message.firstElement + position]
            command = "add element \(group.table) \(group.set.name) { \(refused.text) }"
        } else {
            let range = message.firstElement..<(message.firstElement + message.count)
            command =
                "add element \(group.table) \(group.set.name) { "
                + group.elements[range].prefix(3).map(\.text).joined(separator: ", ")
                + (message.count > 3 ? ", … (\(message.count) elements)" : "") + " }"
        }
        return NetfilterError(
            kind: .commandFailed, code: reply.code,
            message: "Could not add elements to \(target): \(reason)\n\(command)", script: command)
    }

    /// Which element of `message` (0-based) contains byte `offset` of the message, by walking its attributes
    /// in the batch buffer.
    private func elementPosition(in message: Message, at offset: Int) -> Int? {
        guard let base = batch.base else { return nil }
        let start = base + message.offset
        let total = Int(start.load(as: nlmsghdr.self).nlmsg_len)
        var attribute = MemoryLayout<nlmsghdr>.size + Self.nfgenmsgSize
        while attribute + 4 <= total {
            let length = Int(start.load(fromByteOffset: attribute, as: UInt16.self))
            let type = start.load(fromByteOffset: attribute + 2, as: UInt16.self) & 0x3FFF  // NLA_TYPE_MASK
            guard length >= 4 else { return nil }
            if type == UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue) {
                var entry = attribute + 4
                var position = 0
                while entry + 4 <= attribute + length {
                    let entryLength = Int(start.load(fromByteOffset: entry, as: UInt16.self))
                    guard entryLength >= 4 else { return nil }
                    if offset >= entry && offset < entry + entryLength { return position }
                    entry += (entryLength + 3) & ~3
                    position += 1
                }
                return nil
            }
            attribute += (length + 3) & ~3
        }
        return nil
    }
}
