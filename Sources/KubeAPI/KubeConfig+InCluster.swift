import Foundation

extension KubeConfig {
    /// Where the kubelet mounts a pod's service account: `ca.crt`, `token` (rotated), `namespace`.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The config of a pod: the API server from `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, trusting
    /// `ca.crt` and authenticating with the `token` file of the service-account directory.
    ///
    /// The token is kept as a file (`Credentials.tokenFile`), not read once: bound service-account tokens expire
    /// (an hour by default) and the kubelet rewrites the file well before that. `environment` and `directory`
    /// are parameters so tests (and odd mounts) can point elsewhere.
    ///
    /// On a node that Switchboard itself serves, `KUBERNETES_SERVICE_HOST` is the `kubernetes` Service's cluster
    /// IP, which only works once Switchboard's own rules are in place; a DaemonSet should therefore set
    /// `KUBERNETES_SERVICE_HOST`/`PORT` to a real API server address (as kube-proxy's deployments do).
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = serviceAccountDirectory
    ) throws(KubeAPIError) -> KubeConfig {
        let source = "in-cluster (\(directory))"
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw KubeAPIError.config(
                "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set", source)
        }
        guard let number = Int(port), (1...65535).contains(number) else {
            throw KubeAPIError.config("KUBERNETES_SERVICE_PORT \(port) is not a port number", source)
        }
        // An IPv6 literal needs brackets in a URL.
        let authority = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(number)" : "\(host):\(number)"
        let ca = try readFile(directory + "/ca.crt", purpose: "service-account CA", source: source)
        let tokenPath = directory + "/token"
        _ = try readToken(tokenPath, source: source)
        return KubeConfig(
            server: "https://\(authority)", certificateAuthorityPEM: ca,
            credentials: .tokenFile(tokenPath), source: source)
    }
}
