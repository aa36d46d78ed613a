import Foundation
import SwitchboardCore

/// One object as the API sent it, decoded: the object if it decoded, and what the decoder had to say.
///
/// A malformed object never fails a list or a watch: `object` is nil and `diagnostics` say why (the agent
/// logs them and counts them in a metric). `key` and `resourceVersion` are read from the raw metadata, so
/// even an object that did not decode can be matched with the one it replaces.
public struct DecodedObject: Hashable, Sendable {
    /// `namespace/name`, or `name` for cluster-scoped objects, from the raw metadata; `""` if it has none.
    public var key: String
    /// `metadata.resourceVersion`, opaque.
    public var resourceVersion: String?
    /// nil when the object was skipped; `diagnostics` then hold at least one `.error`.
    public var object: KubeObject?
    /// Errors (object skipped) and warnings (something smaller dropped, the object kept).
    public var diagnostics: [Diagnostic]

    public init(key: String, resourceVersion: String?, object: KubeObject?, diagnostics: [Diagnostic]) {
        self.key = key
        self.resourceVersion = resourceVersion
        self.object = object
        self.diagnostics = diagnostics
    }

    /// Decodes one API object of `resource`. List items come without `kind` and `apiVersion`; the resource
    /// supplies them. `source` names the request in diagnostics about objects without a usable name.
    public static func decode(_ value: JSONValue, resource: KubeResource, source: String) -> DecodedObject {
        let metadata = value["metadata"] ?? .null
        let name = metadata["name"].flatMap(\.stringValue) ?? ""
        let namespace = metadata["namespace"].flatMap(\.stringValue) ?? ""
        let key = namespace.isEmpty ? name : "\(namespace)/\(name)"
        let resourceVersion = metadata["resourceVersion"].flatMap(\.stringValue)

        var filled = value
        if case .object(var members) = value {
            if members["kind"] == nil { members["kind"] = .string(resource.kind) }
            if members["apiVersion"] == nil { members["apiVersion"] = .string(resource.apiVersion) }
            filled = .object(members)
        }
        let result = ManifestDecoder.decode(filled, source: source)
        var diagnostics = result.diagnostics
        let object = result.objects.first
        if object == nil && !diagnostics.contains(where: { $0.severity == .error }) {
            // The decoder skips kinds it does not read without a word; here that is a server surprise.
            let kind = filled["kind"].flatMap(\.stringValue) ?? "?"
            let ref = ObjectRef(namespace: namespace, name: name)
            let subject: Diagnostic.Subject =
                switch resource.kind {
                case _ where key.isEmpty: .input("object from \(source)")
                case "Service": .service(ref)
                case "EndpointSlice": .endpointSlice(ref)
                case "Node": .node(name)
                default: .input("\(resource.kind) \(key)")
                }
            diagnostics.append(
                Diagnostic(
                    subject, field: "",
                    message: "expected a \(resource.kind) (\(resource.apiVersion)), got kind \(kind); skipped"))
        }
        return DecodedObject(key: key, resourceVersion: resourceVersion, object: object, diagnostics: diagnostics)
    }
}

/// One event of a watch, as the API server streams them.
public enum WatchEvent: Hashable, Sendable {
    case added(DecodedObject)
    case modified(DecodedObject)
    case deleted(DecodedObject)
    /// Nothing changed, but the collection is now at `resourceVersion`: resuming from here is cheaper and
    /// less likely to hit `410 Gone` than resuming from the last change.
    case bookmark(resourceVersion: String)
    /// The server ended the watch with a `Status`; `isGone` means the resourceVersion is too old to resume.
    case error(KubeAPIError)

    /// Parses one frame of a watch stream. Throws only when the frame is not a watch event at all (not JSON,
    /// no known `type`): a broken stream, not a bad object.
    static func parse(_ frame: [UInt8], resource: KubeResource, source: String) throws(KubeAPIError) -> WatchEvent {
        let value: JSONValue
        do {
            value = try JSONValue(jsonData: Data(frame))
        } catch {
            throw KubeAPIError(kind: .invalidResponse, message: "watch event is not JSON: \(error)", context: source)
        }
        let type = value["type"].flatMap(\.stringValue) ?? ""
        let object = value["object"] ?? .null
        switch type {
        case "ADDED": return .added(DecodedObject.decode(object, resource: resource, source: source))
        case "MODIFIED": return .modified(DecodedObject.decode(object, resource: resource, source: source))
        case "DELETED": return .deleted(DecodedObject.decode(object, resource: resource, source: source))
        case "BOOKMARK":
            guard let version = object["metadata"]?["resourceVersion"].flatMap(\.stringValue) else {
                throw KubeAPIError(
                    kind: .invalidResponse, message: "BOOKMARK without a resourceVersion",
                    context: source)
            }
            return .bookmark(resourceVersion: version)
        case "ERROR":
            if let error = KubeAPIError.fromStatus(object, context: source) { return .error(error) }
            return .error(
                KubeAPIError(
                    kind: .status, message: "watch ERROR without a Status: \(object)",
                    context: source))
        default:
            let text = String(decoding: frame.prefix(120), as: UTF8.self)
            throw KubeAPIError(kind: .invalidResponse, message: "not a watch event: \(text)", context: source)
        }
    }
}

/// A complete LIST: every page's objects, and the resourceVersion to watch from.
public struct ListResult: Hashable, Sendable {
    public var items: [DecodedObject]
    /// The collection's version at the time of the list (the same on every page); watch from here.
    public var resourceVersion: String
    /// How many requests it took (`limit` per page).
    public var pageCount: Int

    public init(items: [DecodedObject], resourceVersion: String, pageCount: Int = 1) {
        self.items = items
        self.resourceVersion = resourceVersion
        self.pageCount = pageCount
    }

    /// The objects that decoded, in the server's order.
    public var objects: [KubeObject] { items.compactMap(\.object) }
    /// Everything the decoder had to say about every item.
    public var diagnostics: [Diagnostic] { items.flatMap(\.diagnostics) }
}

extension ListResult {
    /// Reads one page of a LIST response item by item, so a page never exists as one tree: each item is
    /// decoded and handed to `each` as it is read; returns the page's `metadata` (`.null` when absent).
    /// Throws when the body is not a JSON object or its `items` is not a list; `context` names the request.
    static func decodePage(
        _ bytes: UnsafeRawBufferPointer, resource: KubeResource, source: String, context: String,
        _ each: (DecodedObject) -> Void
    ) throws(KubeAPIError) -> JSONValue {
        let members: [String: JSONValue]
        do {
            members = try JSONValue.streamObject(bytes, arrayMember: "items") { raw in
                each(DecodedObject.decode(raw, resource: resource, source: source))
            }
        } catch {
            // `each` does not throw, so this is the parser's `SyntaxError`.
            throw KubeAPIError(kind: .invalidResponse, message: "response is not JSON: \(error)", context: context)
        }
        if let other = members["items"], other != .null {
            throw KubeAPIError(kind: .invalidResponse, message: "list items is \(other.typeName)", context: context)
        }
        return members["metadata"] ?? .null
    }
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}
