/// What `ManifestDecoder` made of an input: the objects that decoded, in input order, and a diagnostic for
/// everything it skipped.
///
/// Severity says how much was lost: `.error` means the object it names was skipped entirely; `.warning` means
/// something smaller was dropped (one endpoint of a slice, one address of a node, a document that is not a
/// Kubernetes object, an object of a kind or version Switchboard does not read) and the rest was kept.
public struct DecodeResult: Hashable, Sendable {
    public var objects: [KubeObject]
    public var diagnostics: [Diagnostic]

    public init(objects: [KubeObject] = [], diagnostics: [Diagnostic] = []) {
        self.objects = objects
        self.diagnostics = diagnostics
    }
}

/// Reads Services, EndpointSlices and Nodes from YAML or JSON text, as files hold them or
/// `kubectl get -o yaml|json` and the API server print them.
///
/// Accepted shapes: a single object; a multi-document YAML stream; a `List` (`kind: List`, or a typed list such
/// as `ServiceList` whose items carry no `kind`), lists nested in lists. Objects of other kinds are skipped
/// without a diagnostic (`kubectl get all -o yaml` is full of them); unknown fields are ignored.
///
/// One bad object never costs the others: it is skipped with a `Diagnostic` naming it (`Service ns/name`, or
/// `document N of <source>` when it has no valid name) and the field (`spec.ports[1].port`). Values the API
/// server could not have produced count as bad: wrong JSON types, unparsable or leading-zero IPs, ports
/// outside 1-65535, unknown protocols or enum values, names that are not DNS-1123 labels or subdomains.
/// Zero in `nodePort`, `targetPort` and `healthCheckNodePort` means unset, as it does to Kubernetes.
/// A missing namespace is `default`, as for `kubectl apply`.
///
/// EndpointSlices are read from `discovery.k8s.io/v1` and `v1beta1`; see `endpointSlice(_:apiVersion:_:)`
/// for what a bad endpoint costs.
public enum ManifestDecoder {
    /// Decodes every object in `text`. `source` names the input in diagnostics (a file name, `stdin`, a URL).
    public static func decode(_ text: String, source: String) -> DecodeResult {
        var walker = Walker(source: source)
        for document in documents(text) {
            switch document.content {
            case .success(let value):
                walker.visitDocument(value, number: document.number)
            case .failure(let error):
                walker.result.diagnostics.append(Diagnostic(
                    .input("document \(document.number) of \(source)"), field: "",
                    message: "syntax error at \(error); document skipped"))
            }
        }
        return walker.result
    }

    /// Decodes one already-parsed document (an object or a list), e.g. a list response or the `object` of a
    /// watch event. Diagnostics call it `document 1 of <source>` where it has no name.
    public static func decode(_ value: JSONValue, source: String) -> DecodeResult {
        var walker = Walker(source: source)
        walker.visitDocument(value, number: 1)
        return walker.result
    }

    /// Splits `text` into documents: JSON when it starts with `{` or `[` and parses as JSON, else YAML.
    ///
    /// JSON goes through `JSONParser` (fast, exact); text that fails there is re-read as YAML, a superset of
    /// JSON that also takes flow-style text such as `{a: 1}`, except text nested too deep for any reader.
    public static func documents(_ text: String) -> [ManifestDocument] {
        let start = text.unicodeScalars.first { !" \t\r\n\u{FEFF}".unicodeScalars.contains($0) }
        if start == "{" || start == "[" {
            do {
                let value = try JSONValue(json: text)
                return value == .null ? [] : [ManifestDocument(number: 1, line: 1, content: .success(value))]
            } catch where error.isTooDeep {
                return [ManifestDocument(number: 1, line: 1, content: .failure(error))]
            } catch {}
        }
        return JSONValue.documents(yaml: text)
    }
}

/// Where a decoder is in an object: the name to give diagnostics (known once the identity has been read)
/// and the smaller problems that did not cost the object.
struct ObjectContext {
    var subject: Diagnostic.Subject?
    var warnings: [FieldError] = []
}

/// Walks documents and lists, dispatching each object to the decoder for its kind.
private struct Walker {
    let source: String
    var result = DecodeResult()
    /// Lists nested deeper than this are not walked (a document is already depth-limited; this bounds work).
    static let maxListDepth = 16

    init(source: String) {
        self.source = source
    }

    mutating func visitDocument(_ value: JSONValue, number: Int) {
        visit(Field(value, path: ""), locator: "document \(number) of \(source)", inherited: nil, depth: 0)
    }

