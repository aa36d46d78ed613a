import NFTModel

/// `switchboard cleanup`: removes what Switchboard created and, on request, what kube-proxy left
/// behind, so that a node can switch proxies in either direction. Each removal is one atomic batch.
public enum Cleanup {
    /// What a cleanup removed, for the operator's log.
    public struct Report: Hashable, Sendable {
        public var removed: [String] = []
        public init() {}
    }

    /// Deletes Switchboard's tables (`ip <name>`, `ip6 <name>`), if present.
    public static func removeSwitchboard(_ lib: LibNFTables, tableName: String) async throws(NetfilterError) -> Report {
        try await deleteTables(lib, names: [tableName])
    }

    /// Deletes kube-proxy's leftovers:
    /// - the nftables mode's tables `ip kube-proxy` and `ip6 kube-proxy`;
    /// - the iptables mode's `KUBE-*` chains as iptables-nft stores them (nftables tables `filter`,
    ///   `nat`, `mangle` of families ip and ip6): every rule of another chain that jumps to or goes to a
    ///   `KUBE-*` chain is deleted by handle, then the `KUBE-*` chains are flushed and deleted. Rules of
    ///   other software in those tables are left alone.
    /// iptables-legacy state (x_tables, not nftables) cannot be reached through libnftables; on such
    /// nodes run `iptables-legacy-save | grep -v KUBE` by hand (see deploy/MIGRATING.md).
    public static func removeKubeProxyLeftovers(_ lib: LibNFTables) async throws(NetfilterError) -> Report {
        var report = try await deleteTables(lib, names: ["kube-proxy"])
        let present = try await tables(lib)
        var unhook: [String] = []
        var flush: [String] = []
        var delete: [String] = []
        for family in ["ip", "ip6"] {
            for name in ["filter", "nat", "mangle"] where present.contains("\(family) \(name)") {
                let listing = try await lib.listWithHandles("list table \(family) \(name)")
                var chain: String?
                for raw in listing.split(separator: "\n") {
                    let line = raw.trimmingCharacters(in: " \t")
                    if line.hasPrefix("chain ") {
                        chain = line.dropFirst("chain ".count).split(separator: " ").first.map(String.init)
                        if let c = chain, c.hasPrefix("KUBE-") {
                            flush.append("flush chain \(family) \(name) \(c)")
                            delete.append("delete chain \(family) \(name) \(c)")
                            report.removed.append("chain \(family) \(name) \(c)")
                        }
                        continue
                    }
                    guard let c = chain, !c.hasPrefix("KUBE-"), line.contains("jump KUBE-") || line.contains("goto KUBE-"),
                        let marker = line.range(of: "# handle ")
                    else { continue }
                    let handle = line[marker.upperBound...].trimmingCharacters(in: " ")
                    unhook.append("delete rule \(family) \(name) \(c) handle \(handle)")
                    report.removed.append("rule \(family) \(name) \(c) handle \(handle)")
                }
            }
        }
        let script = unhook + flush + delete
        if !script.isEmpty { _ = try await lib.run(script.joined(separator: "\n") + "\n") }
        return report
    }

    /// Destroys the named ipsets that exist (the `--ipset-export` sets and their temporaries). A set that
    /// a rule still references cannot be destroyed; it is kept and its error returned, the others are removed.
    public static func removeIPSets(
        _ lib: LibIPSet, names: [String]
    ) async -> (report: Report, kept: [String: NetfilterError]) {
        var report = Report()
        var kept: [String: NetfilterError] = [:]
        let present: String
        do {
            present = try await lib.run("list -n")
        } catch {
            return (report, [:])  // no ipset support in this kernel: nothing of ours can exist
        }
        let existing = Set(present.split(separator: "\n").map(String.init))
        for name in names where existing.contains(name) {
            do {
                try await lib.run(lines: ["destroy \(name)"])
                report.removed.append("ipset \(name)")
            } catch {
                kept[name] = error
            }
        }
        return (report, kept)
    }

    private static func deleteTables(_ lib: LibNFTables, names: [String]) async throws(NetfilterError) -> Report {
        let present = try await tables(lib)
        var report = Report()
        var script = ""
        for family in ["ip", "ip6", "inet"] {
            for name in names where present.contains("\(family) \(name)") {
                script += "delete table \(family) \(name)\n"
                report.removed.append("table \(family) \(name)")
            }
        }
        if !script.isEmpty { _ = try await lib.run(script) }
        return report
    }

    /// `family name` of every table in the kernel.
    private static func tables(_ lib: LibNFTables) async throws(NetfilterError) -> Set<String> {
        let listing = try await lib.run("list tables")
        return Set(listing.split(separator: "\n").compactMap { line in
            line.hasPrefix("table ") ? String(line.dropFirst("table ".count)) : nil
        })
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
