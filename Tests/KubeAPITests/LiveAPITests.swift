import Foundation
import SwitchboardCore
import SwitchboardTesting
import Testing

@testable import KubeAPI
import SwitchboardTestTraits

/// Against a real kube-apiserver v1.20.2 with RBAC (see `ControlPlane`). The client authenticates as
/// `system:kube-proxy` (the node's `node.kubeconfig`); objects are made with kubectl as cluster-admin.
///
/// Serialized: one test restarts the apiserver, which would break the others' requests mid-flight.
@Suite(
    .serialized,
    .enabled("needs the test control plane (up.sh, etcd, kubectl); see the SKIP line") {
        await ControlPlane.isAvailable()
    }, .exclusive)
struct LiveAPITests {
    let plane: ControlPlane.Running

    init() async throws {
        plane = try #require(await ControlPlane.shared.running())
    }

    func withNodeClient<R>(_ body: (KubeClient) async throws -> R) async throws -> R {
        try await KubeClient.withClient(config: .load(kubeconfigPath: plane.nodeKubeconfig), body)
    }

    @Test func discoveryPicksV1beta1OnThisServer() async throws {
        try await withNodeClient { client in
            let version = try await client.endpointSliceVersion()
            #expect(version == .v1beta1)
            let server = try await client.serverVersion()
            #expect(server.hasPrefix("v1.20."), "\(server)")
        }
    }

    @Test func listPaginates() async throws {
        let ns = try await plane.makeNamespace("page")
        for i in 0..<5 { try await plane.apply(Manifest.service("s\(i)", namespace: ns)) }
        try await withNodeClient { client in
            let result = try await client.list(.services.inNamespace(ns), pageSize: 2)
            #expect(result.pageCount == 3)
            #expect(result.objects.compactMap(\.service?.ref.name).sorted() == ["s0", "s1", "s2", "s3", "s4"])
            #expect(result.diagnostics.isEmpty)
            #expect(!result.resourceVersion.isEmpty)
            let unpaged = try await client.list(.services.inNamespace(ns), pageSize: 0)
            #expect(unpaged.pageCount == 1 && unpaged.objects.count == 5)
            // From the watch cache (the informers' first list): v1.20 answers in one page whatever the limit.
            // The cache trails etcd by milliseconds, so give it a moment to hold all five.
            var cached = try await client.list(.services.inNamespace(ns), pageSize: 2, fromCache: true)
            for _ in 0..<20 where cached.objects.count < 5 {
                try await Task.sleep(for: .milliseconds(100))
                cached = try await client.list(.services.inNamespace(ns), pageSize: 2, fromCache: true)
            }
            #expect(cached.pageCount == 1)
            #expect(cached.objects.compactMap(\.service?.ref.name).sorted() == ["s0", "s1", "s2", "s3", "s4"])

            let informer = client.informer(for: .services.inNamespace(ns), options: InformerOptions(pageSize: 2))
            _ = try await withInformer(informer) { log in
                try await log.waitFor("the initial list") { events in
                    events.contains { if case .cluster(.synced(_, let all)) = $0 { return all.count == 5 } else { return false } }
                }
            }
        }
    }

    @Test func watchSeesServiceChanges() async throws {
        let ns = try await plane.makeNamespace("svc")
        try await withNodeClient { client in
            try await withInformer(client.informer(for: .services.inNamespace(ns))) { log in
                try await log.waitFor("synced") { $0.first?.summary == "synced[]" }
                try await plane.apply(Manifest.service("web", namespace: ns, port: 80))
                try await log.waitFor("ADDED") { $0.contains { $0.summary == "upsert Service \(ns)/web" } }
                try await plane.kubectl([
                    "-n", ns, "patch", "service", "web", "--type=json", "-p",
                    #"[{"op":"replace","path":"/spec/ports/0/port","value":81}]"#,
                ])
                try await log.waitFor("MODIFIED") { events in
                    events.contains {
                        if case .cluster(.upsert(.service(let s))) = $0 { s.ports.first?.port == 81 } else { false }
                    }
                }
                try await plane.kubectl(["-n", ns, "delete", "service", "web"])
                let events = try await log.waitFor("DELETED") { $0.last?.summary == "delete Service \(ns)/web" }
                #expect(!events.contains { if case .interrupted = $0 { true } else { false } })
            }
        }
    }

