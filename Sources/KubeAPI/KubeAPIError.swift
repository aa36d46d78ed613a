import Foundation
import AsyncHTTPClient
import NIOSSL
import SwitchboardCore

/// Every failure of the Kubernetes API edge: a kubeconfig that can't be used, a connection that failed, or the
/// server saying no. Carries the server's `Status` message verbatim, so an operator sees what the API said.
///
/// The informer never gives up on one of these: it reports it (`InformerEvent.interrupted`) and retries with
/// backoff, so a forbidden list or an unreachable server shows up in logs and metrics instead of stopping the
/// node. One-shot calls (`KubeClient.list`, discovery) throw it.
public struct KubeAPIError: Error, Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        /// The kubeconfig or the in-cluster service account can't be used: a missing context, an unreadable
        /// file, bad base64 or PEM, an unsupported auth method. Nothing was sent.
        case config
        /// No answer: connect failure, a reset connection, a timeout.
        case transport
        /// The server's TLS certificate was refused: not signed by the trusted certificate authority (or
        /// expired, or not for the server's name). Retrying cannot help; the CA or the server address is wrong.
        case certificate
        /// The server answered with an error: a non-2xx HTTP status, or an `ERROR` event in a watch.
        case status
        /// The server's answer is not what the API promises (not JSON, a list without `resourceVersion`).
        case invalidResponse
    }

    public var kind: Kind
    /// The HTTP status, or the `code` of the `Status` in a watch `ERROR` event; 0 when the server said nothing.
    public var code: Int
    /// The `Status.reason` (`Forbidden`, `Expired`, `Gone`, `NotFound`, ...); `""` when there is none.
    public var reason: String
    /// Verbatim: the server's `Status.message`, the response body when it is no `Status`, the transport error's
    /// text, or what is wrong with the configuration.
    public var message: String
    /// What was being done: `GET /api/v1/services?...`, `watch /api/v1/services`, or the kubeconfig's path.
    public var context: String
    /// For a 403 of a list or watch: the permission the request needed, so the error names it whatever the
    /// server's (or an authorization webhook's) wording.
    public var denied: Permission?

    public init(
        kind: Kind, code: Int = 0, reason: String = "", message: String, context: String = "",
        denied: Permission? = nil
    ) {
        self.kind = kind
        self.code = code
        self.reason = reason
        self.message = message
        self.context = context
        self.denied = denied
    }

    /// The resourceVersion asked for is too old (compacted, or older than the watch cache), or a list's
    /// `continue` token expired: the only remedy is a fresh list. Servers say this with HTTP 410, a watch
    /// `ERROR` with code 410, or (for continue tokens) reason `Expired`.
    public var isGone: Bool { kind == .status && (code == 410 || reason == "Expired" || reason == "Gone") }
    /// The credentials were refused (HTTP 401): an expired or rotated token, a wrong client certificate.
    public var isUnauthorized: Bool { kind == .status && code == 401 }
    /// Authenticated, but RBAC does not allow it (HTTP 403).
    public var isForbidden: Bool { kind == .status && code == 403 }
    /// The resource or API group does not exist on this server (HTTP 404).
    public var isNotFound: Bool { kind == .status && code == 404 }
    /// Waiting will not fix it: the configuration, the server's certificate or the credentials are wrong,
    /// or RBAC does not allow the request. (A long-running agent keeps retrying even these, since an
    /// operator may fix them without restarting it; a one-shot command gives up.)
    public var isPermanent: Bool { kind == .config || kind == .certificate || isUnauthorized || isForbidden }
}

extension KubeAPIError: CustomStringConvertible {
    /// One line; a denied permission first (`forbidden: cannot list services at cluster scope`), since that
    /// is what an operator has to grant.
    public var description: String {
        var text = "kubernetes api \(kind.rawValue)"
        if code != 0 { text += " \(code)" }
        if !reason.isEmpty { text += " \(reason)" }
        if !context.isEmpty { text += " (\(context))" }
        if let denied { text += ": forbidden: cannot \(denied)" }
        return text + ": " + message
    }
}

