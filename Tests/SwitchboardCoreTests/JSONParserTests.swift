import Foundation
import Testing
import SwitchboardTesting

@testable import SwitchboardCore

@Suite struct JSONParserTests {
    @Test func readsEveryJSONType() throws {
        let value = try JSONValue(json: #" {"s": "x", "i": -12, "d": 2.5, "t": true, "f": false, "n": null, "a": [1, [], {}]} "#)
        #expect(value == .object([
            "s": .string("x"), "i": .int(-12), "d": .double(2.5), "t": .bool(true), "f": .bool(false),
            "n": .null, "a": .array([.int(1), .array([]), .object([:])]),
        ]))
    }

    /// The reading `JSONDecoder` gave (and the decoders rely on): integral numbers are integers.
    @Test(arguments: [
        ("80", JSONValue.int(80)), ("80.0", .int(80)), ("1e3", .int(1000)), ("1E+3", .int(1000)), ("-0", .int(0)),
        ("0.5", .double(0.5)), ("-1.25e-2", .double(-0.0125)), ("9223372036854775807", .int(Int.max)),
        ("12345678901234567890", .double(12345678901234567890)),
    ])
    func numbers(text: String, expected: JSONValue) throws {
        #expect(try JSONValue(json: text) == expected)
    }

    @Test func stringEscapes() throws {
        let value = try JSONValue(json: #""a\"b\\c\/d\b\f\n\r\t \u00e9 \u20AC \ud83d\ude00 plain é""#)
        #expect(value == .string("a\"b\\c/d\u{08}\u{0C}\n\r\t é € 😀 plain é"))
    }

    @Test func duplicateMemberKeepsTheLastValue() throws {
        #expect(try JSONValue(json: #"{"a": 1, "a": 2}"#) == .object(["a": .int(2)]))
    }

    @Test(arguments: [
        ("", "unexpected end of input"), ("{", "expected a member name"), (#"{"a" 1}"#, "expected ':'"),
        ("[1 2]", "expected ',' or ']'"), ("[1,]", "unexpected character ']'"), ("01", "unexpected text after"),
        ("1.", "no digits after '.'"), ("1e", "no digits in the exponent"), ("-", "invalid number"),
        ("tru", "unexpected end of input"), ("nul!", "invalid literal"), (#""abc"#, "unterminated string"),
        (#""a\x""#, "invalid escape"), (#""\ud83d""#, "unpaired surrogate"), (#""\ude00""#, "unpaired surrogate"),
        (#""\u12""#, "truncated"), ("\"a\nb\"", "control character"), ("1e999", "out of range"), ("{} {}", "after"),
    ])
    func syntaxErrors(text: String, message: String) {
        #expect {
            try JSONValue(json: text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func invalidUTF8IsAnError() {
        let bytes: [UInt8] = [0x22, 0x61, 0xFF, 0x22]
        #expect(throws: JSONValue.SyntaxError.self) { try JSONValue(jsonData: Data(bytes)) }
    }

    @Test func errorsCarryLineAndColumn() {
        do {
            _ = try JSONValue(json: "{\n  \"é\": [1,\n    x]}")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 3)
            #expect(error.column == 5)
        }
    }

    /// Hostile nesting is an error, not a stack overflow, at any depth beyond the limit; up to it, it reads.
    @Test(arguments: [JSONValue.maximumDepth + 1, 5_000, 1_000_000])
    func nestingPastTheLimitIsRefused(depth: Int) {
        let text = #"{"a": "# + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}"
        do {
            _ = try JSONValue(json: text)
            Issue.record("parsed \(depth) levels")
        } catch {
            #expect(error.isTooDeep)
            #expect(error.message.contains("nested deeper than \(JSONValue.maximumDepth) levels"))
        }
    }

    @Test func nestingUpToTheLimitReads() throws {
        let depth = JSONValue.maximumDepth
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        var value = try JSONValue(json: text)
        var levels = 0
        while case .array(let inner) = value {
            levels += 1
            value = inner.first ?? .null
        }
        #expect(levels == depth)
    }

    /// A manifest nested too deep is one skipped document with the reason, and not re-read as YAML.
    @Test func tooDeepManifestIsASkippedDocument() {
        let text = #"{"kind": "Service", "a": "# + String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000) + "}"
        let result = ManifestDecoder.decode(text, source: "deep.json")
        #expect(result.objects.isEmpty)
        #expect(result.diagnostics.count == 1)
        #expect(result.diagnostics.first?.message.contains("nested deeper than") == true)
    }

    /// A LIST response read item by item: the items arrive in order, the other members come back.
    @Test func streamsTheItemsOfAList() throws {
        let text = #"{"kind": "ServiceList", "items": [{"a": 1}, [2], "x"], "metadata": {"resourceVersion": "7"}}"#
        var items: [JSONValue] = []
        let members = try Array(text.utf8).withUnsafeBytes { bytes in
            try JSONValue.streamObject(bytes, arrayMember: "items") { items.append($0) }
        }
        #expect(items == [.object(["a": .int(1)]), .array([.int(2)]), .string("x")])
        #expect(members == ["kind": .string("ServiceList"), "metadata": .object(["resourceVersion": .string("7")])])

        let empty = try Array(#"{"items": [], "m": null}"#.utf8).withUnsafeBytes { bytes in
            try JSONValue.streamObject(bytes, arrayMember: "items") { _ in Issue.record("no items") }
        }
        #expect(empty == ["m": .null])
        // Not an array: kept as a member for the caller to judge.
        let other = try Array(#"{"items": 3}"#.utf8).withUnsafeBytes { bytes in
            try JSONValue.streamObject(bytes, arrayMember: "items") { _ in Issue.record("no items") }
        }
        #expect(other == ["items": .int(3)])
        for broken in [#"{"items": [1,"#, #"["items"]"#, #"{"items": [1]} x"#, #"{"items": ["# + String(repeating: "[", count: 500)] {
            #expect(throws: JSONValue.SyntaxError.self) {
                try Array(broken.utf8).withUnsafeBytes { bytes in
                    try JSONValue.streamObject(bytes, arrayMember: "items") { _ in }
                }
            }
        }
    }

    /// Randomly built values, written by Foundation's `JSONSerialization`, read back equal.
    @Test func readsWhatJSONSerializationWrites() throws {
        var random = SplitMix64(seed: 42)
        for _ in 0..<300 {
            let value = Self.randomValue(depth: 0, &random)
            let data = try JSONSerialization.data(withJSONObject: Self.foundation(value), options: [.fragmentsAllowed])
            #expect(try JSONValue(jsonData: data) == value)
        }
    }

    private static func randomValue(depth: Int, _ random: inout SplitMix64) -> JSONValue {
        switch Int.random(in: depth > 4 ? 0...4 : 0...6, using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .int(Int.random(in: -1_000_000...1_000_000, using: &random))
        case 3: return .double(Double(Int.random(in: -1000...1000, using: &random)) + 0.25)
        case 4:
            let alphabet = Array("abc xyz\"\\/\n\t\u{1}é€😀")
            return .string(String((0..<Int.random(in: 0...12, using: &random)).map { _ in alphabet.randomElement(using: &random)! }))
        case 5: return .array((0..<Int.random(in: 0...4, using: &random)).map { _ in randomValue(depth: depth + 1, &random) })
        default:
            var members: [String: JSONValue] = [:]
            for index in 0..<Int.random(in: 0...4, using: &random) {
                members["k\(index)\(["", "é", "\"", "\n"].randomElement(using: &random)!)"] = randomValue(depth: depth + 1, &random)
            }
            return .object(members)
        }
    }

    private static func foundation(_ value: JSONValue) -> Any {
        switch value {
        case .null: return NSNull()
        case .bool(let b): return b
        case .int(let i): return i
        case .double(let d): return d
        case .string(let s): return s
        case .array(let a): return a.map(foundation)
        case .object(let o): return o.mapValues(foundation)
        }
    }
}
