import NetworkTypes
import SwitchboardCore
import Testing

/// `--config`: what the file sets, what it warns about, what it refuses, and how flags layer over it.
@Suite struct ProxyConfigFileTests {
    static let header = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"

    static func parse(_ body: String) throws -> ProxyConfigFile { try ProxyConfigFile.parse(header + body) }

    @Test("every applicable field becomes a setting")
    func appliesFields() throws {
        let file = try Self.parse(
            """
            hostnameOverride: " Node-A "
            clusterCIDR: "10.244.0.0/16, fd00:10:244::/48"
            nodePortAddresses: ["192.168.1.0/24"]
            mode: nftables
            nftables:
              masqueradeAll: true
              syncPeriod: 45s
              minSyncPeriod: 250ms
            healthzBindAddress: "0.0.0.0:10266"
            metricsBindAddress: "127.0.0.1:10259"
            clientConnection:
              kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
            detectLocalMode: InterfaceNamePrefix
            detectLocal:
              interfaceNamePrefix: veth
              bridgeInterface: cbr0
            logging:
              verbosity: 4

            """)
        #expect(file.warnings == [])
        let s = file.settings
        #expect(s.nodeName(hostname: "ignored") == "node-a")
        #expect(s.clusterCIDRs == [CIDR("10.244.0.0/16")!, CIDR("fd00:10:244::/48")!])
        #expect(s.nodePortAddresses == [CIDR("192.168.1.0/24")!])
        #expect(s.mode == "nftables")
        #expect(s.masqueradeAll == true)
        #expect(s.syncPeriod == .seconds(45) && s.minSyncPeriod == .milliseconds(250))
        #expect(s.healthzBindAddress == "0.0.0.0:10266" && s.metricsBindAddress == "127.0.0.1:10259")
        #expect(s.kubeconfig == "/var/lib/kube-proxy/kubeconfig.conf")
        #expect(try s.localDetection() == .interfaceNamePrefix("veth"))
        #expect(s.podBridgeInterface == "cbr0")
        #expect(s.verbosity == 4)
    }

    @Test("sections in order: nftables, then top-level, then iptables", arguments: [
        ("iptables:\n  syncPeriod: 10s\n  masqueradeAll: true\n", Duration.seconds(10), true),
        ("syncPeriod: 20s\niptables:\n  syncPeriod: 10s\n", .seconds(20), false),
        ("nftables:\n  syncPeriod: 5s\nsyncPeriod: 20s\niptables:\n  syncPeriod: 10s\n", .seconds(5), false),
        ("masqueradeAll: true\nnftables:\n  syncPeriod: 0s\n", nil, true),
    ])
    func sectionPrecedence(body: String, sync: Duration?, masqueradeAll: Bool) throws {
        let s = try Self.parse(body).settings
        #expect(s.syncPeriod == sync)
        #expect((s.masqueradeAll ?? false) == masqueradeAll)
    }

    @Test("Go's zero values are unset: the defaults stay")
    func zeroValuesAreUnset() throws {
        let file = try Self.parse(
            """
            hostnameOverride: ""
            clusterCIDR: ""
            nodePortAddresses: null
            mode: ""
            iptables: {masqueradeAll: false, masqueradeBit: null, minSyncPeriod: 0s, syncPeriod: 0s}
            ipvs: {excludeCIDRs: null, scheduler: "", strictARP: false, syncPeriod: 0s, tcpTimeout: 0s}
            conntrack: {maxPerCore: null, min: null, tcpBeLiberal: false, udpTimeout: 0s, udpStreamTimeout: 0s}
            winkernel: {enableDSR: false, networkName: ""}
            featureGates: {}
            oomScoreAdj: null
            logging: {flushFrequency: 0, options: {json: {infoBufferSize: "0"}}, verbosity: 0}

            """)
        #expect(file.settings == ProxySettings())
        #expect(file.warnings == [])
    }

