import BenchKit
import Foundation
import NetworkTypes
import SwitchboardCore
import SwitchboardTesting

/// The scale run (`--apiserver` without `--churn`; issue 10, item 5): the real `switchboard run` binary as an
/// operator runs it, against the real API server, per cluster size. With `--peer`, kube-proxy v1.20.2
/// (iptables mode) the same way at the first size.
///
/// Each size gets a fresh control plane: the proxy's initial list then holds exactly this size's objects, and
/// neither etcd nor the API server's watch cache carries the previous size's tens of thousands of objects into
/// the next measurement. Starting one costs ~10 s, little next to creating 10k Services through it.
///
/// Per size: create S Services × E endpoints through the API (timed); then per proxy, in a topology of its
/// own (a node namespace with 3 pod namespaces, each pod listening on :8080, joined by veths):
/// 1. start the proxy in the node namespace and poll its kernel until every cluster IP is there (cold);
/// 2. read its `VmRSS` at once and again after `--settle`, with its `VmHWM`, and the machine's slab delta;
/// 3. create `--new-services` Services one at a time, each with an EndpointSlice of the 3 pods (slice
///    first, then the Service, as `KubeWriter.createService` does), and time the Service's POST to the first
///    completed TCP connect to its ClusterIP from inside the node namespace (`ConnectProber`).
/// The proxy is stopped before the next one starts, and the new Services are deleted again, so kube-proxy
/// starts against the same S Services as Switchboard did.
struct ScaleRun {
    var options: Options
    var log: @Sendable (String) -> Void

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The proxy exited or never programmed every Service: recorded as a result (`ScaleResult.GaveOut`).
    struct GaveOut: Error {
        var proxy: String
        var reason: String
    }

    private var churn: ChurnOptions { options.churn }
    private var scale: ScaleOptions { options.scale }

    static let servicePort = 80
    static let podPort = 8080
    static let podCount = 3
    /// A fresh connect this often while a new Service is not answering yet: the resolution of its latency.
    static let attemptEvery = Duration.milliseconds(5)
    /// An attempt with no answer this long went out before the rules existed, and never will complete.
    static let attemptPatience = Duration.milliseconds(200)

    /// Between one new Service's first connect and the next one's POST: both proxies are idle again by then.
    /// Switchboard syncs no sooner than min-sync-period after its last sync; kube-proxy's runner allows two
    /// syncs in a burst and earns one back per min-sync-period, so twice that refills it (the slice and then
    /// the Service each ask for a sync).
    var newServiceGap: Duration { max(churn.minSyncPeriod * 2, .milliseconds(200)) }

    func run() async throws -> ScaleResult {
        guard let up = churn.upScript().path else { throw Failure(description: churn.upScript().reason) }
        guard let switchboard = churn.switchboardPath() else {
            throw Failure(description: "the switchboard binary was not found (--switchboard-bin or SWITCHBOARD_BIN)")
        }
        log("scale: sizes \(options.sizes.map(String.init).joined(separator: ",")) x \(options.endpointsPerService) "
            + "endpoints through the API; \(switchboard)" + (churn.peer ? ", kube-proxy at the first size" : "")
            + "; min-sync-period \(churn.minSyncPeriod.goText), sync-period \(churn.syncPeriod.goText), "
            + "\(scale.newServices) new Services per proxy")
        let runStart = ContinuousClock.now
        var sizes: [ScaleResult.Size] = []
        var gaveOut: [ScaleResult.GaveOut] = []
        for (i, size) in options.sizes.enumerated() {
            let elapsed = durationText((ContinuousClock.now - runStart).milliseconds / 1000)
            log("size \(size) Services x \(options.endpointsPerService) endpoints (\(i + 1)/\(options.sizes.count), "
                + "run \(elapsed) so far)")
            let plane = try await BenchControlPlane.start(upScript: up, log: log)
            do {
                sizes.append(try await measure(size: size, plane: plane, switchboard: switchboard,
                                               withKubeProxy: churn.peer && i == 0, gaveOut: &gaveOut))
                await plane.stop()
            } catch let failed as GaveOut {
                await plane.stop()
                log("  \(failed.proxy) gave out at \(size) Services: \(failed.reason); no larger size is measured")
                gaveOut.append(.init(services: size, proxy: failed.proxy, reason: failed.reason))
                break
            } catch {
                await plane.stop()
                throw error
            }
        }
        return ScaleResult(
            minSyncPeriod: churn.minSyncPeriod.goText, syncPeriod: churn.syncPeriod.goText,
            newServices: scale.newServices, settleSeconds: scale.settle.milliseconds / 1000,
            newServiceGapMs: newServiceGap.milliseconds, sizes: sizes, gaveOut: gaveOut)
    }

