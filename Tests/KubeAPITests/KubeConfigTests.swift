import Foundation
import SwitchboardCore
import Testing

@testable import KubeAPI
import SwitchboardTestTraits

@Suite(.exclusive) struct KubeConfigTests {
    static let caPEM = "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"

    static func kubeconfig(cluster: String, user: String, currentContext: String? = "ctx") -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: c
          cluster:
        \(cluster.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        users:
        - name: u
          user:
        \(user.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        contexts:
        - name: ctx
          context: {cluster: c, user: u}
        - name: other
          context: {cluster: c}
        \(currentContext.map { "current-context: \($0)" } ?? "")
        """
    }

    @Test func dataCertificateAuthorityAndToken() async throws {
        try await withTemporaryDirectory { dir in
            let data = Data(Self.caPEM.utf8).base64EncodedString()
            write(
                Self.kubeconfig(
                    cluster: "server: https://10.0.0.1:6443/\ncertificate-authority-data: \(data)",
                    user: "token: abc123"), to: dir + "/config")
            let config = try KubeConfig.load(kubeconfigPath: dir + "/config")
            #expect(config.server == "https://10.0.0.1:6443")
            #expect(config.certificateAuthorityPEM == Array(Self.caPEM.utf8))
            #expect(config.credentials == .token("abc123"))
            #expect(config.insecureSkipTLSVerify == false)
            #expect(config.clientCertificate == nil)
            #expect(config.source.contains("context ctx"))
        }
    }

    @Test func filesAreRelativeToTheKubeconfigsDirectory() async throws {
        try await withTemporaryDirectory { dir in
            write(Self.caPEM, to: dir + "/kube/pki/ca.crt")
            write("file-token\n", to: dir + "/kube/secrets/token")
            write("CERT", to: dir + "/kube/pki/client.crt")
            write("KEY", to: dir + "/kube/pki/client.key")
            write(
                Self.kubeconfig(
                    cluster: "server: https://api.example:443\ncertificate-authority: pki/ca.crt",
                    user:
                        "tokenFile: secrets/token\nclient-certificate: pki/client.crt\n"
                        + "client-key: \(dir)/kube/pki/client.key"
                ),
                to: dir + "/kube/config")
            // Relative paths are anchored at the kubeconfig, not the working directory; absolute ones kept.
            let config = try KubeConfig.load(kubeconfigPath: dir + "/kube/config")
            #expect(config.certificateAuthorityPEM == Array(Self.caPEM.utf8))
            #expect(config.credentials == .tokenFile(dir + "/kube/secrets/token"))
            #expect(config.clientCertificate == .init(certificatePEM: Array("CERT".utf8), keyPEM: Array("KEY".utf8)))
        }
    }

    @Test func dataWinsOverFileAndTokenOverTokenFile() throws {
        let data = Data("DATA".utf8).base64EncodedString()
        let text = Self.kubeconfig(
            cluster: "server: https://h\ncertificate-authority-data: \(data)\ncertificate-authority: /nonexistent",
            user: "token: t\ntokenFile: /nonexistent")
        let config = try KubeConfig.parse(kubeconfig: text, directory: "/")
        #expect(config.certificateAuthorityPEM == Array("DATA".utf8))
        #expect(config.credentials == .token("t"))
    }

    @Test func contextOverrideAndContextWithoutUser() throws {
        let text = Self.kubeconfig(
            cluster: "server: http://127.0.0.1:8080\ninsecure-skip-tls-verify: true",
            user: "token: t")
        let config = try KubeConfig.parse(kubeconfig: text, directory: "/", context: "other")
        #expect(config.credentials == .none)
        #expect(config.insecureSkipTLSVerify)
        #expect(config.server == "http://127.0.0.1:8080")
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var context: String? = nil
        var message: String
        var testDescription: String { name }
    }

    static let bad: [Bad] = [
        Bad(
            name: "no current-context",
            text: kubeconfig(
                cluster: "server: https://h", user: "token: t",
                currentContext: nil),
            message: "no current-context is set and no context was given"),
        Bad(
            name: "unknown context", text: kubeconfig(cluster: "server: https://h", user: "token: t"),
            context: "nope", message: "no context named nope in contexts"),
        Bad(
            name: "no server", text: kubeconfig(cluster: "insecure-skip-tls-verify: true", user: "token: t"),
            message: "cluster c has no server"),
        Bad(
            name: "bad base64",
            text: kubeconfig(
                cluster: "server: https://h\ncertificate-authority-data: '%%%'",
                user: "token: t"),
            message: "certificate-authority-data is not valid base64"),
        Bad(
            name: "missing CA file",
            text: kubeconfig(
                cluster: "server: https://h\ncertificate-authority: ca.crt",
                user: "token: t"),
            message: "certificate-authority file /nowhere/ca.crt does not exist"),
        Bad(
            name: "CA and insecure",
            text: kubeconfig(
                cluster: "server: https://h\ncertificate-authority-data: QQ==\ninsecure-skip-tls-verify: true",
                user: "token: t"),
            message: "cluster c sets both a certificate authority and insecure-skip-tls-verify"),
        Bad(
            name: "exec plugin", text: kubeconfig(cluster: "server: https://h", user: "exec: {command: x}"),
            message: "user auth via exec is not supported; use a token, token file or client certificate"),
        Bad(
            name: "cert without key",
            text: kubeconfig(
                cluster: "server: https://h",
                user: "client-certificate-data: QQ=="),
            message: "user has a client certificate but no client key"),
        Bad(
            name: "missing token file", text: kubeconfig(cluster: "server: https://h", user: "tokenFile: t"),
            message: "token file /nowhere/t does not exist"),
        Bad(
            name: "not a URL", text: kubeconfig(cluster: "server: 10.0.0.1:6443", user: "token: t"),
            message: "cluster c: server 10.0.0.1:6443 is not an http(s) URL"),
    ]

    @Test(arguments: bad)
    func unusableKubeconfigsFailClearly(bad: Bad) {
        #expect {
            _ = try KubeConfig.parse(
                kubeconfig: bad.text, directory: "/nowhere", name: "test.yaml",
                context: bad.context)
        } throws: { error in
            guard let error = error as? KubeAPIError else { return false }
            return error.kind == .config && error.message == bad.message
                && error.context.hasPrefix("kubeconfig test.yaml")
        }
    }

    @Test func missingFileNamesThePath() {
        #expect(throws: KubeAPIError.config("kubeconfig file /no/such/config does not exist", "/no/such/config")) {
            try KubeConfig.load(kubeconfigPath: "/no/such/config")
        }
    }

    @Test func invalidPEMIsAConfigErrorWhenTheClientStarts() {
        let config = KubeConfig(server: "https://h", certificateAuthorityPEM: Array(Self.caPEM.utf8))
        #expect {
            _ = try KubeClient(config: config)
        } throws: { error in
            (error as? KubeAPIError)?.kind == .config
                && (error as? KubeAPIError)?.message.hasPrefix("certificate authority is not valid PEM") == true
        }
    }

    @Test func generatedClientCertificateMakesATLSConfiguration() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            print("SKIP generatedClientCertificateMakesATLSConfiguration: no /usr/bin/openssl")
            return
        }
        try await withTemporaryDirectory { dir in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=t",
                "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem",
            ]
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            let cert = try #require(FileManager.default.contents(atPath: dir + "/cert.pem"))
            let key = try #require(FileManager.default.contents(atPath: dir + "/key.pem"))
            let config = KubeConfig(
                server: "https://h", certificateAuthorityPEM: [UInt8](cert),
                clientCertificate: .init(certificatePEM: [UInt8](cert), keyPEM: [UInt8](key)))
            let tls = try config.tlsConfiguration()
            #expect(tls.certificateChain.count == 1)
            #expect(tls.privateKey != nil)
            #expect(tls.certificateVerification == .fullVerification)
        }
    }

    @Test func insecureSkipTLSVerifyComesWithAWarning() async throws {
        try await withTemporaryDirectory { dir in
            write(
                Self.kubeconfig(cluster: "server: https://10.0.0.1:6443\ninsecure-skip-tls-verify: true", user: "token: t"),
                to: dir + "/config")
            let config = try KubeConfig.load(kubeconfigPath: dir + "/config")
            #expect(config.insecureSkipTLSVerify)
            #expect(try config.tlsConfiguration().certificateVerification == .none)
            let warning = try #require(config.insecureWarning)
            #expect(warning.contains("insecure-skip-tls-verify is set: the API server's certificate is not verified"))
            #expect(warning.hasPrefix("kubeconfig \(dir)/config (context ctx)"), "\(warning)")
            #expect(KubeConfig(server: "https://h", certificateAuthorityPEM: [1]).insecureWarning == nil)
        }
    }

    // MARK: - In-cluster

    @Test func inClusterReadsTheInjectedServiceAccountDirectory() async throws {
        try await withTemporaryDirectory { dir in
            write(Self.caPEM, to: dir + "/ca.crt")
            write("sa-token\n", to: dir + "/token")
            let v4 = try KubeConfig.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
                directory: dir)
            #expect(v4.server == "https://10.96.0.1:443")
            #expect(v4.certificateAuthorityPEM == Array(Self.caPEM.utf8))
            #expect(v4.credentials == .tokenFile(dir + "/token"))
            let v6 = try KubeConfig.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "6443"],
                directory: dir)
            #expect(v6.server == "https://[fd00:10:96::1]:6443")
        }
    }

    @Test func inClusterFailsOutsideAPod() async throws {
        try await withTemporaryDirectory { dir in
            #expect(throws: KubeAPIError.self) { try KubeConfig.inCluster(environment: [:], directory: dir) }
            // Environment set but no service account mounted.
            #expect {
                _ = try KubeConfig.inCluster(
                    environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
                    directory: dir)
            } throws: { error in
                (error as? KubeAPIError)?.message == "service-account CA file \(dir)/ca.crt does not exist"
            }
        }
    }

    @Test func resolvePrefersAnExplicitPathThenInCluster() async throws {
        try await withTemporaryDirectory { dir in
            write(Self.kubeconfig(cluster: "server: https://explicit", user: "token: t"), to: dir + "/config")
            write(Self.kubeconfig(cluster: "server: https://from-env", user: "token: t"), to: dir + "/env-config")
            let env = ["KUBECONFIG": dir + "/env-config:/other", "HOME": dir]
            let explicit = try KubeConfig.resolve(kubeconfigPath: dir + "/config", environment: env)
            #expect(explicit.server == "https://explicit")
            let fromEnvironment = try KubeConfig.resolve(kubeconfigPath: nil, environment: env)
            #expect(fromEnvironment.server == "https://from-env")
            #expect(throws: KubeAPIError.self) {
                // In a pod (host set), the service account wins over $KUBECONFIG; here none is mounted.
                try KubeConfig.resolve(
                    kubeconfigPath: nil,
                    environment: env.merging([
                        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
                        "KUBERNETES_SERVICE_PORT": "443",
                    ]) { $1 })
            }
        }
    }

    // MARK: - Token rotation

    @Test func tokenScheduleRereadsAfterAMinuteOrARefusal() {
        let t0 = ContinuousClock.now
        var schedule = TokenRefreshSchedule<ContinuousClock.Instant>()
        #expect(schedule.cached(at: t0) == nil)
        schedule.stored("a", at: t0)
        #expect(schedule.cached(at: t0 + .seconds(59)) == "a")
        #expect(schedule.cached(at: t0 + .seconds(60)) == nil)
        schedule.stored("b", at: t0 + .seconds(60))
        #expect(schedule.cached(at: t0 + .seconds(61)) == "b")
        schedule.refused()
        #expect(schedule.cached(at: t0 + .seconds(61)) == nil)
    }

    @Test func inClusterTokenRotates() async throws {
        try await withTemporaryDirectory { dir in
            write(Self.caPEM, to: dir + "/ca.crt")
            write("first\n", to: dir + "/token")
            let config = try KubeConfig.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
                directory: dir)
            let tokens = try #require(BearerTokenSource(config.credentials, source: config.source))
            #expect(tokens.canRefresh)
            let t0 = ContinuousClock.now
            #expect(try tokens.token(at: t0) == "first")
            write("second\n", to: dir + "/token")  // the kubelet rotates it
            #expect(try tokens.token(at: t0 + .seconds(30)) == "first")
            #expect(try tokens.token(at: t0 + .seconds(61)) == "second")
            write("third", to: dir + "/token")
            tokens.refused()  // a 401: don't wait for the minute
            #expect(try tokens.token(at: t0 + .seconds(62)) == "third")
            // A file that vanishes for a moment (the kubelet swaps a symlink) keeps the last good token.
            try FileManager.default.removeItem(atPath: dir + "/token")
            #expect(try tokens.token(at: t0 + .seconds(200)) == "third")
        }
    }

    @Test func fixedTokensNeverRefresh() throws {
        let tokens = try #require(BearerTokenSource(.token("fixed"), source: "test"))
        #expect(!tokens.canRefresh)
        tokens.refused()
        #expect(try tokens.token() == "fixed")
        #expect(BearerTokenSource(.none, source: "test") == nil)
    }
}