    /// `inherited` is the (kind, apiVersion) a typed list such as `ServiceList` gives items that lack them.
    mutating func visit(_ object: Field, locator: String, inherited: (kind: String, apiVersion: String?)?,
                        depth: Int) {
        guard case .object = object.value else {
            warn(locator, object.path, "expected a Kubernetes object, got \(Field.describe(object.value)); skipped")
            return
        }
        let kind: String
        let apiVersion: String?
        do {
            kind = try object.child("kind").nonEmptyString() ?? inherited?.kind ?? ""
            apiVersion = try object.child("apiVersion").nonEmptyString() ?? inherited?.apiVersion
        } catch {
            warn(locator, error.path, "\(error.message); skipped")
            return
        }
        if kind.isEmpty {
            warn(locator, object.path, "object has no kind; skipped")
            return
        }
        if kind.hasSuffix("List"), case .array = object.value["items"] ?? .null {
            guard depth < Self.maxListDepth else {
                warn(locator, object.path, "lists nested deeper than \(Self.maxListDepth) levels; skipped")
                return
            }
            // A generic `List` names each item's kind; a typed list (`ServiceList`) names it for them.
            let itemKind = kind == "List" ? nil : (kind: String(kind.dropLast(4)), apiVersion: apiVersion)
            for item in (try? object.child("items").items()) ?? [] {
                visit(item, locator: locator, inherited: itemKind, depth: depth + 1)
            }
            return
        }
        let supported: [String]
        switch kind {
        case "Service", "Node": supported = ["v1"]
        case "EndpointSlice": supported = ["discovery.k8s.io/v1", "discovery.k8s.io/v1beta1"]
        default: return  // other kinds are none of Switchboard's business
        }
        guard let apiVersion, supported.contains(apiVersion) else {
            let got = apiVersion.map { "apiVersion \(Field.quote($0))" } ?? "no apiVersion"
            warn(locator, object.path, "\(kind) with \(got) is not read (supported: "
                + "\(supported.joined(separator: ", "))); skipped")
            return
        }
        // Field paths inside an object start at the object, as `kubectl explain` spells them.
        let root = Field(object.value, path: "")
        var context = ObjectContext()
        do throws(FieldError) {
            let decoded: KubeObject
            switch kind {
            case "Service": decoded = .service(try ManifestDecoder.service(root, &context))
            case "EndpointSlice":
                decoded = .endpointSlice(try ManifestDecoder.endpointSlice(root, apiVersion: apiVersion, &context))
            default: decoded = .node(try ManifestDecoder.node(root, &context))
            }
            result.objects.append(decoded)
            report(context, locator: locator, prefix: object.path)
        } catch {
            report(context, locator: locator, prefix: object.path)
            let (name, field) = place(context, locator: locator, prefix: object.path, error.path)
            result.diagnostics.append(Diagnostic(name, field: field, message: "\(error.message); \(kind) skipped"))
        }
    }

    mutating func report(_ context: ObjectContext, locator: String, prefix: String) {
        for warning in context.warnings {
            let (name, field) = place(context, locator: locator, prefix: prefix, warning.path)
            result.diagnostics.append(Diagnostic(name, field: field, message: warning.message, severity: .warning))
        }
    }

    /// A diagnostic's object and field: the object's own name and a path inside it, or, before the name is
    /// known, the document and the path from the document's root (`items[3].metadata.name`).
    func place(_ context: ObjectContext, locator: String, prefix: String, _ path: String) -> (Diagnostic.Subject, String) {
        if let subject = context.subject { return (subject, path) }
        if prefix.isEmpty || path.isEmpty { return (.input(locator), prefix + path) }
        return (.input(locator), path.hasPrefix("[") ? prefix + path : "\(prefix).\(path)")
    }

    mutating func warn(_ locator: String, _ field: String, _ message: String) {
        result.diagnostics.append(Diagnostic(.input(locator), field: field, message: message, severity: .warning))
    }
}

extension ManifestDecoder {
    /// `metadata.name` and `metadata.namespace` of a namespaced object, validated; records the object's
    /// diagnostics' subject (`Service ns/name`) in `context` once both are known good.
    static func namespacedRef(_ object: Field, subject: (ObjectRef) -> Diagnostic.Subject, nameIsLabel: Bool,
                              _ context: inout ObjectContext) throws(FieldError) -> ObjectRef {
        let metadata = try object.child("metadata")
        let name = try objectName(metadata, isLabel: nameIsLabel)
        let namespaceField = try metadata.child("namespace")
        let namespace = try namespaceField.nonEmptyString() ?? "default"
        guard NameRules.isDNS1123Label(namespace) else {
            throw namespaceField.fail("namespace \(Field.quote(namespace)) is not \(NameRules.labelRule)")
        }
        let ref = ObjectRef(namespace: namespace, name: name)
        context.subject = subject(ref)
        return ref
    }

    /// `metadata.name`, required, a DNS-1123 label or subdomain.
    static func objectName(_ metadata: Field, isLabel: Bool) throws(FieldError) -> String {
        let field = try metadata.child("name")
        guard let name = try field.nonEmptyString() else { throw field.fail("missing name") }
        let ok = isLabel ? NameRules.isDNS1123Label(name) : NameRules.isDNS1123Subdomain(name)
        guard ok else {
            let rule = isLabel ? NameRules.labelRule : NameRules.subdomainRule
            throw field.fail("name \(Field.quote(name)) is not \(rule)")
        }
        return name
    }
}
