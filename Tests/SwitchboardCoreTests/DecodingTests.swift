import Foundation
import NetworkTypes
import Testing

@testable import SwitchboardCore

/// Fixtures are captured from a real kube-apiserver v1.20.2; see `Fixtures/README.md`.
@Suite struct DecodingTests {
    // MARK: - Captured fixtures

    @Test func clusterListDecodesEveryObjectWithoutDiagnostics() throws {
        let result = ManifestDecoder.decode(try fixture("cluster-list.json"), source: "cluster-list.json")
        #expect(result.diagnostics == [])
        #expect(result.objects.compactMap(\.asService).map(\.ref.description) == [
            "default/dual", "default/ext", "default/kubernetes", "default/local", "default/sticky",
            "default/v6only", "default/web", "shop/extname", "shop/headless", "shop/lb", "shop/multi", "shop/np",
        ])
        #expect(result.objects.compactMap(\.asEndpointSlice).map(\.ref.description) == [
            "default/dual-v6-xyz", "default/web-abc12", "shop/allports", "shop/multi-1",
        ])
        #expect(result.objects.compactMap(\.asNode).map(\.name) == ["node-a", "node-b"])
    }

    @Test(arguments: Expected.services)
    func clusterListServiceHasCapturedFields(expected: Service) throws {
        let result = ManifestDecoder.decode(try fixture("cluster-list.json"), source: "cluster-list.json")
        let service = try #require(result.objects.compactMap(\.asService).first { $0.ref == expected.ref })
        #expect(service == expected)
    }

    @Test(arguments: Expected.slices)
    func clusterListSliceHasCapturedFields(expected: EndpointSlice) throws {
        let result = ManifestDecoder.decode(try fixture("cluster-list.json"), source: "cluster-list.json")
        let slice = try #require(result.objects.compactMap(\.asEndpointSlice).first { $0.ref == expected.ref })
        #expect(slice.withoutLastApplied == expected)
        // `kubectl apply` records the input; the decoder keeps annotations as they are.
        #expect(slice.annotations["kubectl.kubernetes.io/last-applied-configuration"]?.hasPrefix("{") == true)
    }

    @Test(arguments: Expected.nodes)
    func clusterListNodeHasCapturedFields(expected: Node) throws {
        let result = ManifestDecoder.decode(try fixture("cluster-list.json"), source: "cluster-list.json")
        let node = try #require(result.objects.compactMap(\.asNode).first { $0.name == expected.name })
        #expect(node == expected)
    }

    @Test func nodeDerivedFieldsComeFromTheCapturedNode() throws {
        let result = ManifestDecoder.decode(try fixture("node-a.json"), source: "node-a.json")
        let node = try #require(result.objects.first?.asNode)
        #expect(node.internalIPs == [ip("192.168.10.11"), ip("fd00:192:168:10::11")])
        #expect(node.zone == "zone-1")
    }

    /// The same list printed as JSON and as YAML, and as the API's typed lists, must give the same objects.
    @Test(arguments: [
        ("cluster-list.yaml", Kind.all), ("raw-servicelist.json", .service),
        ("raw-endpointslicelist-v1beta1.json", .endpointSlice), ("raw-nodelist.json", .node),
    ])
    func sameObjectsWhateverTheListFormat(file: String, kind: Kind) throws {
        let reference = ManifestDecoder.decode(try fixture("cluster-list.json"), source: "cluster-list.json")
        let other = ManifestDecoder.decode(try fixture(file), source: file)
        #expect(other.diagnostics == [])
        #expect(other.objects == reference.objects.filter { kind.matches($0) })
        #expect(!other.objects.isEmpty)
    }

    @Test(arguments: [
        ("service-multi.yaml", KubeObject.service(Expected.service("shop/multi"))),
        ("service-lb.json", .service(Expected.service("shop/lb"))),
        ("service-dual.yaml", .service(Expected.service("default/dual"))),
        ("node-a.json", .node(Expected.nodes[0])),
    ])
    func singleObjectFixture(file: String, expected: KubeObject) throws {
        let result = ManifestDecoder.decode(try fixture(file), source: file)
        #expect(result.diagnostics == [])
        #expect(result.objects == [expected])
    }

    @Test func v1beta1SliceTopologyMapsToNodeAndZone() throws {
        let result = ManifestDecoder.decode(try fixture("endpointslice-v1beta1-web.yaml"), source: "web.yaml")
        #expect(result.diagnostics == [])
        let slice = try #require(result.objects.first?.asEndpointSlice)
        #expect(slice.withoutLastApplied == Expected.slice("default/web-abc12"))
        #expect(slice.serviceRef == ObjectRef(namespace: "default", name: "web"))
        #expect(slice.endpoints.map(\.isReady) == [true, false, false, true])
        #expect(slice.endpoints.map(\.isServing) == [true, true, false, true])
        #expect(slice.endpoints.map(\.isTerminating) == [false, true, false, false])
    }

    /// Derived from the v1beta1 capture by the API's conversion (see the fixtures README): same slice, plus the
    /// zone hint the v1 file adds to its first endpoint.
    @Test func v1SliceDecodesLikeItsV1beta1Source() throws {
        let v1 = ManifestDecoder.decode(try fixture("endpointslice-v1-web.yaml"), source: "v1.yaml")
        #expect(v1.diagnostics == [])
        var expected = Expected.slice("default/web-abc12")
        expected.endpoints[0].zoneHints = ["zone-1"]
        #expect(v1.objects.first?.asEndpointSlice?.withoutLastApplied == expected)
    }

    @Test func multiDocumentFixture() throws {
        let result = ManifestDecoder.decode(try fixture("multi-doc.yaml"), source: "multi-doc.yaml")
        #expect(result.diagnostics == [])
        #expect(result.objects.map(\.diagnosticLabel) == [
            "Service default/web", "EndpointSlice default/web-abc12", "Service shop/np", "Node node-b",
        ])
        #expect(result.objects[2] == .service(Expected.service("shop/np")))
    }

    // MARK: - Input shapes

    @Test func multiDocumentYAMLWithCommentsEmptyDocumentsAndEndMarkers() {
        let text = """
            # leading comment
            ---
            \(Samples.service("one"))
            ---

            ---
            # only a comment
            ---
            \(Samples.service("two"))
            ...
            --- {apiVersion: v1, kind: Service, metadata: {name: three}}
            """
        let result = ManifestDecoder.decode(text, source: "s.yaml")
        #expect(result.diagnostics == [])
        #expect(result.objects.map(\.diagnosticLabel) == [
            "Service default/one", "Service default/two", "Service default/three",
        ])
    }

    @Test func syntaxErrorCostsOnlyItsDocument() throws {
        let text = """
            \(Samples.service("one"))
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: [broken
            ---
            \(Samples.service("three"))
            """
        let result = ManifestDecoder.decode(text, source: "s.yaml")
        #expect(result.objects.map(\.diagnosticLabel) == ["Service default/one", "Service default/three"])
        let diagnostic = try #require(result.diagnostics.first)
        #expect(result.diagnostics.count == 1)
        #expect(diagnostic.object == "document 2 of s.yaml")
        #expect(diagnostic.severity == .error)
        // Line numbers count from the start of the whole stream, not of the document: the flow sequence
        // opens on line 8 of the text, line 3 of its document.
        #expect(diagnostic.message == "syntax error at line 9, column 1: did not find expected ',' or ']' "
            + "(while parsing a flow sequence at line 8, column 18); document skipped")
    }

    @Test func invalidJSONIsReportedWithItsLine() throws {
        let text = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Service\",\n  \"metadata\": {\"name\": \"a\",,}\n}\n"
        let result = ManifestDecoder.decode(text, source: "bad.json")
        #expect(result.objects == [])
        let diagnostic = try #require(result.diagnostics.first)
        #expect(diagnostic.object == "document 1 of bad.json")
        // JSONDecoder gives no position; the YAML re-read does.
        #expect(diagnostic.message == "syntax error at line 4, column 28: did not find expected node content "
            + "(while parsing a flow node at line 4, column 28); document skipped")
    }

    @Test func nestedListsAreFlattenedAndOtherKindsSkippedSilently() {
        let text = """
            {"apiVersion": "v1", "kind": "List", "items": [
              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
              {"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
                \(Samples.serviceJSON("inner"))
              ]},
              {"apiVersion": "v1", "kind": "ServiceList", "items": [
                {"metadata": {"name": "typed", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}}
              ]},
              \(Samples.serviceJSON("outer"))
            ]}
            """
        let result = ManifestDecoder.decode(text, source: "l.json")
        #expect(result.diagnostics == [])
        #expect(result.objects.map(\.diagnosticLabel) == [
            "Service default/inner", "Service shop/typed", "Service default/outer",
        ])
    }

    @Test func unknownFieldsAreIgnored() {
        let plain = ManifestDecoder.decode(Samples.service("web"), source: "a.yaml")
        let noisy = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            futureTopLevel: {x: 1}
            metadata: {name: web, generation: 7, managedFields: [{manager: kubectl}]}
            spec:
              clusterIP: 10.96.0.10
              ports: [{port: 80, appProtocol: http, futurePortField: [1, 2]}]
              trafficDistribution: PreferClose
              ipFamilyPolicy: SingleStack
            status: {conditions: [], loadBalancer: {}}
            """, source: "b.yaml")
        #expect(noisy.diagnostics == [])
        #expect(noisy.objects == plain.objects)
        #expect(plain.objects.count == 1)
    }

    @Test func defaultsApplyToAMinimalService() throws {
        let result = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 80}]
            """, source: "m.yaml")
        let service = try #require(result.objects.first?.asService)
        #expect(service == Service(
            ref: ObjectRef(namespace: "default", name: "web"), type: .clusterIP,
            ports: [ServicePort(name: "", protocol: .tcp, port: 80, targetPort: .number(80))],
            externalTrafficPolicy: .cluster, internalTrafficPolicy: .cluster, sessionAffinity: .none))
    }

    @Test func fieldsThatTheCapturingServerDidNotHave() throws {
        let result = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: prod}
            spec:
              type: LoadBalancer
              clusterIP: 10.96.0.10
              internalTrafficPolicy: Local
              sessionAffinity: ClientIP
              ports:
              - {name: a, port: 80, targetPort: 0, nodePort: 0}
              - {name: b, port: 81, targetPort: "", protocol: UDP}
            status:
              loadBalancer:
                ingress: [{ip: 203.0.113.7, ipMode: Proxy}, {ip: "2001:db8::7", ipMode: VIP}]
            """, source: "m.yaml")
        #expect(result.diagnostics == [])
        let service = try #require(result.objects.first?.asService)
        #expect(service.clusterIPs == [ip("10.96.0.10")])
        #expect(service.internalTrafficPolicy == .local)
        #expect(service.sessionAffinity == .clientIP(timeoutSeconds: 10800))
        #expect(service.ports == [
            ServicePort(name: "a", port: 80, targetPort: .number(80), nodePort: nil),
            ServicePort(name: "b", protocol: .udp, port: 81, targetPort: .number(81)),
        ])
        #expect(service.loadBalancerIngress == [
            LoadBalancerIngress(ip: ip("203.0.113.7"), ipMode: .proxy),
            LoadBalancerIngress(ip: ip("2001:db8::7"), ipMode: .vip),
        ])
    }

    @Test func v1SliceFieldsAndFQDNSlices() throws {
        let result = ManifestDecoder.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s, labels: {kubernetes.io/service-name: web}}
            addressType: IPv6
            ports: [{port: 80}]
            endpoints:
            - addresses: ["FD00:0::1"]
              nodeName: n1
              zone: z1
              hints: {forZones: [{name: z1}, {name: z2}]}
              topology: {kubernetes.io/hostname: ignored-in-v1}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: f}
            addressType: FQDN
            endpoints: [{addresses: [db.example.com]}]
            """, source: "s.yaml")
        #expect(result.diagnostics == [])
        let slices = result.objects.compactMap(\.asEndpointSlice)
        #expect(slices.count == 2)
        #expect(slices[0].endpoints == [
            Endpoint(addresses: [ip("fd00::1")], nodeName: "n1", zone: "z1", zoneHints: ["z1", "z2"]),
        ])
        #expect(slices[0].ports == [EndpointPort(name: "", protocol: .tcp, port: 80)])
        #expect(slices[1].addressType == .fqdn)
        #expect(slices[1].serviceName == nil)
        #expect(slices[1].endpoints == [])
    }

    @Test func v1NodeHints() throws {
        let result = ManifestDecoder.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            ports: [{port: 80}]
            endpoints:
            - addresses: [10.0.0.1]
              hints: {forNodes: [{name: n1}], forZones: [{name: z1}]}
            - addresses: [10.0.0.2]
              hints: {forNodes: [{name: n2}, {name: n3}]}
            """, source: "s.yaml")
        #expect(result.diagnostics == [])
        #expect(result.objects.compactMap(\.asEndpointSlice).first?.endpoints == [
            Endpoint(addresses: [ip("10.0.0.1")], zoneHints: ["z1"], nodeHints: ["n1"]),
            Endpoint(addresses: [ip("10.0.0.2")], zoneHints: [], nodeHints: ["n2", "n3"]),
        ])
    }

    @Test func decodesAParsedValueDirectly() throws {
        let value = try JSONValue(json: Samples.serviceJSON("watched"))
        let result = ManifestDecoder.decode(value, source: "watch")
        #expect(result.objects.map(\.diagnosticLabel) == ["Service default/watched"])
    }

    @Test func objectsWithoutKindOrWithUnsupportedVersionsWarn() {
        let text = """
            metadata: {name: nokind}
            ---
            apiVersion: v2
            kind: Service
            metadata: {name: future}
            ---
            apiVersion: discovery.k8s.io/v1alpha1
            kind: EndpointSlice
            metadata: {name: old}
            ---
            just a string
            ---
            \(Samples.service("fine"))
            """
        let result = ManifestDecoder.decode(text, source: "w.yaml")
        #expect(result.objects.map(\.diagnosticLabel) == ["Service default/fine"])
        #expect(result.diagnostics.map(\.object) == [
            "document 1 of w.yaml", "document 2 of w.yaml", "document 3 of w.yaml", "document 4 of w.yaml",
        ])
        #expect(result.diagnostics.allSatisfy { $0.severity == .warning })
    }

    // MARK: - Malformed input

    /// Each bad document sits between two good ones; the good ones must still decode.
    @Test(arguments: Malformed.cases)
    func malformedObjectIsSkippedWithADiagnostic(bad: Malformed) throws {
        let text = "\(Samples.service("before"))\n---\n\(bad.document)\n---\n\(Samples.slice("after"))\n"
        let result = ManifestDecoder.decode(text, source: "in.yaml")
        #expect(result.objects.map(\.diagnosticLabel) == ["Service default/before", "EndpointSlice default/after"])
        try #require(result.diagnostics.count == 1, "\(result.diagnostics)")
        let diagnostic = result.diagnostics[0]
        #expect(diagnostic.severity == .error)
        #expect(diagnostic.object == bad.object)
        #expect(diagnostic.field == bad.field)
        #expect(diagnostic.message.contains(bad.message), "\(diagnostic.message)")
    }

    @Test func hostileNameIsRejectedAndQuotedInertly() throws {
        let text = """
            apiVersion: v1
            kind: Service
            metadata: {name: "x\\"; flush ruleset; \\"", namespace: default}
            spec: {ports: [{port: 80}]}
            """
        let result = ManifestDecoder.decode(text, source: "evil.yaml")
        #expect(result.objects == [])
        let diagnostic = try #require(result.diagnostics.first)
        #expect(diagnostic.object == "document 1 of evil.yaml")
        #expect(diagnostic.field == "metadata.name")
        #expect(diagnostic.message.contains(#"name "x\"; flush ruleset; \"" is not a DNS-1123 label"#))
    }

    @Test func controlCharactersInNamesAreEscapedInMessages() throws {
        let result = ManifestDecoder.decode(
            #"{"apiVersion":"v1","kind":"Node","metadata":{"name":"a\nb\u001b[31m"}}"#, source: "n.json")
        let diagnostic = try #require(result.diagnostics.first)
        #expect(diagnostic.message.contains(#""a\nb\u{1b}[31m""#))
        #expect(!diagnostic.description.contains("\n"))
    }

    @Test func namelessItemOfAListIsLocatedByItsPath() throws {
        let text = """
            {"apiVersion": "v1", "kind": "List", "items": [
              \(Samples.serviceJSON("good")),
              {"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default"}}
              ]}
            ]}
            """
        let result = ManifestDecoder.decode(text, source: "l.json")
        #expect(result.objects.map(\.diagnosticLabel) == ["Service default/good"])
        #expect(result.diagnostics == [
            Diagnostic(.input("document 1 of l.json"), field: "items[1].items[0].metadata.name",
                       message: "missing name; Service skipped"),
        ])
    }

    @Test(arguments: BadEndpoint.cases)
    func badEndpointSkipsOnlyThatEndpoint(bad: BadEndpoint) throws {
        let text = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s, namespace: default, labels: {kubernetes.io/service-name: web}}
            addressType: \(bad.addressType)
            ports: [{name: http, port: 8080}]
            endpoints:
            - addresses: [\(bad.addressType == "IPv4" ? "10.0.0.1" : "fd00::1")]
            - \(bad.endpoint)
            - addresses: [\(bad.addressType == "IPv4" ? "10.0.0.3" : "fd00::3")]
            """
        let result = ManifestDecoder.decode(text, source: "e.yaml")
        let slice = try #require(result.objects.first?.asEndpointSlice)
        #expect(slice.endpoints.count == 2)
        #expect(slice.ports == [EndpointPort(name: "http", port: 8080)])
        #expect(result.diagnostics.count == 1)
        #expect(result.diagnostics.first?.severity == .warning)
        #expect(result.diagnostics.first?.object == "EndpointSlice default/s")
        #expect(result.diagnostics.first?.field == bad.field)
        #expect(result.diagnostics.first?.message.hasSuffix("; endpoint skipped") == true)
    }

    @Test func badNodeAddressIsDroppedWithAWarning() throws {
        let result = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Node
            metadata: {name: n1}
            status:
              addresses:
              - {type: InternalIP, address: 010.0.0.1}
              - {type: InternalIP, address: 10.0.0.2}
              - {type: Hostname, address: 7}
              - {type: Hostname, address: n1}
            """, source: "n.yaml")
        let node = try #require(result.objects.first?.asNode)
        #expect(node.addresses == [NodeAddress(type: "InternalIP", address: "10.0.0.2"),
                                   NodeAddress(type: "Hostname", address: "n1")])
        #expect(result.diagnostics.map(\.field) == ["status.addresses[0].address", "status.addresses[2].address"])
        #expect(result.diagnostics.allSatisfy { $0.severity == .warning && $0.object == "Node n1" })
    }

    // MARK: - YAML and JSON reading

    @Test(arguments: [
        ("80", JSONValue.int(80)), ("-7", .int(-7)), ("\"80\"", .string("80")), ("'80'", .string("80")),
        ("1.5", .double(1.5)), ("1e3", .double(1000)), ("true", .bool(true)), ("False", .bool(false)),
        ("null", .null), ("~", .null), ("", .null),
        // YAML 1.1-isms that must stay strings.
        ("yes", .string("yes")), ("off", .string("off")), ("0755", .string("0755")), ("0x1F", .string("0x1F")),
        ("12:30", .string("12:30")), ("1_000", .string("1_000")), (".inf", .string(".inf")),
        ("010.0.0.1", .string("010.0.0.1")), ("2001:db8::1", .string("2001:db8::1")),
        ("2024-01-01", .string("2024-01-01")),
        // Explicit tags win.
        ("!!str 80", .string("80")), ("!!int \"80\"", .int(80)), ("!!bool true", .bool(true)),
        ("|\n  text\n", .string("text\n")),
    ])
    func yamlScalarTyping(scalar: String, expected: JSONValue) throws {
        let documents = JSONValue.documents(yaml: "v: \(scalar)")
        let value = try #require(documents.first).content.get()
        #expect(value == .object(["v": expected]))
    }

    @Test func yamlAndJSONReadTheSameValue() throws {
        let json = try JSONValue(json: #"{"a": [1, 2.5, "x", null, true, {"b": "80"}], "c": {}}"#)
        let documents = JSONValue.documents(yaml: "a: [1, 2.5, x, null, true, {b: \"80\"}]\nc: {}\n")
        let yaml = try #require(documents.first).content.get()
        #expect(json == yaml)
        #expect(json["a"] == .array([.int(1), .double(2.5), .string("x"), .null, .bool(true),
                                     .object(["b": .string("80")])]))
    }

    @Test func yamlDocumentsAreNumberedAndLocated() {
        let documents = JSONValue.documents(yaml: "%YAML 1.1\n---\na: 1\n---\n---\n# c\nb: 2\n")
        #expect(documents.map(\.number) == [1, 2])
        #expect(documents.map(\.line) == [3, 7])
    }

    @Test func aliasBombIsRefused() throws {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            let refs = Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ")
            text += "a\(i): &a\(i) [\(refs)]\n"
        }
        let documents = JSONValue.documents(yaml: text)
        #expect(documents.count == 1)
        guard case .failure(let error) = documents.first?.content else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.message.contains("too many nodes"))
    }

    // MARK: - Name rules

    @Test(arguments: [
        ("web", true), ("a", true), ("0abc", true), ("a-b", true), (String(repeating: "a", count: 63), true),
        (String(repeating: "a", count: 64), false), ("-a", false), ("a-", false), ("A", false), ("a.b", false),
        ("", false), ("a_b", false), ("x\"; flush ruleset; \"", false),
    ])
    func dns1123Label(name: String, valid: Bool) {
        #expect(NameRules.isDNS1123Label(name) == valid)
    }

    @Test(arguments: [
        ("node-a.example.com", true), ("a", true), ("a..b", false), (".a", false), ("a.", false), ("A.b", false),
        (String(repeating: "a", count: 253), true), (String(repeating: "a", count: 254), false),
    ])
    func dns1123Subdomain(name: String, valid: Bool) {
        #expect(NameRules.isDNS1123Subdomain(name) == valid)
    }

    @Test(arguments: [
        ("http", true), ("web-http", true), ("h2c", true), ("a23456789012345", true), ("a234567890123456", false),
        ("8080", false), ("-http", false), ("http-", false), ("we--b", false), ("HTTP", false), ("", false),
    ])
    func ianaServiceName(name: String, valid: Bool) {
        #expect(NameRules.isIANASvcName(name) == valid)
    }
}

// MARK: - Helpers

private func fixture(_ name: String) throws -> String {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    return try String(contentsOf: url, encoding: .utf8)
}

private func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}

private func ref(_ text: String) -> ObjectRef {
    let parts = text.split(separator: "/")
    return ObjectRef(namespace: String(parts[0]), name: String(parts[1]))
}

extension KubeObject {
    fileprivate var asService: Service? {
        if case .service(let s) = self { return s }
        return nil
    }

    fileprivate var asEndpointSlice: EndpointSlice? {
        if case .endpointSlice(let s) = self { return s }
        return nil
    }

    fileprivate var asNode: Node? {
        if case .node(let n) = self { return n }
        return nil
    }

    /// As diagnostics name objects.
    fileprivate var diagnosticLabel: String {
        switch self {
        case .service(let s): return "Service \(s.ref)"
        case .endpointSlice(let s): return "EndpointSlice \(s.ref)"
        case .node(let n): return "Node \(n.name)"
        }
    }
}

extension EndpointSlice {
    /// The slice without the annotation `kubectl apply` adds, whose text is too long to repeat in a test.
    fileprivate var withoutLastApplied: EndpointSlice {
        var copy = self
        copy.annotations["kubectl.kubernetes.io/last-applied-configuration"] = nil
        return copy
    }
}

extension DecodingTests {
    enum Kind: Sendable {
        case all, service, endpointSlice, node

        func matches(_ object: KubeObject) -> Bool {
            switch (self, object) {
            case (.all, _), (.service, .service), (.endpointSlice, .endpointSlice), (.node, .node): return true
            default: return false
            }
        }
    }

    /// Small, valid inputs to surround bad ones with.
    private enum Samples {
        static func service(_ name: String) -> String {
            """
            apiVersion: v1
            kind: Service
            metadata: {name: \(name)}
            spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
            """
        }

        static func serviceJSON(_ name: String) -> String {
            #"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "\#(name)"}, "#
                + #""spec": {"ports": [{"port": 80}]}}"#
        }

        static func slice(_ name: String) -> String {
            """
            apiVersion: discovery.k8s.io/v1beta1
            kind: EndpointSlice
            metadata: {name: \(name), labels: {kubernetes.io/service-name: before}}
            addressType: IPv4
            ports: [{port: 8080}]
            endpoints: [{addresses: [10.244.0.1]}]
            """
        }
    }

    /// A bad object and the diagnostic it must produce.
    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var document: String
        var object: String
        var field: String
        var message: String

        var testDescription: String { name }

        /// A Service `default/bad` with the given `spec` (YAML flow or block text after `spec:`).
        static func service(_ name: String, spec: String, status: String = "{}", field: String, message: String)
            -> Malformed
        {
            Malformed(name: name, document: """
                apiVersion: v1
                kind: Service
                metadata: {name: bad, namespace: default}
                spec: \(spec)
                status: \(status)
                """, object: "Service default/bad", field: field, message: message)
        }

        static func slice(_ name: String, _ body: String, field: String, message: String) -> Malformed {
            Malformed(name: name, document: """
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: bad-slice, namespace: default, labels: {kubernetes.io/service-name: bad}}
                \(body)
                """, object: "EndpointSlice default/bad-slice", field: field, message: message)
        }

        static let cases: [Malformed] = [
            .service("service port 0", spec: "{ports: [{port: 0}]}", field: "spec.ports[0].port",
                     message: "port 0 is out of range 1-65535"),
            .service("service port 65536", spec: "{ports: [{port: 65536}]}", field: "spec.ports[0].port",
                     message: "port 65536 is out of range"),
            .service("missing port", spec: "{ports: [{name: a}]}", field: "spec.ports[0].port",
                     message: "missing port"),
            .service("port as string", spec: "{ports: [{port: \"80\"}]}", field: "spec.ports[0].port",
                     message: "expected an integer, got string \"80\""),
            .service("port as fraction", spec: "{ports: [{port: 80.5}]}", field: "spec.ports[0].port",
                     message: "expected an integer, got number 80.5"),
            .service("nodePort 70000", spec: "{type: NodePort, ports: [{port: 80, nodePort: 70000}]}",
                     field: "spec.ports[0].nodePort", message: "port 70000 is out of range"),
            .service("negative nodePort", spec: "{type: NodePort, ports: [{port: 80, nodePort: -1}]}",
                     field: "spec.ports[0].nodePort", message: "port -1 is out of range"),
            .service("targetPort 70000", spec: "{ports: [{port: 80, targetPort: 70000}]}",
                     field: "spec.ports[0].targetPort", message: "port 70000 is out of range"),
            .service("quoted numeric targetPort", spec: "{ports: [{port: 80, targetPort: \"8080\"}]}",
                     field: "spec.ports[0].targetPort", message: "write a number without quotes"),
            .service("targetPort name over 15 characters", spec: "{ports: [{port: 80, targetPort: http-metrics-port}]}",
                     field: "spec.ports[0].targetPort", message: "is not an IANA service name"),
            .service("targetPort name with capitals", spec: "{ports: [{port: 80, targetPort: HTTP}]}",
                     field: "spec.ports[0].targetPort", message: "is not an IANA service name"),
            .service("targetPort of the wrong type", spec: "{ports: [{port: 80, targetPort: [80]}]}",
                     field: "spec.ports[0].targetPort", message: "expected an integer or a string, got an array"),
            .service("port name with underscore", spec: "{ports: [{name: my_port, port: 80}]}",
                     field: "spec.ports[0].name", message: "is not a DNS-1123 label"),
            .service("unknown protocol", spec: "{ports: [{name: a, port: 80}, {name: b, port: 81, protocol: ICMP}]}",
                     field: "spec.ports[1].protocol", message: "unknown protocol \"ICMP\""),
            .service("lower-case protocol", spec: "{ports: [{port: 80, protocol: tcp}]}",
                     field: "spec.ports[0].protocol", message: "unknown protocol \"tcp\""),
            .service("duplicate port name", spec: "{ports: [{name: a, port: 80}, {name: a, port: 81}]}",
                     field: "spec.ports[1].name", message: "duplicate port name"),
            .service("unnamed port among several", spec: "{ports: [{port: 80}, {name: b, port: 81}]}",
                     field: "spec.ports[0].name", message: "a port name is required"),
            .service("duplicate port and protocol", spec: "{ports: [{name: a, port: 80}, {name: b, port: 80}]}",
                     field: "spec.ports[1].port", message: "duplicate port 80/TCP"),
            .service("ports not an array", spec: "{ports: {port: 80}}", field: "spec.ports",
                     message: "expected an array, got an object"),
            .service("spec not an object", spec: "oops", field: "spec",
                     message: "expected an object, got string \"oops\""),
            .service("leading-zero clusterIP", spec: "{clusterIP: 010.96.0.1, ports: [{port: 80}]}",
                     field: "spec.clusterIP", message: "invalid IP address \"010.96.0.1\""),
            .service("bad second clusterIP", spec: "{clusterIPs: [10.96.0.1, 10.96.0.300], ports: [{port: 80}]}",
                     field: "spec.clusterIPs[1]", message: "invalid IP address \"10.96.0.300\""),
            .service("clusterIPs not a list", spec: "{clusterIPs: 10.96.0.1}", field: "spec.clusterIPs",
                     message: "expected an array, got string \"10.96.0.1\""),
            .service("clusterIP differs from clusterIPs", spec: "{clusterIP: 10.96.0.2, clusterIPs: [10.96.0.1]}",
                     field: "spec.clusterIP", message: "differs from spec.clusterIPs[0]"),
            .service("two IPv4 clusterIPs", spec: "{clusterIPs: [10.96.0.1, 10.96.0.2]}", field: "spec.clusterIPs",
                     message: "at most one cluster IP per IP family"),
            .service("None with another clusterIP", spec: "{clusterIPs: [None, 10.96.0.2]}",
                     field: "spec.clusterIPs[0]", message: "must be the only cluster IP"),
            .service("bad externalIP", spec: "{externalIPs: [203.0.113.010], ports: [{port: 80}]}",
                     field: "spec.externalIPs[0]", message: "invalid IP address"),
            .service("bad load-balancer ingress IP", spec: "{type: LoadBalancer, ports: [{port: 80}]}",
                     status: "{loadBalancer: {ingress: [{ip: lb.example.com}]}}",
                     field: "status.loadBalancer.ingress[0].ip", message: "invalid IP address \"lb.example.com\""),
            .service("unknown ipMode", spec: "{type: LoadBalancer, ports: [{port: 80}]}",
                     status: "{loadBalancer: {ingress: [{ip: 203.0.113.1, ipMode: Direct}]}}",
                     field: "status.loadBalancer.ingress[0].ipMode", message: "unknown value \"Direct\""),
            .service("bad source range", spec: "{loadBalancerSourceRanges: [10.0.0.0/33], ports: [{port: 80}]}",
                     field: "spec.loadBalancerSourceRanges[0]", message: "invalid CIDR \"10.0.0.0/33\""),
            .service("unknown type", spec: "{type: Foo, ports: [{port: 80}]}", field: "spec.type",
                     message: "unknown value \"Foo\" (expected one of ClusterIP, NodePort, LoadBalancer, "
                        + "ExternalName)"),
            .service("unknown externalTrafficPolicy", spec: "{externalTrafficPolicy: Global, ports: [{port: 80}]}",
                     field: "spec.externalTrafficPolicy", message: "unknown value \"Global\""),
            .service("unknown internalTrafficPolicy", spec: "{internalTrafficPolicy: 7, ports: [{port: 80}]}",
                     field: "spec.internalTrafficPolicy", message: "expected a string, got integer 7"),
            .service("healthCheckNodePort out of range", spec: "{healthCheckNodePort: 99999, ports: [{port: 80}]}",
                     field: "spec.healthCheckNodePort", message: "port 99999 is out of range"),
            .service("unknown sessionAffinity", spec: "{sessionAffinity: Cookie, ports: [{port: 80}]}",
                     field: "spec.sessionAffinity", message: "unknown value \"Cookie\""),
            .service("affinity timeout 0",
                     spec: "{sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}}",
                     field: "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                     message: "timeout 0 is out of range 1-86400"),
            Malformed(name: "label value of the wrong type", document: """
                apiVersion: v1
                kind: Service
                metadata: {name: bad, labels: {app: web, version: 1.0}}
                """, object: "Service default/bad", field: "metadata.labels.version",
                      message: "expected a string, got number 1.0"),
            Malformed(name: "missing name", document: """
                apiVersion: v1
                kind: Service
                metadata: {namespace: default}
                """, object: "document 2 of in.yaml", field: "metadata.name", message: "missing name"),
            Malformed(name: "name not a DNS label", document: """
                apiVersion: v1
                kind: Service
                metadata: {name: Web.Server}
                """, object: "document 2 of in.yaml", field: "metadata.name",
                      message: "name \"Web.Server\" is not a DNS-1123 label"),
            Malformed(name: "namespace not a DNS label", document: """
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: kube_system}
                """, object: "document 2 of in.yaml", field: "metadata.namespace",
                      message: "namespace \"kube_system\" is not a DNS-1123 label"),
            Malformed(name: "metadata not an object", document: """
                apiVersion: v1
                kind: Service
                metadata: [web]
                """, object: "document 2 of in.yaml", field: "metadata", message: "expected an object, got an array"),
            .slice("slice port 0", "addressType: IPv4\nports: [{name: http, port: 0}]", field: "ports[0].port",
                   message: "port 0 is out of range"),
            .slice("slice port 65536", "addressType: IPv4\nports: [{port: 65536}]", field: "ports[0].port",
                   message: "port 65536 is out of range"),
            .slice("slice unknown protocol", "addressType: IPv4\nports: [{port: 80, protocol: QUIC}]",
                   field: "ports[0].protocol", message: "unknown protocol \"QUIC\""),
            .slice("slice port name invalid", "addressType: IPv4\nports: [{name: Http, port: 80}]",
                   field: "ports[0].name", message: "is not a DNS-1123 label"),
            .slice("slice duplicate port name", "addressType: IPv4\nports: [{name: a, port: 80}, {name: a, port: 81}]",
                   field: "ports[1].name", message: "duplicate port name"),
            .slice("missing addressType", "ports: [{port: 80}]", field: "addressType", message: "missing addressType"),
            .slice("unknown addressType", "addressType: IPv5", field: "addressType", message: "unknown value \"IPv5\""),
            .slice("endpoints not an array", "addressType: IPv4\nendpoints: {addresses: [10.0.0.1]}",
                   field: "endpoints", message: "expected an array"),
            Malformed(name: "slice name not a subdomain", document: """
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: Web_1}
                addressType: IPv4
                """, object: "document 2 of in.yaml", field: "metadata.name",
                      message: "name \"Web_1\" is not a DNS-1123 subdomain"),
            Malformed(name: "slice service-name label invalid", document: """
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: web-1, labels: {kubernetes.io/service-name: "web; drop"}}
                addressType: IPv4
                """, object: "EndpointSlice default/web-1", field: #"metadata.labels["kubernetes.io/service-name"]"#,
                      message: "Service name \"web; drop\" is not a DNS-1123 label"),
            Malformed(name: "node pod CIDR invalid", document: """
                apiVersion: v1
                kind: Node
                metadata: {name: bad-node}
                spec: {podCIDRs: [10.244.0.0/16, fd00::/200]}
                """, object: "Node bad-node", field: "spec.podCIDRs[1]", message: "invalid CIDR \"fd00::/200\""),
            Malformed(name: "node single pod CIDR invalid", document: """
                apiVersion: v1
                kind: Node
                metadata: {name: bad-node}
                spec: {podCIDR: 10.244.0.0}
                """, object: "Node bad-node", field: "spec.podCIDR", message: "invalid CIDR \"10.244.0.0\""),
            Malformed(name: "node name invalid", document: """
                apiVersion: v1
                kind: Node
                metadata: {name: "node a"}
                """, object: "document 2 of in.yaml", field: "metadata.name",
                      message: "name \"node a\" is not a DNS-1123 subdomain"),
        ]
    }

    /// An endpoint entry that must be skipped on its own.
    struct BadEndpoint: Sendable, CustomTestStringConvertible {
        var name: String
        var addressType = "IPv4"
        var endpoint: String
        var field: String

        var testDescription: String { name }

        static let cases: [BadEndpoint] = [
            BadEndpoint(name: "leading-zero address", endpoint: "addresses: [010.0.0.2]",
                        field: "endpoints[1].addresses[0]"),
            BadEndpoint(name: "second address bad", endpoint: "addresses: [10.0.0.2, 10.0.0.256]",
                        field: "endpoints[1].addresses[1]"),
            BadEndpoint(name: "IPv6 in an IPv4 slice", endpoint: "addresses: [\"fd00::2\"]",
                        field: "endpoints[1].addresses[0]"),
            BadEndpoint(name: "IPv4 in an IPv6 slice", addressType: "IPv6", endpoint: "addresses: [10.0.0.2]",
                        field: "endpoints[1].addresses[0]"),
            BadEndpoint(name: "no addresses", endpoint: "addresses: []", field: "endpoints[1].addresses"),
            BadEndpoint(name: "address not a string", endpoint: "addresses: [{ip: 10.0.0.2}]",
                        field: "endpoints[1].addresses[0]"),
            BadEndpoint(name: "ready as YAML 1.1 yes", endpoint: "{addresses: [10.0.0.2], conditions: {ready: yes}}",
                        field: "endpoints[1].conditions.ready"),
            BadEndpoint(name: "terminating as string",
                        endpoint: "{addresses: [10.0.0.2], conditions: {terminating: \"true\"}}",
                        field: "endpoints[1].conditions.terminating"),
            BadEndpoint(name: "hint without a name", endpoint: "{addresses: [10.0.0.2], hints: {forZones: [{}]}}",
                        field: "endpoints[1].hints.forZones[0].name"),
            BadEndpoint(name: "node hint without a name",
                        endpoint: "{addresses: [10.0.0.2], hints: {forNodes: [{name: n1}, {name: \"\"}]}}",
                        field: "endpoints[1].hints.forNodes[1].name"),
            BadEndpoint(name: "endpoint not an object", endpoint: "10.0.0.2", field: "endpoints[1]"),
        ]
    }

    /// The objects the fixtures hold, as captured (see `Fixtures/README.md`).
    enum Expected {
        static func service(_ text: String) -> Service { services.first { $0.ref == ref(text) }! }
        static func slice(_ text: String) -> EndpointSlice { slices.first { $0.ref == ref(text) }! }

        static let services: [Service] = [
            Service(ref: ref("default/dual"), clusterIPs: [ip("10.96.89.10"), ip("fd00:10:96::6c36")],
                    ports: [ServicePort(name: "http", port: 80, targetPort: .number(80))]),
            Service(ref: ref("default/ext"), clusterIPs: [ip("10.96.181.237")], ports: [ServicePort(port: 8080)],
                    externalIPs: [ip("203.0.113.10"), ip("2001:db8::10")]),
            Service(ref: ref("default/kubernetes"), clusterIPs: [ip("10.96.0.1")],
                    ports: [ServicePort(name: "https", port: 443, targetPort: .number(53069))],
                    labels: ["component": "apiserver", "provider": "kubernetes"]),
            Service(ref: ref("default/local"), type: .nodePort, clusterIPs: [ip("10.96.111.37")],
                    ports: [ServicePort(port: 80, targetPort: .number(8080), nodePort: 31211)],
                    externalTrafficPolicy: .local),
            Service(ref: ref("default/sticky"), clusterIPs: [ip("10.96.138.62")], ports: [ServicePort(port: 80)],
                    sessionAffinity: .clientIP(timeoutSeconds: 600)),
            Service(ref: ref("default/v6only"), clusterIPs: [ip("fd00:10:96::2ad7")],
                    ports: [ServicePort(port: 443, targetPort: .number(8443))]),
            Service(ref: ref("default/web"), clusterIPs: [ip("10.96.183.7")],
                    ports: [ServicePort(port: 80, targetPort: .number(8080))],
                    labels: ["app": "web", "tier": "frontend"]),
            Service(ref: ref("shop/extname"), type: .externalName),
            Service(ref: ref("shop/headless"), isHeadless: true, ports: [ServicePort(name: "peer", port: 2380)]),
            Service(ref: ref("shop/lb"), type: .loadBalancer, clusterIPs: [ip("10.96.182.143")],
                    ports: [ServicePort(name: "https", port: 443, targetPort: .name("https"), nodePort: 31443)],
                    loadBalancerIngress: [LoadBalancerIngress(ip: ip("198.51.100.50")),
                                          LoadBalancerIngress(hostname: "lb.example.com")],
                    loadBalancerSourceRanges: [CIDR("10.0.0.0/8")!, CIDR("192.168.1.0/24")!],
                    externalTrafficPolicy: .local, healthCheckNodePort: 32229),
            Service(ref: ref("shop/multi"), clusterIPs: [ip("10.96.118.214")], ports: [
                ServicePort(name: "http", port: 80, targetPort: .name("web-http")),
                ServicePort(name: "metrics", port: 9090, targetPort: .name("metrics")),
                ServicePort(name: "sctp", protocol: .sctp, port: 3868, targetPort: .number(3868)),
            ]),
            Service(ref: ref("shop/np"), type: .nodePort, clusterIPs: [ip("10.96.122.15")], ports: [
                ServicePort(name: "http", port: 80, targetPort: .number(8080), nodePort: 30080),
                ServicePort(name: "dns", protocol: .udp, port: 53, targetPort: .number(5353), nodePort: 30715),
            ]),
        ]

        static let slices: [EndpointSlice] = [
            EndpointSlice(ref: ref("default/dual-v6-xyz"), serviceName: "dual", addressType: .ipv6,
                          ports: [EndpointPort(name: "http", port: 80)],
                          endpoints: [Endpoint(addresses: [ip("fd00:10:244:1::5")], ready: true, nodeName: "node-a")],
                          labels: ["kubernetes.io/service-name": "dual"]),
            EndpointSlice(ref: ref("default/web-abc12"), serviceName: "web", addressType: .ipv4,
                          ports: [EndpointPort(name: "", port: 8080)],
                          endpoints: [
                              Endpoint(addresses: [ip("10.244.1.5")], ready: true, serving: true, terminating: false,
                                       nodeName: "node-a", zone: "zone-1"),
                              Endpoint(addresses: [ip("10.244.2.7")], ready: false, serving: true, terminating: true,
                                       nodeName: "node-b", zone: "zone-2"),
                              Endpoint(addresses: [ip("10.244.3.9")], ready: false),
                              Endpoint(addresses: [ip("10.244.3.10")]),
                          ],
                          labels: ["kubernetes.io/service-name": "web",
                                   "endpointslice.kubernetes.io/managed-by": "switchboard-fixtures"],
                          annotations: ["endpoints.kubernetes.io/last-change-trigger-time": "2024-01-01T00:00:00Z"]),
            EndpointSlice(ref: ref("shop/allports"), serviceName: "headless", addressType: .ipv4,
                          ports: [EndpointPort(name: "peer", port: nil)],
                          endpoints: [Endpoint(addresses: [ip("10.244.1.30")])],
                          labels: ["kubernetes.io/service-name": "headless"]),
            EndpointSlice(ref: ref("shop/multi-1"), serviceName: "multi", addressType: .ipv4,
                          ports: [EndpointPort(name: "http", port: 8000), EndpointPort(name: "metrics", port: 9100),
                                  EndpointPort(name: "sctp", protocol: .sctp, port: 3868)],
                          endpoints: [Endpoint(addresses: [ip("10.244.1.20")], ready: true, nodeName: "node-a")],
                          labels: ["kubernetes.io/service-name": "multi"]),
        ]

        static let nodes: [Node] = [
            Node(name: "node-a", addresses: [
                NodeAddress(type: "InternalIP", address: "192.168.10.11"),
                NodeAddress(type: "InternalIP", address: "fd00:192:168:10::11"),
                NodeAddress(type: "ExternalIP", address: "198.51.100.11"),
                NodeAddress(type: "Hostname", address: "node-a"),
            ], labels: ["kubernetes.io/hostname": "node-a", "topology.kubernetes.io/zone": "zone-1"],
                 podCIDRs: [CIDR("10.244.1.0/24")!, CIDR("fd00:10:244:1::/64")!], taints: [notReady]),
            Node(name: "node-b", addresses: [
                NodeAddress(type: "InternalIP", address: "192.168.10.12"),
                NodeAddress(type: "Hostname", address: "node-b"),
            ], labels: ["kubernetes.io/hostname": "node-b", "topology.kubernetes.io/zone": "zone-2"],
                 podCIDRs: [CIDR("10.244.2.0/24")!], taints: [notReady]),
        ]
        /// The API server's admission (TaintNodesByCondition) adds it to every new Node.
        static let notReady = Taint(key: "node.kubernetes.io/not-ready", effect: "NoSchedule")
    }
}