    @Test func watchSeesEndpointSliceChanges() async throws {
        let ns = try await plane.makeNamespace("eps")
        try await withNodeClient { client in
            let version = try await client.endpointSliceVersion()
            try await withInformer(client.informer(for: .endpointSlices(version).inNamespace(ns))) { log in
                try await log.waitFor("synced") { $0.first?.summary == "synced[]" }
                try await plane.apply(Manifest.slice("web-1", namespace: ns, service: "web", addresses: ["10.1.0.1"]))
                try await log.waitFor("ADDED") { $0.contains { $0.summary == "upsert EndpointSlice \(ns)/web-1" } }
                try await plane.kubectl([
                    "-n", ns, "patch", "endpointslice", "web-1", "--type=json", "-p",
                    #"[{"op":"add","path":"/endpoints/-","value":{"addresses":["10.1.0.2"]}}]"#,
                ])
                let events = try await log.waitFor("MODIFIED") { events in
                    events.contains {
                        if case .cluster(.upsert(.endpointSlice(let s))) = $0 { s.endpoints.count == 2 } else { false }
                    }
                }
                let slice = events.compactMap { if case .cluster(.upsert(let o)) = $0 { o.endpointSlice } else { nil } }.last
                #expect(slice?.serviceName == "web")
                #expect(slice?.endpoints.first?.nodeName == "node-1")  // v1beta1 topology, decoded
                try await plane.kubectl(["-n", ns, "delete", "endpointslice", "web-1"])
                try await log.waitFor("DELETED") { $0.last?.summary == "delete EndpointSlice \(ns)/web-1" }
            }
        }
    }

    @Test func labelSelectorSkipsServicesOfOtherProxiesAndHeadlessOnes() async throws {
        let ns = try await plane.makeNamespace("sel")
        try await plane.apply(
            Manifest.service(
                "before-other", namespace: ns,
                labels: ["service.kubernetes.io/service-proxy-name": "other"]))
        try await plane.apply(Manifest.service("before-plain", namespace: ns))
        try await withNodeClient { client in
            // The cluster-wide resource, as the agent uses it.
            try await withInformer(client.informer(for: .services)) { log in
                let synced = try await log.waitFor("synced") {
                    $0.contains { if case .cluster(.synced) = $0 { true } else { false } }
                }
                let names = synced.compactMap { if case .cluster(.synced(_, let all)) = $0 { all } else { nil } }.first?
                    .compactMap(\.service).filter { $0.ref.namespace == ns }.map(\.ref.name)
                #expect(names == ["before-plain"])
                try await plane.apply(
                    Manifest.service(
                        "other", namespace: ns,
                        labels: ["service.kubernetes.io/service-proxy-name": "x"]))
                try await plane.apply(
                    Manifest.service(
                        "headless", namespace: ns,
                        labels: ["service.kubernetes.io/headless": ""]))
                try await plane.apply(Manifest.service("plain", namespace: ns))
                let events = try await log.waitFor("plain") {
                    $0.contains { $0.summary == "upsert Service \(ns)/plain" }
                }
                let seen = events.map(\.summary).filter { $0.contains(ns) }
                #expect(!seen.contains { $0.contains("other") || $0.contains("headless") }, "\(seen)")
            }
        }
    }

    @Test func fieldSelectorLimitsNodesToOne() async throws {
        let suffix = UInt32.random(in: 0...UInt32.max) % 1_000_000
        let mine = "node-mine-\(suffix)"
        let theirs = "node-theirs-\(suffix)"
        try await plane.apply(Manifest.node(mine))
        try await plane.apply(Manifest.node(theirs))
        try await withNodeClient { client in
            try await withInformer(client.informer(for: .node(named: mine))) { log in
                try await log.waitFor("synced") { $0.first?.summary == "synced[Node \(mine)]" }
                try await plane.kubectl(["label", "node", theirs, "topology.kubernetes.io/zone=b"])
                try await plane.kubectl(["label", "node", mine, "topology.kubernetes.io/zone=a"])
                let events = try await log.waitFor("my node's label") { events in
                    events.contains { if case .cluster(.upsert(.node(let n))) = $0 { n.zone == "a" } else { false } }
                }
                #expect(!events.map(\.summary).contains { $0.contains(theirs) })
            }
        }
    }

