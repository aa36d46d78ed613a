import Foundation
import NetworkTypes
import NFTModel
import SwitchboardCore
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// Hostile input never crashes (issue 11): every decoder of outside text here, run on mutated seeds.
///
/// Each target runs its seed corpus (`Fixtures/fuzz/<target>/`) and then a fixed number of mutated
/// inputs, a fraction of a second each; a failure prints the seed, iteration and input. The long run
/// and the environment that steers it are in README.md ("Fuzzing").
@Suite(.serialized, .exclusive) struct FuzzTests {
    @Test("hostile input never crashes the decoder", arguments: Self.targets)
    func neverCrashes(_ target: FuzzTarget) {
        let report = Fuzzer.run(target)
        print(report.summary)
        #expect(report.findingCount == 0, "\(report)")
    }

    /// The engine itself: an input is a function of (seed, iteration), and a finding names both and the input.
    @Test func findingsNameTheirInputAndReplay() throws {
        let mutator = FuzzMutator(seeds: [Array("{\"a\": [1, 2]}".utf8)])
        #expect(mutator.input(seed: 7, iteration: 42) == mutator.input(seed: 7, iteration: 42))
        #expect((0..<20).map { mutator.input(seed: 7, iteration: $0) } != (0..<20).map { mutator.input(seed: 8, iteration: $0) })

        let target = FuzzTarget("no-digits", seeds: [Array("abc".utf8)], iterations: 300) { bytes in
            if bytes.contains(where: { (0x30...0x39).contains($0) }) { throw FuzzFailure("a digit") }
        }
        var configuration = FuzzConfiguration()
        configuration.seed = 7
        let report = Fuzzer.run(target, configuration)
        #expect(report.executions == 301 && report.findingCount > 0 && report.findings.count <= 10)
        let finding = try #require(report.findings.first)
        let iteration = try #require(finding.iteration)
        #expect(finding.problem == "a digit")
        #expect(target.mutator.input(seed: 7, iteration: iteration) == finding.input)
        #expect(finding.description.contains("seed 0x7, iteration \(iteration): a digit"))
        #expect(finding.description.contains("base64: \(Data(finding.input).base64EncodedString())"))
    }

    static let targets: [FuzzTarget] = [
        FuzzTarget("json", seeds: corpus("json"), iterations: 300) { bytes in try checkJSON(bytes) },
        FuzzTarget(
            "manifest-yaml",
            seeds: corpus("manifest-yaml", plus: [
                "service-dual.yaml", "service-multi.yaml", "endpointslice-v1-web.yaml",
                "endpointslice-v1beta1-web.yaml", "multi-doc.yaml",
            ]),
            dictionary: kubernetesWords, iterations: 80
        ) { bytes in try checkManifests(bytes) },
        FuzzTarget(
            "manifest-json", seeds: corpus("manifest-json", plus: ["service-lb.json", "node-a.json"]),
            dictionary: kubernetesWords, iterations: 100
        ) { bytes in try checkManifests(bytes) },
        FuzzTarget(
            "proxy-config", seeds: corpus("proxy-config"),
            dictionary: ["syncPeriod", "clusterCIDR", "nodePortAddresses", "detectLocalMode", "featureGates",
                         "kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration", "ipsetExport"],
            iterations: 150
        ) { bytes in
            _ = try? ProxyConfigFile.parse(String(decoding: bytes, as: UTF8.self))
        },
        FuzzTarget("go-duration", seeds: corpus("go-duration"), iterations: 300) { bytes in
            try checkDuration(bytes)
        },
        FuzzTarget("ip-address", seeds: corpus("ip-address"), iterations: 200) { bytes in
            try checkAddress(bytes)
        },
        FuzzTarget("cidr", seeds: corpus("cidr"), iterations: 300) { bytes in try checkCIDR(bytes) },
    ]

    static let kubernetesWords = [
        "apiVersion", "kind", "metadata", "name", "namespace", "spec", "ports", "port", "targetPort", "nodePort",
        "clusterIP", "clusterIPs", "ipFamilies", "type", "LoadBalancer", "NodePort", "ExternalName", "List",
        "ServiceList", "items", "EndpointSlice", "discovery.k8s.io/v1", "endpoints", "addresses", "conditions",
        "Node", "podCIDRs", "sessionAffinity", "ClientIP", "externalTrafficPolicy", "Local", "SCTP", "UDP",
    ]

    /// The seeds of one target, and fixtures one level up that are good seeds too.
    static func corpus(_ target: String, plus fixtures: [String] = []) -> [[UInt8]] {
        let fixturesURL = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
        let extra = fixtures.map { name in
            [UInt8](FileManager.default.contents(atPath: fixturesURL.appendingPathComponent(name).path)!)
        }
        return FuzzCorpus.load(fixturesURL.appendingPathComponent("fuzz/\(target)")) + extra
    }

