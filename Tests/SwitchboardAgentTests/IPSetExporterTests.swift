import Logging
import NetworkTypes
import NFTModel
import SwitchboardCore
import SwitchboardTesting
import Testing

@testable import SwitchboardAgent
import SwitchboardTestTraits

private func state(_ clusterIPs: [String]) -> ClusterState {
    ClusterState(clusterIPs.enumerated().map { index, ip in
        .service(Service(
            ref: ObjectRef(namespace: "default", name: "s\(index)"), clusterIPs: [IPAddress(ip)!],
            ports: [ServicePort(name: "http", port: 80)]))
    })
}

@Suite("IPSetExporter: follows syncs, rebuilds changed sets only, never stops on errors", .exclusive)
struct IPSetExporterTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("First sync creates every set; a change rebuilds only its set; a deleted set is recreated")
    func followsChanges() async throws {
        let fake = FakeIPSets()
        let exporter = IPSetExporter(backend: fake, node: NodeContext(nodeName: "n1"), logger: logger)
        await exporter.synced(state(["10.96.0.10"]), changed: nil)
        #expect(fake.sets.count == 30)
        #expect(fake.sets["KUBE-CLUSTER-IP"]?.entries == ["10.96.0.10,tcp:80"])
        #expect(fake.sets.keys.allSatisfy { !$0.hasSuffix("-tmp") })

        fake.clearLog()
        await exporter.synced(state(["10.96.0.10", "10.96.0.11"]), changed: [ObjectRef(namespace: "default", name: "s1")])
        #expect(fake.sets["KUBE-CLUSTER-IP"]?.entries == ["10.96.0.10,tcp:80", "10.96.0.11,tcp:80"])
        #expect(fake.log.contains(.swap("KUBE-CLUSTER-IP-tmp", "KUBE-CLUSTER-IP")))
        #expect(Set(fake.log.compactMap { if case .swap(_, let live) = $0 { live } else { nil } }) == ["KUBE-CLUSTER-IP"])

        fake.clearLog()
        await exporter.synced(state(["10.96.0.10", "10.96.0.11"]), changed: [])
        #expect(fake.log.isEmpty, "nothing changed, nothing touched: \(fake.log)")

        fake.remove("KUBE-LOOP-BACK")
        await exporter.synced(state(["10.96.0.10", "10.96.0.11"]), changed: [])
        #expect(fake.sets["KUBE-LOOP-BACK"] != nil)
        #expect(fake.log.contains(.create(name: "KUBE-LOOP-BACK", type: .hashIPPortIP, family: .inet)))
    }

    @Test("A restarted exporter reads the kernel and leaves sets that are already right alone")
    func adoptsKernelState() async throws {
        let fake = FakeIPSets()
        let node = NodeContext(nodeName: "n1")
        await IPSetExporter(backend: fake, node: node, logger: logger).synced(state(["10.96.0.10"]), changed: nil)
        fake.clearLog()
        await IPSetExporter(backend: fake, node: node, logger: logger).synced(state(["10.96.0.10"]), changed: nil)
        #expect(fake.log.isEmpty)
    }

    @Test("Failures are counted and the other sets still exported; the failed set is retried next sync")
    func failuresCounted() async throws {
        let fake = FakeIPSets()
        let metrics = AgentMetrics()
        let exporter = IPSetExporter(backend: fake, node: NodeContext(nodeName: "n1"), logger: logger, metrics: metrics)
        fake.setFailing { if case .swap(_, "KUBE-CLUSTER-IP") = $0 { true } else { false } }
        await exporter.synced(state(["10.96.0.10"]), changed: nil)
        #expect(metrics.exposition().contains("switchboard_ipset_export_errors_total 1"))
        #expect(fake.sets["KUBE-CLUSTER-IP"]?.entries == [])
        #expect(fake.sets["KUBE-CLUSTER-IP-tmp"] == nil, "the temporary is removed after a failure")
        #expect(fake.sets["KUBE-NODE-PORT-TCP"] != nil)

        fake.setFailReads(true)
        await exporter.synced(state(["10.96.0.10"]), changed: [])
        #expect(metrics.exposition().contains("switchboard_ipset_export_errors_total 2"))

        fake.setFailReads(false)
        fake.setFailing(nil)
        await exporter.synced(state(["10.96.0.10"]), changed: [])
        #expect(fake.sets["KUBE-CLUSTER-IP"]?.entries == ["10.96.0.10,tcp:80"])
    }
}
