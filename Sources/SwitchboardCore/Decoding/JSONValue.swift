#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A JSON document as a plain value: the common form that both JSON and YAML input are read into before
/// the Kubernetes objects are picked out of it.
///
/// Numbers keep the integer/fraction distinction where the parser can see it (YAML always; JSON through
/// `JSONParser`, which reads `80.0` and `1e3` as the integers 80 and 1000). Objects are unordered, as in JSON.
public enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The member `key` of an object; nil when absent or when this is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// A short name of this value's JSON type, for messages: `string`, `integer`, `object`, ...
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSONValue {
    /// A syntax error in JSON or YAML text, with its position when the parser reports one.
    public struct SyntaxError: Error, Hashable, Sendable, CustomStringConvertible {
        /// 1-based line in the whole input, when known.
        public var line: Int?
        /// 1-based column (in Unicode scalars), when known.
        public var column: Int?
        public var message: String
        /// The input nests deeper than `JSONValue.maximumDepth`: no other reader should be tried on it.
        public var isTooDeep: Bool

        public init(line: Int? = nil, column: Int? = nil, message: String, isTooDeep: Bool = false) {
            self.line = line
            self.column = column
            self.message = message
            self.isTooDeep = isTooDeep
        }

        public var description: String {
            switch (line, column) {
            case (let l?, let c?): return "line \(l), column \(c): \(message)"
            case (let l?, nil): return "line \(l): \(message)"
            default: return message
            }
        }
    }

    /// The deepest nesting of arrays and objects any reader accepts (JSON, YAML, watch frames, the config
    /// file, kubeconfig). Kubernetes objects nest a dozen levels at most; a limit keeps hostile input from
    /// overflowing the stack of a recursive reader or of the value's own destruction.
    public static let maximumDepth = 128

    /// Parses JSON text (one top-level value).
    public init(json text: String) throws(SyntaxError) {
        var text = text
        self = try text.withUTF8 { bytes in
            Result { () throws(SyntaxError) in try JSONValue(jsonBytes: UnsafeRawBufferPointer(bytes)) }
        }.get()
    }

    /// Parses JSON bytes (UTF-8), e.g. a response body or a watch event.
    public init(jsonData data: Data) throws(SyntaxError) {
        self = try data.withUnsafeBytes { bytes in
            Result { () throws(SyntaxError) in try JSONValue(jsonBytes: bytes) }
        }.get()
    }

    /// Parses JSON bytes (UTF-8).
    public init(jsonBytes bytes: UnsafeRawBufferPointer) throws(SyntaxError) {
        var parser = JSONParser(bytes)
        self = try parser.parseDocument()
    }

    /// Reads a JSON object whose array member `member` may be huge (a LIST response's `items`), handing
    /// its elements to `each` one at a time; returns the other members. Throws `SyntaxError`, or what
    /// `each` throws.
    public static func streamObject(
        _ bytes: UnsafeRawBufferPointer, arrayMember member: String, _ each: (JSONValue) throws -> Void
    ) throws -> [String: JSONValue] {
        var parser = JSONParser(bytes)
        return try parser.parseObject(streaming: member, each)
    }
}