    /// A proxy to measure: its command line, and how to read what it programmed in a namespace.
    private struct Subject {
        var name: String
        var version: String
        var command: [String]
        var poller: (String) -> KernelPoller
    }

    /// One size; kube-proxy giving out is recorded in `gaveOut`, Switchboard giving out is thrown.
    private func measure(
        size: Int, plane: BenchControlPlane, switchboard: String, withKubeProxy: Bool,
        gaveOut: inout [ScaleResult.GaveOut]
    ) async throws -> ScaleResult.Size {
        let cluster = SyntheticCluster(services: size, endpointsPerService: options.endpointsPerService)
        let writer = plane.writer!
        let created = try await Populate.cluster(cluster, with: writer, concurrency: churn.apiConcurrency, log: log)
        let sliceEndpoints = try await firstSliceEndpointCount(cluster, writer: writer)
        guard sliceEndpoints == options.endpointsPerService else {
            throw Failure(description: "the API holds \(sliceEndpoints) endpoints in a Service's EndpointSlice, "
                + "not \(options.endpointsPerService)")
        }
        let initialIPs = Set(cluster.state.services.values.compactMap {
            $0.clusterIPs.first.map { KubeJSON.apiClusterIP($0.description) }
        })

        let endpoints = options.endpointsPerService
        let sb = try await measureProxy(
            Subject(name: "switchboard", version: await ProxyLaunch.version([switchboard, "version"]),
                    command: ProxyLaunch.switchboard(
                        switchboard, plane: plane, churn: churn, fullRebuildPeriod: scale.rebuildPeriod),
                    poller: { KernelPoller.switchboard(in: $0, endpointsPerService: endpoints) }),
            plane: plane, initialIPs: initialIPs)
        var kp: ScaleResult.Proxy?
        if withKubeProxy {
            try await deleteNewServices(writer: writer)
            do {
                kp = try await measureProxy(
                    Subject(
                        name: "kube-proxy", version: await ProxyLaunch.version([plane.kubeProxyBinary, "--version"]),
                        command: try ProxyLaunch.kubeProxy(plane: plane, churn: churn),
                        poller: { KernelPoller.kubeProxy(in: $0) }),
                    plane: plane, initialIPs: initialIPs)
            } catch let failed as GaveOut {
                log("  kube-proxy gave out at \(size) Services: \(failed.reason)")
                gaveOut.append(.init(services: size, proxy: failed.proxy, reason: failed.reason))
            }
        }
        return ScaleResult.Size(
            services: size, endpointsPerService: options.endpointsPerService, apiCreateSeconds: created.seconds,
            apiServiceTypes: created.types, sliceEndpoints: sliceEndpoints, switchboard: sb, kubeProxy: kp)
    }

    /// The endpoints in the first Service's EndpointSlice as the API server returns it (all E must be there:
    /// v1.20 caps a slice at 1000).
    private func firstSliceEndpointCount(_ cluster: SyntheticCluster, writer: KubeWriter) async throws -> Int {
        guard let first = cluster.state.services.keys.min(),
            let slice = cluster.state.endpointSlices(for: first).first
        else { return 0 }
        let body = try await writer.request(.GET, KubeJSON.path(of: .endpointSlice(slice)))
        let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        return (object?["endpoints"] as? [Any])?.count ?? 0
    }