    // MARK: - Targets

    /// `JSONParser` on raw bytes (invalid UTF-8 included). What parses re-serialises to JSON that parses to
    /// the same value; the streaming reader of a LIST body agrees with the whole-document one.
    static func checkJSON(_ bytes: [UInt8]) throws {
        let parsed = Result { try bytes.withUnsafeBytes { try JSONValue(jsonBytes: $0) } }
        if case .success(let value) = parsed {
            let text = serialise(value)
            let again = try? JSONValue(json: text)
            guard again == value else {
                throw FuzzFailure("round trip changed the value: \(value) → \(text) → \(String(describing: again))")
            }
        }
        var streamed: [JSONValue] = []
        let members = Result {
            try bytes.withUnsafeBytes { raw in
                try JSONValue.streamObject(raw, arrayMember: "items") { streamed.append($0) }
            }
        }
        switch (parsed, members) {
        case (.success(.object(var whole)), .success(let rest)):
            if case .array(let items)? = whole["items"] {
                // With a duplicate `items` member the streaming reader hands on the elements of each (it cannot
                // take them back), the parser keeps the last.
                guard streamed.count >= items.count, Array(streamed.suffix(items.count)) == items else {
                    throw FuzzFailure("streamed items differ: \(streamed) vs \(items)")
                }
                whole["items"] = nil
            }
            guard whole == rest else { throw FuzzFailure("streamed members differ: \(rest) vs \(whole)") }
        case (.success(.object), .failure(let error)):
            throw FuzzFailure("the streaming reader refused an object the parser read: \(error)")
        case (.success, .success), (.failure, .success):
            throw FuzzFailure("the streaming reader read what the parser refused or is no object: \(parsed)")
        default:
            break
        }
    }

    /// Manifests as `switchboard render` reads them, then what the agent does with them: compile the cluster
    /// for a node and render the ruleset and its transaction from nothing.
    static func checkManifests(_ bytes: [UInt8]) throws {
        let result = ManifestDecoder.decode(String(decoding: bytes, as: UTF8.self), source: "fuzz")
        if let empty = result.diagnostics.first(where: { $0.message.isEmpty || $0.object.isEmpty }) {
            throw FuzzFailure("a diagnostic without a message or object: \(empty)")
        }
        guard !result.objects.isEmpty else { return }
        let context = NodeContext(nodeName: "node-a", clusterCIDRs: [CIDR("10.244.0.0/16")!])
        let compiled = compile(ClusterState(result.objects), for: context)
        _ = compiled.ruleset.script
        _ = compiled.ruleset.transaction(from: Ruleset()).description
    }

    /// Go durations: what parses is non-negative, below the 1e18 ns cap, and blind to surrounding spaces.
    static func checkDuration(_ bytes: [UInt8]) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let duration = GoDuration.parse(text) else { return }
        guard duration >= .zero, duration < .nanoseconds(1_000_000_000_000_000_000) else {
            throw FuzzFailure("\(text) parsed to \(duration)")
        }
        guard GoDuration.parse(" \(text) ") == duration else { throw FuzzFailure("spaces changed \(text)") }
    }

    /// Addresses: the canonical text parses back to the same address, of the family's length.
    static func checkAddress(_ bytes: [UInt8]) throws {
        guard let address = IPAddress(String(decoding: bytes, as: UTF8.self)) else { return }
        guard address.bytes.count == (address.family == .v4 ? 4 : 16) else {
            throw FuzzFailure("\(address): \(address.bytes.count) bytes")
        }
        guard IPAddress(address.description) == address else {
            throw FuzzFailure("\(address.description) does not parse back to itself")
        }
    }

    /// Prefixes: masked, holding their own address, and parsing back from `address/length`.
    static func checkCIDR(_ bytes: [UInt8]) throws {
        guard let cidr = CIDR(String(decoding: bytes, as: UTF8.self)) else { return }
        guard cidr.contains(cidr.address), CIDR("\(cidr.address)/\(cidr.prefixLength)") == cidr else {
            throw FuzzFailure("\(cidr) (from \(Fuzzer.escaped(bytes))) does not round-trip")
        }
    }

    // MARK: - JSON text

    /// Compact JSON for a value; doubles in Swift's shortest round-tripping form.
    static func serialise(_ value: JSONValue) -> String {
        var out = ""
        write(value, to: &out)
        return out
    }

    private static func write(_ value: JSONValue, to out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += "\(d)"
        case .string(let s): writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                write(item, to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                writeString(key, to: &out)
                out += ":"
                write(members[key]!, to: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
