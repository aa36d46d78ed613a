import SwitchboardCore

/// One collection to list and watch: an API group/version/resource, optionally one namespace, and the
/// selectors that narrow it.
///
/// The three a node proxy needs are predefined, with kube-proxy's selectors:
/// ```swift
/// client.informer(for: .services)
/// client.informer(for: .endpointSlices(try await client.endpointSliceVersion()))
/// client.informer(for: .node(named: nodeName))
/// ```
public struct KubeResource: Hashable, Sendable, CustomStringConvertible {
    /// `""` for the core group (`/api/v1`), else e.g. `discovery.k8s.io`.
    public var group: String
    public var version: String
    /// The plural resource name in URLs: `services`, `endpointslices`, `nodes`.
    public var plural: String
    /// The object kind, given to list items (which the API sends without one) before decoding.
    public var kind: String
    /// nil: all namespaces (or a cluster-scoped resource).
    public var namespace: String?
    /// A label selector in the API's syntax, e.g. `!service.kubernetes.io/headless`.
    public var labelSelector: String?
    /// A field selector in the API's syntax, e.g. `metadata.name=node-1`.
    public var fieldSelector: String?

    public init(
        group: String, version: String, plural: String, kind: String, namespace: String? = nil,
        labelSelector: String? = nil, fieldSelector: String? = nil
    ) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
    }

    /// What kube-proxy leaves alone: Services (and their slices) handed to another proxy by
    /// `service.kubernetes.io/service-proxy-name`, and headless ones, which have no virtual IP to program.
    public static let proxiedLabelSelector = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"

    /// `v1` Services that this proxy serves.
    public static let services = KubeResource(
        group: "", version: "v1", plural: "services", kind: "Service", labelSelector: proxiedLabelSelector)

    /// EndpointSlices of the served Services, in the version the server has (see
    /// `KubeClient.endpointSliceVersion()`).
    public static func endpointSlices(_ version: EndpointSliceVersion) -> KubeResource {
        KubeResource(
            group: "discovery.k8s.io", version: version.rawValue, plural: "endpointslices",
            kind: "EndpointSlice", labelSelector: proxiedLabelSelector)
    }

    /// Exactly one Node, the one the agent runs on: its addresses, labels (zone) and pod CIDRs.
    public static func node(named name: String) -> KubeResource {
        KubeResource(group: "", version: "v1", plural: "nodes", kind: "Node", fieldSelector: "metadata.name=\(name)")
    }

    /// The kind of the agent's objects this collection holds, if it is one of them (`kind` is `Service`,
    /// `EndpointSlice` or `Node`): the only collections an `Informer` watches.
    public var objectKind: ObjectKind? { ObjectKind(rawValue: kind) }

    /// The same collection, restricted to one namespace.
    public func inNamespace(_ namespace: String) -> KubeResource {
        var copy = self
        copy.namespace = namespace
        return copy
    }

    /// What RBAC must allow for `verb` on this collection.
    public func permission(_ verb: String) -> Permission {
        Permission(verb: verb, resource: plural, group: group, namespace: namespace)
    }

    /// `v1` or `discovery.k8s.io/v1beta1`, as objects spell it.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// The collection's URL path, e.g. `/apis/discovery.k8s.io/v1beta1/namespaces/ns/endpointslices`.
    public var path: String {
        let base = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        let scope = namespace.map { "/namespaces/\(QueryString.escape($0))" } ?? ""
        return base + scope + "/" + plural
    }

    public var description: String {
        var text = plural + (group.isEmpty ? "" : ".\(group)") + "/\(version)"
        if let namespace { text += " in \(namespace)" }
        if let labelSelector { text += " labels \(labelSelector)" }
        if let fieldSelector { text += " fields \(fieldSelector)" }
        return text
    }
}

/// The EndpointSlice API versions Switchboard reads. v1 arrived in Kubernetes 1.21; 1.20 and older serve
/// only v1beta1 (with `topology` instead of `nodeName`/`zone`); `ManifestDecoder` reads both.
public enum EndpointSliceVersion: String, Hashable, Sendable, CaseIterable {
    case v1
    case v1beta1
}

/// Query strings for API requests.
enum QueryString {
    /// Percent-encodes everything but RFC 3986's unreserved characters, so selectors (`!`, `,`, `=`, `/`) and
    /// opaque continue tokens travel unchanged whatever the server's parser thinks of reserved characters.
    static func escape(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }

    /// `?a=1&b=2` from ordered pairs (order kept, so requests are predictable in logs and tests).
    static func make(_ items: [(String, String)]) -> String {
        items.isEmpty ? "" : "?" + items.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }
}
