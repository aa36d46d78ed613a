import Testing

@testable import SwitchboardCore

/// Hostile nesting in YAML never reaches Yams' recursive composer: the document fails with the reason.
@Suite struct YAMLDepthTests {
    static func tooDeep(_ text: String) -> Bool {
        let documents = JSONValue.documents(yaml: text)
        guard documents.count == 1, case .failure(let error) = documents[0].content else { return false }
        return error.isTooDeep && error.message == "nested deeper than \(JSONValue.maximumDepth) levels"
    }

    @Test(arguments: [
        "a: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000),
        "a: " + String(repeating: "{b: ", count: 3000) + "1" + String(repeating: "}", count: 3000),
        String(repeating: "- ", count: 5000) + "x",
        (0..<300).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1",
        (0..<300).map { String(repeating: " ", count: 2 * $0) + "- k:" }.joined(separator: "\n") + " 1",
        // Unclosed: the parser would still recurse on the way in.
        "a: " + String(repeating: "[", count: 100_000),
        // Found by FuzzTests (manifest-json): JSON with a syntax error is re-read as YAML, where `:` may touch
        // the value after a quoted key.
        "{\"kind\": \"Node\", (\"x\": 1, " + String(repeating: "[{\"a\":", count: 5000),
        "a: {\"b\":{\"b\":" + String(repeating: "{\"b\":", count: 5000),
        // A tag or an anchor before the bracket.
        "a: " + String(repeating: "[!!seq ", count: 5000),
        "a: !!seq " + String(repeating: "[", count: 5000),
        "a: " + String(repeating: "&x [", count: 5000),
        "a: " + String(repeating: "!t[", count: 5000),
    ])
    func hostileNestingIsRefused(text: String) {
        #expect(Self.tooDeep(text))
    }

    /// What looks like nesting but is text: quoted scalars, comments, block scalars, plain scalars.
    @Test(arguments: [
        "a: \"" + String(repeating: "[", count: 500) + "\"",
        "a: '" + String(repeating: "{", count: 500) + "'",
        "# " + String(repeating: "[", count: 500) + "\na: 1",
        "a: |\n  " + String(repeating: "[", count: 500) + "\n  " + String(repeating: "- ", count: 500) + "\nb: 2",
        "a: x" + String(repeating: "[", count: 500),
        "{\"a\":\"" + String(repeating: "[", count: 500) + "\", b: !t '" + String(repeating: "{", count: 500) + "'}",
    ])
    func textIsNotNesting(text: String) {
        let documents = JSONValue.documents(yaml: text)
        #expect(documents.count == 1)
        if case .failure(let error) = documents.first?.content { #expect(!error.isTooDeep, "\(error)") }
    }

    /// Real manifests are shallow; nesting up to well past them reads as before.
    @Test func ordinaryNestingReads() throws {
        let text = "a: " + String(repeating: "[", count: 100) + "1" + String(repeating: "]", count: 100)
        let documents = JSONValue.documents(yaml: text)
        var value = try #require(try documents.first?.content.get())["a"]
        var levels = 0
        while case .array(let inner)? = value {
            levels += 1
            value = inner.first
        }
        #expect(levels == 100 && value == .int(1))
        #expect(YAMLDepth.estimate("apiVersion: v1\nkind: Service\nspec:\n  ports:\n  - port: 80\n    name: x\n", limit: 128) <= 4)
    }

    /// One deep document costs only itself.
    @Test func otherDocumentsSurvive() throws {
        let text = "kind: A\n---\na: " + String(repeating: "[", count: 5000) + "\n---\nkind: B\n"
        let documents = JSONValue.documents(yaml: text)
        #expect(documents.count == 3)
        #expect(try documents[0].content.get() == .object(["kind": .string("A")]))
        if case .failure(let error) = documents[1].content { #expect(error.isTooDeep) } else { Issue.record("parsed") }
        #expect(try documents[2].content.get() == .object(["kind": .string("B")]))
    }
}
