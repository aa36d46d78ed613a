import NFTModel

// Session-affinity entries (`client . VIP . proto . port : endpoint . port`, added by the packet path)
// that no longer lead where the ruleset would send the client: the entry point lost affinity or is
// gone, or the endpoint is no longer one of its backends. kube-proxy deletes an endpoint's affinity set
// with the endpoint; here the agent (and `apply`) deletes these elements after each sync, so a client
// is never held on a removed endpoint until its timeout.

extension Table {
    /// Whether any entry point of this table has session affinity (only then the kernel's `affinity`
    /// map can hold entries that matter).
    public var hasSessionAffinity: Bool {
        !(sets[RulesetNames.affinityServices]?.elements.isEmpty ?? true)
            || !(sets[RulesetNames.affinityNodePorts]?.elements.isEmpty ?? true)
    }

    /// The keys of `kernelAffinity` (the kernel's `affinity` map) that are stale against this desired table.
    public func staleAffinityKeys(_ kernelAffinity: NFTSet) -> [String] {
        let n = RulesetNames.self
        var endpoints: [String: Set<String>] = [:]  // entry point → its endpoints, computed once each
        func backends(of entry: String, nodePort: Bool) -> Set<String> {
            if let known = endpoints[entry] { return known }
            let (dispatch, local, maps) =
                nodePort
                ? (n.serviceNodePorts, n.localNodePorts, (n.nodePortBackends, n.localNodePortBackends))
                : (n.serviceVIPs, n.localVIPs, (n.backends, n.localBackends))
            var out = Set<String>()
            for m in MaglevTable.ladder {
                if sets[dispatch(m)]?.elements[entry] != nil, let map = sets[maps.0] {
                    for slot in 0..<m { if let target = map.elements["\(entry) . \(slot)"] { out.insert(target) } }
                }
                if sets[local(m)]?.elements[entry] != nil, let map = sets[maps.1] {
                    for slot in 0..<m { if let target = map.elements["\(entry) . \(slot)"] { out.insert(target) } }
                }
            }
            endpoints[entry] = out
            return out
        }
        var stale: [String] = []
        for (key, target) in kernelAffinity.elements {
            // client . address . proto . port
            let parts = key.components(separatedBy: " . ")
            guard parts.count == 4 else {
                stale.append(key)
                continue
            }
            let vip = parts[1...].joined(separator: " . ")
            let nodePort = parts[2...].joined(separator: " . ")
            var valid = false
            if sets[n.affinityServices]?.elements[vip] != nil {
                valid = backends(of: vip, nodePort: false).contains(target)
            } else if sets[n.affinityNodePorts]?.elements[nodePort] != nil {
                valid = backends(of: nodePort, nodePort: true).contains(target)
            }
            if !valid { stale.append(key) }
        }
        return stale.sorted(by: canonicalOrder)
    }
}
