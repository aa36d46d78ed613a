import Logging
import NetworkTypes
import SwitchboardCore
import Synchronization
import SwitchboardTesting
import Testing

@testable import SwitchboardAgent
import SwitchboardTestTraits

/// Records what it is asked to delete; "deletes" one entry per filter, or fails when told to.
final class FakeConntrack: ConntrackBackend {
    struct Failure: Error {}
    private let state = Mutex<(calls: [[ConntrackFilter]], failing: Bool)>(([], false))

    var calls: [[ConntrackFilter]] { state.withLock { $0.calls } }
    func fail(_ failing: Bool) { state.withLock { $0.failing = failing } }

    func delete(_ filters: [ConntrackFilter]) async throws -> Int {
        try state.withLock {
            $0.calls.append(filters)
            if $0.failing { throw Failure() }
        }
        return filters.count
    }
}

@Suite(.exclusive) struct ConntrackCleanerTests {
    static func dns(_ addresses: [String]) -> [KubeObject] {
        [.service("dns", ips: ["10.96.0.30"], ports: [ServicePort(name: "dns", protocol: .udp, port: 53)]),
         .slice("dns-1", service: "dns", ports: [EndpointPort(name: "dns", protocol: .udp, port: 5353)],
                endpoints: addresses.map { .at($0) })]
    }

    @Test func theControllerCleansStaleFlowsAfterEachSyncAndKeepsGoingWhenItFails() async throws {
        let conntrack = FakeConntrack()
        var logger = Logger(label: "test.conntrack")
        logger.logLevel = .critical
        let h = ControllerHarness(followers: { [ConntrackCleaner(backend: conntrack, metrics: $0, logger: logger)] })
        try await h.run {
            // First sync: every UDP port with endpoints is "newly active" (kube-proxy's first sync too).
            try await h.start(with: Objects.initial + Self.dns(["10.3.0.1"]))
            #expect(conntrack.calls.map { $0.map(\.description) } == [["-f ipv4 -p udp --orig-dst 10.96.0.30 --dport 53"]])

            // b1 → b2: only the flows answered by 10.3.0.1 go. TCP Services (web, api) are never touched.
            h.source.send(.upsert(Self.dns(["10.3.0.2"])[1]))
            #expect(try await h.nextReport().succeeded)
            #expect(conntrack.calls.last?.map(\.description)
                    == ["-f ipv4 -p udp --orig-dst 10.96.0.30 --dport 53 --reply-src 10.3.0.1"])
            #expect(h.sample(MetricName.conntrackDeletedEntries) == 2)
            #expect(h.sample(#"kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv4"}"#) == 2)
            #expect(h.sample(#"kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family="IPv4"}"#) == 2)
            #expect(h.sample(#"kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv6"}"#) == 0)

            // A TCP-only change asks nothing of conntrack.
            h.source.send(.upsert(Objects.slice("web-1", service: "web", ["10.1.0.7"])))
            #expect(try await h.nextReport().succeeded)
            #expect(conntrack.calls.count == 2)

            // A failing cleanup is counted; the sync still succeeded and the next one runs.
            conntrack.fail(true)
            h.source.send(.upsert(Self.dns(["10.3.0.3"])[1]))
            #expect(try await h.nextReport().succeeded)
            #expect(conntrack.calls.count == 3)
            #expect(h.sample(MetricName.conntrackCleanupErrors) == 1)
            conntrack.fail(false)
            h.source.send(.upsert(Self.dns(["10.3.0.4"])[1]))
            #expect(try await h.nextReport().succeeded)
            // The failed cleanup is not retried: the summary moved on to 10.3.0.3 (as kube-proxy).
            #expect(conntrack.calls.last?.map(\.description)
                    == ["-f ipv4 -p udp --orig-dst 10.96.0.30 --dport 53 --reply-src 10.3.0.3"])
            #expect(h.sample(MetricName.conntrackDeletedEntries) == 3)
            // The failed cleanup was timed too (as kube-proxy times every reconcile).
            #expect(h.sample(#"kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family="IPv4"}"#) == 4)
        }
    }

    @Test func eachFamilyIsCleanedAndCountedOnItsOwn() async throws {
        let conntrack = FakeConntrack()
        var logger = Logger(label: "test.conntrack")
        logger.logLevel = .critical
        let dual = KubeObject.service(
            "dns", ips: ["10.96.0.30", "fd00:10:96::30"], ports: [ServicePort(name: "dns", protocol: .udp, port: 53)])
        func slice(_ family: EndpointAddressType, _ address: String) -> KubeObject {
            .slice(
                "dns-\(family.rawValue)", service: "dns", family: family,
                ports: [EndpointPort(name: "dns", protocol: .udp, port: 5353)], endpoints: [.at(address)])
        }
        let h = ControllerHarness(followers: { [ConntrackCleaner(backend: conntrack, metrics: $0, logger: logger)] })
        try await h.run {
            try await h.start(with: Objects.initial + [dual, slice(.ipv4, "10.3.0.1"), slice(.ipv6, "fd00:3::1")])
            #expect(conntrack.calls.map { $0.map(\.family) } == [[.v4], [.v6]])
            for family in ["IPv4", "IPv6"] {
                let labels = #"{ip_family="\#(family)"}"#
                #expect(h.sample("kubeproxy_conntrack_reconciler_deleted_entries_total" + labels) == 1)
                #expect(h.sample("kubeproxy_conntrack_reconciler_sync_duration_seconds_count" + labels) == 1)
            }
            #expect(h.sample(MetricName.conntrackDeletedEntries) == 2)
        }
    }
}
