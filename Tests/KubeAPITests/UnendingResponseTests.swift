import Foundation
import Synchronization
import Testing

@testable import KubeAPI
import SwitchboardTestTraits

#if canImport(Glibc)
    import Glibc
#endif

/// A plain-HTTP server on 127.0.0.1 that answers every request with a head and then `body` forever (chunked),
/// or with a head, `prefix` and then silence: the responses that never end. One thread per connection;
/// `stop()` closes everything.
final class UnendingServer: Sendable {
    enum Body: Sendable {
        /// `prefix`, then `filler` repeated until the client goes away.
        case endless(prefix: String, filler: String)
        /// `prefix`, then nothing, with the connection open.
        case silent(prefix: String)
    }

    let port: Int
    private let listener: Int32
    private let body: Body
    private let open = Mutex<[Int32]>([])
    /// Bytes written so far, over all connections.
    let sent = Atomic<Int>(0)

    init(_ body: Body) throws {
        self.body = body
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(fd >= 0 && bound == 0 && listen(fd, 16) == 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in acceptLoop() }.start()
    }

    func stop() {
        _ = shutdown(listener, Int32(SHUT_RDWR))
        for fd in open.withLock({ $0 }) { _ = shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            open.withLock { $0.append(fd) }
            Thread { [self] in serve(fd) }.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        // Read the request head; its content does not matter.
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.suffix(4).elementsEqual("\r\n\r\n".utf8) {
            guard recv(fd, &byte, 1, 0) == 1 else { return }
            head.append(byte)
        }
        func write(_ text: String) -> Bool {
            let bytes = Array(text.utf8)
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes {
                    send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
                }
                if n <= 0 { return false }
                done += n
            }
            sent.add(bytes.count, ordering: .relaxed)
            return true
        }
        func chunk(_ text: String) -> Bool { write(String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n") }
        guard write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n") else {
            return
        }
        switch body {
        case .endless(let prefix, let filler):
            guard chunk(prefix) else { return }
            while chunk(filler) {}
        case .silent(let prefix):
            guard chunk(prefix) else { return }
            // Keep the connection open, sending nothing, until the client or `stop()` closes it.
            while recv(fd, &byte, 1, 0) > 0 {}
        }
    }
}

/// Responses that never end, from a scripted server: each is cut off by a bound (bytes or time) instead of
/// growing memory or waiting forever.
@Suite(.exclusive) struct UnendingResponseTests {
    static func client(port: Int, _ options: KubeClient.Options, _ body: (KubeClient) async throws -> Void)
        async throws
    {
        try await KubeClient.withClient(config: KubeConfig(server: "http://127.0.0.1:\(port)"), options: options, body)
    }

    @Test func aListBodyThatNeverEndsFailsAtTheResponseLimit() async throws {
        let item = #"{"a":"\#(String(repeating: "x", count: 4000))"},"#
        let server = try UnendingServer(.endless(prefix: #"{"kind":"ServiceList","items":["#, filler: item))
        defer { server.stop() }
        try await Self.client(port: server.port, KubeClient.Options(maximumResponseBytes: 1 << 20)) { client in
            let error = await #expect(throws: KubeAPIError.self) { _ = try await client.list(.services) }
            #expect(error?.kind == .invalidResponse && error?.message.contains("larger than 1048576 bytes") == true,
                    "\(String(describing: error))")
        }
        // The server stopped being read once the limit was passed (a few socket buffers more at most).
        #expect(server.sent.load(ordering: .relaxed) < 16 << 20, "\(server.sent.load(ordering: .relaxed)) bytes sent")
    }

    @Test func aWatchEventThatNeverEndsFailsAtTheEventLimit() async throws {
        let server = try UnendingServer(
            .endless(prefix: #"{"type":"ADDED","object":{"kind":"Service","metadata":{"annotations":{"a":""#,
                     filler: String(repeating: "y", count: 4000)))
        defer { server.stop() }
        try await Self.client(port: server.port, KubeClient.Options(maximumEventBytes: 1 << 20)) { client in
            let stream = try await client.watch(.services, from: "1")
            let error = await #expect(throws: KubeAPIError.self) {
                for try await _ in stream {}
            }
            #expect(error?.message.contains("larger than 1048576 bytes") == true, "\(String(describing: error))")
        }
        #expect(server.sent.load(ordering: .relaxed) < 16 << 20, "\(server.sent.load(ordering: .relaxed)) bytes sent")
    }

    /// A watch that delivered one event and then nothing, connection open: cut after the read timeout, with
    /// an error that says so; the server ends up with the connection closed.
    @Test func aSilentWatchIsCutAfterTheReadTimeout() async throws {
        let event = #"{"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"7"}}}"# + "\n"
        let server = try UnendingServer(.silent(prefix: event))
        defer { server.stop() }
        try await Self.client(port: server.port, KubeClient.Options(readTimeout: .seconds(1))) { client in
            let stream = try await client.watch(.services, from: "1", timeoutSeconds: 300)
            var events: [WatchEvent] = []
            let start = ContinuousClock.now
            let error = await #expect(throws: KubeAPIError.self) {
                for try await event in stream { events.append(event) }
            }
            let waited = ContinuousClock.now - start
            #expect(events == [.bookmark(resourceVersion: "7")])
            #expect(error?.kind == .transport, "\(String(describing: error))")
            #expect(error?.message.contains("no data for 1.0 seconds") == true, "\(String(describing: error))")
            #expect(waited >= .milliseconds(900) && waited < .seconds(10), "cut after \(waited)")
        }
    }

    @Test func watchesAreAskedToEndWithinTwoThirdsOfTheReadTimeout() {
        #expect(KubeClient.Options().longestWatchSeconds == 60)
        #expect(KubeClient.Options(readTimeout: .seconds(6)).longestWatchSeconds == 4)
        #expect(KubeClient.Options(readTimeout: .seconds(1)).longestWatchSeconds == 1)
        #expect(InformerOptions().watchTimeoutSeconds.upperBound <= KubeClient.Options().longestWatchSeconds)
    }
}
