import NFTModel

/// Each family's table. Its chains and sets are fixed (the Maglev chains and dispatch sets exist for
/// every size on the ladder, used or not); Services only ever add and remove elements.
///
/// A packet's way through nat prerouting/output (`services`): an external or load-balancer VIP is marked
/// for masquerade; the VIP (or node port) is looked up in the dispatch set of its Maglev size M, which
/// sends it to `maglev-mM`; that chain marks cluster-IP traffic from outside the cluster CIDRs and DNATs to
/// `backends[daddr . proto . dport . jhash(saddr . sport) mod M]`. Nat postrouting masquerades what was
/// marked, and hairpin traffic (a pod reaching itself). Filter hooks reject new connections to VIPs
/// without endpoints and to cluster-IP ports that are no service port.
enum Skeleton {
    static func table(family: IPFamily, node: NodeContext, nodeAddresses: [String]) -> Table {
        let p = family.nftPayload
        let addr = family.nftAddressType
        let n = RulesetNames.self
        var table = Table(id: node.tableID(family))
        let vip = [addr, "inet_proto", "inet_service"]
        let nodePort = ["inet_proto", "inet_service"]

        for m in MaglevTable.ladder {
            table.add(NFTSet(name: n.serviceVIPs(m), keyType: .types(vip), comment: "service ports with \(m)-slot Maglev tables"))
            table.add(NFTSet(name: n.serviceNodePorts(m), keyType: .types(nodePort), comment: "node ports with \(m)-slot Maglev tables"))
        }
        table.add(NFTSet(
            name: n.backends, keyType: .types(vip + ["integer"]), dataType: "\(addr) . inet_service",
            comment: "Maglev tables: service port and slot to endpoint"))
        table.add(NFTSet(
            name: n.nodePortBackends, keyType: .types(nodePort + ["integer"]), dataType: "\(addr) . inet_service",
            comment: "Maglev tables: node port and slot to endpoint"))
        table.add(NFTSet(name: n.externalVIPs, keyType: .types(vip), comment: "external and load-balancer IP service ports"))
        table.add(NFTSet(name: n.hairpin, keyType: .types([addr, addr]), comment: "endpoints, for hairpin masquerade"))
        table.add(NFTSet(
            name: n.noEndpointServices, keyType: .types(vip), comment: "service ports without endpoints: rejected"))
        table.add(NFTSet(
            name: n.noEndpointNodePorts, keyType: .types(nodePort), comment: "node ports without endpoints: rejected"))
        table.add(NFTSet(
            name: n.clusterIPs, keyType: .types([addr]),
            comment: "cluster IPs: traffic to a port that is not a service port is rejected"))
        table.add(NFTSet(
            name: n.canary, keyType: .types(["inet_service"]),
            comment: "present while the table is intact; checked by the agent every --sync-period",
            elements: [n.canaryElement: ""]))
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
        table.add(Chain(name: "nat-postrouting", base: BaseChain(type: .nat, hook: .postrouting, priority: 100), rules: [
            // Hairpin: a pod reaching itself through its Service must be masqueraded, or the reply would
            // go straight back to it from its own address and be dropped.
            Rule("ct status dnat \(p) saddr . \(p) daddr @\(n.hairpin) jump \(n.markForMasquerade)"),
            Rule("jump \(n.masquerading)"),
        ]))
        // Rejects happen in filter hooks (reject is not allowed in nat chains). By then DNAT has
        // rewritten the destination of every service that has endpoints, so only VIPs without
        // endpoints still match.
        table.add(Chain(name: "filter-input", base: BaseChain(type: .filter, hook: .input, priority: -10),
                        rules: ["ct state new jump \(n.endpointsCheck)"]))
        table.add(Chain(name: "filter-forward", base: BaseChain(type: .filter, hook: .forward, priority: -10),
                        rules: ["ct state invalid drop", "ct state new jump \(n.endpointsCheck)"]))
        table.add(Chain(name: "filter-output", base: BaseChain(type: .filter, hook: .output, priority: -10),
                        rules: ["ct state new jump \(n.endpointsCheck)"]))

        let vipMatch = "\(p) daddr . meta l4proto . th dport"
        let nodePortMatch = "fib daddr type local \(p) daddr @\(n.nodePortAddresses) meta l4proto . th dport"
        var dispatch: [Rule] = [Rule("\(vipMatch) @\(n.externalVIPs) jump \(n.markForMasquerade)")]
        for m in MaglevTable.ladder { dispatch.append(Rule("\(vipMatch) @\(n.serviceVIPs(m)) goto \(n.maglevChain(m))")) }
        for m in MaglevTable.ladder {
            dispatch.append(Rule("\(nodePortMatch) @\(n.serviceNodePorts(m)) goto \(n.nodePortMaglevChain(m))"))
        }
        table.add(Chain(name: n.services, rules: dispatch))

        // Which cluster-IP traffic is masqueraded: all with --masquerade-all; else what comes from
        // outside the cluster CIDRs, when they are known.
        var clusterMasquerade: [Rule] = []
        if node.masqueradeAll {
            clusterMasquerade.append(Rule("jump \(n.markForMasquerade)"))
        } else if node.clusterCIDRs.contains(where: { $0.family == family }) {
            // A named set, not an anonymous one: nft merges adjacent prefixes of an anonymous set
            // (10.244.0.0/16 and 10.245.0.0/16 list back as 10.244.0.0/15), which would make the
            // kernel's rule differ from ours on every comparison.
            clusterMasquerade.append(Rule(
                "\(p) daddr @\(n.clusterIPs) \(p) saddr != @\(n.clusterCIDRs) jump \(n.markForMasquerade)"))
        }
        let hash = "jhash \(p) saddr . th sport mod"
        for m in MaglevTable.ladder {
            table.add(Chain(name: n.maglevChain(m), rules: clusterMasquerade + [
                Rule("dnat \(p) to \(vipMatch) . \(hash) \(m) seed \(n.jhashSeed) map @\(n.backends)"),
            ]))
            table.add(Chain(name: n.nodePortMaglevChain(m), rules: [
                Rule("jump \(n.markForMasquerade)"),
                Rule("dnat \(p) to meta l4proto . th dport . \(hash) \(m) seed \(n.jhashSeed) map @\(n.nodePortBackends)"),
            ]))
        }

        table.add(Chain(name: n.endpointsCheck, rules: [
            Rule("\(vipMatch) @\(n.noEndpointServices) reject"),
            Rule("\(nodePortMatch) @\(n.noEndpointNodePorts) reject"),
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
        return table
    }
}
