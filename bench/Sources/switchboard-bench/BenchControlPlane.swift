import AsyncHTTPClient
import Foundation
import KubeAPI
import NIOCore
import NIOHTTP1
import SwitchboardCore
import SwitchboardTesting

/// The real control plane of ../shared/k8s (etcd + kube-apiserver v1.20.2) for churn and peer runs, started
/// inside its own scratch namespace, plus the bridges that let others reach it:
///
/// - in the API namespace, `socat UNIX-LISTEN:DIR/api.sock,fork TCP:127.0.0.1:PORT`;
/// - in every node namespace (`bridge(into:)`), `socat TCP-LISTEN:PORT` on 127.0.0.1 to that socket, so the
///   unchanged `node.kubeconfig` (https://127.0.0.1:PORT) works there;
/// - for this process, which stays in the host namespace, a loopback listener on a free port to the same
///   socket (the serving certificate is for 127.0.0.1, any port). It only listens on 127.0.0.1 and is
///   stopped with the rest; nothing else in the host namespace is touched.
///
/// Everything is stopped by pid in `stop()` (down.sh for etcd and the API server), also after a failure.
final class BenchControlPlane: @unchecked Sendable {
    // `@unchecked Sendable`: `bridges` is only touched by the run's single task.
    let directory: URL
    let namespace: ScratchNamespace
    let scripts: URL
    /// The API's port inside the namespaces (and in node.kubeconfig).
    let apiPort: Int
    /// This process's way in: https://127.0.0.1:hostPort.
    private(set) var hostPort = 0
    let adminToken: String
    /// `system:kube-proxy`'s token, as in node.kubeconfig.
    let nodeToken: String
    let kubeProxyBinary: String
    private var bridges: [BackgroundProcess] = []
    private(set) var writer: KubeWriter?

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    var socket: String { directory.appendingPathComponent("api.sock").path }
    var nodeKubeconfig: String { directory.appendingPathComponent("node.kubeconfig").path }
    var adminKubeconfig: String { directory.appendingPathComponent("kubeconfig").path }

