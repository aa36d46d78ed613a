import Foundation
import SwitchboardCore

extension KubeConfig {
    /// Reads a kubeconfig file and resolves one context (the file's `current-context` unless `context` names
    /// another) to its cluster and user.
    ///
    /// Understood: cluster `server`, `certificate-authority-data` (base64 PEM) or `certificate-authority` (a
    /// file), `insecure-skip-tls-verify`; user `token` or `tokenFile`, `client-certificate(-data)` and
    /// `client-key(-data)`. File paths are relative to the kubeconfig's directory, as kubectl reads them. `-data`
    /// wins over the file form, `token` over `tokenFile`, as in client-go. Auth plugins (`exec`,
    /// `auth-provider`), basic auth and `tls-server-name`/`proxy-url` are refused with a clear error rather than
    /// ignored, since ignoring them would fail later with a confusing 401 or TLS error.
    public static func load(kubeconfigPath path: String, context: String? = nil) throws(KubeAPIError) -> KubeConfig {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let bytes = try readFile(absolute, purpose: "kubeconfig", source: path)
        let directory = (absolute as NSString).deletingLastPathComponent
        return try parse(
            kubeconfig: String(decoding: bytes, as: UTF8.self), directory: directory, name: path,
            context: context)
    }

    /// `load` on text already read; `directory` anchors relative file paths, `name` labels errors.
    public static func parse(
        kubeconfig text: String, directory: String, name: String = "kubeconfig", context: String? = nil
    ) throws(KubeAPIError) -> KubeConfig {
        var reader = KubeconfigReader(name: name, directory: directory)
        return try reader.read(text, context: context)
    }
}

/// The walk through a kubeconfig document; errors name the file and the context being resolved.
private struct KubeconfigReader {
    let name: String
    let directory: String
    var label: String

    init(name: String, directory: String) {
        self.name = name
        self.directory = directory
        self.label = "kubeconfig \(name)"
    }

    mutating func read(_ text: String, context wanted: String?) throws(KubeAPIError) -> KubeConfig {
        guard let document = JSONValue.documents(yaml: text).first else {
            throw fail("the file is empty")
        }
        let root: JSONValue
        switch document.content {
        case .success(let value): root = value
        case .failure(let error): throw fail("not valid YAML: \(error)")
        }
        guard case .object = root else { throw fail("expected a Config object, got \(root.typeName)") }

        let contextName: String
        if let wanted, !wanted.isEmpty {
            contextName = wanted
        } else if let current = try string(root, "current-context"), !current.isEmpty {
            contextName = current
        } else {
            throw fail("no current-context is set and no context was given")
        }
        label = "kubeconfig \(name) (context \(contextName))"
        let context = try entry(root, list: "contexts", named: contextName, body: "context")
        guard let clusterName = try string(context, "cluster"), !clusterName.isEmpty else {
            throw fail("context \(contextName) names no cluster")
        }
        let cluster = try entry(root, list: "clusters", named: clusterName, body: "cluster")
        let user: JSONValue?
        if let userName = try string(context, "user"), !userName.isEmpty {
            user = try entry(root, list: "users", named: userName, body: "user")
        } else {
            user = nil
        }

        guard let server = try string(cluster, "server"), !server.isEmpty else {
            throw fail("cluster \(clusterName) has no server")
        }
        guard server.hasPrefix("https://") || server.hasPrefix("http://"), URL(string: server)?.host != nil else {
            throw fail("cluster \(clusterName): server \(server) is not an http(s) URL")
        }
        for unsupported in ["tls-server-name", "proxy-url"] where try string(cluster, unsupported) != nil {
            throw fail("cluster \(clusterName): \(unsupported) is not supported")
        }
        let ca = try pem(
            cluster, data: "certificate-authority-data", file: "certificate-authority",
            purpose: "certificate-authority")
        let insecure = try bool(cluster, "insecure-skip-tls-verify") ?? false
        if insecure && ca != nil {
            // client-go refuses this combination too: which of the two did the user mean?
            throw fail("cluster \(clusterName) sets both a certificate authority and insecure-skip-tls-verify")
        }

        var credentials = KubeConfig.Credentials.none
        var clientCertificate: KubeConfig.ClientCertificate?
        if let user {
            for plugin in ["exec", "auth-provider"] where user[plugin] != nil {
                throw fail("user auth via \(plugin) is not supported; use a token, token file or client certificate")
            }
            if user["username"] != nil || user["password"] != nil {
                throw fail("basic auth (username/password) is not supported (Kubernetes removed it in 1.19)")
            }
            if let token = try string(user, "token"), !token.isEmpty {
                credentials = .token(token)
            } else if let file = try string(user, "tokenFile"), !file.isEmpty {
                let path = resolve(file)
                _ = try KubeConfig.readToken(path, source: label)  // fail at start-up, not at the first request
                credentials = .tokenFile(path)
            }
            let certificate = try pem(
                user, data: "client-certificate-data", file: "client-certificate",
                purpose: "client-certificate")
            let key = try pem(user, data: "client-key-data", file: "client-key", purpose: "client-key")
            switch (certificate, key) {
            case (let certificate?, let key?):
                clientCertificate = KubeConfig.ClientCertificate(certificatePEM: certificate, keyPEM: key)
            case (nil, nil):
                break
            case (.some, nil):
                throw fail("user has a client certificate but no client key")
            case (nil, .some):
                throw fail("user has a client key but no client certificate")
            }
        }
        return KubeConfig(
            server: server, certificateAuthorityPEM: ca, insecureSkipTLSVerify: insecure,
            credentials: credentials, clientCertificate: clientCertificate, source: label)
    }

    func fail(_ message: String) -> KubeAPIError { KubeAPIError.config(message, label) }

    /// The `body` member of the entry called `name` in the named list (`contexts`, `clusters`, `users`).
    func entry(_ root: JSONValue, list: String, named name: String, body: String) throws(KubeAPIError) -> JSONValue {
        guard case .array(let entries) = root[list] ?? .array([]) else {
            throw fail("\(list) is not a list")
        }
        for entry in entries where entry["name"] == .string(name) {
            guard case .object = entry[body] ?? .null else { throw fail("\(body) \(name) has no \(body) map") }
            return entry[body]!
        }
        throw fail("no \(body) named \(name) in \(list)")
    }

    func string(_ object: JSONValue, _ key: String) throws(KubeAPIError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        case let other?: throw fail("\(key) must be a string, got \(other.typeName)")
        }
    }

    func bool(_ object: JSONValue, _ key: String) throws(KubeAPIError) -> Bool? {
        switch object[key] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case .string("true")?: return true
        case .string("false")?: return false
        case let other?: throw fail("\(key) must be true or false, got \(other.typeName)")
        }
    }

    /// PEM bytes from the base64 `data` key, else from the file the `file` key names.
    func pem(_ object: JSONValue, data: String, file: String, purpose: String) throws(KubeAPIError) -> [UInt8]? {
        if let encoded = try string(object, data), !encoded.isEmpty {
            guard let decoded = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters), !decoded.isEmpty
            else { throw fail("\(data) is not valid base64") }
            return [UInt8](decoded)
        }
        if let path = try string(object, file), !path.isEmpty {
            return try KubeConfig.readFile(resolve(path), purpose: purpose, source: label)
        }
        return nil
    }

    /// A path from the kubeconfig, relative to the kubeconfig's own directory unless absolute.
    func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : directory + "/" + path
    }
}