    /// One proxy in a topology of its own; everything it started is stopped and its namespaces deleted when
    /// this returns or throws (`withTopology`).
    private func measureProxy(_ subject: Subject, plane: BenchControlPlane, initialIPs: Set<String>) async throws
        -> ScaleResult.Proxy
    {
        var builder = Topology.Builder().node("n1")
        for i in 1...Self.podCount { builder = builder.backend("b\(i)", on: "n1") }
        return try await withTopology(builder) { net in
            let node = net.node("n1").namespace
            for pod in net.backends {
                try await net.startServer(on: pod.name, proto: .tcp, port: Self.podPort, family: .v4)
            }
            try await plane.bridge(into: node)
            let slabBefore = ProcessMemory.meminfo
            let start = ContinuousClock.now
            let process = try Shell.start(subject.command, in: node)
            net.adopt(process)
            do {
                let poller = subject.poller(node)
                let coldMs: Double
                do {
                    coldMs = try await poller.untilAll(initialIPs, since: start, process: process, log: log)
                } catch let failure as PeerRun.Failure {
                    // It exited (the OOM killer, at a size the machine cannot hold) or took over 30 minutes.
                    throw GaveOut(proxy: subject.name, reason: failure.description)
                }
                let programmed = ProcessMemory.status(of: process.pid)
                try await Task.sleep(for: scale.settle)
                let settled = ProcessMemory.status(of: process.pid)
                let slabAfter = ProcessMemory.meminfo
                guard process.isRunning, !settled.isEmpty else {
                    throw GaveOut(proxy: subject.name, reason: "exited (\(process.exitStatus.map { "\($0)" } ?? "?")) "
                        + "within \(scale.settle.goText) of programming every Service")
                }
                // The kernel raises its high-water mark only on some paths (unmaps, exit) and shows VmHWM as
                // the larger of it and the RSS at the moment of reading: an RSS that fell between our two
                // readings can be above the later VmHWM. The peak is at least every RSS we saw.
                let peak = [settled["VmHWM"], programmed["VmRSS"], settled["VmRSS"]].compactMap { $0 }.max() ?? 0
                func delta(_ key: String) -> Int { (slabAfter[key] ?? 0) - (slabBefore[key] ?? 0) }
                func mib(_ bytes: Int?) -> String { fixed(Double(bytes ?? 0) / 1_048_576, 1) }
                log("  \(subject.name): RSS \(mib(programmed["VmRSS"])) MiB when programmed, "
                    + "\(mib(settled["VmRSS"])) MiB after \(scale.settle.goText), peak \(mib(peak)) MiB; "
                    + "slab +\(mib(delta("Slab"))) MiB")

                let pods = net.backends.map { IPAddress($0.ipv4)! }
                let (latencies, notConnected) = try await newServiceLatencies(
                    subject.name, in: node, pods: pods, writer: plane.writer!, coldMs: coldMs, adopt: net.adopt)
                var rebuild: ScaleResult.Rebuild?
                if let period = scale.rebuildPeriod, subject.name == "switchboard" {
                    rebuild = try await rebuildUnderTraffic(
                        of: process, in: node, target: Self.newService(0, pods: pods).clusterIP, period: period)
                }
                let syncs = await ProxyLaunch.syncMetrics(in: node)
                ProxyLaunch.logComplaints(of: process, log: log)
                await process.stop(grace: .seconds(5))
                var result = ScaleResult.Proxy(
                    name: subject.name, version: subject.version, coldMs: coldMs, poll: Summary(poller.pollTimes()),
                    rssProgrammedBytes: programmed["VmRSS"] ?? 0, rssSettledBytes: settled["VmRSS"] ?? 0,
                    peakRSSBytes: peak,
                    slabDeltaBytes: delta("Slab"), sUnreclaimDeltaBytes: delta("SUnreclaim"),
                    newService: Summary(latencies), notConnected: notConnected, syncs: syncs?.count,
                    meanSyncMs: syncs?.meanMs)
                result.rebuild = rebuild
                return result
            } catch {
                ProxyLaunch.logTail(of: process, log: log)
                throw error
            }
        }
    }

