import Foundation
import NetworkTypes

/// The transport of a test flow.
public enum TransportProtocol: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case tcp, udp

    public var description: String { rawValue.uppercased() }
}

/// Why a request got no reply, classified the way service tests need it.
public enum RequestFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// ECONNREFUSED: a TCP reset, or an ICMP/ICMPv6 port unreachable (REJECT; a closed UDP port surfaces
    /// through the connected UDP socket).
    case refused
    /// Nothing came back before the deadline (dropped, blackholed, or an unroutable reply).
    case timeout
    /// Anything else, as the errno symbol where there is one: `EHOSTUNREACH`, `ENETUNREACH`, `ECONNRESET`,
    /// `EADDRINUSE`, ...
    case other(String)

    public var description: String {
        switch self {
        case .refused: "refused"
        case .timeout: "timeout"
        case .other(let reason): reason
        }
    }
}

/// A reply's text, or why there was none.
public typealias RequestResult = Result<String, RequestFailure>

extension Result where Success == String, Failure == RequestFailure {
    /// The reply text, or nil if the request failed.
    public var reply: String? { try? get() }
}

/// Real servers and clients inside namespaces, with Python 3 (one process per server, one per batch of
/// requests).
///
/// Why Python rather than socat: a socat server forks one child (and a shell) per connection or datagram,
/// so a pid does not cover everything started and replies cost a fork each; Python gives one process per
/// server, exact errno classification, `SO_LINGER` and `IP_PKTINFO` in a few lines.
///
/// - Servers answer with their `reply` text. TCP: on accept, send the text, then FIN, and wait for the
///   client to close. UDP: each datagram is answered with the text, from the address it was sent to
///   (`IP_PKTINFO` / `IPV6_PKTINFO`), so a server on a multi-address host answers from the right one.
/// - Clients use a fresh socket per request with `SO_REUSEADDR`, optionally bound to a fixed source port.
///   TCP clients close with `SO_LINGER {1, 0}`: they send RST instead of FIN, so no TIME_WAIT is left on
///   either end and the same 4-tuple can be used again immediately.
public enum Traffic {
    public static let defaultTimeout: Duration = .seconds(2)

    /// Starts a server and returns once it is listening. It answers every connection or datagram with
    /// `reply`, in which `{peer}` becomes the client's address as the server sees it. `family` nil serves both families (two sockets); `address` binds one address instead of
    /// the wildcard. Stop it with `stop()`, or let a `Topology` do it (`Topology.startServer`).
    public static func startServer(
        in netns: String,
        proto: TransportProtocol,
        port: Int,
        reply: String,
        family: IPFamily? = nil,
        address: String? = nil
    ) async throws -> BackgroundProcess {
        let families = family.map { $0 == .v4 ? "4" : "6" } ?? "46"
        let server = try Shell.start(
            [python, "-I", "-c", serverScript, proto.rawValue, families, String(port), reply, address ?? ""],
            in: netns
        )
        // The script prints "ready" once every socket is bound (and listening).
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if server.output().stdout.contains("ready") { return server }
            if let status = server.exitStatus {
                throw ShellError(
                    code: .exitedEarly,
                    command: server.command,
                    message: server.output().stderr,
                    status: status
                )
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        await server.stop()
        throw ShellError(code: .timedOut, command: server.command, message: "server did not become ready")
    }

    /// One request from inside `netns`: connect (TCP) or send a datagram (UDP) to `address` and read the
    /// reply. Throws only when the client itself can't run; network outcomes are in the result.
    public static func request(
        from netns: String,
        to address: String,
        port: Int,
        proto: TransportProtocol,
        sourcePort: Int? = nil,
        timeout: Duration = defaultTimeout
    ) async throws -> RequestResult {
        try await requests(
            from: netns,
            to: address,
            port: port,
            proto: proto,
            sourcePorts: [sourcePort],
            timeout: timeout
        )[0]
    }

    /// Several requests, one after another, from one client process (much cheaper than `request` in a loop):
    /// one per element of `sourcePorts` (nil: an ephemeral port). Results are in the same order.
    public static func requests(
        from netns: String,
        to address: String,
        port: Int,
        proto: TransportProtocol,
        sourcePorts: [Int?],
        timeout: Duration = defaultTimeout
    ) async throws -> [RequestResult] {
        guard !sourcePorts.isEmpty else { return [] }
        let ports = sourcePorts.map { String($0 ?? 0) }.joined(separator: ",")
        let seconds = String(format: "%.3f", timeout.seconds)
        let limit = timeout * sourcePorts.count + .seconds(10)
        let run = try await Shell.run(
            [python, "-I", "-c", clientScript, proto.rawValue, address, String(port), seconds, ports],
            in: netns,
            timeout: limit
        ).checked()
        let results = run.stdout.split(whereSeparator: \.isNewline).map { line -> RequestResult in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String] else {
                return .failure(.other("unparseable client output: \(line)"))
            }
            if let reply = object["ok"] { return .success(reply) }
            switch object["err"] {
            case "refused": return .failure(.refused)
            case "timeout": return .failure(.timeout)
            case let reason?: return .failure(.other(reason))
            case nil: return .failure(.other("unparseable client output: \(line)"))
            }
        }
        guard results.count == sourcePorts.count else {
            throw ShellError(
                code: .failed,
                command: run.command,
                message: "expected \(sourcePorts.count) results:\n"
                    + run.stdout + run.stderr,
                status: run.status
            )
        }
        return results
    }