/// One RBAC permission: a verb on a resource of an API group, cluster-wide or in one namespace.
///
/// Written as `kubectl auth can-i` takes it: `list services`, `watch endpointslices.discovery.k8s.io`, then
/// the scope (`at cluster scope`, `in namespace ns`).
public struct Permission: Hashable, Sendable, CustomStringConvertible {
    /// `get`, `list`, `watch`.
    public var verb: String
    /// The plural resource, e.g. `endpointslices`.
    public var resource: String
    /// `""` for the core group.
    public var group: String
    /// nil: cluster-wide.
    public var namespace: String?

    public init(verb: String, resource: String, group: String, namespace: String? = nil) {
        self.verb = verb
        self.resource = resource
        self.group = group
        self.namespace = namespace
    }

    public var description: String {
        let scope = namespace.map { "in namespace \($0)" } ?? "at cluster scope"
        return "\(verb) \(resource)\(group.isEmpty ? "" : "." + group) \(scope)"
    }
}

extension KubeAPIError {
    static func config(_ message: String, _ context: String) -> KubeAPIError {
        KubeAPIError(kind: .config, message: message, context: context)
    }

    /// Any failure below the API (NIO, TLS, AsyncHTTPClient) as a transport error, or as a certificate error
    /// when the TLS handshake refused the server's certificate; a `KubeAPIError` as is.
    static func transport(_ error: any Error, context: String, readTimeout: Duration? = nil) -> KubeAPIError {
        if let error = error as? KubeAPIError { return error }
        if let error = error as? HTTPClientError, error == .readTimeout {
            // Said as what it means for the log: the connection was silent too long and is closed.
            let limit = readTimeout.map { " for \($0)" } ?? ""
            return KubeAPIError(
                kind: .transport, message: "no data\(limit): the connection counts as dead and is closed",
                context: context)
        }
        let text = String(describing: error)
        if let problem = certificateProblem(error) {
            return KubeAPIError(
                kind: .certificate, message: "TLS: the API server's certificate was refused: \(problem) (\(text))",
                context: context)
        }
        return KubeAPIError(kind: .transport, message: text, context: context)
    }

    /// What is wrong with the server's certificate, if that is why the handshake failed. BoringSSL reports a
    /// chain it cannot verify as `CERTIFICATE_VERIFY_FAILED`; NIOSSL checks the name itself.
    private static func certificateProblem(_ error: any Error) -> String? {
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "it is not issued for the server's host name"
        }
        if let error = error as? NIOSSLError, case .handshakeFailed(let inner) = error,
            String(describing: inner).contains("CERTIFICATE_VERIFY_FAILED")
        {
            return "it is not signed by the trusted certificate authority (or it has expired); check the "
                + "certificate-authority of the kubeconfig, or ca.crt of the service account, and the server address"
        }
        return nil
    }

    /// The error of a non-2xx response, from its body: a `Status` object when the server sent one (it always
    /// does for API paths), else the body text itself.
    static func fromResponse(status: Int, body: [UInt8], context: String) -> KubeAPIError {
        if let value = try? JSONValue(jsonData: Data(body)), let error = fromStatus(value, context: context) {
            return KubeAPIError(
                kind: .status, code: status, reason: error.reason, message: error.message,
                context: context)
        }
        let text = String(decoding: body.prefix(4096), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return KubeAPIError(
            kind: .status, code: status, message: text.isEmpty ? "HTTP \(status)" : text,
            context: context)
    }

    /// A `metav1.Status` (`{"kind":"Status","code":410,"reason":"Expired","message":"..."}`) as an error; nil
    /// when `value` is not a Status.
    static func fromStatus(_ value: JSONValue, context: String) -> KubeAPIError? {
        guard case .string("Status") = value["kind"] ?? .null else { return nil }
        var code = 0
        if case .int(let c) = value["code"] ?? .null { code = c }
        var reason = ""
        if case .string(let r) = value["reason"] ?? .null { reason = r }
        var message = ""
        if case .string(let m) = value["message"] ?? .null { message = m }
        return KubeAPIError(
            kind: .status, code: code, reason: reason,
            message: message.isEmpty ? "status \(code) \(reason)" : message, context: context)
    }
}
