import NFTModel

/// The fixed part of each family's table: hooks, dispatch maps, masquerade and reject plumbing.
/// Service-specific chains and maps are added by the compiler; churn lives in map elements.
enum Skeleton {
    static func table(family: IPFamily, node: NodeContext, nodeAddresses: [String]) -> Table {
        let p = family.nftPayload
        let addr = family.nftAddressType
        let n = RulesetNames.self
        var table = Table(id: TableID(family.nftFamily, node.tableName))

        table.add(NFTSet(
            name: n.serviceIPs, keyType: .types([addr, "inet_proto", "inet_service"]), dataType: "verdict",
            comment: "ClusterIP, external IP and LoadBalancer IP service ports"))
        table.add(NFTSet(
            name: n.serviceNodePorts, keyType: .types(["inet_proto", "inet_service"]), dataType: "verdict",
            comment: "NodePort service ports"))
        table.add(NFTSet(
            name: n.noEndpointServices, keyType: .types([addr, "inet_proto", "inet_service"]), dataType: "verdict",
            comment: "service ports without endpoints: rejected"))
        table.add(NFTSet(
            name: n.noEndpointNodePorts, keyType: .types(["inet_proto", "inet_service"]), dataType: "verdict",
            comment: "node ports without endpoints: rejected"))
        table.add(NFTSet(
            name: n.clusterIPs, keyType: .types([addr]),
            comment: "cluster IPs: traffic to a port that is not a service port is rejected"))
        table.add(NFTSet(
            name: n.clusterCIDRs, keyType: .types([addr]), flags: ["interval"],
            comment: "--cluster-cidr: traffic to a cluster IP from outside these is masqueraded",
            elements: Dictionary(uniqueKeysWithValues: CIDR.outermost(node.clusterCIDRs.filter { $0.family == family })
                .map { ($0.description, "") })))
        table.add(NFTSet(
            name: n.nodePortAddresses, keyType: .types([addr]), flags: ["interval"],
            comment: "local addresses that NodePorts answer on",
            elements: Dictionary(uniqueKeysWithValues: nodeAddresses.map { ($0, "") })))

        table.add(Chain(name: "nat-prerouting", base: BaseChain(type: .nat, hook: .prerouting, priority: -100),
                        rules: ["jump \(n.services)"]))
        table.add(Chain(name: "nat-output", base: BaseChain(type: .nat, hook: .output, priority: -100),
                        rules: ["jump \(n.services)"]))
        table.add(Chain(name: "nat-postrouting", base: BaseChain(type: .nat, hook: .postrouting, priority: 100),
                        rules: ["jump \(n.masquerading)"]))
        // Rejects happen in filter hooks (reject is not allowed in nat chains). By then DNAT has
        // rewritten the destination of every service that has endpoints, so only VIPs without
        // endpoints still match.
        table.add(Chain(name: "filter-input", base: BaseChain(type: .filter, hook: .input, priority: -10),
                        rules: ["ct state new jump \(n.endpointsCheck)"]))
        table.add(Chain(name: "filter-forward", base: BaseChain(type: .filter, hook: .forward, priority: -10),
                        rules: ["ct state invalid drop", "ct state new jump \(n.endpointsCheck)"]))
        table.add(Chain(name: "filter-output", base: BaseChain(type: .filter, hook: .output, priority: -10),
                        rules: ["ct state new jump \(n.endpointsCheck)"]))

        table.add(Chain(name: n.services, rules: [
            Rule("\(p) daddr . meta l4proto . th dport vmap @\(n.serviceIPs)"),
            Rule("fib daddr type local \(p) daddr @\(n.nodePortAddresses) meta l4proto . th dport vmap @\(n.serviceNodePorts)"),
        ]))
        table.add(Chain(name: n.endpointsCheck, rules: [
            Rule("\(p) daddr . meta l4proto . th dport vmap @\(n.noEndpointServices)"),
            Rule("fib daddr type local \(p) daddr @\(n.nodePortAddresses) meta l4proto . th dport vmap @\(n.noEndpointNodePorts)"),
            // Service ports were DNATed before this hook; what still goes to a cluster IP is for a
            // port the Service does not have.
            Rule("\(p) daddr @\(n.clusterIPs) reject"),
        ]))
        table.add(Chain(name: n.markForMasquerade, rules: [
            Rule("meta mark set meta mark | \(n.masqueradeMark)"),
        ]))
        table.add(Chain(name: n.masquerading, rules: [
            Rule("meta mark & \(n.masqueradeMark) == 0x00000000 return"),
            Rule("meta mark set meta mark ^ \(n.masqueradeMark)"),
            Rule("masquerade fully-random"),
        ]))
        table.add(Chain(name: n.rejectChain, rules: ["reject"]))
        return table
    }
}