    /// Starts etcd and the API server in a new scratch namespace (about 10 s). On failure nothing is left.
    static func start(upScript: String, log: (String) -> Void) async throws -> BenchControlPlane {
        let ns = try ScratchNamespace.create(purpose: "bench-api")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-bench-k8s-\(ns.name)")
        let scripts = URL(fileURLWithPath: upScript).deletingLastPathComponent()
        let down = scripts.appendingPathComponent("down.sh").path
        func cleanup() async {
            _ = try? await Shell.run([down, dir.path])
            try? FileManager.default.removeItem(at: dir)
            ns.delete()
        }
        let up: ShellResult
        do {
            up = try await Shell.run(Shell.detachingDaemons([upScript, dir.path, ns.name]), timeout: .seconds(120))
        } catch {
            await cleanup()
            throw error
        }
        guard up.succeeded else {
            await cleanup()
            throw Failure(description: "up.sh failed: \(up)")
        }
        var env: [String: String] = [:]
        let text = (try? String(contentsOf: dir.appendingPathComponent("env"), encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { env[String(parts[0])] = String(parts[1]) }
        }
        guard let url = env["K8S_API_URL"], let port = url.split(separator: ":").last.flatMap({ Int($0) }),
            let token = env["K8S_ADMIN_TOKEN"], let nodeToken = env["K8S_NODE_TOKEN"], let kubeProxy = env["KUBE_PROXY_BIN"]
        else {
            await cleanup()
            throw Failure(description: "up.sh wrote no usable \(dir.path)/env")
        }
        let plane = BenchControlPlane(
            directory: dir, namespace: ns, scripts: scripts, apiPort: port, adminToken: token,
            nodeToken: nodeToken, kubeProxyBinary: kubeProxy)
        do {
            try await plane.startBridges()
        } catch {
            await plane.stop()
            throw error
        }
        log("  control plane up in \(ns.name) (API port \(port), reached from here at 127.0.0.1:\(plane.hostPort))")
        return plane
    }

    private init(
        directory: URL, namespace: ScratchNamespace, scripts: URL, apiPort: Int, adminToken: String,
        nodeToken: String, kubeProxyBinary: String
    ) {
        self.nodeToken = nodeToken
        self.directory = directory
        self.namespace = namespace
        self.scripts = scripts
        self.apiPort = apiPort
        self.adminToken = adminToken
        self.kubeProxyBinary = kubeProxyBinary
    }

    private func startBridges() async throws {
        try? FileManager.default.removeItem(atPath: socket)
        let server = try Shell.start(
            ["socat", "UNIX-LISTEN:\(socket),fork,mode=600", "TCP:127.0.0.1:\(apiPort)"], in: namespace.name)
        bridges.append(server)
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) {
            try await Task.sleep(for: .milliseconds(20))
        }
        // A free port on the host's loopback: try a few random ones, keep the first socat that stays up.
        for _ in 0..<20 {
            let port = Int.random(in: 41000..<59000)
            let client = try Shell.start([
                "socat", "TCP-LISTEN:\(port),bind=127.0.0.1,fork,reuseaddr", "UNIX-CONNECT:\(socket)",
            ])
            try await Task.sleep(for: .milliseconds(200))
            if client.isRunning {
                bridges.append(client)
                hostPort = port
                break
            }
        }
        guard hostPort != 0 else { throw Failure(description: "no free loopback port for the API bridge") }
        let caPEM = try Data(contentsOf: directory.appendingPathComponent("pki/ca.crt"))
        writer = try KubeWriter(server: "https://127.0.0.1:\(hostPort)", caPEM: [UInt8](caPEM), token: adminToken)
        // The API answers through the bridge.
        for attempt in 0..<50 {
            do {
                _ = try await writer!.request(.GET, "/readyz")
                return
            } catch {
                if attempt == 49 { throw Failure(description: "the API does not answer through the bridge: \(error)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// In `namespace` (a node), 127.0.0.1:apiPort leads to the API server.
    func bridge(into namespace: String) async throws {
        _ = try await Shell.run(["ip", "link", "set", "lo", "up"], in: namespace).checked()
        let bridge = try Shell.start(
            ["socat", "TCP-LISTEN:\(apiPort),bind=127.0.0.1,fork,reuseaddr", "UNIX-CONNECT:\(socket)"], in: namespace)
        bridges.append(bridge)
        for _ in 0..<50 {
            let probe = try await Shell.run(
                ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:\(apiPort)/readyz"],
                in: namespace, timeout: .seconds(5))
            if probe.stdout != "000" && !probe.stdout.isEmpty { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "the API bridge into \(namespace) does not answer")
    }

    /// Stops the writer, the bridges, etcd and the API server (by pid), and deletes the namespace.
    func stop() async {
        try? await writer?.shutdown()
        writer = nil
        for bridge in bridges.reversed() { await bridge.stop() }
        bridges = []
        _ = try? await Shell.run([scripts.appendingPathComponent("down.sh").path, directory.path])
        try? FileManager.default.removeItem(at: directory)
        namespace.delete()
    }
}

/// Writes to the API as cluster-admin: POST, PATCH (merge patch), DELETE of JSON objects, over one
/// connection pool. `KubeClient` is read-only by design (it is the agent's client); the bench needs writes.
final class KubeWriter: Sendable {
    let server: String
    private let http: HTTPClient
    private let token: String

    struct Failure: Error, CustomStringConvertible {
        var status: Int
        var message: String
        var description: String { "HTTP \(status): \(message)" }
        var isConflict: Bool { status == 409 }
    }

    init(server: String, caPEM: [UInt8], token: String) throws {
        let config = KubeConfig(server: server, certificateAuthorityPEM: caPEM, credentials: .token(token), source: "bench")
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = try config.tlsConfiguration()
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        self.server = server
        self.token = token
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    func shutdown() async throws { try await http.shutdown() }

    /// Sends one request; returns the body of a 2xx answer, throws `Failure` for anything else.
    @discardableResult
    func request(_ method: HTTPMethod, _ path: String, json: Any? = nil, contentType: String = "application/json")
        async throws -> [UInt8]
    {
        var request = HTTPClientRequest(url: server + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "application/json")
        if let json {
            let data = try JSONSerialization.data(withJSONObject: json)
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 16 << 20)
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            throw Failure(status: status, message: String(decoding: body.readableBytesView.prefix(500), as: UTF8.self))
        }
        return [UInt8](body.readableBytesView)
    }

    func create(_ object: [String: Any]) async throws {
        try await request(.POST, KubeJSON.collectionPath(of: object), json: object)
    }
}