    /// New Service k: `scale-new-k`, whose API cluster IP counts up from 10.96.240.1 (above any synthetic one:
    /// `ScaleOptions.maxServices`), with the pods as endpoints.
    static func newService(_ k: Int, pods: [IPAddress]) -> (objects: [KubeObject], clusterIP: String) {
        // 10.96.239.1 + k here; `KubeJSON` moves every cluster IP up by 256 on its way to the API.
        let ip = SyntheticCluster.v4(0x0a60_ef01, plus: k)
        let objects = SyntheticCluster.podService(
            name: "scale-new-\(k)", clusterIP: ip, port: servicePort, targetPort: podPort, endpoints: pods)
        return (objects, KubeJSON.apiClusterIP(ip.description))
    }

    /// Creates the new Services one at a time and times each from its POST to its first completed connect.
    private func newServiceLatencies(
        _ proxy: String, in namespace: String, pods: [IPAddress], writer: KubeWriter, coldMs: Double,
        adopt: (BackgroundProcess) -> Void
    ) async throws -> (latencies: [Double], notConnected: Int) {
        let services = (0..<scale.newServices).map { Self.newService($0, pods: pods) }
        // Per target, from the previous one's connect: the gap, the POSTs, and far more than a sync takes.
        let limit = newServiceGap + .seconds(120) + .milliseconds(2 * coldMs)
        let prober = try await ConnectProber.start(
            targets: services.map { ($0.clusterIP, Self.servicePort) }, in: namespace, every: Self.attemptEvery,
            patience: Self.attemptPatience, limit: limit)
        adopt(prober.process)
        var latencies: [Double] = []
        var notConnected = 0
        for (k, service) in services.enumerated() {
            if k > 0 { try await Task.sleep(for: newServiceGap) }
            var posted: Int64 = 0
            try await writer.createService(service.objects) { _ in posted = ConnectProber.monotonicNanoseconds() }
            let outcome = try await prober.outcome(k)
            guard let connected = outcome.connectedAtNanoseconds else {
                notConnected += 1
                log("  \(proxy): \(service.clusterIP):\(Self.servicePort) never answered "
                    + "(\(outcome.attempts) connects in \(durationText(limit.milliseconds / 1000)))")
                continue
            }
            // Nothing owns the cluster IP before the proxy's rules: an earlier connect means a broken setup.
            guard connected >= posted else {
                throw Failure(description: "\(service.clusterIP) answered before its Service was created")
            }
            latencies.append(Double(connected - posted) / 1e6)
        }
        await prober.process.stop()
        let summary = Summary(latencies)
        log("  \(proxy): new Service → first connect p50 \(fixed(summary.p50, 1)) p99 \(fixed(summary.p99, 1)) "
            + "max \(fixed(summary.max, 1)) ms (\(latencies.count)/\(services.count) connected)")
        return (latencies, notConnected)
    }

