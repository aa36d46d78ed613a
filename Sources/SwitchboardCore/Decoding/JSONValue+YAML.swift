import Yams

/// One document of a YAML stream, or the single document of a JSON text.
public struct ManifestDocument: Hashable, Sendable {
    /// 1-based position among the stream's non-empty documents; what diagnostics call `document N`.
    public var number: Int
    /// 1-based line of the whole text where the document starts.
    public var line: Int
    public var content: Result<JSONValue, JSONValue.SyntaxError>

    public init(number: Int, line: Int, content: Result<JSONValue, JSONValue.SyntaxError>) {
        self.number = number
        self.line = line
        self.content = content
    }
}

extension JSONValue {
    /// Reads every document of a YAML stream (`---` separated) as JSON values.
    ///
    /// Scalars are typed by the YAML 1.2 JSON schema, not YAML 1.1: a quoted scalar is always a string, and of
    /// the plain ones only `true`/`false`, `null`/`~`/empty and JSON-style numbers are something else. So `yes`,
    /// `on` and `0x1F` stay strings, and `0755` is the string "0755", never the octal 493, like an ambiguous
    /// leading-zero IPv4 address is an error rather than a guess.
    ///
    /// The stream is cut at `---` lines before parsing, so a syntax error costs only its own document: the YAML
    /// spec forbids `---` at the start of a line inside any content, so the cut never splits a document.
    /// Empty documents are dropped and not counted.
    public static func documents(yaml text: String) -> [ManifestDocument] {
        var out: [ManifestDocument] = []
        for chunk in splitYAMLStream(text) {
            let converter = YAMLConverter(firstLine: chunk.line, budget: 4 * chunk.text.utf8.count + 10_000)
            // Yams composes recursively: text nested past the limit never reaches it (see `YAMLDepth`).
            if YAMLDepth.estimate(chunk.text, limit: maximumDepth) > maximumDepth {
                out.append(ManifestDocument(number: out.count + 1, line: chunk.line, content: .failure(SyntaxError(
                    line: chunk.line, message: "nested deeper than \(maximumDepth) levels", isTooDeep: true))))
                continue
            }
            var stream: YamlSequence<Yams.Node>
            do {
                stream = try Yams.compose_all(yaml: chunk.text)
            } catch {
                out.append(ManifestDocument(number: out.count + 1, line: chunk.line,
                                            content: .failure(converter.syntaxError(error))))
                continue
            }
            while let node = stream.next() {
                let line = chunk.line + (node.mark?.line ?? 1) - 1
                let content: Result<JSONValue, SyntaxError>
                do {
                    content = .success(try converter.convert(node, depth: 0))
                } catch let error as SyntaxError {
                    content = .failure(error)
                } catch {
                    content = .failure(SyntaxError(line: line, message: "\(error)"))
                }
                if case .success(.null) = content { continue }
                out.append(ManifestDocument(number: out.count + 1, line: line, content: content))
            }
            if let error = stream.error {
                // The parser stops at the first error; the rest of this chunk (one document, unless it holds
                // `...` end markers) is lost, the next chunks are not.
                out.append(ManifestDocument(number: out.count + 1, line: chunk.line,
                                            content: .failure(converter.syntaxError(error))))
            }
        }
        return out
    }

    /// Cuts a YAML stream before each `---` line that follows document content. Leading comments and
    /// `%` directives stay with the document they precede.
    static func splitYAMLStream(_ text: String) -> [(line: Int, text: String)] {
        var chunks: [(line: Int, text: String)] = []
        var current: [Substring.UnicodeScalarView] = []
        var currentLine = 1
        var hasContent = false
        var lineNumber = 0
        var scalars = text.unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        for line in scalars.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            if isDocumentStart(line) && hasContent {
                chunks.append((currentLine, current.map { String($0) }.joined(separator: "\n")))
                current = []
                currentLine = lineNumber
                hasContent = false
            }
            current.append(line)
            if !hasContent {
                // A marker line counts as content when a document starts on it: `--- {inline: document}`.
                let rest = isDocumentStart(line) ? line.dropFirst(3) : line
                let first = rest.first(where: { $0 != " " && $0 != "\t" && $0 != "\r" })
                if let first, first != "#", rest.first != "%" {
                    hasContent = true
                }
            }
        }
        if !current.isEmpty {
            chunks.append((currentLine, current.map { String($0) }.joined(separator: "\n")))
        }
        return chunks
    }

    private static func isDocumentStart(_ line: Substring.UnicodeScalarView) -> Bool {
        guard line.starts(with: "---".unicodeScalars) else { return false }
        let rest = line.dropFirst(3)
        return rest.isEmpty || rest.first == " " || rest.first == "\t" || rest.first == "\r"
    }
}

