import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A TCP proxy with faults on demand, for a client and a server that live in a network namespace (the agent
/// and the API server of the end-to-end tests, both at 127.0.0.1 in the node's namespace).
///
/// Bytes pass through untouched (TLS included: the client still verifies the server's certificate), one
/// thread per direction per connection, plain blocking sockets. The faults act on whole TCP connections,
/// as a network or a broken server would:
/// - `cut(after:)`: every open connection forwards that many more server→client bytes, then is reset: a
///   watch event is cut in the middle (with TLS, the client receives the whole records before the cut, so
///   an event that spans several records arrives in part).
/// - `stall()`: the open connections stop forwarding server→client bytes and stay open: a response that
///   never ends. New connections pass.
/// - `hold()`: the client is cut off without noticing: open connections are closed towards the server (which
///   sees its clients leave, so it can restart promptly) and stay open, silent, towards the client; new
///   connections are accepted but never answered.
/// - `release()`: back to passing; every stalled or held connection is reset.
///
/// ```swift
/// let proxy = try FaultProxy(namespace: "sbt-n1", upstreamPort: 6443)   // listens on 127.0.0.1:proxy.port
/// defer { proxy.close() }
/// proxy.stall(); ...; proxy.release()
/// ```
public final class FaultProxy: Sendable {
    /// The port the proxy listens on, at 127.0.0.1 in the namespace.
    public let port: Int
    public let upstreamPort: Int

    private struct State {
        var holding = false
        var closed = false
        var connections: [Int: Connection] = [:]
        var nextID = 0
        var accepted = 0
        var cuts = 0
        var threads = 0
    }

    private let listener: Int32
    private let state = Mutex(State())

    /// Starts listening at 127.0.0.1 (a free port) in `namespace` (`/var/run/netns/NAME`), forwarding to
    /// 127.0.0.1:`upstreamPort` there.
    public init(namespace: String, upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        // setns affects only the calling thread, and a socket stays in the namespace it was created in: the
        // listener and every upstream socket are made on the accept thread, which enters the namespace first.
        let ready = Mutex<Result<(Int32, Int), FaultProxyError>?>(nil)
        let netnsPath = "/var/run/netns/\(namespace)"
        let starter = Thread {
            do {
                try Self.enterNetworkNamespace(netnsPath)
                let (fd, port) = try Self.listen()
                ready.withLock { $0 = .success((fd, port)) }
            } catch let error as FaultProxyError {
                ready.withLock { $0 = .failure(error) }
            } catch {
                ready.withLock { $0 = .failure(FaultProxyError(message: "\(error)")) }
            }
        }
        let listening: (Int32, Int)
        starter.start()
        while true {
            if let result = ready.withLock({ $0 }) {
                listening = try result.get()
                break
            }
            usleep(1000)
        }
        listener = listening.0
        port = listening.1
        // The accept loop needs `self`, so it runs on a second thread, also in the namespace (it makes the
        // upstream sockets).
        let acceptor = Thread { [self] in
            do {
                try Self.enterNetworkNamespace(netnsPath)
            } catch {
                return
            }
            acceptLoop()
        }
        state.withLock { $0.threads += 1 }
        acceptor.start()
    }

    /// Connections accepted so far.
    public var accepted: Int { state.withLock { $0.accepted } }
    /// Connections cut by `cut(after:)` so far.
    public var cuts: Int { state.withLock { $0.cuts } }
    /// Connections open now.
    public var openConnections: Int { state.withLock { $0.connections.count } }

    /// Arms every open connection: it forwards `bytes` more server→client bytes, then is reset. Returns how
    /// many were armed.
    @discardableResult
    public func cut(after bytes: Int) -> Int {
        state.withLock { state in
            for connection in state.connections.values { connection.armCut(after: bytes) }
            return state.connections.count
        }
    }

    /// The open connections stop forwarding server→client bytes (they are read and dropped, so the server is
    /// never blocked) and stay open. Returns how many were stalled.
    @discardableResult
    public func stall() -> Int {
        state.withLock { state in
            for connection in state.connections.values { connection.stall() }
            return state.connections.count
        }
    }

    /// Open connections are stalled and closed towards the server; from now on new connections are accepted
    /// but never answered (nor connected upstream). Returns how many were held.
    @discardableResult
    public func hold() -> Int {
        state.withLock { state in
            state.holding = true
            for connection in state.connections.values { connection.hold() }
            return state.connections.count
        }
    }

    /// New connections pass again, and every stalled or held connection is reset. Returns how many were reset.
    @discardableResult
    public func release() -> Int {
        state.withLock { state in
            state.holding = false
            var reset = 0
            for connection in state.connections.values where connection.isStalled {
                connection.reset()
                reset += 1
            }
            return reset
        }
    }

    /// Stops listening, resets every connection and waits (up to 5 s) for the proxy's threads to end.
    public func close() {
        let connections = state.withLock { state -> [Connection] in
            if state.closed { return [] }
            state.closed = true
            return Array(state.connections.values)
        }
        // Wakes the accept loop (accept fails on a shut-down listener); the loop closes it.
        _ = shutdown(listener, Int32(SHUT_RDWR))
        for connection in connections { connection.reset() }
        let deadline = Date().addingTimeInterval(5)
        while state.withLock({ $0.threads }) > 0 && Date() < deadline { usleep(10_000) }
    }

    deinit {
        close()
    }

    // MARK: - Threads

    private func acceptLoop() {
        defer {
            Glibc.close(listener)
            state.withLock { $0.threads -= 1 }
        }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let (closed, holding) = state.withLock { ($0.closed, $0.holding) }
            if closed {
                Glibc.close(client)
                return
            }
            var upstream: Int32 = -1
            if !holding {
                upstream = Self.connectUpstream(port: upstreamPort)
                if upstream < 0 {
                    // The server is down: the client sees its connection refused, as it would without us.
                    Self.resetAndClose(client)
                    continue
                }
            }
            let connection = Connection(client: client, upstream: upstream, stalled: holding)
            let id = state.withLock { state -> Int in
                state.nextID += 1
                state.accepted += 1
                state.connections[state.nextID] = connection
                state.threads += 2
                return state.nextID
            }
            Thread { [self] in
                pump(connection, id: id, toServer: true)
            }.start()
            Thread { [self] in
                pump(connection, id: id, toServer: false)
            }.start()
        }
    }

    /// Copies one direction until either side ends; the last of the two pumps closes the sockets.
    private func pump(_ connection: Connection, id: Int, toServer: Bool) {
        defer {
            if connection.pumpEnded() {
                state.withLock { _ = $0.connections.removeValue(forKey: id) }
            }
            state.withLock { $0.threads -= 1 }
        }
        let from = toServer ? connection.client : connection.upstream
        let to = toServer ? connection.upstream : connection.client
        if from < 0 { return }  // held: nothing comes from a server that was never connected
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                // The side we read ended. A stalled connection hides it from the client (the server that went
                // away behind it must not be noticed); otherwise the end is passed on as it came.
                if connection.isStalled || connection.isDone { return }
                if count == 0 {
                    if to >= 0 { _ = shutdown(to, Int32(SHUT_WR)) }
                } else {
                    connection.reset()
                }
                return
            }
            if connection.isDone { return }
            if toServer {
                // Held: the request is swallowed. Stalled: a server gone behind it goes unnoticed.
                if to < 0 { continue }
                if !Self.sendAll(to, buffer, count) {
                    if connection.isStalled { continue }
                    connection.reset()
                    return
                }
                continue
            }
            switch connection.nextServerChunk(count) {
            case .forward:
                if !Self.sendAll(to, buffer, count) {
                    connection.reset()
                    return
                }
            case .drop:
                continue
            case .cut(let forwarded):
                _ = Self.sendAll(to, buffer, forwarded)
                state.withLock { $0.cuts += 1 }
                connection.reset()
                return
            }
        }
    }

    // MARK: - Sockets

    private static func enterNetworkNamespace(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FaultProxyError(message: "open \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        // setns(2) through the dynamic linker: Glibc's module map declares it only under _GNU_SOURCE.
        typealias SetNS = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(nil, "setns") else { throw FaultProxyError(message: "setns not found in libc") }
        let setns = unsafeBitCast(symbol, to: SetNS.self)
        let cloneNewNet: Int32 = 0x4000_0000
        guard setns(fd, cloneNewNet) == 0 else {
            throw FaultProxyError(message: "setns \(path): \(String(cString: strerror(errno)))")
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        return address
    }

    private static func listen() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FaultProxyError(message: "socket: \(String(cString: strerror(errno)))") }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw FaultProxyError(message: "bind/listen 127.0.0.1: \(message)")
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            Glibc.close(fd)
            throw FaultProxyError(message: "getsockname: \(String(cString: strerror(errno)))")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    private static func connectUpstream(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected != 0 {
            Glibc.close(fd)
            return -1
        }
        return fd
    }

    private static func sendAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var sent = 0
        while sent < count {
            let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Makes the next close of `fd` send a RST instead of a FIN.
    fileprivate static func setResetOnClose(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    private static func resetAndClose(_ fd: Int32) {
        setResetOnClose(fd)
        Glibc.close(fd)
    }
}

/// Why the proxy could not start.
public struct FaultProxyError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { "fault proxy: \(message)" }
}

/// One proxied connection: the two sockets, the fault applied to it, and how many pumps still use it.
private final class Connection: Sendable {
    enum Chunk {
        case forward, drop
        /// Forward this many bytes of the chunk, then reset.
        case cut(Int)
    }

    private struct State {
        var stalled: Bool
        /// Bytes still to forward before a cut.
        var cutAfter: Int?
        var done = false
        var pumps = 2
    }

    let client: Int32
    /// -1 for a held connection that was never connected upstream.
    let upstream: Int32
    private let state: Mutex<State>

    init(client: Int32, upstream: Int32, stalled: Bool) {
        self.client = client
        self.upstream = upstream
        state = Mutex(State(stalled: stalled))
    }

    var isStalled: Bool { state.withLock { $0.stalled } }
    var isDone: Bool { state.withLock { $0.done } }

    func armCut(after bytes: Int) { state.withLock { $0.cutAfter = max(0, bytes) } }
    func stall() { state.withLock { $0.stalled = true } }

    /// Stalled, and the server's side shut down: the server sees the client leave, the client sees nothing.
    func hold() {
        stall()
        if upstream >= 0 { _ = shutdown(upstream, Int32(SHUT_RDWR)) }
    }

    /// What to do with the `count` server→client bytes just read.
    func nextServerChunk(_ count: Int) -> Chunk {
        state.withLock { state in
            if state.stalled { return .drop }
            guard let remaining = state.cutAfter else { return .forward }
            if count <= remaining && remaining > 0 {
                state.cutAfter = remaining - count
                return .forward
            }
            state.cutAfter = nil
            return .cut(min(count, remaining))
        }
    }

    /// Ends the connection with a RST to the client: both pumps wake (their reads return 0), and the last one
    /// closes the sockets. `SHUT_RD` wakes a reader without sending anything; the RST goes out on `close`.
    func reset() {
        let first = state.withLock { state -> Bool in
            defer { state.done = true }
            return !state.done
        }
        guard first else { return }
        FaultProxy.setResetOnClose(client)
        _ = shutdown(client, Int32(SHUT_RD))
        if upstream >= 0 { _ = shutdown(upstream, Int32(SHUT_RDWR)) }
    }

    /// A pump ended; true for the last one, which has closed the sockets.
    func pumpEnded() -> Bool {
        let last = state.withLock { state -> Bool in
            state.pumps -= 1
            return state.pumps == 0
        }
        if last {
            Glibc.close(client)
            if upstream >= 0 { Glibc.close(upstream) }
        }
        return last
    }
}
