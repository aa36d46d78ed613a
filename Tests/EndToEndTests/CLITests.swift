import Foundation
import NFTModel
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// The CLI's contract: commands, flags, exit codes (0 ok / 1 diff differs / 2 error), idempotent apply.
@Suite(
    "CLI: render, diff, apply",
    .serialized,
    .enabled(if: SB.available, "needs root, `ip netns` and the switchboard binary (reason printed as SKIP)"),
    .exclusive
)
struct CLITests {
    static let flags = ["--hostname-override", "demo-node", "--cluster-cidr", "10.244.0.0/16"]

    static var examples: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples").path
    }

    private func sb(_ args: [String], in ns: ScratchNamespace? = nil, input: String? = nil) async throws -> ShellResult {
        try await Shell.run([SwitchboardBinary.path!] + args, in: ns?.name, input: input, timeout: .seconds(60))
    }

    private func withNamespace<T>(_ body: (ScratchNamespace) async throws -> T) async throws -> T {
        let ns = try ScratchNamespace.create(purpose: "cli")
        defer { ns.delete() }
        return try await body(ns)
    }

    @Test("apply twice: the second run changes nothing; diff then reports equal (exit 0)")
    func applyIsIdempotent() async throws {
        try await withNamespace { ns in
            let first = try await sb(["apply", "-f", Self.examples] + Self.flags, in: ns)
            #expect(first.status.code == 0, "\(first.stderr)")
            #expect(first.stdout.hasPrefix("applied "))
            let second = try await sb(["apply", "-f", Self.examples] + Self.flags, in: ns)
            #expect(second.status.code == 0)
            #expect(second.stdout == "no changes\n")
            let diff = try await sb(["diff", "-f", Self.examples] + Self.flags, in: ns)
            #expect(diff.status.code == 0)
            #expect(diff.stdout.isEmpty)
        }
    }

    @Test("diff against the kernel: exit 1 and a unified diff; --transaction prints the exact commands")
    func diffShowsChanges() async throws {
        try await withNamespace { ns in
            let empty = try await sb(["diff", "-f", Self.examples] + Self.flags, in: ns)
            #expect(empty.status.code == 1)
            #expect(empty.stdout.hasPrefix("--- kernel\n+++ desired\n"))
            #expect(empty.stdout.contains("10.96.0.10 . tcp . 80 . 0 : 10.244.0."))
            try await sb(["apply", "-f", Self.examples] + Self.flags, in: ns).checked()
            // One backend fewer: only elements change (Maglev slots, the hairpin entry, and the VIP moves to
            // the dispatch set of the smaller table size).
            let text = try String(contentsOfFile: Self.examples + "/demo.yaml", encoding: .utf8)
                .replacingOccurrences(of: "- addresses: [10.244.0.3]\n  conditions: {ready: true}\n  nodeName: demo-node\n", with: "")
            #expect(!text.contains("10.244.0.3"))
            let diff = try await sb(["diff", "-f", "-"] + Self.flags, in: ns, input: text)
            #expect(diff.status.code == 1)
            #expect(diff.stdout.split(separator: "\n").contains { $0.hasPrefix("-") && $0.contains("10.244.0.3 . 8080") })
            let tx = try await sb(["diff", "--transaction", "-f", "-"] + Self.flags, in: ns, input: text)
            #expect(tx.status.code == 1)
            let lines = tx.stdout.split(separator: "\n")
            #expect(lines.contains("delete element ip switchboard hairpin { 10.244.0.3 . 10.244.0.3 }"))
            #expect(lines.contains { $0.hasPrefix("delete element ip switchboard backends { 10.96.0.10 . tcp . 80 . ") })
            #expect(lines.allSatisfy { $0.hasPrefix("add element ") || $0.hasPrefix("delete element ") }, "elements only")
            // The printed transaction is exactly what apply runs: after applying it, diff is clean.
            try await sb(["apply", "-f", "-"] + Self.flags, in: ns, input: text).checked()
            #expect(try await sb(["diff", "-f", "-"] + Self.flags, in: ns, input: text).status.code == 0)
        }
    }

    @Test("diff --against a saved nft -j listing, without touching any kernel")
    func diffAgainstSavedRuleset() async throws {
        let saved = try await withNamespace { ns in
            try await sb(["apply", "-f", Self.examples] + Self.flags, in: ns).checked()
            return try await Shell.run(["nft", "-j", "list", "ruleset"], in: ns.name).checked().stdout
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sbt-saved-\(UUID().uuidString).json")
        try saved.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let same = try await sb(["diff", "-f", Self.examples, "--against", file.path] + Self.flags)
        #expect(same.status.code == 0, "\(same.stdout)\(same.stderr)")
        let other = try await sb(["diff", "-f", Self.examples, "--against", file.path, "--masquerade-all",
                                  "--hostname-override", "demo-node"])
        #expect(other.status.code == 1)
        #expect(other.stdout.contains("+\t\tip daddr @cluster-ips jump mark-for-masquerade"))
    }

    @Test("run refuses an invalid --full-rebuild-period before it starts (exit 2, the flag named)")
    func runRejectsABadRebuildPeriod() async throws {
        for value in ["hourly", "0s"] {
            let result = try await sb(["run", "--full-rebuild-period", value, "--kubeconfig", "/nonexistent"] + Self.flags)
            #expect(result.status.code == 2, "\(value): \(result)")
            #expect(result.stderr.contains("--full-rebuild-period"), "\(value): \(result.stderr)")
        }
        #expect(try await sb(["run", "--help"]).stdout.contains("--full-rebuild-period"))
    }

    @Test("a manifest nested 5000 deep (YAML or JSON) is a clear error, exit 2, not a crash")
    func deepManifestsAreRefused() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sbt-deep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let nested = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        for (name, text) in [("deep.yaml", "a: " + nested + "\n"), ("deep.json", #"{"a": "# + nested + "}")] {
            let path = directory.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try await sb(["render", "-f", path] + Self.flags)
            #expect(!result.status.signaled && result.status.code == 2, "\(name): \(result)")
            #expect(result.stderr.contains("nested deeper than 128 levels"), "\(name): \(result.stderr)")
        }
    }

    @Test("render is deterministic and is what nft accepts")
    func renderIsDeterministic() async throws {
        let a = try await sb(["render", "-f", Self.examples] + Self.flags)
        let b = try await sb(["render", "-f", Self.examples] + Self.flags)
        #expect(a.status.code == 0 && a.stdout == b.stdout)
        try await withNamespace { ns in
            let loaded = try await Shell.run(["nft", "-f", "-"], in: ns.name, input: a.stdout)
            #expect(loaded.succeeded, "\(loaded.stderr)")
            // Loaded by nft or applied by switchboard: the same kernel state.
            #expect(try await sb(["diff", "-f", Self.examples] + Self.flags, in: ns).status.code == 0)
        }
    }

    @Test("bad flags and bad files: one line on stderr, exit 2", arguments: [
        ["render"],
        ["render", "-f", "/nonexistent/file.yaml"],
        ["render", "-f", "EXAMPLES", "--cluster-cidr", "10.0.0.0/33"],
        ["render", "-f", "EXAMPLES", "--nodeport-addresses", "nonsense"],
        ["render", "-f", "EXAMPLES", "--no-such-flag"],
        ["diff", "-f", "EXAMPLES", "--against", "/nonexistent.json"],
        ["render", "-f", "BADYAML"],
        ["no-such-command"],
        ["run", "--oom-score-adj", "-1001", "--kubeconfig", "/nonexistent"],
        ["run", "--oom-score-adj", "1001", "--kubeconfig", "/nonexistent"],
        ["run", "--conntrack-min", "4294967296", "--kubeconfig", "/nonexistent"],
        ["run", "--conntrack-tcp-timeout-established", "a day", "--kubeconfig", "/nonexistent"],
        ["run", "--conntrack-udp-timeout", "30", "--kubeconfig", "/nonexistent"],
        ["explain", "-f", "EXAMPLES", "10.0.0.1:1000"],
        ["explain", "-f", "EXAMPLES", "10.0.0.1:1000", "10.96.0.10"],
        ["explain", "-f", "EXAMPLES", "10.0.0.1:1000", "10.96.0.10:80/icmp"],
        ["explain", "-f", "EXAMPLES", "10.0.0.1:1000", "[fd00::1]:80"],
        ["explain", "-f", "EXAMPLES", "-o", "yaml", "10.0.0.1:1000", "10.96.0.10:80"],
        ["explain", "-f", "EXAMPLES", "--from", "somewhere", "10.0.0.1:1000", "10.96.0.10:80"],
        ["explain", "10.0.0.1:1000", "10.96.0.10:80"],
    ])
    func badInput(args: [String]) async throws {
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("sbt-bad-\(UUID().uuidString).yaml")
        try "kind: Service\nmetadata: [unclosed\n".write(to: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: bad) }
        let resolved = args.map { $0 == "EXAMPLES" ? Self.examples : $0 == "BADYAML" ? bad.path : $0 }
        let result = try await sb(resolved)
        #expect(result.status.code == 2, "\(resolved): \(result.stdout) \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("switchboard: "))
    }

    /// `--config`: the file's values take effect, a flag given on the command line wins, an unknown
    /// field only warns, a file of the wrong kind is an error.
    @Test("render --config: file values apply, explicit flags override them, unknown fields warn")
    func configFile() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbt-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func file(_ name: String, _ text: String) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let header = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        let config = try file("config.yaml", header + "hostnameOverride: demo-node\nclusterCIDR: 10.244.0.0/16\n")

        // The file alone gives what the flags gave: the same ruleset, byte for byte.
        let viaFlags = try await sb(["render", "-f", Self.examples] + Self.flags)
        let viaFile = try await sb(["render", "-f", Self.examples, "--config", config])
        #expect(viaFile.status.code == 0, "\(viaFile.stderr)")
        #expect(viaFile.stderr.isEmpty, "\(viaFile.stderr)")
        #expect(viaFile.stdout == viaFlags.stdout)
        let masqueradeRule = viaFile.stdout.split(separator: "\n").filter { $0.contains("10.244.0.0/16") }
        #expect(!masqueradeRule.isEmpty, "clusterCIDR from the file reaches the masquerade rule")
        #expect(viaFile.stdout.contains("nodeport"), "\(viaFile.stdout.prefix(200))")
        // Without the file (no cluster CIDR) the rule is not there: the file made the difference.
        let bare = try await sb(["render", "-f", Self.examples, "--hostname-override", "demo-node"])
        #expect(!bare.stdout.contains("10.244.0.0/16"))

        // An explicit flag overrides the file.
        let overridden = try await sb(["render", "-f", Self.examples, "--config", config, "--cluster-cidr", "10.99.0.0/16"])
        #expect(overridden.status.code == 0, "\(overridden.stderr)")
        #expect(overridden.stdout.contains("10.99.0.0/16") && !overridden.stdout.contains("10.244.0.0/16"))
        let otherNode = try await sb(["render", "-f", Self.examples, "--config", config, "--hostname-override", "nobody"])
        #expect(otherNode.status.code == 0)
        #expect(otherNode.stdout != viaFile.stdout, "hostname-override from the flag, not the file")

        // Unknown and inapplicable fields: one warning each on stderr, and the render still succeeds.
        let noisy = try file("noisy.yaml", header + "hostnameOverride: demo-node\nclusterCIDR: 10.244.0.0/16\n"
                                 + "frobnicate: true\nipvs:\n  scheduler: rr\n")
        let warned = try await sb(["render", "-f", Self.examples, "--config", noisy])
        #expect(warned.status.code == 0, "\(warned.stderr)")
        #expect(warned.stdout == viaFlags.stdout)
        let warnings = warned.stderr.split(separator: "\n")
        #expect(warnings.count == 2, "\(warned.stderr)")
        #expect(warnings.contains { $0.hasPrefix("switchboard: warning: ") && $0.contains("frobnicate: unknown field") })
        #expect(warnings.contains { $0.contains("ipvs.scheduler: not used by Switchboard") })

        // Wrong kind, wrong mode, detect-local without its interface: one line, exit 2.
        for (name, text, extra) in [
            ("kind.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n", [String]()),
            ("mode.yaml", header + "mode: ipvs\n", []),
            ("local.yaml", header + "detectLocalMode: BridgeInterface\n", []),
            ("oom.yaml", header + "oomScoreAdj: 5000\n", []),
            ("conntrack.yaml", header + "conntrack:\n  maxPerCore: -1\n", []),
            ("ok.yaml", header, ["--detect-local-mode", "InterfaceNamePrefix"]),
        ] {
            let bad = try await sb(["render", "-f", Self.examples, "--config", try file(name, text)] + extra)
            #expect(bad.status.code == 2, "\(name): \(bad.stdout) \(bad.stderr)")
            #expect(bad.stderr.split(separator: "\n").count == 1 && bad.stderr.hasPrefix("switchboard: "), "\(bad.stderr)")
        }
        // ... and the flag supplies what the file's mode needs.
        let local = try file("local2.yaml", header + "hostnameOverride: demo-node\ndetectLocalMode: BridgeInterface\n")
        #expect(try await sb(["render", "-f", Self.examples, "--config", local, "--pod-bridge-interface", "cbr0"]).status.code == 0)
    }

    @Test func versionAndHelp() async throws {
        let version = try await sb(["version"])
        #expect(version.status.code == 0 && version.stdout.hasPrefix("switchboard "))
        let help = try await sb(["diff", "--help"])
        #expect(help.status.code == 0 && help.stdout.contains("--against"))
        let explainHelp = try await sb(["explain", "--help"])
        #expect(explainHelp.status.code == 0 && explainHelp.stdout.contains("Example:"))
        #expect(explainHelp.stdout.contains("switchboard explain -f"), "\(explainHelp.stdout)")
    }

    @Test("explain on the built-in example: text for people, JSON for tools, the same decision")
    func explainTheExample() async throws {
        let args = ["explain", "-f", Self.examples] + Self.flags + ["10.244.1.7:40000", "10.96.0.10:80"]
        let text = try await sb(args)
        #expect(text.status.code == 0, "\(text.stderr)")
        #expect(text.stdout.contains("entry        cluster IP of demo/web:http (80/tcp)"), "\(text.stdout)")
        #expect(text.stdout.contains("masquerade   no: cluster-IP traffic from a pod keeps its address"), "\(text.stdout)")
        let json = try await sb(args + ["-o", "json"])
        #expect(json.status.code == 0, "\(json.stderr)")
        let explanation = try JSONDecoder().decode(Explanation.self, from: Data(json.stdout.utf8))
        let endpoint = try #require(explanation.verdict.endpoint)
        #expect(explanation.verdict.kind == .dnat)
        #expect(text.stdout.contains("verdict      DNAT to \(endpoint): Maglev slot \(explanation.maglev!.slot!) of 31"), "\(text.stdout)")
        let empty = try await sb(["explain", "-f", Self.examples] + Self.flags + ["10.244.1.7:40000", "10.96.0.20:80"])
        #expect(empty.stdout.contains("verdict      REJECT: no endpoints"), "\(empty.stdout)")
    }
}