    /// The interpreter, resolved once. The system one first: a version-manager shim (pyenv) is a shell script
    /// that costs more than the request itself.
    static let python: String =
        ["/usr/bin/python3", "/usr/local/bin/python3"]
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? Shell.which("python3") ?? "python3"

    // argv: proto families("4"|"6"|"46") port reply address("" = wildcard)
    static let serverScript = #"""
        import socket, struct, sys, threading
        proto, families, port, reply, address = sys.argv[1:6]
        port, reply = int(port), reply.encode()
        IP_PKTINFO = 8  # Linux value; Python's socket module lacks the constant

        def text(peer):
            return reply.replace(b"{peer}", peer[0].encode())

        def serve_tcp(sock, af):
            def answer(conn, peer):
                try:
                    conn.settimeout(5)
                    conn.sendall(text(peer))
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass
                finally:
                    conn.close()
            while True:
                conn, peer = sock.accept()
                threading.Thread(target=answer, args=(conn, peer), daemon=True).start()

        def serve_udp(sock, af):
            zero = struct.pack("=i", 0)
            while True:
                _, ancillary, _, peer = sock.recvmsg(65535, 1024)
                control = []
                for level, kind, data in ancillary:
                    if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                        # in_pktinfo: ifindex, spec_dst, addr (the header's destination) -> reply from addr
                        control = [(level, kind, struct.pack("=i4s4s", 0, data[8:12], bytes(4)))]
                    elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                        # in6_pktinfo: addr, ifindex; keep the interface only for link-local addresses
                        ifindex = data[16:20] if data[:2] == b"\xfe\x80" else zero
                        control = [(level, kind, data[:16] + ifindex)]
                try:
                    sock.sendmsg([text(peer)], control, 0, peer)
                except OSError:
                    pass

