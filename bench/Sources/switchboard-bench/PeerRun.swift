import BenchKit
import Foundation
import SwitchboardCore
import SwitchboardTesting

/// kube-proxy v1.20.2 (iptables mode) and `switchboard run`, each in its own node namespace, against one real
/// API server: the initial Services are created through the API, each proxy is started in turn and timed
/// until all of them are in its kernel (cold), then new Services are created at the churn rate with both
/// proxies running and each proxy's kernel is polled until the new cluster IP shows up. Both command lines
/// are `ProxyLaunch`'s.
struct PeerRun {
    var options: Options
    var log: @Sendable (String) -> Void

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private var churn: ChurnOptions { options.churn }

    func run() async throws -> PeerResult {
        guard let up = churn.upScript().path else { throw Failure(description: churn.upScript().reason) }
        guard let switchboard = churn.switchboardPath() else {
            throw Failure(description: "the switchboard binary was not found (--switchboard-bin or SWITCHBOARD_BIN)")
        }
        log("peer: \(churn.services) Services x \(options.endpointsPerService) endpoints, then \(churn.rate) new "
            + "Services/s for \(churn.seconds) s; min-sync-period \(churn.minSyncPeriod.goText), "
            + "sync-period \(churn.syncPeriod.goText)")
        let plane = try await BenchControlPlane.start(upScript: up, log: log)
        let sbNS: ScratchNamespace
        let kpNS: ScratchNamespace
        do {
            sbNS = try ScratchNamespace.create(purpose: "bench-sb")
            do { kpNS = try ScratchNamespace.create(purpose: "bench-kp") } catch {
                sbNS.delete()
                throw error
            }
        } catch {
            await plane.stop()
            throw error
        }
        var processes: [BackgroundProcess] = []
        func cleanup() async {
            for p in processes.reversed() { await p.stop(grace: .seconds(5)) }
            await plane.stop()
            sbNS.delete()
            kpNS.delete()
        }
        do {
            let result = try await run(plane, switchboard: switchboard, sb: sbNS.name, kp: kpNS.name) {
                processes.append($0)
            }
            for p in processes { ProxyLaunch.logComplaints(of: p, log: log) }
            await cleanup()
            return result
        } catch {
            for p in processes { ProxyLaunch.logTail(of: p, log: log) }
            await cleanup()
            throw error
        }
    }

