import Foundation
import NIOSSL
import SwitchboardCore

/// Where the API server is and how to authenticate to it: what a kubeconfig context or the in-cluster service
/// account says, resolved to plain values (files already read, except a token file, which rotates).
///
/// ```swift
/// let config = try KubeConfig.load(kubeconfigPath: "/etc/switchboard/kubeconfig")
/// let config = try KubeConfig.inCluster()
/// let config = try KubeConfig.resolve(kubeconfigPath: nil)   // in-cluster, else $KUBECONFIG, else ~/.kube/config
/// ```
///
/// TLS is verified by default: against `certificateAuthorityPEM` when given, else the system's roots.
public struct KubeConfig: Hashable, Sendable {
    /// The server's base URL, `https://host:port` plus any path prefix (e.g. a proxy's `/k8s/clusters/c-1`),
    /// without a trailing slash.
    public var server: String
    /// PEM certificates to trust for the server; nil means the system's trust roots.
    public var certificateAuthorityPEM: [UInt8]?
    /// `insecure-skip-tls-verify`: accept any server certificate. For throwaway clusters only; commands that
    /// use such a config print `insecureWarning`.
    public var insecureSkipTLSVerify: Bool
    public var credentials: Credentials
    /// A client certificate for mutual TLS, alone or together with a token.
    public var clientCertificate: ClientCertificate?
    /// Where this came from, for messages: `kubeconfig /path (context ctx)` or `in-cluster`.
    public var source: String

    /// How requests authenticate.
    public enum Credentials: Hashable, Sendable {
        case none
        /// A fixed bearer token.
        case token(String)
        /// A bearer token read from a file (absolute path) that someone else rotates, e.g. the kubelet's
        /// projected service-account token, which expires after an hour. Re-read at most every minute and
        /// after every 401; never cached for good.
        case tokenFile(String)
    }

    /// A PEM certificate chain and its PEM private key.
    public struct ClientCertificate: Hashable, Sendable {
        public var certificatePEM: [UInt8]
        public var keyPEM: [UInt8]

        public init(certificatePEM: [UInt8], keyPEM: [UInt8]) {
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
        }
    }

    public init(
        server: String, certificateAuthorityPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
        credentials: Credentials = .none, clientCertificate: ClientCertificate? = nil, source: String = ""
    ) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.credentials = credentials
        self.clientCertificate = clientCertificate
        self.source = source
    }

    /// Where the config comes from when no kubeconfig is given explicitly, in the order kube-proxy and kubectl
    /// use: the in-cluster service account when `KUBERNETES_SERVICE_HOST` is set, else `$KUBECONFIG` (its
    /// first entry), else `~/.kube/config`.
    public static func resolve(
        kubeconfigPath: String?, context: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(KubeAPIError) -> KubeConfig {
        if let kubeconfigPath, !kubeconfigPath.isEmpty {
            return try load(kubeconfigPath: kubeconfigPath, context: context)
        }
        if let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty {
            return try inCluster(environment: environment)
        }
        if let list = environment["KUBECONFIG"], let first = list.split(separator: ":").first {
            return try load(kubeconfigPath: String(first), context: context)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return try load(kubeconfigPath: home + "/.kube/config", context: context)
    }

    /// The warning to print once at start when TLS is not verified, else nil.
    public var insecureWarning: String? {
        guard insecureSkipTLSVerify, server.hasPrefix("https://") else { return nil }
        return "\(source): insecure-skip-tls-verify is set: the API server's certificate is not verified, so "
            + "anyone on the path to \(server) can pose as it; set certificate-authority instead"
    }

    /// The TLS settings for this server: its CA as the only trust roots (or the system's), full verification
    /// unless `insecureSkipTLSVerify`, and the client certificate if any. Throws when a PEM doesn't parse.
    public func tlsConfiguration() throws(KubeAPIError) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = insecureSkipTLSVerify ? .none : .fullVerification
        do {
            if let certificateAuthorityPEM {
                let roots = try NIOSSLCertificate.fromPEMBytes(certificateAuthorityPEM)
                guard !roots.isEmpty else {
                    throw KubeAPIError.config("certificate authority holds no PEM certificate", source)
                }
                tls.trustRoots = .certificates(roots)
            }
        } catch let error as KubeAPIError {
            throw error
        } catch {
            throw KubeAPIError.config("certificate authority is not valid PEM: \(error)", source)
        }
        if let clientCertificate {
            do {
                let chain = try NIOSSLCertificate.fromPEMBytes(clientCertificate.certificatePEM)
                guard !chain.isEmpty else {
                    throw KubeAPIError.config("client certificate holds no PEM certificate", source)
                }
                tls.certificateChain = chain.map { .certificate($0) }
            } catch let error as KubeAPIError {
                throw error
            } catch {
                throw KubeAPIError.config("client certificate is not valid PEM: \(error)", source)
            }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: clientCertificate.keyPEM, format: .pem))
            } catch {
                throw KubeAPIError.config("client key is not a valid PEM private key: \(error)", source)
            }
        }
        return tls
    }
}

extension KubeConfig {
    /// Reads a whole file, or throws a config error naming it and what it is for.
    static func readFile(_ path: String, purpose: String, source: String) throws(KubeAPIError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw KubeAPIError.config("\(purpose) file \(path) \(why)", source)
        }
        return [UInt8](data)
    }

    /// A bearer token from a file, trimmed as client-go trims it (files often end in a newline).
    static func readToken(_ path: String, source: String) throws(KubeAPIError) -> String {
        let bytes = try readFile(path, purpose: "token", source: source)
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw KubeAPIError.config("token file \(path) is empty", source) }
        return token
    }
}