        if address:
            binds = [(socket.AF_INET6 if ":" in address else socket.AF_INET, address)]
        else:
            binds = [(socket.AF_INET, "0.0.0.0")] if "4" in families else []
            binds += [(socket.AF_INET6, "::")] if "6" in families else []
        for af, host in binds:
            sock = socket.socket(af, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if af == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if proto == "udp" and af == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            if proto == "udp" and af == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.bind((host, port))
            if proto == "tcp":
                sock.listen(128)
            target = serve_tcp if proto == "tcp" else serve_udp
            threading.Thread(target=target, args=(sock, af), daemon=True).start()
        print("ready", flush=True)
        threading.Event().wait()
        """#

    // argv: proto address port timeout-seconds source-ports("0" = ephemeral, comma-separated)
    // One JSON object per request: {"sport": "...", "ok": reply} or {"sport": "...", "err": reason}.
    static let clientScript = #"""
        import errno, json, os, select, socket, struct, sys, time
        proto, dst, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        af = socket.AF_INET6 if ":" in dst else socket.AF_INET

        def connect_tcp(sock, peer, remaining):
            # An ICMP error that arrives while connect() still holds the socket lock (on veth it comes back
            # within the same softirq) is only recorded as a soft error, and the kernel reports it after the
            # next SYN retransmit, a second later. SO_ERROR returns the soft error, so poll for it.
            sock.setblocking(False)
            code = sock.connect_ex(peer)
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
            while code == errno.EINPROGRESS:
                _, writable, _ = select.select([], [sock], [], min(0.02, remaining()))
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                if writable:
                    break
                code = errno.EINPROGRESS
            sock.setblocking(True)

        for sport in [int(p) for p in sys.argv[5].split(",")]:
            result = {"sport": str(sport)}
            deadline = time.monotonic() + timeout
            def remaining():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError()
                return left
            sock = socket.socket(af, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if proto == "tcp":
                    # RST on close: no TIME_WAIT, so a fixed source port can be reused at once
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if sport:
                    sock.bind(("::" if af == socket.AF_INET6 else "0.0.0.0", sport))
                if proto == "tcp":
                    connect_tcp(sock, (dst, port), remaining)
                else:
                    sock.connect((dst, port))
                result["sport"] = str(sock.getsockname()[1])
                if proto == "tcp":
                    chunks = []
                    while True:
                        sock.settimeout(remaining())
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        chunks.append(chunk)
                    data = b"".join(chunks)
                else:
                    sock.send(b"ping")
                    sock.settimeout(remaining())
                    data = sock.recv(65536)
                result["ok"] = data.decode("utf-8", "replace")
            except TimeoutError:
                result["err"] = "timeout"
            except ConnectionRefusedError:
                result["err"] = "refused"
            except OSError as error:
                result["err"] = errno.errorcode.get(error.errno, str(error)) if error.errno else str(error)
            finally:
                sock.close()
            print(json.dumps(result), flush=True)
        """#
}

extension Topology {
    /// Starts a server inside a node, client or backend and adopts it, so `teardown()` stops it.
    /// `reply` defaults to the host's name, so a test sees which backend answered.
    @discardableResult
    public func startServer(
        on host: String,
        proto: TransportProtocol,
        port: Int,
        reply: String? = nil,
        family: IPFamily? = nil,
        address: String? = nil
    ) async throws -> BackgroundProcess {
        let server = try await Traffic.startServer(
            in: self.host(host).namespace,
            proto: proto,
            port: port,
            reply: reply ?? host,
            family: family,
            address: address
        )
        adopt(server)
        return server
    }

    /// `Traffic.request` from the named host's namespace.
    public func request(
        from host: String,
        to address: String,
        port: Int,
        proto: TransportProtocol,
        sourcePort: Int? = nil,
        timeout: Duration = Traffic.defaultTimeout
    ) async throws -> RequestResult {
        try await Traffic.request(
            from: self.host(host).namespace,
            to: address,
            port: port,
            proto: proto,
            sourcePort: sourcePort,
            timeout: timeout
        )
    }

    /// `Traffic.requests` from the named host's namespace.
    public func requests(
        from host: String,
        to address: String,
        port: Int,
        proto: TransportProtocol,
        sourcePorts: [Int?],
        timeout: Duration = Traffic.defaultTimeout
    ) async throws -> [RequestResult] {
        try await Traffic.requests(
            from: self.host(host).namespace,
            to: address,
            port: port,
            proto: proto,
            sourcePorts: sourcePorts,
            timeout: timeout
        )
    }
}
