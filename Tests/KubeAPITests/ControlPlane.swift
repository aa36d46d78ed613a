import Foundation
import SwitchboardTesting

#if canImport(Glibc)
import Glibc
#endif

/// One real control plane (etcd + kube-apiserver v1.20.2, `/work/shared/k8s/up.sh`) per test process, started
/// on first use and shared by every live test.
///
/// Swift Testing has no global teardown, so stopping is left to a reaper: a tiny shell process that waits for
/// this test process to exit — normally, by a failed `#require`, or by a crash — and then runs `down.sh`,
/// which stops etcd and the apiserver by their recorded pids. Nothing leaks even if the tests die.
actor ControlPlane {
    static let shared = ControlPlane()

    struct Running: Sendable {
        /// The directory up.sh wrote: `kubeconfig` (admin), `node.kubeconfig` (system:kube-proxy), `env`, `pki/`.
        var dir: String
        var scripts: String
        var apiURL: String
        var nodeToken: String
        var adminKubeconfig: String { dir + "/kubeconfig" }
        var nodeKubeconfig: String { dir + "/node.kubeconfig" }
        var caFile: String { dir + "/pki/ca.crt" }
    }

    private enum State {
        case idle
        case starting([CheckedContinuation<Result<Running, Unavailable>, Never>])
        case done(Result<Running, Unavailable>)
    }

    struct Unavailable: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    private var state = State.idle
    private var reaper: BackgroundProcess?

    /// The running control plane, starting it if this is the first call; nil (with the reason printed once)
    /// when it can't run here.
    func running() async -> Running? {
        switch await result() {
        case .success(let running): return running
        case .failure: return nil
        }
    }

    /// Whether live tests can run; for `.enabled(if:)`.
    static func isAvailable() async -> Bool {
        await shared.running() != nil
    }

    private func result() async -> Result<Running, Unavailable> {
        switch state {
        case .done(let result):
            return result
        case .starting(let waiters):
            return await withCheckedContinuation { continuation in
                state = .starting(waiters + [continuation])
            }
        case .idle:
            state = .starting([])
            let result = await start()
            if case .failure(let why) = result {
                FileHandle.standardError.write(Data("SKIP KubeAPI live tests: \(why)\n".utf8))
            }
            guard case .starting(let waiters) = state else { fatalError("ControlPlane: state changed under start") }
            state = .done(result)
            for waiter in waiters { waiter.resume(returning: result) }
            return result
        }
    }

    private func start() async -> Result<Running, Unavailable> {
        let environment = ProcessInfo.processInfo.environment
        let up: String
        if let configured = environment["SWITCHBOARD_K8S_UP"], !configured.isEmpty {
            up = configured
        } else {
            let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            up = repo.deletingLastPathComponent().appendingPathComponent("shared/k8s/up.sh").standardized.path
        }
        guard FileManager.default.isExecutableFile(atPath: up) else {
            return .failure(Unavailable(reason: "\(up) not found or not executable (set SWITCHBOARD_K8S_UP)"))
        }
        guard Shell.which("kubectl") != nil else { return .failure(Unavailable(reason: "kubectl not on PATH")) }
        let scripts = (up as NSString).deletingLastPathComponent
        let dir = FileManager.default.temporaryDirectory.path + "/sbt-kubeapi-cp-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)

        // The reaper goes first, so that even a start that fails half-way is cleaned up.
        let down = scripts + "/down.sh"
        let script =
            "while kill -0 \(getpid()) 2>/dev/null; do sleep 0.5; done; "
            + "\(Shell.render([down, dir])) >/dev/null 2>&1; rm -rf \(Shell.render([dir]))"
        do {
            reaper = try Shell.start(["sh", "-c", script])
        } catch {
            return .failure(Unavailable(reason: "cannot start the reaper: \(error)"))
        }
        let result: ShellResult
        do {
            result = try await Shell.run(Shell.detachingDaemons([up, dir]), timeout: .seconds(120))
        } catch {
            return .failure(Unavailable(reason: "\(error)"))
        }
        guard result.succeeded else {
            return .failure(Unavailable(reason: "up.sh failed: \(result)"))
        }
        var env: [String: String] = [:]
        for line in ((try? String(contentsOfFile: dir + "/env", encoding: .utf8)) ?? "").split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { env[String(parts[0])] = String(parts[1]) }
        }
        guard let url = env["K8S_API_URL"], let token = env["K8S_NODE_TOKEN"] else {
            return .failure(Unavailable(reason: "up.sh wrote no usable \(dir)/env"))
        }
        FileHandle.standardError.write(Data("KubeAPI live tests: control plane at \(url) (\(dir))\n".utf8))
        return .success(Running(dir: dir, scripts: scripts, apiURL: url, nodeToken: token))
    }
}

extension ControlPlane.Running {
    /// Runs kubectl as cluster-admin; throws with its stderr when it fails.
    @discardableResult
    func kubectl(_ arguments: [String], input: String? = nil) async throws -> String {
        try await Shell.run(
            ["kubectl", "--kubeconfig", adminKubeconfig] + arguments, input: input,
            timeout: .seconds(60)
        ).checked().stdout
    }

    func apply(_ yaml: String) async throws {
        try await kubectl(["create", "-f", "-"], input: yaml)
    }

    /// A fresh namespace, so tests don't see each other's objects.
    func makeNamespace(_ prefix: String) async throws -> String {
        let name = "\(prefix)-\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
        try await kubectl(["create", "namespace", name])
        return name
    }

    /// Stops the apiserver, waits `seconds`, starts it again on the same port (etcd keeps its data).
    func restartAPIServer(pause seconds: Int) async throws {
        let command = Shell.detachingDaemons([
            scripts + "/restart-apiserver.sh", dir, String(seconds),
        ])
        try await Shell.run(command, timeout: .seconds(90)).checked()
    }
}

enum Manifest {
    /// `{"k": "v", ...}`: labels as a YAML flow map, quoted (label values may be empty).
    static func flowMap(_ labels: [String: String]) -> String {
        "{" + labels.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ") + "}"
    }

    static func endpoint(_ address: String) -> String {
        "- {addresses: [\"\(address)\"], conditions: {ready: true}, topology: {kubernetes.io/hostname: node-1}}"
    }

    static func service(_ name: String, namespace: String, port: Int = 80, labels: [String: String] = [:]) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: \(name)
          namespace: \(namespace)
          labels: \(flowMap(labels))
        spec:
          ports:
          - {name: http, port: \(port), protocol: TCP, targetPort: 8080}
        """
    }

    static func slice(_ name: String, namespace: String, service: String, addresses: [String]) -> String {
        """
        apiVersion: discovery.k8s.io/v1beta1
        kind: EndpointSlice
        metadata:
          name: \(name)
          namespace: \(namespace)
          labels: {kubernetes.io/service-name: \(service)}
        addressType: IPv4
        ports:
        - {name: http, port: 8080, protocol: TCP}
        endpoints:
        \(addresses.map(endpoint).joined(separator: "\n"))
        """
    }

    static func node(_ name: String, labels: [String: String] = [:]) -> String {
        """
        apiVersion: v1
        kind: Node
        metadata:
          name: \(name)
          labels: \(flowMap(labels))
        """
    }
}
