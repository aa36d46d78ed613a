import NetworkTypes

/// kube-proxy's config file (`--config`): a `kubeproxy.config.k8s.io/v1alpha1` `KubeProxyConfiguration`,
/// YAML or JSON, plus Switchboard's own settings in an optional second document
/// (`apiVersion: switchboard.dev/v1alpha1`, `kind: SwitchboardConfiguration`) of the same YAML stream
/// (in JSON: a top-level array of the two objects). The first document stays exactly what kube-proxy
/// reads, so one file can be shared with it.
///
/// Fields that Switchboard applies become `settings`. As in Go, a field at its zero value (`""`, `0`,
/// `false`, `0s`, empty list or map, `null`) is the same as an absent one and leaves the default, except
/// where kube-proxy's type is a pointer: `conntrack.maxPerCore`, `conntrack.min`,
/// `conntrack.tcpEstablishedTimeout`, `conntrack.tcpCloseWaitTimeout` and `oomScoreAdj` set to 0 are
/// values (0 per core and 0s timeouts leave the kernel's settings alone, as in kube-proxy). A kube-proxy
/// field that does not apply to Switchboard (`ipvs.*`, `bindAddress`, ...) set to anything else, every
/// unknown field, and non-empty `featureGates` give one warning each, naming the field; none of them is
/// fatal. A wrong `apiVersion` or `kind`, a value of the wrong type,
/// an unparsable duration or CIDR, or an unparsable file is an error.
public struct ProxyConfigFile: Hashable, Sendable {
    public static let apiVersion = "kubeproxy.config.k8s.io/v1alpha1"
    public static let kind = "KubeProxyConfiguration"
    public static let switchboardAPIVersion = "switchboard.dev/v1alpha1"
    public static let switchboardKind = "SwitchboardConfiguration"

    public var settings: ProxySettings
    /// One line per ignored field, e.g. `ipvs.scheduler: not used by Switchboard; ignored`.
    public var warnings: [String]

    public init(settings: ProxySettings = ProxySettings(), warnings: [String] = []) {
        self.settings = settings
        self.warnings = warnings
    }

    /// Parses the text of a config file.
    public static func parse(_ text: String) throws(ProxySettingsError) -> ProxyConfigFile {
        var values: [JSONValue] = []
        for document in ManifestDecoder.documents(text) {
            switch document.content {
            case .failure(let error): throw ProxySettingsError("syntax error at \(error)")
            case .success(.array(let items)): values += items
            case .success(let value): values.append(value)
            }
        }
        var file = ProxyConfigFile()
        var seen: Set<String> = []
        for value in values {
            guard case .object = value else { throw ProxySettingsError("expected an object, got \(value.typeName)") }
            let apiVersion = Self.string(value["apiVersion"])
            let kind = Self.string(value["kind"])
            switch (apiVersion, kind) {
            case (Self.apiVersion, Self.kind), (Self.switchboardAPIVersion, Self.switchboardKind):
                if !seen.insert(kind).inserted { throw ProxySettingsError("more than one \(kind)") }
            default:
                throw ProxySettingsError(
                    "expected apiVersion \(Self.apiVersion), kind \(Self.kind) (or \(Self.switchboardAPIVersion), "
                        + "\(Self.switchboardKind)); got apiVersion \"\(apiVersion)\", kind \"\(kind)\"")
            }
            var reader = Reader()
            do {
                if kind == Self.kind {
                    try reader.kubeProxy(value, into: &file.settings)
                } else {
                    try reader.switchboard(value, into: &file.settings)
                }
            } catch {
                throw ProxySettingsError("\(kind) \(error.path): \(error.message)")
            }
            file.warnings += reader.warnings
        }
        if values.isEmpty { throw ProxySettingsError("no \(Self.kind) in the file") }
        return file
    }

    private static func string(_ value: JSONValue?) -> String {
        if case .string(let s)? = value { return s }
        return ""
    }
}

/// Walks one document: reads the fields that apply, warns about the rest.
private struct Reader {
    var warnings: [String] = []

    /// kube-proxy fields Switchboard has no use for (v1alpha1), by path; a whole object counts for its fields.
    static let notApplicable: Set<String> = [
        "bindAddress", "bindAddressHardFail", "enableProfiling", "showHiddenMetricsForVersion",
        "configSyncPeriod", "portRange", "udpIdleTimeout", "windowsRunAsService", "resourceContainer",
        "clientConnection.acceptContentTypes", "clientConnection.contentType", "clientConnection.qps",
        "clientConnection.burst", "logging.format", "logging.flushFrequency", "logging.vmodule", "logging.options",
        "iptables.masqueradeBit", "iptables.localhostNodePorts", "iptables.snatNodeInternalIP",
        "nftables.masqueradeBit", "ipvs", "winkernel",
    ]