    private func run(
        _ plane: BenchControlPlane, switchboard: String, sb: String, kp: String,
        adopt: (BackgroundProcess) -> Void
    ) async throws -> PeerResult {
        var cluster = SyntheticCluster(services: churn.services, endpointsPerService: options.endpointsPerService)
        let writer = plane.writer!
        let created = try await Populate.cluster(cluster, with: writer, concurrency: churn.apiConcurrency, log: log)
        let initialIPs = Set(cluster.state.services.values.compactMap {
            $0.clusterIPs.first.map { KubeJSON.apiClusterIP($0.description) }
        })
        try await plane.bridge(into: sb)
        try await plane.bridge(into: kp)

        let minSync = churn.minSyncPeriod.goText
        let syncPeriod = churn.syncPeriod.goText
        let pollers = [
            KernelPoller.switchboard(in: sb, endpointsPerService: options.endpointsPerService),
            KernelPoller.kubeProxy(in: kp),
        ]

        // Cold: one proxy at a time, so that neither's start competes with the other's.
        let sbVersion = await ProxyLaunch.version([switchboard, "version"])
        let sbStart = ContinuousClock.now
        adopt(try Shell.start(ProxyLaunch.switchboard(switchboard, plane: plane, churn: churn), in: sb))
        let sbCold = try await pollers[0].untilAll(initialIPs, since: sbStart, log: log)

        let kubeProxy = try ProxyLaunch.kubeProxy(plane: plane, churn: churn)
        let kpVersion = await ProxyLaunch.version([plane.kubeProxyBinary, "--version"])
        let kpStart = ContinuousClock.now
        adopt(try Shell.start(kubeProxy, in: kp))
        let kpCold = try await pollers[1].untilAll(initialIPs, since: kpStart, log: log)

        // Churn: new Services at the rate, both proxies running, both kernels polled all along.
        let watch = PeerWatch(proxies: pollers.map(\.name))
        let total = churn.rate * churn.seconds
        var writes: [Double] = []
        log("  churn: \(total) new Services at \(churn.rate)/s, polling both kernels")
        try await withThrowingTaskGroup(of: [Double].self) { group in
            let stop = StopFlag()
            for poller in pollers {
                group.addTask { try await poller.follow(watch, until: stop) }
            }
            let start = ContinuousClock.now
            let interval = Duration.seconds(1) / churn.rate
            var creations: [Task<Double, any Error>] = []
            for k in 0..<total {
                let due = start + interval * k
                if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) }
                let objects = cluster.addService()
                guard case .service(let service)? = objects.first, let ip = service.clusterIPs.first else { continue }
                let apiIP = KubeJSON.apiClusterIP(ip.description)
                // Concurrent creations: the API's answer time must not slow the rate down.
                creations.append(Task {
                    let t = ContinuousClock.now
                    try await writer.createService(objects) { watch.expect(apiIP, since: $0) }
                    return (ContinuousClock.now - t).milliseconds
                })
                if (k + 1) % (churn.rate * 10) == 0 {
                    log("  \(k + 1)/\(total) created; seen by " + watch.seenCounts().map { "\($0.key) \($0.value)" }
                        .sorted().joined(separator: ", "))
                }
            }
            for c in creations { writes.append(try await c.value) }
            // Long enough for the slower proxy's full sync on the way (its cold start says how long one takes).
            let drainLimit = ContinuousClock.now + churn.syncPeriod * 2 + .seconds(60)
                + .milliseconds(3 * max(sbCold, kpCold))
            while !watch.allSeen && ContinuousClock.now < drainLimit { try await Task.sleep(for: .milliseconds(100)) }
            stop.set()
            var polls: [[Double]] = []
            for try await p in group { polls.append(p) }
            _ = polls
        }
        let sbSyncs = await ProxyLaunch.syncMetrics(in: sb)
        let kpSyncs = await ProxyLaunch.syncMetrics(in: kp)
        let sbLatency = watch.latencies("switchboard")
        let kpLatency = watch.latencies("kube-proxy")
        func proxy(
            _ name: String, _ version: String, _ cold: Double, _ latency: [Double], _ poller: KernelPoller,
            _ syncs: (count: Int, meanMs: Double)?
        ) -> PeerResult.Proxy {
            .init(name: name, version: version, coldMs: cold, latency: Summary(latency), notSeen: total - latency.count,
                  poll: Summary(poller.pollTimes()), syncs: syncs?.count, meanSyncMs: syncs?.meanMs)
        }
        let s = proxy("switchboard", sbVersion, sbCold, sbLatency, pollers[0], sbSyncs)
        let k = proxy("kube-proxy", kpVersion, kpCold, kpLatency, pollers[1], kpSyncs)
        func r(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }
        let result = PeerResult(
            services: churn.services, endpointsPerService: options.endpointsPerService, rate: churn.rate,
            seconds: churn.seconds, minSyncPeriod: minSync, syncPeriod: syncPeriod, apiCreateSeconds: created.seconds,
            apiServiceTypes: created.types, apiWrite: Summary(writes), created: total, switchboard: s, kubeProxy: k,
            ratioCold: r(s.coldMs, k.coldMs), ratioP50: r(s.latency.p50, k.latency.p50),
            ratioP90: r(s.latency.p90, k.latency.p90), ratioP99: r(s.latency.p99, k.latency.p99))
        for p in [s, k] {
            log("  \(p.name): cold \(fixed(p.coldMs, 0)) ms; new Service p50 \(fixed(p.latency.p50, 0)) "
                + "p90 \(fixed(p.latency.p90, 0)) p99 \(fixed(p.latency.p99, 0)) ms, \(p.notSeen) not seen; "
                + "poll p50 \(fixed(p.poll.p50, 0)) ms; \(p.syncs.map(String.init) ?? "?") syncs, mean "
                + "\(p.meanSyncMs.map { fixed($0, 0) } ?? "?") ms")
        }
        return result
    }
}

/// A flag the churn loop sets when the pollers may stop.
final class StopFlag: @unchecked Sendable {
    // `@unchecked Sendable`: `value` is guarded by `lock`.
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// New Services (by cluster IP) and when each proxy's kernel first showed them.
final class PeerWatch: @unchecked Sendable {
    // `@unchecked Sendable`: every field is guarded by `lock`.
    private let lock = NSLock()
    private var expected: [String: ContinuousClock.Instant] = [:]
    private var seen: [String: [String: Double]]

    init(proxies: [String]) {
        seen = Dictionary(uniqueKeysWithValues: proxies.map { ($0, [:]) })
    }

    /// `ip` is about to be created (its Service POST is sent at `since`).
    func expect(_ ip: String, since: ContinuousClock.Instant) {
        lock.withLock { expected[ip] = since }
    }

    /// One poll of `proxy`'s kernel, finished at `at`, found `ips`.
    func observed(_ ips: Set<String>, by proxy: String, at: ContinuousClock.Instant) {
        lock.withLock {
            for (ip, since) in expected where seen[proxy]?[ip] == nil && ips.contains(ip) {
                seen[proxy]?[ip] = (at - since).milliseconds
            }
        }
    }

    var allSeen: Bool {
        lock.withLock { seen.values.allSatisfy { $0.count == expected.count } }
    }

    func seenCounts() -> [String: Int] { lock.withLock { seen.mapValues(\.count) } }

