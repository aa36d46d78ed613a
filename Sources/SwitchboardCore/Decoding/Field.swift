/// A field that makes an object unusable: the object is skipped and the error becomes a `Diagnostic`.
struct FieldError: Error, Hashable, Sendable {
    /// Relative to the object, e.g. `spec.ports[1].port`.
    var path: String
    var message: String
}

/// A value read out of a decoded document together with its path, so that every type or range error names
/// the exact field. Absent and `null` are the same, as for Go's decoder: both leave a field at its default.
struct Field {
    var value: JSONValue
    var path: String

    init(_ value: JSONValue?, path: String) {
        self.value = value ?? .null
        self.path = path
    }

    var isAbsent: Bool { value == .null }

    func fail(_ message: String) -> FieldError { FieldError(path: path, message: message) }

    /// The member `key`; absent if this field is absent. Fails if this field is not an object.
    func child(_ key: String) throws(FieldError) -> Field {
        switch value {
        case .null: return Field(nil, path: Self.join(path, key))
        case .object(let members): return Field(members[key], path: Self.join(path, key))
        default: throw typeError("an object")
        }
    }

    /// Shorthand for a chain of `child` calls: `spec.child("a", "b")`.
    func child(_ first: String, _ rest: String...) throws(FieldError) -> Field {
        var f = try child(first)
        for key in rest { f = try f.child(key) }
        return f
    }

    /// The elements of an array; none if absent.
    func items() throws(FieldError) -> [Field] {
        switch value {
        case .null: return []
        case .array(let elements): return elements.enumerated().map { Field($1, path: "\(path)[\($0)]") }
        default: throw typeError("an array")
        }
    }

    func string() throws(FieldError) -> String? {
        switch value {
        case .null: return nil
        case .string(let s): return s
        default: throw typeError("a string")
        }
    }

    /// A string where Go's `omitempty` makes `""` and absent the same.
    func nonEmptyString() throws(FieldError) -> String? {
        guard let s = try string(), !s.isEmpty else { return nil }
        return s
    }

    func int() throws(FieldError) -> Int? {
        switch value {
        case .null: return nil
        case .int(let i): return i
        default: throw typeError("an integer")
        }
    }

    func bool() throws(FieldError) -> Bool? {
        switch value {
        case .null: return nil
        case .bool(let b): return b
        default: throw typeError("a boolean")
        }
    }

    /// An array of strings; empty if absent.
    func strings() throws(FieldError) -> [(String, Field)] {
        var out: [(String, Field)] = []
        for item in try items() {
            guard let s = try item.string() else { throw item.typeError("a string") }
            out.append((s, item))
        }
        return out
    }

    /// A `map[string]string` such as labels; empty if absent.
    func stringMap() throws(FieldError) -> [String: String] {
        switch value {
        case .null: return [:]
        case .object(let members):
            var out: [String: String] = [:]
            for key in members.keys.sorted() {
                let f = Field(members[key], path: Self.join(path, key))
                // Go decodes `key: null` in a map[string]string to "".
                out[key] = try f.string() ?? ""
            }
            return out
        default: throw typeError("an object")
        }
    }

    func typeError(_ expected: String) -> FieldError {
        fail("expected \(expected), got \(Self.describe(value))")
    }

    /// A value as a message shows it: scalars with their text (quoted, escaped, shortened), else the type.
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return "boolean \(b)"
        case .int(let i): return "integer \(i)"
        case .double(let d): return "number \(d)"
        case .string(let s): return "string \(quote(s))"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// `key` appended to a path: `.key` when it is a plain identifier, else `["key"]`
    /// (label keys such as `kubernetes.io/service-name` contain dots and slashes).
    static func join(_ path: String, _ key: String) -> String {
        func isWordScalar(_ c: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_"
        }
        let scalars = key.unicodeScalars
        if let first = scalars.first, !("0"..."9").contains(first), scalars.allSatisfy(isWordScalar) {
            return path.isEmpty ? key : "\(path).\(key)"
        }
        return "\(path)[\(quote(key))]"
    }

    /// Text from the input as a message may show it: in double quotes, at most 80 characters, with everything
    /// but printable ASCII escaped, so that a hostile name such as `x"; flush ruleset; "` or one with control
    /// characters prints as inert text.
    static func quote(_ text: String) -> String {
        var out = "\""
        for (i, scalar) in text.unicodeScalars.enumerated() {
            if i == 80 {
                out += "..."
                break
            }
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case " "..."~": out.unicodeScalars.append(scalar)
            default: out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out + "\""
    }
}