    @Test func nodeTokenCannotListSecrets() async throws {
        try await withNodeClient { client in
            let secrets = KubeResource(group: "", version: "v1", plural: "secrets", kind: "Secret")
            await #expect {
                _ = try await client.list(secrets)
            } throws: { error in
                guard let error = error as? KubeAPIError else { return false }
                return error.isForbidden && error.reason == "Forbidden"
                    && error.message.contains(#"User "system:kube-proxy" cannot list resource "secrets""#)
                    && error.denied == Permission(verb: "list", resource: "secrets", group: "")
                    && error.description.contains(": forbidden: cannot list secrets at cluster scope: ")
            }
            // A watch names its verb, and a namespaced request its namespace.
            await #expect {
                _ = try await client.watch(secrets.inNamespace("kube-system"), from: "0")
            } throws: { error in
                (error as? KubeAPIError)?.description.contains("forbidden: cannot watch secrets in namespace kube-system")
                    == true
            }
        }
    }

    /// Issue 11, TLS: a server whose certificate another CA signed is refused with an error that says so (not
    /// a generic connection failure): at once without connection retries (one-shot commands), within the
    /// discovery deadline with them (the agent).
    @Test(arguments: [false, true])
    func aServerCertificateFromAnotherCAIsRefusedClearly(retryConnections: Bool) async throws {
        try await withTemporaryDirectory { dir in
            try await Shell.run([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another-ca",
                "-keyout", dir + "/other.key", "-out", dir + "/other.crt",
            ]).checked()
            let other = try #require(FileManager.default.contents(atPath: dir + "/other.crt"))
            let config = KubeConfig(
                server: plane.apiURL, certificateAuthorityPEM: [UInt8](other), credentials: .token(plane.nodeToken))
            let start = ContinuousClock.now
            let options = KubeClient.Options(retryConnections: retryConnections, discoveryTimeout: .seconds(3))
            _ = try await KubeClient.withClient(config: config, options: options) { client in
                await #expect {
                    _ = try await client.endpointSliceVersion()
                } throws: { error in
                    guard let error = error as? KubeAPIError else { return false }
                    return error.kind == .certificate && error.isPermanent
                        && error.message.hasPrefix(
                            "TLS: the API server's certificate was refused: it is not signed by the trusted certificate "
                                + "authority")
                        && error.message.contains("CERTIFICATE_VERIFY_FAILED")
                }
            }
            let took = ContinuousClock.now - start
            #expect(took < (retryConnections ? .seconds(8) : .seconds(2)), "took \(took)")
        }
    }

    /// `insecure-skip-tls-verify` (no CA): the server is reached (the config carries a warning; `run` and
    /// `diff` print it, see `AgentTests`).
    @Test func insecureSkipTLSVerifyReachesTheServer() async throws {
        let config = KubeConfig(server: plane.apiURL, insecureSkipTLSVerify: true, credentials: .token(plane.nodeToken))
        #expect(config.insecureWarning != nil)
        try await KubeClient.withClient(config: config) { client in
            let version = try await client.endpointSliceVersion()
            #expect(version == .v1beta1)
        }
    }

    @Test func tokenFileIsRereadAfterA401() async throws {
        try await withTemporaryDirectory { dir in
            // An in-cluster layout pointed at the test server: KUBERNETES_SERVICE_HOST/PORT, ca.crt, token.
            try FileManager.default.copyItem(atPath: plane.caFile, toPath: dir + "/ca.crt")
            write("not-a-valid-token\n", to: dir + "/token")
            let url = try #require(URL(string: plane.apiURL))
            let config = try KubeConfig.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": url.host!, "KUBERNETES_SERVICE_PORT": "\(url.port!)"],
                directory: dir)
            try await KubeClient.withClient(config: config) { client in
                await #expect {
                    _ = try await client.list(.node(named: "x"))
                } throws: { error in
                    (error as? KubeAPIError)?.isUnauthorized == true
                }
                write(plane.nodeToken + "\n", to: dir + "/token")  // rotated; well within the minute
                let result = try await client.list(.node(named: "x"))
                #expect(result.objects.isEmpty)
            }
        }
    }

    /// The server goes away with a watch open and comes back on the same port. Its new watch cache starts at
    /// the current revision, so resuming from a version before the restart is `410 Gone` — for real, not only
    /// in the canned-stream tests — and the informer re-lists and then sees a change made after the restart.
    ///
    /// Short watch timeouts: a v1.20 apiserver waits up to 60 s for open watches before it exits.
    @Test func informerRelistsAfterAnAPIServerRestart() async throws {
        let ns = try await plane.makeNamespace("restart")
        try await plane.apply(Manifest.service("before-restart", namespace: ns))
        try await withNodeClient { client in
            let options = InformerOptions(watchTimeoutSeconds: 3...5)
            try await withInformer(client.informer(for: .services.inNamespace(ns), options: options)) { log in
                try await log.waitFor("synced") { $0.first?.summary == "synced[Service \(ns)/before-restart]" }
                let before = try await client.list(.services.inNamespace(ns)).resourceVersion
                // Any write moves etcd's revision past `before`; the restarted cache starts there.
                try await plane.kubectl(["-n", ns, "create", "configmap", "bump"])
                try await plane.restartAPIServer(pause: 2)

                let stream = try await client.watch(.services.inNamespace(ns), from: before, timeoutSeconds: 5)
                var first: WatchEvent?
                for try await event in stream {
                    first = event
                    break
                }
                guard case .error(let error)? = first else {
                    Issue.record("expected an ERROR event, got \(String(describing: first))")
                    return
                }
                #expect(error.isGone, "\(error)")
                #expect(error.message.hasPrefix("too old resource version"), "\(error)")

                try await plane.apply(Manifest.service("after-restart", namespace: ns))
                // Seen as an upsert, or in the re-list when that came after the create (a restarted API server
                // answers 403 for a moment, which the informer backs off from like any failure).
                let events = try await log.waitFor("the Service made after the restart", within: .seconds(45)) {
                    $0.contains {
                        $0.summary == "upsert Service \(ns)/after-restart"
                            || ($0.summary.hasPrefix("synced[") && $0.summary.contains("Service \(ns)/after-restart"))
                    }
                }
                #expect(
                    events.contains { if case .interrupted(let e, _) = $0 { e.isGone } else { false } },
                    "\(events.map(\.summary))")
                #expect(events.filter { $0.summary.hasPrefix("synced[") }.count == 2, "\(events.map(\.summary))")
            }
        }
    }
}
