import Foundation
import Logging
import NFTModel
import ServiceLifecycle
import SwitchboardCore
import SwitchboardTesting
import Testing

@testable import SwitchboardAgent
import SwitchboardTestTraits

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A GET over loopback; returns status, content type and body.
func get(_ port: Int, _ path: String) async throws -> (status: Int, contentType: String?, body: String) {
    let url = URL(string: "http://127.0.0.1:\(port)\(path)")!
    let (data, response) = try await withDeadline("GET \(path)") {
        try await URLSession.shared.data(from: url)
    }
    let http = try #require(response as? HTTPURLResponse)
    return (http.statusCode, http.value(forHTTPHeaderField: "Content-Type"), String(decoding: data, as: UTF8.self))
}

let loopback = BindAddress(host: "127.0.0.1", port: 0)

func quietLogger() -> Logger {
    var logger = Logger(label: "test.http")
    logger.logLevel = .critical
    return logger
}

/// Runs `services` in a `ServiceGroup` while `body` runs, then shuts the group down gracefully and waits for it.
func withServices(_ services: [any ServiceLifecycle.Service], _ body: () async throws -> Void) async throws {
    let group = ServiceGroup(services: services, logger: quietLogger())
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

@Suite(.exclusive) struct HTTPServerTests {
    @Test func healthzAnswers200WithJSONWhileHealthyAnd503WhenAChangeIsLate() async throws {
        let wall = TestWallClock()
        let health = HealthState(healthzTimeout: .seconds(60), now: { wall.now })
        let server = HealthzServer(bindAddress: loopback, health: health, logger: quietLogger())
        try await withServices([server]) {
            let port = try await server.port()
            #expect(port > 0)
            health.updated()

            for path in ["/healthz", "/livez"] {
                let ok = try await get(port, path)
                #expect(ok.status == 200)
                #expect(ok.contentType == "application/json")
                let json = try #require(
                    try JSONSerialization.jsonObject(with: Data(ok.body.utf8)) as? [String: Any])
                #expect(json["currentTime"] as? String == RFC3339.format(wall.now))
                #expect(json["lastUpdated"] as? String == RFC3339.format(wall.now))
                // Only /healthz says whether the node is eligible for load-balancer traffic.
                #expect(json["nodeEligible"] as? Bool == (path == "/healthz" ? true : nil))
            }

            let synced = wall.now
            health.queuedUpdate()
            wall.advance(seconds: 59)
            #expect(try await get(port, "/healthz").status == 200)
            wall.advance(seconds: 1)
            let late = try await get(port, "/healthz")
            #expect(late.status == 503)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(late.body.utf8)) as? [String: Any])
            #expect(json["lastUpdated"] as? String == RFC3339.format(synced))
            #expect(json["currentTime"] as? String == RFC3339.format(wall.now))
            #expect(json["nodeEligible"] as? Bool == true)
            #expect(try await get(port, "/livez").status == 503)

            health.updated()
            #expect(try await get(port, "/healthz").status == 200)
            #expect(try await get(port, "/nope").status == 404)
        }
    }

    /// Issue 11 (a SIGILL once seen at SIGTERM): graceful shutdown while clients connect, send whole,
    /// half and no requests, and hang up, 40 times. A connection dropped without `finish()` traps (in
    /// debug builds, as the test binary is), which would crash this test.
    @Test func shutsDownCleanlyWhileClientsHammerIt() async throws {
        for round in 0..<40 {
            let health = HealthState(healthzTimeout: .seconds(60))
            health.updated()
            let server = HealthzServer(bindAddress: loopback, health: health, logger: quietLogger())
            let hammer = Hammer()
            try await withServices([server]) {
                let port = try await server.port()
                hammer.start(port: port, threads: 4)
                try await Task.sleep(for: .milliseconds(20 + (round % 8) * 10))
            }
            let connects = hammer.stop()
            #expect(connects > 0, "round \(round): no client connected")
        }
    }

    @Test func metricsAndProxyMode() async throws {
        let metrics = AgentMetrics()
        metrics.recordSync(
            .full, succeeded: true, duration: .milliseconds(12), finishedAt: Date(timeIntervalSince1970: 1_000),
            applied: nil)
        let server = MetricsServer(bindAddress: loopback, metrics: metrics, logger: quietLogger())
        try await withServices([server]) {
            let port = try await server.port()
            let scrape = try await get(port, "/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(scrape.body.contains("kubeproxy_sync_proxy_rules_last_timestamp_seconds 1000.0"))
            #expect(scrape.body.contains(#"switchboard_sync_total{type="full",result="success"} 1"#))

            let mode = try await get(port, "/proxyMode")
            #expect(mode.status == 200)
            #expect(mode.body == "nftables")
            #expect(try await get(port, "/metrics?x=1").status == 200)
            #expect(try await get(port, "/").status == 404)
        }
    }

    @Test func aServerThatCannotBindFailsAndReportsIt() async throws {
        let first = MetricsServer(bindAddress: loopback, metrics: AgentMetrics(), logger: quietLogger())
        try await withServices([first]) {
            let port = try await first.port()
            let second = MetricsServer(
                bindAddress: BindAddress(host: "127.0.0.1", port: port), metrics: AgentMetrics(), logger: quietLogger())
            // SO_REUSEADDR does not allow two listeners on one port.
            await #expect(throws: (any Error).self) { try await second.run() }
            await #expect(throws: (any Error).self) { try await second.port() }
        }
    }

    /// The whole agent: controller, health and metrics servers, on loopback, with a manual clock only for
    /// the controller's scheduling (the agent façade uses the real clock, so this drives a controller
    /// directly and the servers share its health and metrics).
    @Test func serversReflectTheController() async throws {
        let wall = TestWallClock()
        let h = ControllerHarness(syncPeriod: .seconds(30), wall: wall)
        let healthz = HealthzServer(bindAddress: loopback, health: h.health, logger: quietLogger())
        let metricsServer = MetricsServer(bindAddress: loopback, metrics: h.metrics, logger: quietLogger())
        try await withServices([healthz, metricsServer]) {
            let healthPort = try await healthz.port()
            let metricsPort = try await metricsServer.port()
            try await h.run {
                try await h.start()
                #expect(try await get(healthPort, "/healthz").status == 200)
                let scrape = try await get(metricsPort, "/metrics").body
                for name in [
                    MetricName.syncProxyRulesDuration, MetricName.syncFullProxyRulesDuration,
                    MetricName.syncPartialProxyRulesDuration, MetricName.syncProxyRulesLastTimestamp,
                    MetricName.syncProxyRulesLastQueuedTimestamp, MetricName.networkProgrammingDuration,
                    MetricName.syncTotal, MetricName.invalidObjects, MetricName.rulesetElements,
                    MetricName.rulesetChains,
                ] {
                    #expect(scrape.contains("# TYPE \(name) "), "\(name)")
                }
                #expect(scrape.contains("kubeproxy_sync_proxy_rules_duration_seconds_count 1"))
                #expect(scrape.contains("switchboard_ruleset_chains \(Double(await h.ruleset.chainCount))"))

                // The kernel keeps refusing: the change stays pending past 2 × syncPeriod.
                for _ in 0..<3 { await h.fake.failNextApply() }
                h.source.send(.delete(Objects.api))
                #expect(try await h.nextReport().succeeded == false)
                wall.advance(seconds: 59)
                #expect(try await get(healthPort, "/healthz").status == 200)
                wall.advance(seconds: 2)
                #expect(try await get(healthPort, "/healthz").status == 503)
            }
        }
    }
}

@Suite struct HealthStateTests {
    @Test func healthyWhileStartingThenUnhealthyWithoutAFirstSync() {
        let wall = TestWallClock()
        let health = HealthState(healthzTimeout: .seconds(60), now: { wall.now })
        #expect(health.status.isHealthy)
        wall.advance(seconds: 59.9)
        #expect(health.status.isHealthy)
        wall.advance(seconds: 0.1)
        #expect(!health.status.isHealthy)
        health.updated()
        #expect(health.status.isHealthy)
    }

    @Test func onlyTheOldestPendingUpdateCounts() {
        let wall = TestWallClock()
        let health = HealthState(healthzTimeout: .seconds(10), now: { wall.now })
        health.updated()
        health.queuedUpdate()
        wall.advance(seconds: 6)
        health.queuedUpdate()  // does not restart the timer
        wall.advance(seconds: 4)
        let status = health.status
        #expect(!status.isHealthy)
        #expect(status.lastUpdated == wall.now.addingTimeInterval(-10))
        #expect(status.oldestPendingUpdate == wall.now.addingTimeInterval(-10))
    }

    @Test func lastUpdatedIsTheCurrentTimeWhileHealthy() {
        let wall = TestWallClock()
        let health = HealthState(healthzTimeout: .seconds(10), now: { wall.now })
        health.updated()
        wall.advance(seconds: 1000)  // no changes: healthy, however long ago the last sync was
        #expect(health.status.isHealthy)
        #expect(health.status.lastUpdated == wall.now)
    }
}

@Suite(.exclusive) struct AgentTests {
    @Test func theAgentSyncsServesAndShutsDownGracefully() async throws {
        let source = FakeClusterSource()
        let fake = FakeNFTables()
        let agent = Agent(
            source: source, backend: fake, node: Objects.context,
            configuration: AgentConfiguration(
                minSyncPeriod: .milliseconds(10), syncPeriod: .seconds(30), healthzBindAddress: loopback,
                metricsBindAddress: loopback),
            logger: quietLogger())
        #expect(agent.services.count == 4)
        let group = agent.makeServiceGroup(signals: [])
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            source.sendInitialLists(Objects.initial)
            try await eventually("the first sync") { await fake.applyCount == 1 }
            #expect(await fake.ruleset == Objects.desired(Objects.initial))

            let healthPort = try await #require(agent.healthzServer).port()
            #expect(try await get(healthPort, "/healthz").status == 200)
            let metricsPort = try await #require(agent.metricsServer).port()
            #expect(try await get(metricsPort, "/proxyMode").body == "nftables")

            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Stopping leaves the rules in place.
        #expect(await fake.ruleset == Objects.desired(Objects.initial))
    }

    @Test func disabledServersAreNotRun() {
        let agent = Agent(
            source: FakeClusterSource(), backend: FakeNFTables(), node: Objects.context,
            configuration: AgentConfiguration(healthzBindAddress: nil, metricsBindAddress: nil), logger: quietLogger())
        #expect(agent.services.count == 2)
        #expect(agent.healthzServer == nil && agent.metricsServer == nil)
    }
}

/// Client threads that connect to a loopback port over and over, each time sending a whole request, half
/// of one, or nothing, and hanging up without reading (or after reading a little).
final class Hammer: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private var connects = 0
    private var threads: [Thread] = []
    private let done = DispatchGroup()

    func start(port: Int, threads count: Int) {
        for index in 0..<count {
            done.enter()
            let thread = Thread { [self] in
                var n = index
                while lock.withLock({ running }) {
                    n += 1
                    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                    guard fd >= 0 else { continue }
                    // A SYN queued on a listener that then closed is retried after a second: don't wait for it.
                    var limit = timeval(tv_sec: 0, tv_usec: 50_000)
                    _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
                    var address = sockaddr_in()
                    address.sin_family = sa_family_t(AF_INET)
                    address.sin_port = in_port_t(UInt16(port).bigEndian)
                    address.sin_addr.s_addr = inet_addr("127.0.0.1")
                    let connected = withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                        }
                    }
                    if connected {
                        lock.withLock { connects += 1 }
                        let request = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                        let length = [request.count, request.count / 2, 0][n % 3]
                        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, length, Int32(MSG_NOSIGNAL)) }
                        if n % 5 == 0 {
                            var buffer = [UInt8](repeating: 0, count: 64)
                            _ = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                        }
                    }
                    close(fd)
                }
                done.leave()
            }
            threads.append(thread)
            thread.start()
        }
    }

    /// Stops the threads and returns how many connections they made.
    func stop() -> Int {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { connects }
    }
}
