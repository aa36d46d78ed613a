import NetworkTypes

/// The settings kube-proxy takes as flags or from its config file, each nil when that source does not
/// give it. Flags and the file each produce one value; `overriding(_:)` layers them with kube-proxy's
/// precedence (a flag given on the command line wins over the file), and what is still nil afterwards
/// keeps Switchboard's default.
public struct ProxySettings: Hashable, Sendable {
    /// `--hostname-override` / `hostnameOverride`.
    public var hostnameOverride: String?
    /// `--cluster-cidr` / `clusterCIDR`.
    public var clusterCIDRs: [CIDR]?
    /// `--nodeport-addresses` / `nodePortAddresses`; `[]` is the default (the node's InternalIPs).
    public var nodePortAddresses: [CIDR]?
    /// `--masquerade-all` / `nftables.masqueradeAll` (or `iptables.` or top-level).
    public var masqueradeAll: Bool?
    /// `--proxy-mode` / `mode`: only `nftables` (or empty) is valid.
    public var mode: String?
    /// `--sync-period` / `nftables.syncPeriod` (or `iptables.` or top-level).
    public var syncPeriod: Duration?
    /// `--min-sync-period` / `nftables.minSyncPeriod` (or `iptables.` or top-level).
    public var minSyncPeriod: Duration?
    /// `--healthz-bind-address` / `healthzBindAddress`, as written (parsed by the agent).
    public var healthzBindAddress: String?
    /// `--metrics-bind-address` / `metricsBindAddress`, as written.
    public var metricsBindAddress: String?
    /// `--kubeconfig` / `clientConnection.kubeconfig`.
    public var kubeconfig: String?
    /// `--detect-local-mode` / `detectLocalMode`.
    public var detectLocalMode: DetectLocalMode?
    /// `--pod-bridge-interface` / `detectLocal.bridgeInterface`.
    public var podBridgeInterface: String?
    /// `--pod-interface-name-prefix` / `detectLocal.interfaceNamePrefix`.
    public var podInterfaceNamePrefix: String?
    /// `-v` / `logging.verbosity`.
    public var verbosity: Int?
    /// Switchboard's own `--ipset-export` / `SwitchboardConfiguration.ipsetExport`.
    public var ipsetExport: Bool?
    /// `--conntrack-*` / `conntrack.*`, written by `run` at start (`NodeTuning`).
    public var conntrack: ConntrackSettings
    /// `--oom-score-adj` / `oomScoreAdj` (-1000...1000, default -999), written by `run` at start.
    public var oomScoreAdj: Int?

    public init(
        hostnameOverride: String? = nil, clusterCIDRs: [CIDR]? = nil, nodePortAddresses: [CIDR]? = nil,
        masqueradeAll: Bool? = nil, mode: String? = nil, syncPeriod: Duration? = nil, minSyncPeriod: Duration? = nil,
        healthzBindAddress: String? = nil, metricsBindAddress: String? = nil, kubeconfig: String? = nil,
        detectLocalMode: DetectLocalMode? = nil, podBridgeInterface: String? = nil,
        podInterfaceNamePrefix: String? = nil, verbosity: Int? = nil, ipsetExport: Bool? = nil,
        conntrack: ConntrackSettings = ConntrackSettings(), oomScoreAdj: Int? = nil
    ) {
        self.hostnameOverride = hostnameOverride
        self.clusterCIDRs = clusterCIDRs
        self.nodePortAddresses = nodePortAddresses
        self.masqueradeAll = masqueradeAll
        self.mode = mode
        self.syncPeriod = syncPeriod
        self.minSyncPeriod = minSyncPeriod
        self.healthzBindAddress = healthzBindAddress
        self.metricsBindAddress = metricsBindAddress
        self.kubeconfig = kubeconfig
        self.detectLocalMode = detectLocalMode
        self.podBridgeInterface = podBridgeInterface
        self.podInterfaceNamePrefix = podInterfaceNamePrefix
        self.verbosity = verbosity
        self.ipsetExport = ipsetExport
        self.conntrack = conntrack
        self.oomScoreAdj = oomScoreAdj
    }

    /// These settings on top of `base`: every value set here wins, the rest comes from `base`.
    public func overriding(_ base: ProxySettings) -> ProxySettings {
        ProxySettings(
            hostnameOverride: hostnameOverride ?? base.hostnameOverride,
            clusterCIDRs: clusterCIDRs ?? base.clusterCIDRs,
            nodePortAddresses: nodePortAddresses ?? base.nodePortAddresses,
            masqueradeAll: masqueradeAll ?? base.masqueradeAll,
            mode: mode ?? base.mode,
            syncPeriod: syncPeriod ?? base.syncPeriod,
            minSyncPeriod: minSyncPeriod ?? base.minSyncPeriod,
            healthzBindAddress: healthzBindAddress ?? base.healthzBindAddress,
            metricsBindAddress: metricsBindAddress ?? base.metricsBindAddress,
            kubeconfig: kubeconfig ?? base.kubeconfig,
            detectLocalMode: detectLocalMode ?? base.detectLocalMode,
            podBridgeInterface: podBridgeInterface ?? base.podBridgeInterface,
            podInterfaceNamePrefix: podInterfaceNamePrefix ?? base.podInterfaceNamePrefix,
            verbosity: verbosity ?? base.verbosity,
            ipsetExport: ipsetExport ?? base.ipsetExport, conntrack: conntrack.overriding(base.conntrack),
            oomScoreAdj: oomScoreAdj ?? base.oomScoreAdj)
    }

