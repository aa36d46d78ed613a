#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A JSON document as a plain value: the common form that both JSON and YAML input are read into before
/// the Kubernetes objects are picked out of it.
///
/// Numbers keep the integer/fraction distinction where the parser can see it (YAML always; JSON through
/// `JSONDecoder`, which reads `80.0` and `1e3` as the integers 80 and 1000). Objects are unordered, as in JSON.
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

        public init(line: Int? = nil, column: Int? = nil, message: String) {
            self.line = line
            self.column = column
            self.message = message
        }

        public var description: String {
            switch (line, column) {
            case (let l?, let c?): return "line \(l), column \(c): \(message)"
            case (let l?, nil): return "line \(l): \(message)"
            default: return message
            }
        }
    }

    /// Parses JSON text (one top-level value).
    ///
    /// `JSONDecoder` reports no position for a syntax error; `ManifestDecoder` therefore re-reads text that
    /// fails here with the YAML parser (YAML is a superset of JSON), which says where the problem is.
    public init(json text: String) throws {
        try self.init(jsonData: Data(text.utf8))
    }

    /// Parses JSON bytes (UTF-8), e.g. a response body or a watch event.
    public init(jsonData data: Data) throws {
        do {
            self = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch let error as DecodingError {
            throw SyntaxError(message: Self.describe(error))
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context):
            let under = context.underlyingError.map { " (\($0))" } ?? ""
            return "invalid JSON: \(context.debugDescription)\(under)"
        default:
            return "invalid JSON: \(error)"
        }
    }
}

extension JSONValue: Decodable {
    /// Decodes any JSON value. The order of attempts puts the common types first (strings and objects make up
    /// most of a Kubernetes object) and `Bool` before the numbers so that `true` never becomes `1`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let o = try? container.decode([String: JSONValue].self) {
            self = .object(o)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int.self) {
            self = .int(i)
        } else {
            self = .double(try container.decode(Double.self))
        }
    }
}