    /// Connections back to back through `target` (a new Service's ClusterIP, 3 pods behind it) from the node
    /// namespace, in rounds of 100, until the agent's full-sync count has grown (the rebuild `period` after
    /// the last one has run) and one more round has run after it. The agent's peak RSS is reset first.
    private func rebuildUnderTraffic(
        of process: BackgroundProcess, in node: String, target: String, period: Duration
    ) async throws -> ScaleResult.Rebuild {
        func fullSyncs() async throws -> (count: Int, seconds: Double) {
            let (count, sum) = try await ProxyLaunch.histogram(
                "kubeproxy_sync_full_proxy_rules_duration_seconds", in: node)
            return (Int(count ?? 0), sum ?? 0)
        }
        let before = try await fullSyncs()
        let rssBefore = ProcessMemory.status(of: process.pid)["VmRSS"] ?? 0
        if !ProcessMemory.resetPeak(of: process.pid) { log("  note: could not reset the agent's VmHWM") }
        let deadline = ContinuousClock.now + period + churn.syncPeriod * 2 + .seconds(600)
        log("  switchboard: connections through \(target):\(Self.servicePort) until a full rebuild has run "
            + "(--full-rebuild-period \(period.goText))")
        var connections = 0, failed = 0
        var after = before
        var rebuilt = false
        // Each round's span and failures; the rebuild's span is known once the count has moved.
        var rounds: [(start: ContinuousClock.Instant, end: ContinuousClock.Instant, count: Int, failed: Int)] = []
        var lastPoll = ContinuousClock.now
        var rebuildWindow: ClosedRange<ContinuousClock.Instant>?
        while true {
            let started = ContinuousClock.now
            let results = try await Traffic.requests(
                from: node, to: target, port: Self.servicePort, proto: .tcp,
                sourcePorts: Array(repeating: nil, count: 100))
            var roundFailed = 0
            for case .failure(let failure) in results {
                if failed + roundFailed < 5 { log("  switchboard: connection failed: \(failure)") }
                roundFailed += 1
            }
            rounds.append((started, .now, results.count, roundFailed))
            connections += results.count
            failed += roundFailed
            if rebuilt { break }
            after = try await fullSyncs()
            let polled = ContinuousClock.now
            if after.count > before.count {
                rebuilt = true
                // It ended between the last two polls and lasted `seconds`: widen by that, and half a second.
                let seconds = after.seconds - before.seconds
                rebuildWindow = (lastPoll - .milliseconds(seconds * 1000) - .milliseconds(500))...(polled + .milliseconds(500))
            }
            lastPoll = polled
            guard process.isRunning else { throw GaveOut(proxy: "switchboard", reason: "exited during the rebuild") }
            if ContinuousClock.now > deadline {
                throw Failure(description: "no full rebuild within \(durationText((period + .seconds(600)).milliseconds / 1000))")
            }
        }
        let during = rounds.filter { round in rebuildWindow.map { $0.overlaps(round.start...round.end) } ?? false }
        let status = ProcessMemory.status(of: process.pid)
        let peak = [status["VmHWM"], status["VmRSS"]].compactMap { $0 }.max() ?? 0
        let rebuilds = after.count - before.count
        let result = ScaleResult.Rebuild(
            periodSeconds: period.milliseconds / 1000, connections: connections, failed: failed,
            connectionsDuring: during.reduce(0) { $0 + $1.count }, failedDuring: during.reduce(0) { $0 + $1.failed },
            rebuildMs: (after.seconds - before.seconds) * 1000 / Double(rebuilds), rebuilds: rebuilds,
            rssBeforeBytes: rssBefore, peakRSSBytes: peak, rssAfterBytes: status["VmRSS"] ?? 0)
        log("  switchboard: \(rebuilds) rebuild(s) of \(fixed(result.rebuildMs, 0)) ms under traffic; "
            + "\(result.failedDuring) of \(result.connectionsDuring) connections failed in the rounds around it, "
            + "\(failed) of \(connections) in all; RSS \(rssBefore >> 20) MiB before, "
            + "peak \(peak >> 20) MiB, \((status["VmRSS"] ?? 0) >> 20) MiB after")
        return result
    }

    /// Deletes the new Services and their slices, so the next proxy starts against the same S Services.
    private func deleteNewServices(writer: KubeWriter) async throws {
        for k in 0..<scale.newServices {
            for object in Self.newService(k, pods: []).objects {
                try await writer.request(.DELETE, KubeJSON.path(of: object))
            }
        }
    }
}