    @Test("inapplicable, unknown and feature-gate fields: one warning each, naming the field, never fatal")
    func warnings() throws {
        let file = try Self.parse(
            """
            clusterCIDR: 10.244.0.0/16
            bindAddress: 0.0.0.0
            oomScoreAdj: -999
            ipvs:
              scheduler: rr
              strictARP: true
            conntrack:
              maxPerCore: 32768
              tcpEstablishedTimeout: 24h0m0s
              max: 5
            clientConnection:
              qps: 5
              kubeconfig: /k
            iptables:
              masqueradeBit: 14
            featureGates:
              TopologyAwareHints: true
              EndpointSliceProxying: false
            noSuchField: 1
            nftables:
              bogus: {a: 1}

            """)
        #expect(file.settings.clusterCIDRs == [CIDR("10.244.0.0/16")!])
        #expect(file.settings.kubeconfig == "/k")
        // conntrack.* and oomScoreAdj apply (`run` writes them at start); `conntrack.max` left kube-proxy long ago.
        #expect(file.settings.conntrack == ConntrackSettings(maxPerCore: 32768, tcpEstablishedTimeout: .seconds(86400)))
        #expect(file.settings.oomScoreAdj == -999)
        #expect(
            file.warnings == [
                "featureGates (EndpointSliceProxying, TopologyAwareHints): Switchboard has no feature gates; ignored",
                "bindAddress: not used by Switchboard; ignored",
                "clientConnection.qps: not used by Switchboard; ignored",
                "conntrack.max: unknown field; ignored",
                "iptables.masqueradeBit: not used by Switchboard; ignored",
                "ipvs.scheduler: not used by Switchboard; ignored",
                "ipvs.strictARP: not used by Switchboard; ignored",
                "nftables.bogus: unknown field; ignored",
                "noSuchField: unknown field; ignored",
            ])
    }

    @Test("conntrack and oomScoreAdj: every field read; 0 in kube-proxy's pointer fields is a value, not unset")
    func tuningFields() throws {
        let file = try Self.parse(
            """
            oomScoreAdj: 500
            conntrack:
              maxPerCore: 65536
              min: 262144
              tcpEstablishedTimeout: 2h
              tcpCloseWaitTimeout: 30m
              tcpBeLiberal: true
              udpTimeout: 45s
              udpStreamTimeout: 3m

            """)
        #expect(file.warnings == [])
        #expect(file.settings.conntrack == ConntrackSettings(
            maxPerCore: 65536, min: 262_144, tcpEstablishedTimeout: .seconds(7200), tcpCloseWaitTimeout: .seconds(1800),
            tcpBeLiberal: true, udpTimeout: .seconds(45), udpStreamTimeout: .seconds(180)))
        #expect(file.settings.oomScoreAdj == 500)
        // As kube-proxy's `*int32` and `*metav1.Duration`: an explicit 0 means "leave the kernel's value" (and
        // OOM score 0), where an absent field takes the default.
        let zeros = try Self.parse(
            "oomScoreAdj: 0\nconntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}\n")
        #expect(zeros.warnings == [])
        #expect(zeros.settings.conntrack == ConntrackSettings(
            maxPerCore: 0, min: 0, tcpEstablishedTimeout: .zero, tcpCloseWaitTimeout: .zero))
        #expect(zeros.settings.oomScoreAdj == 0)
        #expect(NodeTuning(zeros.settings).plan(cpus: 64, current: [:]).map(\.description) == ["oom_score_adj=0"])
        // Absent: kube-proxy's defaults.
        #expect(NodeTuning(try Self.parse("").settings).plan(cpus: 2, current: [:]).map(\.description) == [
            "net.netfilter.nf_conntrack_max=131072", "nf_conntrack.hashsize=32768",
            "net.netfilter.nf_conntrack_tcp_timeout_established=86400",
            "net.netfilter.nf_conntrack_tcp_timeout_close_wait=3600", "oom_score_adj=-999",
        ])
    }

    @Test("JSON, and Switchboard's own settings in a second document or a JSON array")
    func switchboardDocument() throws {
        let yaml = try ProxyConfigFile.parse(
            Self.header + "clusterCIDR: 10.0.0.0/8\n---\napiVersion: switchboard.dev/v1alpha1\n"
                + "kind: SwitchboardConfiguration\nipsetExport: true\nfuture: 1\n")
        #expect(yaml.settings.ipsetExport == true && yaml.settings.clusterCIDRs == [CIDR("10.0.0.0/8")!])
        #expect(yaml.warnings == ["future: unknown field; ignored"])
        let json = try ProxyConfigFile.parse(
            #"[{"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "#
                + #""hostnameOverride": "n1"}, {"apiVersion": "switchboard.dev/v1alpha1", "#
                + #""kind": "SwitchboardConfiguration", "ipsetExport": false}]"#)
        #expect(json.settings.hostnameOverride == "n1" && json.settings.ipsetExport == false)
        let single = try ProxyConfigFile.parse(
            #"{"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": ""}"#)
        #expect(single.settings == ProxySettings())
    }

    @Test("refused: wrong apiVersion or kind, wrong types, bad values, unparsable text", arguments: [
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n", "apiVersion"),
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n", "kind"),
        ("kind: KubeProxyConfiguration\n", "apiVersion"),
        (header + "clusterCIDR: 10.0.0.0/33\n", "clusterCIDR: invalid CIDR"),
        (header + "nodePortAddresses: 10.0.0.0/8\n", "nodePortAddresses: expected an array"),
        (header + "nodePortAddresses: [localhost]\n", "nodePortAddresses: invalid CIDR"),
        (header + "nftables:\n  syncPeriod: soon\n", "nftables.syncPeriod: invalid duration"),
        (header + "iptables:\n  masqueradeAll: yes\n", "iptables.masqueradeAll: expected a boolean"),
        (header + "detectLocalMode: PodCIDR\n", "detectLocalMode: unknown mode"),
        (header + "featureGates: [a]\n", "featureGates: expected an object"),
        (header + "clientConnection: /path\n", "clientConnection: expected an object"),
        (header + "conntrack: 32768\n", "conntrack: expected an object"),
        (header + "conntrack:\n  maxPerCore: lots\n", "conntrack.maxPerCore: expected an integer"),
        (header + "conntrack:\n  udpTimeout: soon\n", "conntrack.udpTimeout: invalid duration"),
        (header + "conntrack:\n  tcpBeLiberal: 1\n", "conntrack.tcpBeLiberal: expected a boolean"),
        (header + "oomScoreAdj: \"-999\"\n", "oomScoreAdj: expected an integer"),
        (header + "hostnameOverride: [unclosed\n", "syntax error"),
        ("", "no KubeProxyConfiguration"),
        (header + "---\n" + header, "more than one"),
    ])
    func refuses(text: String, message: String) {
        #expect {
            try ProxyConfigFile.parse(text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test("mode: only nftables or empty")
    func mode() throws {
        for ok in ["", "nftables"] { try ProxySettings(mode: ok).checkMode() }
        for bad in ["iptables", "ipvs", "kernelspace"] {
            #expect(throws: ProxySettingsError.self) { try ProxySettings(mode: bad).checkMode() }
        }
    }

    @Test("nodePortAddresses keywords: primary is the default, all is every address")
    func nodePortKeywords() throws {
        #expect(try Self.parse("nodePortAddresses: [primary]\n").settings.nodePortAddresses == [])
        #expect(
            try Self.parse("nodePortAddresses: [all]\n").settings.nodePortAddresses == [
                CIDR("0.0.0.0/0")!, CIDR("::/0")!,
            ])
    }

    /// kube-proxy's precedence: a flag given on the command line wins; the file fills in the rest;
    /// what neither gives keeps the default.
    @Test("flags override the file; the file overrides defaults", arguments: [
        // (flags, file, expected node name, cluster CIDRs, masquerade-all)
        (ProxySettings(), ProxySettings(), "host", [String](), false),
        (ProxySettings(), ProxySettings(hostnameOverride: "file", clusterCIDRs: [CIDR("10.0.0.0/8")!]),
         "file", ["10.0.0.0/8"], false),
        (ProxySettings(hostnameOverride: "flag"), ProxySettings(hostnameOverride: "file", masqueradeAll: true),
         "flag", [], true),
        (ProxySettings(clusterCIDRs: [CIDR("10.1.0.0/16")!], masqueradeAll: false),
         ProxySettings(clusterCIDRs: [CIDR("10.0.0.0/8")!], masqueradeAll: true), "host", ["10.1.0.0/16"], false),
    ])
    func precedence(flags: ProxySettings, file: ProxySettings, name: String, cidrs: [String], masqueradeAll: Bool) throws {
        let context = try flags.overriding(file).nodeContext(hostname: "Host")
        #expect(context.nodeName == name)
        #expect(context.clusterCIDRs == cidrs.map { CIDR($0)! })
        #expect(context.masqueradeAll == masqueradeAll)
    }

    @Test("--detect-local-mode: kube-proxy's validation, mapped to LocalDetection", arguments: [
        (ProxySettings(), LocalDetection?.some(.clusterCIDR)),
        (ProxySettings(detectLocalMode: .nodeCIDR), .nodeCIDR),
        (ProxySettings(detectLocalMode: .interfaceNamePrefix, podInterfaceNamePrefix: "veth"),
         .interfaceNamePrefix("veth")),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: "cbr0"), .bridgeInterface("cbr0")),
        (ProxySettings(detectLocalMode: .interfaceNamePrefix), nil),
        (ProxySettings(detectLocalMode: .interfaceNamePrefix, podBridgeInterface: "cbr0"), nil),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: " "), nil),
        // Names go into rule text: nothing that nft would read as more than a name, nothing the kernel refuses.
        (ProxySettings(detectLocalMode: .interfaceNamePrefix, podInterfaceNamePrefix: "veth\" accept"), nil),
        (ProxySettings(detectLocalMode: .interfaceNamePrefix, podInterfaceNamePrefix: "cali*"), nil),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: "br\\0"), nil),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: "a-very-long-bridge"), nil),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: "br:0"), nil),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: "br-é"), nil),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: ".."), nil),
        (ProxySettings(detectLocalMode: .bridgeInterface, podBridgeInterface: "cni0.100_x-y"), .bridgeInterface("cni0.100_x-y")),
    ])
    func detectLocal(settings: ProxySettings, expected: LocalDetection?) throws {
        if let expected {
            #expect(try settings.nodeContext(hostname: "h").localDetection == expected)
        } else {
            #expect(throws: ProxySettingsError.self) { try settings.localDetection() }
        }
    }
}