    mutating func kubeProxy(_ value: JSONValue, into s: inout ProxySettings) throws(FieldError) {
        let root = Field(value, path: "")
        var used: Set<String> = ["apiVersion", "kind"]
        func field(_ path: String) throws(FieldError) -> Field {
            used.insert(path)
            var f = root
            for key in path.split(separator: ".") { f = try f.child(String(key)) }
            return f
        }
        if let name = try field("hostnameOverride").nonEmptyString() { s.hostnameOverride = name }
        let cidr = try field("clusterCIDR")
        if let text = try cidr.nonEmptyString() {
            s.clusterCIDRs = try Self.cidrs(ProxySettings.parseCIDRs(text.split(separator: ",").map(String.init)), cidr)
        }
        let npa = try field("nodePortAddresses")
        let entries = try npa.strings().map(\.0)
        if !entries.isEmpty { s.nodePortAddresses = try Self.cidrs(ProxySettings.parseNodePortAddresses(entries), npa) }
        if let mode = try field("mode").nonEmptyString() { s.mode = mode }
        // Switchboard is kube-proxy's nftables mode: its own section first, then the newer top-level
        // fields, then the iptables section, which a config migrated from iptables mode holds.
        for prefix in ["nftables.", "", "iptables."] {
            if s.masqueradeAll == nil, try field(prefix + "masqueradeAll").bool() == true { s.masqueradeAll = true }
            if s.syncPeriod == nil { s.syncPeriod = try Self.duration(field(prefix + "syncPeriod")) }
            if s.minSyncPeriod == nil { s.minSyncPeriod = try Self.duration(field(prefix + "minSyncPeriod")) }
        }
        if let a = try field("healthzBindAddress").nonEmptyString() { s.healthzBindAddress = a }
        if let a = try field("metricsBindAddress").nonEmptyString() { s.metricsBindAddress = a }
        if let path = try field("clientConnection.kubeconfig").nonEmptyString() { s.kubeconfig = path }
        let mode = try field("detectLocalMode")
        if let text = try mode.nonEmptyString() {
            guard let m = DetectLocalMode(rawValue: text) else {
                let valid = DetectLocalMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw mode.fail("unknown mode \(Field.quote(text)); valid: \(valid)")
            }
            s.detectLocalMode = m
        }
        if let b = try field("detectLocal.bridgeInterface").nonEmptyString() { s.podBridgeInterface = b }
        if let p = try field("detectLocal.interfaceNamePrefix").nonEmptyString() { s.podInterfaceNamePrefix = p }
        if let v = try field("logging.verbosity").int(), v != 0 { s.verbosity = v }
        // Pointers in kube-proxy's types (`*int32`, `*metav1.Duration`): an explicit 0 is a value.
        s.conntrack.maxPerCore = try field("conntrack.maxPerCore").int()
        s.conntrack.min = try field("conntrack.min").int()
        s.conntrack.tcpEstablishedTimeout = try Self.duration(field("conntrack.tcpEstablishedTimeout"), zero: true)
        s.conntrack.tcpCloseWaitTimeout = try Self.duration(field("conntrack.tcpCloseWaitTimeout"), zero: true)
        s.oomScoreAdj = try field("oomScoreAdj").int()
        // Plain values: false and 0s are kube-proxy's defaults (leave the kernel's settings alone).
        if try field("conntrack.tcpBeLiberal").bool() == true { s.conntrack.tcpBeLiberal = true }
        s.conntrack.udpTimeout = try Self.duration(field("conntrack.udpTimeout"))
        s.conntrack.udpStreamTimeout = try Self.duration(field("conntrack.udpStreamTimeout"))
        let gates = try field("featureGates")
        switch gates.value {
        case .null: break
        case .object(let members):
            if !members.isEmpty {
                let names = members.keys.sorted().joined(separator: ", ")
                warnings.append("featureGates (\(names)): Switchboard has no feature gates; ignored")
            }
        default: throw gates.typeError("an object")
        }
        walk(root, used: used)
    }

    mutating func switchboard(_ value: JSONValue, into s: inout ProxySettings) throws(FieldError) {
        let root = Field(value, path: "")
        if let export = try root.child("ipsetExport").bool() { s.ipsetExport = export }
        walk(root, used: ["apiVersion", "kind", "ipsetExport"])
    }

    /// Warns about every field that was not read: unknown ones always, kube-proxy's inapplicable ones
    /// unless at their zero value.
    private mutating func walk(_ f: Field, used: Set<String>) {
        guard case .object(let members) = f.value else { return }
        for key in members.keys.sorted() {
            let child = Field(members[key], path: Field.join(f.path, key))
            if used.contains(child.path) { continue }
            if Self.notApplicable.contains(child.path) {
                warnInapplicable(child)
            } else if case .object = child.value, used.contains(where: { $0.hasPrefix(child.path + ".") }) {
                walk(child, used: used)
            } else {
                warnings.append("\(child.path): unknown field; ignored")
            }
        }
    }

    /// One warning per non-zero leaf of a field kube-proxy has but Switchboard does not use.
    private mutating func warnInapplicable(_ f: Field) {
        if case .object(let members) = f.value {
            for key in members.keys.sorted() { warnInapplicable(Field(members[key], path: Field.join(f.path, key))) }
        } else if !Self.isZero(f.value) {
            warnings.append("\(f.path): not used by Switchboard; ignored")
        }
    }

    /// Go's zero values, which kube-proxy cannot tell from an absent field.
    static func isZero(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return true
        case .bool(let b): return !b
        case .int(let i): return i == 0
        case .double(let d): return d == 0
        case .string(let s): return s.isEmpty || GoDuration.parse(s) == .zero
        case .array(let a): return a.isEmpty
        case .object(let o): return o.values.allSatisfy(isZero)
        }
    }

    /// A duration; `0s` is unset unless `zero` (a pointer field in kube-proxy's types, where it is a value).
    static func duration(_ f: Field, zero: Bool = false) throws(FieldError) -> Duration? {
        guard let text = try f.nonEmptyString() else { return nil }
        guard let d = GoDuration.parse(text) else { throw f.fail("invalid duration \(Field.quote(text))") }
        return d == .zero && !zero ? nil : d
    }

    static func cidrs(_ result: Result<[CIDR], CIDRParseError>, _ f: Field) throws(FieldError) -> [CIDR] {
        switch result {
        case .success(let cidrs): return cidrs
        case .failure(let error): throw f.fail("invalid CIDR \(Field.quote(error.entry))")
        }
    }
}
