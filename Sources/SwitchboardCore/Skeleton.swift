import NetworkTypes
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
    static func table(family: IPFamily, node: NodeContext, nodeAddresses: [String], podCIDRs: [CIDR]) -> Table {
        let p = family.nftPayload
        let addr = family.nftAddressType
        let n = RulesetNames.self
        var table = Table(id: node.tableID(family))
        let vip = [addr, "inet_proto", "inet_service"]
        let nodePort = ["inet_proto", "inet_service"]

        for m in MaglevTable.ladder {
            table.add(NFTSet(name: n.serviceVIPs(m), keyType: .types(vip), comment: "service ports with \(m)-slot Maglev tables"))
            table.add(NFTSet(name: n.serviceNodePorts(m), keyType: .types(nodePort), comment: "node ports with \(m)-slot Maglev tables"))
            table.add(NFTSet(
                name: n.localVIPs(m), keyType: .types(vip),
                comment: "externalTrafficPolicy Local: external IPs with \(m)-slot tables of this node's endpoints"))
            table.add(NFTSet(
                name: n.localNodePorts(m), keyType: .types(nodePort),
                comment: "externalTrafficPolicy Local: node ports with \(m)-slot tables of this node's endpoints"))
        }
        for (name, key, what) in [
            (n.backends, vip, "service port"), (n.nodePortBackends, nodePort, "node port"),
            (n.localBackends, vip, "external IP port (this node's endpoints)"),
            (n.localNodePortBackends, nodePort, "node port (this node's endpoints)"),
        ] {
            table.add(NFTSet(
                name: name, keyType: .types(key + ["integer"]), dataType: "\(addr) . inet_service",
                comment: "Maglev tables: \(what) and slot to endpoint"))
        }
        table.add(NFTSet(name: n.externalVIPs, keyType: .types(vip), comment: "external and load-balancer IP service ports: masqueraded"))
        table.add(NFTSet(name: n.externalNodePorts, keyType: .types(nodePort), comment: "node ports: masqueraded"))
        table.add(NFTSet(
            name: n.externalLocalVIPs, keyType: .types(vip),
            comment: "externalTrafficPolicy Local: external and load-balancer IP service ports"))
        table.add(NFTSet(
            name: n.externalLocalNodePorts, keyType: .types(nodePort), comment: "externalTrafficPolicy Local: node ports"))
        table.add(NFTSet(name: n.hairpin, keyType: .types([addr, addr]), comment: "endpoints, for hairpin masquerade"))
        table.add(NFTSet(
            name: n.noEndpointServices, keyType: .types(vip), comment: "service ports without endpoints: rejected"))
        table.add(NFTSet(
            name: n.noEndpointNodePorts, keyType: .types(nodePort), comment: "node ports without endpoints: rejected"))
        table.add(NFTSet(
            name: n.noLocalEndpointServices, keyType: .types(vip),
            comment: "internalTrafficPolicy Local cluster IP ports without an endpoint on this node: dropped"))
        table.add(NFTSet(
            name: n.firewallVIPs, keyType: .types(vip), comment: "load-balancer IP ports with loadBalancerSourceRanges"))
        table.add(NFTSet(
            name: n.firewallAllow, keyType: .types(vip + [addr]), flags: ["interval"],
            comment: "load-balancer IP port and a source range it accepts"))
        table.add(NFTSet(
            name: n.affinity, keyType: .types([addr] + vip), dataType: "\(addr) . inet_service", flags: ["timeout"], size: 1_048_576,
            comment: "session affinity: client and service port to endpoint, filled by the packet path"))
        table.add(NFTSet(
            name: n.affinityServices, keyType: .types(vip), dataType: "verdict",
            comment: "sessionAffinity ClientIP service ports: the chain that records their endpoint"))
        table.add(NFTSet(
            name: n.affinityNodePorts, keyType: .types(nodePort), dataType: "verdict",
            comment: "sessionAffinity ClientIP node ports: the chain that records their endpoint"))
        table.add(NFTSet(
            name: n.clusterIPs, keyType: .types([addr]),
            comment: "cluster IPs: traffic to a port that is not a service port is rejected"))
        table.add(NFTSet(
            name: n.canary, keyType: .types(["inet_service"]),
            comment: "present while the table is intact; checked by the agent every --sync-period",
            elements: [n.canaryElement: ""]))
        table.add(NFTSet(
            name: n.podCIDRs, keyType: .types([addr]), flags: ["interval"],
            comment: "pod CIDRs (--detect-local-mode): traffic to a cluster IP from elsewhere is masqueraded",
            elements: Dictionary(uniqueKeysWithValues: CIDR.outermost(podCIDRs.filter { $0.family == family })
                .map { ($0.description, "") })))
        table.add(NFTSet(
            name: n.nodePortAddresses, keyType: .types([addr]), flags: ["interval"],
            comment: "local addresses that NodePorts answer on",
            elements: Dictionary(uniqueKeysWithValues: nodeAddresses.map { ($0, "") })))

        table.add(Chain(name: "nat-prerouting", base: BaseChain(type: .nat, hook: .prerouting, priority: -100),
                        rules: ["jump \(n.services)"]))
        table.add(Chain(name: "nat-output", base: BaseChain(type: .nat, hook: .output, priority: -100),
                        rules: ["jump \(n.services)"]))
        var postrouting: [Rule] = [
            // Hairpin: a pod reaching itself through its Service must be masqueraded, or the reply would
            // go straight back to it from its own address and be dropped.
            Rule("ct status dnat \(p) saddr . \(p) daddr @\(n.hairpin) jump \(n.markForMasquerade)"),
        ]
        // Session affinity: the first packet of every connection DNATed to an affinity Service records
        // (or refreshes) client → endpoint. nft needs the protocol to type `ct original proto-dst`.
        for proto in L4Protocol.allCases.map(\.nftName) {
            postrouting.append(Rule(
                "meta l4proto \(proto) ct status dnat ct original \(p) daddr . meta l4proto . ct original proto-dst vmap @\(n.affinityServices)"))
            postrouting.append(Rule(
                "meta l4proto \(proto) ct status dnat ct original \(p) daddr @\(n.nodePortAddresses) meta l4proto . ct original proto-dst vmap @\(n.affinityNodePorts)"))
        }
        postrouting.append(Rule("jump \(n.masquerading)"))
        table.add(Chain(name: "nat-postrouting", base: BaseChain(type: .nat, hook: .postrouting, priority: 100), rules: postrouting))
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
        let pods = podSource(family: family, node: node, podCIDRs: podCIDRs)
        var dispatch: [Rule] = [
            // loadBalancerSourceRanges: new connections to a load-balancer IP from outside its ranges are
            // dropped; the node itself may always reach it.
            Rule("\(vipMatch) @\(n.firewallVIPs) \(vipMatch) . \(p) saddr != @\(n.firewallAllow) fib saddr type != local drop"),
            // Masquerade decisions come before any DNAT (an affinity hit DNATs at once): external traffic
            // of externalTrafficPolicy Cluster; the node's own traffic to Local ones (its source would be
            // the VIP itself); cluster-IP traffic from outside the pods, or all with --masquerade-all.
            Rule("\(vipMatch) @\(n.externalVIPs) jump \(n.markForMasquerade)"),
            Rule("\(nodePortMatch) @\(n.externalNodePorts) jump \(n.markForMasquerade)"),
            Rule("\(vipMatch) @\(n.externalLocalVIPs) fib saddr type local jump \(n.markForMasquerade)"),
            Rule("\(nodePortMatch) @\(n.externalLocalNodePorts) fib saddr type local jump \(n.markForMasquerade)"),
        ]
        if node.masqueradeAll {
            dispatch.append(Rule("\(p) daddr @\(n.clusterIPs) jump \(n.markForMasquerade)"))
        } else if let pods {
            // A named set, not an anonymous one: nft merges adjacent prefixes of an anonymous set
            // (10.244.0.0/16 and 10.245.0.0/16 list back as 10.244.0.0/15), which would make the
            // kernel's rule differ from ours on every comparison.
            dispatch.append(Rule("\(p) daddr @\(n.clusterIPs) \(pods.not) jump \(n.markForMasquerade)"))
        }
        // Session affinity: a client with a live entry for an affinity Service goes back to its endpoint
        // (a miss falls through to Maglev). Entries of Services that dropped affinity are not looked at.
        let affinityLookup = "dnat \(p) to \(p) saddr . \(vipMatch) map @\(n.affinity)"
        dispatch.append(Rule("\(vipMatch) @\(n.affinityServices) \(affinityLookup)"))
        dispatch.append(Rule("\(nodePortMatch) @\(n.affinityNodePorts) \(affinityLookup)"))
        // externalTrafficPolicy Local: external clients to this node's endpoints; pods and the node
        // itself return here and use all endpoints.
        dispatch.append(Rule("\(vipMatch) @\(n.externalLocalVIPs) jump \(n.externalLocal)"))
        dispatch.append(Rule("\(nodePortMatch) @\(n.externalLocalNodePorts) jump \(n.externalLocalNodePort)"))
        for m in MaglevTable.ladder { dispatch.append(Rule("\(vipMatch) @\(n.serviceVIPs(m)) goto \(n.maglevChain(m))")) }
        for m in MaglevTable.ladder {
            dispatch.append(Rule("\(nodePortMatch) @\(n.serviceNodePorts(m)) goto \(n.nodePortMaglevChain(m))"))
        }
        table.add(Chain(name: n.services, rules: dispatch))

        var localPrefix: [Rule] = []
        if let pods { localPrefix.append(Rule("\(pods.is) return")) }
        localPrefix.append(Rule("fib saddr type local return"))
        table.add(Chain(name: n.externalLocal, rules: localPrefix
            + MaglevTable.ladder.map { Rule("\(vipMatch) @\(n.localVIPs($0)) goto \(n.localMaglevChain($0))") }
            + [Rule("drop")]))
        table.add(Chain(name: n.externalLocalNodePort, rules: localPrefix
            + MaglevTable.ladder.map { Rule("meta l4proto . th dport @\(n.localNodePorts($0)) goto \(n.localNodePortMaglevChain($0))") }
            + [Rule("drop")]))

        let hash = "jhash \(p) saddr . th sport mod"
        for m in MaglevTable.ladder {
            table.add(Chain(name: n.maglevChain(m), rules: [
                Rule("dnat \(p) to \(vipMatch) . \(hash) \(m) seed \(n.jhashSeed) map @\(n.backends)"),
            ]))
            table.add(Chain(name: n.nodePortMaglevChain(m), rules: [
                Rule("dnat \(p) to meta l4proto . th dport . \(hash) \(m) seed \(n.jhashSeed) map @\(n.nodePortBackends)"),
            ]))
            table.add(Chain(name: n.localMaglevChain(m), rules: [
                Rule("dnat \(p) to \(vipMatch) . \(hash) \(m) seed \(n.jhashSeed) map @\(n.localBackends)"),
            ]))
            table.add(Chain(name: n.localNodePortMaglevChain(m), rules: [
                Rule("dnat \(p) to meta l4proto . th dport . \(hash) \(m) seed \(n.jhashSeed) map @\(n.localNodePortBackends)"),
            ]))
        }

        table.add(Chain(name: n.endpointsCheck, rules: [
            Rule("\(vipMatch) @\(n.noEndpointServices) reject"),
            Rule("\(nodePortMatch) @\(n.noEndpointNodePorts) reject"),
            Rule("\(vipMatch) @\(n.noLocalEndpointServices) drop"),
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

    /// How a packet from a pod is recognised (`--detect-local-mode`), as a match and its negation; nil
    /// when the mode has nothing to go on (no pod CIDR of this family known).
    static func podSource(family: IPFamily, node: NodeContext, podCIDRs: [CIDR]) -> (is: String, not: String)? {
        let p = family.nftPayload
        switch node.localDetection {
        case .clusterCIDR, .nodeCIDR:
            guard podCIDRs.contains(where: { $0.family == family }) else { return nil }
            return ("\(p) saddr @\(RulesetNames.podCIDRs)", "\(p) saddr != @\(RulesetNames.podCIDRs)")
        case .interfaceNamePrefix(let prefix):
            // Interface names from the configuration are validated (`ProxySettings.checkInterfaceName`);
            // `nftQuoted` keeps a NodeContext built any other way from breaking out of the string.
            let pattern = nftQuoted(prefix + "*")
            return ("iifname \(pattern)", "iifname != \(pattern)")
        case .bridgeInterface(let bridge):
            let name = nftQuoted(bridge)
            return ("iifname \(name)", "iifname != \(name)")
        }
    }
}