/// Converts a Yams node tree (`Yams.Node`, not to be confused with a Kubernetes `Node`) to `JSONValue`,
/// typing plain scalars itself (see `JSONValue.documents(yaml:)`).
private final class YAMLConverter {
    let firstLine: Int
    /// Nodes left to convert: aliases let a small text expand exponentially ("billion laughs").
    var budget: Int
    static let maxDepth = JSONValue.maximumDepth

    init(firstLine: Int, budget: Int) {
        self.firstLine = firstLine
        self.budget = budget
    }

    func convert(_ node: Yams.Node, depth: Int) throws -> JSONValue {
        budget -= 1
        guard budget >= 0 else {
            throw error(at: node.mark, "the document expands to too many nodes (recursive aliases?)")
        }
        guard depth < Self.maxDepth else { throw error(at: node.mark, "nested deeper than \(Self.maxDepth) levels") }
        switch node {
        case .scalar(let scalar):
            return Self.value(of: scalar)
        case .sequence(let sequence):
            return .array(try sequence.map { try convert($0, depth: depth + 1) })
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let k) = key else {
                    throw error(at: key.mark, "a mapping key must be a scalar")
                }
                members[k.string] = try convert(value, depth: depth + 1)
            }
            return .object(members)
        }
    }

    /// The explicit tag if the text carries one; quoted and block scalars arrive tagged `str` by the parser.
    static func value(of scalar: Yams.Node.Scalar) -> JSONValue {
        let text = scalar.string
        switch scalar.tag.description {
        case "":
            return plainValue(text)
        case Tag.Name.str.rawValue:
            return .string(text)
        case Tag.Name.null.rawValue:
            return .null
        case Tag.Name.bool.rawValue:
            switch text.lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: return .string(text)
            }
        case Tag.Name.int.rawValue:
            if let i = Int(text) { return .int(i) }
            return .string(text)
        case Tag.Name.float.rawValue:
            if let d = Double(text) { return .double(d) }
            return .string(text)
        default:
            return .string(text)
        }
    }

    /// YAML 1.2 JSON-schema typing of a plain scalar, plus the capitalised spellings of the core schema.
    static func plainValue(_ text: String) -> JSONValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        guard let kind = numberKind(text) else { return .string(text) }
        if kind == .integer, let i = Int(text) { return .int(i) }
        if let d = Double(text) { return .double(d) }
        return .string(text)
    }

    enum NumberKind { case integer, fraction }

    /// JSON number syntax (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`), also allowing a leading `+`.
    static func numberKind(_ text: String) -> NumberKind? {
        var s = Substring(text).unicodeScalars[...]
        if s.first == "-" || s.first == "+" { s = s.dropFirst() }
        func digits() -> Int {
            let n = s.prefix { $0.value >= 0x30 && $0.value <= 0x39 }.count
            s = s.dropFirst(n)
            return n
        }
        let intStart = s.first
        let intDigits = digits()
        guard intDigits > 0, intStart != "0" || intDigits == 1 else { return nil }
        var kind = NumberKind.integer
        if s.first == "." {
            s = s.dropFirst()
            guard digits() > 0 else { return nil }
            kind = .fraction
        }
        if s.first == "e" || s.first == "E" {
            s = s.dropFirst()
            if s.first == "-" || s.first == "+" { s = s.dropFirst() }
            guard digits() > 0 else { return nil }
            kind = .fraction
        }
        return s.isEmpty ? kind : nil
    }

    func error(at mark: Mark?, _ message: String) -> JSONValue.SyntaxError {
        JSONValue.SyntaxError(line: mark.map { firstLine + $0.line - 1 }, column: mark?.column, message: message)
    }

    /// A Yams error with its line made absolute (Yams counts from the start of the chunk).
    func syntaxError(_ error: any Error) -> JSONValue.SyntaxError {
        guard let yaml = error as? YamlError else { return JSONValue.SyntaxError(message: "\(error)") }
        switch yaml {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var message = problem
            if let context {
                message += " (\(context.text) at line \(firstLine + context.mark.line - 1), "
                    + "column \(context.mark.column))"
            }
            return JSONValue.SyntaxError(line: firstLine + mark.line - 1, column: mark.column, message: message)
        case .reader(let problem, _, _, _):
            return JSONValue.SyntaxError(message: "unreadable input: \(problem)")
        default:
            return JSONValue.SyntaxError(message: "\(yaml)")
        }
    }
}
