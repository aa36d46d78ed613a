import Foundation
import NetworkTypes
import ServiceLifecycle
import SwitchboardCore
import SwitchboardTesting
import Testing

@testable import SwitchboardAgent
import SwitchboardTestTraits

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A GET on loopback with every header; nil when the connection fails (e.g. refused).
private func fetch(_ port: Int, _ path: String) async -> (status: Int, headers: [String: String], body: String)? {
    let url = URL(string: "http://127.0.0.1:\(port)\(path)")!
    var request = URLRequest(url: url)
    request.timeoutInterval = 5
    guard let (data, response) = try? await URLSession.shared.data(for: request),
        let http = response as? HTTPURLResponse
    else { return nil }
    var headers: [String: String] = [:]
    for (key, value) in http.allHeaderFields {
        if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
    }
    return (http.statusCode, headers, String(decoding: data, as: UTF8.self))
}

/// A port that was free a moment ago: a server bound to port 0, then stopped.
private func freePort() async throws -> Int {
    let probe = HTTPServer(name: "probe", bindAddress: loopback, logger: quietLogger()) { _ in .notFound }
    var port = 0
    try await withServices([ClosureService { try await probe.run() }]) { port = try await probe.port() }
    return port
}

/// Adapts a closure to `ServiceLifecycle.Service` for `withServices`.
private struct ClosureService: ServiceLifecycle.Service {
    let body: @Sendable () async throws -> Void
    init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }
    func run() async throws { try await body() }
}

@Suite(.serialized, .exclusive) struct ServiceHealthServersTests {
    static let web = ObjectRef(namespace: "shop", name: "web")

    @Test("kube-proxy's body, headers and status codes, from a server on loopback; closed when the Service goes")
    func answersLikeKubeProxy() async throws {
        let wall = TestWallClock()
        let health = HealthState(healthzTimeout: .seconds(60), now: { wall.now })
        health.updated()
        let servers = ServiceHealthServers(
            nodeName: "n1", bindHosts: ["127.0.0.1"], health: health, metrics: AgentMetrics(), logger: quietLogger())
        let port = try await freePort()
        try await withServices([servers]) {
            servers.update([Self.web: ServiceHealthCheck(port: port, localEndpoints: 2)], replacingAll: true)
            #expect(try await servers.listeningPorts(Self.web) == [port])

            let ok = try #require(await fetch(port, "/any/path?x=1"))
            #expect(ok.status == 200)
            #expect(ok.headers["content-type"] == "application/json")
            #expect(ok.headers["x-content-type-options"] == "nosniff")
            #expect(
                ok.body
                    == "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"web\"\n\t},\n"
                    + "\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(ok.body.utf8)) as? [String: Any])
            #expect(json["localEndpoints"] as? Int == 2)

            // No local endpoint: 503, the count in the body.
            servers.update([Self.web: ServiceHealthCheck(port: port, localEndpoints: 0)], replacingAll: true)
            let none = try #require(await fetch(port, "/"))
            #expect(none.status == 503)
            #expect(none.body.contains("\"localEndpoints\": 0,") && none.body.contains("\"serviceProxyHealthy\": true"))

            // Endpoints, but the proxy itself is unhealthy (a change late by more than 2 × syncPeriod): 503.
            servers.update([Self.web: ServiceHealthCheck(port: port, localEndpoints: 1)], replacingAll: true)
            #expect(await fetch(port, "/")?.status == 200)
            health.queuedUpdate()
            wall.advance(seconds: 61)
            let sick = try #require(await fetch(port, "/"))
            #expect(sick.status == 503)
            #expect(sick.body.contains("\"localEndpoints\": 1,") && sick.body.contains("\"serviceProxyHealthy\": false"))

            // The Service goes: the port refuses connections.
            servers.update([:], replacingAll: true)
            try await eventually("the port closes") { await fetch(port, "/") == nil }
            #expect(servers.checks.isEmpty)
        }
    }

    @Test("as a SyncFollower: opens for ETP Local Services, follows partial changes, moves with the port")
    func followsSyncs() async throws {
        let health = HealthState(healthzTimeout: .seconds(60))
        health.updated()
        let metrics = AgentMetrics()
        let servers = ServiceHealthServers(
            nodeName: "n1", bindHosts: ["127.0.0.1"], health: health, metrics: metrics, logger: quietLogger())
        let (p1, p2) = (try await freePort(), try await freePort())
        func service(port: Int, policy: TrafficPolicy = .local) -> KubeObject {
            .service(
                "web", namespace: "shop", type: .loadBalancer, ports: [ServicePort(port: 80, nodePort: 31000)],
                externalPolicy: policy, healthCheckNodePort: port)
        }
        let slice = KubeObject.slice(
            "web-1", service: "web", namespace: "shop", ports: [EndpointPort(port: 80)],
            endpoints: [.at("10.244.0.5", ready: nil, node: "n1")])
        try await withServices([servers]) {
            var state = ClusterState([service(port: p1)])
            await servers.synced(state, changed: nil)
            _ = try await servers.listeningPorts(Self.web)
            #expect(await fetch(p1, "/")?.status == 503)

            state.upsert(slice)
            await servers.synced(state, changed: [Self.web])
            #expect(await fetch(p1, "/")?.status == 200)

            // Another Service's change leaves this one alone.
            await servers.synced(state, changed: [ObjectRef(namespace: "shop", name: "other")])
            #expect(servers.checks[Self.web] == ServiceHealthCheck(port: p1, localEndpoints: 1))

            state.upsert(service(port: p2))
            await servers.synced(state, changed: [Self.web])
            #expect(try await servers.listeningPorts(Self.web) == [p2])
            #expect(await fetch(p2, "/")?.status == 200)
            try await eventually("the old port closes") { await fetch(p1, "/") == nil }

            state.upsert(service(port: p2, policy: .cluster))
            await servers.synced(state, changed: [Self.web])
            try await eventually("the port closes with policy Cluster") { await fetch(p2, "/") == nil }
            #expect(servers.checks.isEmpty)
        }
    }

    @Test("a port that cannot be bound is logged and counted, not fatal")
    func bindFailureIsCounted() async throws {
        let health = HealthState(healthzTimeout: .seconds(60))
        let metrics = AgentMetrics()
        let servers = ServiceHealthServers(
            nodeName: "n1", bindHosts: ["127.0.0.1"], health: health, metrics: metrics, logger: quietLogger())
        let blocker = HTTPServer(name: "blocker", bindAddress: loopback, logger: quietLogger()) { _ in .notFound }
        try await withServices([servers, ClosureService { try await blocker.run() }]) {
            let taken = try await blocker.port()
            servers.update([Self.web: ServiceHealthCheck(port: taken, localEndpoints: 1)], replacingAll: true)
            await #expect(throws: (any Error).self) { try await servers.listeningPorts(Self.web) }
            // The failed bind is reported to `port()` before `run()` returns and counts it.
            try await eventually("the failure is counted") {
                metrics.exposition().contains("\(MetricName.serviceHealthCheckListenErrors) 1")
            }
            // Still running: another Service opens fine.
            let other = ObjectRef(namespace: "shop", name: "other")
            let free = try await freePort()
            servers.update([other: ServiceHealthCheck(port: free, localEndpoints: 1)], removing: [Self.web])
            #expect(try await servers.listeningPorts(other) == [free])
        }
    }
}