    func latencies(_ proxy: String) -> [Double] { lock.withLock { seen[proxy].map { Array($0.values) } ?? [] } }
}

/// Polls one proxy's kernel for the cluster IPs it has programmed, from inside its namespace.
final class KernelPoller: @unchecked Sendable {
    // `@unchecked Sendable`: `times` is guarded by `lock`; the rest is immutable.
    let name: String
    let namespace: String
    let command: [String]
    let parse: @Sendable (String) -> Set<String>
    private let lock = NSLock()
    private var times: [Double] = []

    init(name: String, namespace: String, command: [String], parse: @escaping @Sendable (String) -> Set<String>) {
        self.name = name
        self.namespace = namespace
        self.command = command
        self.parse = parse
    }

    /// One poll: the cluster IPs in the kernel now (empty while the proxy has not created its tables yet).
    func poll() async throws -> (ips: Set<String>, at: ContinuousClock.Instant) {
        let start = ContinuousClock.now
        let result = try await Shell.run(command, in: namespace, timeout: .seconds(120))
        let ips = result.succeeded ? parse(result.stdout) : []
        let end = ContinuousClock.now
        lock.withLock { times.append((end - start).milliseconds) }
        return (ips, end)
    }

    func pollTimes() -> [Double] { lock.withLock { times } }

    /// Switchboard's Services with E endpoints, in `namespace`. Each such Service's port lands in the one
    /// Maglev-size set for E (or in `no-endpoint-services` for E = 0). Listing that one set is exact and cheap
    /// (0.02 s at 1k Services, 0.2 s at 10k); `nft get element` per Service is not: it loads the whole table
    /// first, `backends` included (127 slots per Service): 2 s a call at 1k, 80 s at 10k.
    static func switchboard(in namespace: String, endpointsPerService: Int) -> KernelPoller {
        let servicePortSet = endpointsPerService > 0
            ? RulesetNames.serviceVIPs(MaglevTable.size(forBackendCount: endpointsPerService))
            : RulesetNames.noEndpointServices
        return KernelPoller(
            name: "switchboard", namespace: namespace,
            command: ["nft", "list", "set", "ip", "switchboard", servicePortSet], parse: nftServiceIPs)
    }

    /// kube-proxy's (iptables mode) Services in `namespace`: the `KUBE-SERVICES` jumps to a `KUBE-SVC-` chain.
    static func kubeProxy(in namespace: String) -> KernelPoller {
        KernelPoller(
            name: "kube-proxy", namespace: namespace,
            command: ["iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES"], parse: iptablesServiceIPs)
    }

    /// Polls until every one of `ips` is there; returns ms since `since`. Gives up after 30 minutes, or as soon
    /// as `process` (the proxy, when given) has exited.
    func untilAll(
        _ ips: Set<String>, since: ContinuousClock.Instant, process: BackgroundProcess? = nil, log: (String) -> Void
    ) async throws -> Double {
        var lastLog = ContinuousClock.now
        while ContinuousClock.now - since < .seconds(1800) {
            if let status = process?.exitStatus {
                throw PeerRun.Failure(description: "\(name) exited (\(status)) before programming every Service")
            }
            let (found, at) = try await poll()
            let missing = ips.subtracting(found).count
            if missing == 0 {
                let ms = (at - since).milliseconds
                log("  \(name): all \(ips.count) Services in the kernel after \(fixed(ms, 0)) ms")
                return ms
            }
            if ContinuousClock.now - lastLog >= .seconds(10) {
                lastLog = .now
                log("  \(name): \(ips.count - missing)/\(ips.count) Services in the kernel")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PeerRun.Failure(description: "\(name) did not program all \(ips.count) Services within 30 minutes")
    }

    /// Polls until `stop` is set, reporting every poll to `watch`; returns nothing of interest.
    func follow(_ watch: PeerWatch, until stop: StopFlag) async throws -> [Double] {
        while !stop.isSet {
            let (ips, at) = try await poll()
            watch.observed(ips, by: name, at: at)
            try await Task.sleep(for: .milliseconds(10))
        }
        return []
    }

    /// `nft list set ip switchboard service-ips-m127`: elements `10.96.1.5 . tcp . 80`; the cluster IPs.
    @Sendable static func nftServiceIPs(_ text: String) -> Set<String> {
        let words = text.split(whereSeparator: { " \t\n,{}".contains($0) })
        var out = Set<String>()
        for i in words.indices.dropLast(1) where words[i + 1] == "." && words[i].first?.isNumber == true {
            if i == 0 || words[i - 1] != "." { out.insert(String(words[i])) }
        }
        return out
    }

    /// `iptables -t nat -S KUBE-SERVICES`: `-A KUBE-SERVICES -d 10.96.1.5/32 ... -j KUBE-SVC-...`.
    @Sendable static func iptablesServiceIPs(_ text: String) -> Set<String> {
        var out = Set<String>()
        for line in text.split(separator: "\n") where line.contains("-j KUBE-SVC-") {
            let words = line.split(separator: " ")
            if let d = words.firstIndex(of: "-d"), d + 1 < words.count {
                out.insert(String(words[d + 1].prefix { $0 != "/" }))
            }
        }
        return out
    }
}
