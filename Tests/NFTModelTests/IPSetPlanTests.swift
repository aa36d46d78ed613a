import Testing

@testable import NFTModel

@Suite("IPSetPlan: build-then-swap of changed sets only")
struct IPSetPlanTests {
    static let clusterIP = IPSet(
        name: "KUBE-CLUSTER-IP", type: .hashIPPort, family: .inet, entries: ["10.96.0.10,tcp:80", "10.96.0.11,udp:53"])
    static let nodePorts = IPSet(name: "KUBE-NODE-PORT-TCP", type: .bitmapPort, family: nil, entries: ["30080"])

    @Test("A changed set is filled beside the live one and swapped in; an unchanged one is not touched")
    func changedOnly() {
        var old = Self.clusterIP
        old.entries = ["10.96.0.10,tcp:80"]
        let plan = IPSetPlan(
            desired: [Self.clusterIP, Self.nodePorts],
            written: ["KUBE-CLUSTER-IP": old, "KUBE-NODE-PORT-TCP": Self.nodePorts],
            kernel: ["KUBE-CLUSTER-IP": Self.clusterIP.header, "KUBE-NODE-PORT-TCP": Self.nodePorts.header])
        #expect(plan.description == """
            create KUBE-CLUSTER-IP-tmp hash:ip,port family inet hashsize 1024 maxelem 65536
            add KUBE-CLUSTER-IP-tmp 10.96.0.10,tcp:80
            add KUBE-CLUSTER-IP-tmp 10.96.0.11,udp:53
            swap KUBE-CLUSTER-IP-tmp KUBE-CLUSTER-IP
            destroy KUBE-CLUSTER-IP-tmp

            """)
    }

    @Test("A missing live set is created first; a leftover temporary is destroyed first")
    func missingAndLeftover() {
        let plan = IPSetPlan(
            desired: [Self.nodePorts], written: ["KUBE-NODE-PORT-TCP": Self.nodePorts],
            kernel: ["KUBE-NODE-PORT-TCP-tmp": Self.nodePorts.header])
        #expect(plan.description == """
            destroy KUBE-NODE-PORT-TCP-tmp
            create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
            create KUBE-NODE-PORT-TCP-tmp bitmap:port range 0-65535
            add KUBE-NODE-PORT-TCP-tmp 30080
            swap KUBE-NODE-PORT-TCP-tmp KUBE-NODE-PORT-TCP
            destroy KUBE-NODE-PORT-TCP-tmp

            """)
    }

    @Test("A live set of another type is destroyed and recreated (swap needs the same type)")
    func wrongType() {
        let plan = IPSetPlan(
            desired: [Self.clusterIP], written: ["KUBE-CLUSTER-IP": Self.clusterIP],
            kernel: ["KUBE-CLUSTER-IP": IPSetHeader(typeName: "hash:ip", family: .inet)])
        #expect(plan.steps.map(\.commands.first) == [.destroy("KUBE-CLUSTER-IP")])
        #expect(plan.steps[0].commands[1] == .create(name: "KUBE-CLUSTER-IP", type: .hashIPPort, family: .inet))
    }

    @Test("Nothing to do: an empty plan")
    func nothing() {
        let plan = IPSetPlan(
            desired: [Self.clusterIP], written: ["KUBE-CLUSTER-IP": Self.clusterIP],
            kernel: ["KUBE-CLUSTER-IP": Self.clusterIP.header])
        #expect(plan.isEmpty)
    }

    @Test(
        "Temporary names fit ipset's 31 characters and stay distinct",
        arguments: [
            ("KUBE-CLUSTER-IP", "KUBE-CLUSTER-IP-tmp"),
            ("KUBE-LOAD-BALANCER-SOURCE-CIDR", nil),
            ("KUBE-6-LOAD-BALANCER-SOURCE-CID", nil),
            ("KUBE-6-LOAD-BALANCER-SOURCE-IP", nil),
        ] as [(String, String?)])
    func temporaryNames(name: String, expected: String?) {
        let temporary = IPSet.temporaryName(for: name)
        #expect(temporary.utf8.count <= 31)
        #expect(temporary.hasSuffix("-tmp"))
        if let expected { #expect(temporary == expected) }
        #expect(IPSet.temporaryName(for: "KUBE-6-LOAD-BALANCER-SOURCE-CID")
            != IPSet.temporaryName(for: "KUBE-6-LOAD-BALANCER-SOURCE-IP"))
    }
}