    /// kube-proxy's validation of the settings `run` writes into the kernel at start: the conntrack counts
    /// and timeouts, and `oomScoreAdj` within -1000...1000.
    public func checkTuning() throws(ProxySettingsError) {
        try conntrack.check()
        if let oomScoreAdj, !(-1000...1000).contains(oomScoreAdj) {
            throw ProxySettingsError("--oom-score-adj (oomScoreAdj): \(oomScoreAdj) is not within -1000...1000")
        }
    }

    /// The node name: `hostnameOverride`, else `hostname`; trimmed and lowercased, as kube-proxy does.
    public func nodeName(hostname: String) -> String {
        (hostnameOverride ?? hostname).trimmingSpaces.lowercased()
    }

    /// kube-proxy's validation of the detect-local settings, then the `LocalDetection` they name.
    /// Throws a one-line message naming both the flag and the config file field.
    public func localDetection() throws(ProxySettingsError) -> LocalDetection {
        switch detectLocalMode ?? .clusterCIDR {
        case .clusterCIDR: return .clusterCIDR
        case .nodeCIDR: return .nodeCIDR
        case .interfaceNamePrefix:
            guard let prefix = podInterfaceNamePrefix?.trimmingSpaces, !prefix.isEmpty else {
                throw ProxySettingsError(
                    "--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix "
                        + "(detectLocal.interfaceNamePrefix)")
            }
            try Self.checkInterfaceName(prefix, "--pod-interface-name-prefix (detectLocal.interfaceNamePrefix)")
            return .interfaceNamePrefix(prefix)
        case .bridgeInterface:
            guard let bridge = podBridgeInterface?.trimmingSpaces, !bridge.isEmpty else {
                throw ProxySettingsError(
                    "--detect-local-mode BridgeInterface needs --pod-bridge-interface (detectLocal.bridgeInterface)")
            }
            try Self.checkInterfaceName(bridge, "--pod-bridge-interface (detectLocal.bridgeInterface)")
            return .bridgeInterface(bridge)
        }
    }

    /// A Linux interface name as the kernel accepts one (at most 15 bytes, not `.` or `..`, no `/`, `:` or
    /// white space), and nothing nft would read as more than a name: no quote, backslash or `*` (the
    /// rules append the wildcard themselves), only printable ASCII. The name is written into rule text.
    static func checkInterfaceName(_ name: String, _ what: String) throws(ProxySettingsError) {
        let bytes = Array(name.utf8)
        let valid = bytes.count <= 15 && name != "." && name != ".."
            && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7f && !"/:\"\\*".utf8.contains($0) }
        guard valid else {
            throw ProxySettingsError(
                "\(what): \(Field.quote(name)) is not an interface name (at most 15 printable ASCII characters, "
                    + "none of / : \" \\ * or white space)")
        }
    }

    /// The compiler's view of this node. Defaults: no cluster CIDR, NodePorts on the InternalIPs, no
    /// masquerade-all, local traffic detected by cluster CIDR.
    public func nodeContext(hostname: String) throws(ProxySettingsError) -> NodeContext {
        NodeContext(
            nodeName: nodeName(hostname: hostname), clusterCIDRs: clusterCIDRs ?? [],
            nodePortAddresses: nodePortAddresses ?? [], masqueradeAll: masqueradeAll ?? false,
            localDetection: try localDetection())
    }

    /// `mode` is unset, empty or `nftables`; anything else is refused as kube-proxy refuses an unknown mode.
    public func checkMode() throws(ProxySettingsError) {
        if let mode, !mode.isEmpty, mode != "nftables" {
            throw ProxySettingsError("proxy mode \"\(mode)\": Switchboard only implements \"nftables\"")
        }
    }

    /// CIDRs as `--cluster-cidr` and `--nodeport-addresses` take them (a bare address is a full-length
    /// prefix); nil names the first entry that is not one.
    public static func parseCIDRs(_ entries: some Sequence<String>) -> Result<[CIDR], CIDRParseError> {
        var out: [CIDR] = []
        for entry in entries {
            let s = entry.trimmingSpaces
            if s.isEmpty { continue }
            guard let cidr = CIDR(s) ?? IPAddress(s).map({ CIDR(address: $0, prefixLength: $0.bytes.count * 8) })
            else { return .failure(CIDRParseError(entry: s)) }
            out.append(cidr)
        }
        return .success(out)
    }

    /// `nodePortAddresses` entries, with kube-proxy's keywords: `primary` (the default: the node's
    /// InternalIPs) alone, or `all` (every local address). `localhost` is refused: Switchboard never
    /// serves NodePorts on loopback.
    public static func parseNodePortAddresses(_ entries: [String]) -> Result<[CIDR], CIDRParseError> {
        let trimmed = entries.map(\.trimmingSpaces).filter { !$0.isEmpty }
        if trimmed == ["primary"] { return .success([]) }
        var out: [CIDR] = []
        for entry in trimmed {
            if entry == "all" {
                out += [CIDR("0.0.0.0/0")!, CIDR("::/0")!]
                continue
            }
            switch parseCIDRs([entry]) {
            case .success(let cidrs): out += cidrs
            case .failure(let error): return .failure(error)
            }
        }
        return .success(out)
    }
}

/// An entry of a CIDR list that is not a CIDR or an address.
public struct CIDRParseError: Error, Hashable, Sendable {
    public var entry: String
}

/// kube-proxy's `--detect-local-mode` values.
public enum DetectLocalMode: String, Hashable, Sendable, CaseIterable {
    case clusterCIDR = "ClusterCIDR"
    case nodeCIDR = "NodeCIDR"
    case interfaceNamePrefix = "InterfaceNamePrefix"
    case bridgeInterface = "BridgeInterface"
}

/// A setting that is invalid, alone or with the others; one line for the user.
public struct ProxySettingsError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }  // not `dropLast()`: see `GoDuration`
        return String(s)
    }
}
