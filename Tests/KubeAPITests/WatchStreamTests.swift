import Foundation
import SwitchboardCore
import Testing

@testable import KubeAPI

@Suite struct WatchStreamTests {
    static let resource = KubeResource.services.inNamespace("ns")

    static let stream =
        Canned.event("ADDED", Canned.service("a", version: "5"))
        + Canned.event("MODIFIED", Canned.service("a", version: "6", port: 81))
        + Canned.bookmark("7")
        + Canned.event("DELETED", Canned.service("a", version: "8", port: 81))

    func events(_ chunks: [String], ending: ScriptedChunks.Ending = .clean) async throws -> [WatchEvent] {
        let stream = WatchEventStream(
            resource: Self.resource, source: "test", chunks: ScriptedChunks(chunks, ending: ending))
        var out: [WatchEvent] = []
        for try await event in stream { out.append(event) }
        return out
    }

    static func describe(_ events: [WatchEvent]) -> [String] {
        events.map { event in
            switch event {
            case .added(let o):
                return "ADDED \(o.key)@\(o.resourceVersion ?? "-") port \(o.object?.service?.ports.first?.port ?? 0)"
            case .modified(let o):
                return "MODIFIED \(o.key)@\(o.resourceVersion ?? "-") port \(o.object?.service?.ports.first?.port ?? 0)"
            case .deleted(let o): return "DELETED \(o.key)@\(o.resourceVersion ?? "-")"
            case .bookmark(let v): return "BOOKMARK \(v)"
            case .error(let e): return "ERROR \(e.code) \(e.reason)"
            }
        }
    }

    static let expected = ["ADDED ns/a@5 port 80", "MODIFIED ns/a@6 port 81", "BOOKMARK 7", "DELETED ns/a@8"]

    @Test func wholeStreamInOneChunk() async throws {
        #expect(Self.describe(try await events([Self.stream])) == Self.expected)
    }

    /// Every way of cutting the stream in two, and byte-by-byte: an event may span chunks.
    @Test func everySplitPointGivesTheSameEvents() async throws {
        let bytes = Array(Self.stream.utf8)
        for cut in stride(from: 1, to: bytes.count, by: 7) {
            let chunks = [
                String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self),
            ]
            #expect(Self.describe(try await events(chunks)) == Self.expected, "cut at \(cut)")
        }
        let single = bytes.map { String(decoding: [$0], as: UTF8.self) }
        #expect(Self.describe(try await events(single)) == Self.expected)
    }

    @Test func splitterIgnoresBracketsAndQuotesInsideStrings() throws {
        var splitter = JSONFrameSplitter()
        let tricky = #"{"a":"}{\"]","b":["\\",{"c":"\\\"{"}]}"#
        let frames = try splitter.append(Array((tricky + "\n  " + tricky + "\r\n{").utf8))
        #expect(frames.map { String(decoding: $0, as: UTF8.self) } == [tricky, tricky])
        #expect(splitter.isInsideFrame)
        #expect(try splitter.append(Array("}".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["{}"])
        #expect(!splitter.isInsideFrame)
    }

    @Test func splitterRejectsNonObjectsAndOversizedFrames() {
        var splitter = JSONFrameSplitter()
        #expect(throws: KubeAPIError.self) { try splitter.append(Array("<html>".utf8)) }
        var small = JSONFrameSplitter(maximumFrameBytes: 16)
        #expect(throws: KubeAPIError.self) { try small.append(Array(#"{"a":"0123456789abcdef"#.utf8)) }
    }

    @Test func aStreamCutInsideAnEventIsATransportError() async throws {
        let cut = String(Self.stream.dropLast(20))
        await #expect {
            _ = try await events([cut])
        } throws: { error in
            (error as? KubeAPIError)?.kind == .transport
        }
    }

    @Test func aBrokenConnectionSurfacesAsTransportErrorAfterTheEventsBeforeIt() async throws {
        let broken = KubeAPIError(kind: .transport, message: "connection reset")
        let stream = WatchEventStream(
            resource: Self.resource, source: "test",
            chunks: ScriptedChunks([Self.stream], ending: .failure(broken)))
        var seen: [WatchEvent] = []
        await #expect(throws: broken) {
            for try await event in stream { seen.append(event) }
        }
        #expect(seen.count == 4)
    }

    /// The API validates objects, so a malformed one can't be created on a real server; feed one by hand.
    @Test func malformedObjectBecomesADiagnosticAndTheStreamGoesOn() async throws {
        let bad = Canned.service("bad", version: "9", port: 70000)
        let events = try await events([Canned.event("ADDED", bad) + Canned.event("ADDED", Canned.service("b"))])
        guard events.count == 2, case .added(let skipped) = events[0], case .added(let good) = events[1] else {
            Issue.record("unexpected events \(events)")
            return
        }
        #expect(skipped.object == nil)
        #expect(skipped.key == "ns/bad")
        #expect(skipped.resourceVersion == "9")
        #expect(skipped.diagnostics.map(\.object) == ["Service ns/bad"])
        #expect(skipped.diagnostics.first?.field == "spec.ports[0].port")
        #expect(skipped.diagnostics.first?.severity == .error)
        #expect(good.object?.service?.ref == ObjectRef(namespace: "ns", name: "b"))
    }

    @Test func errorEventCarriesTheStatusVerbatim() async throws {
        let events = try await events([
            Canned.error(410, reason: "Expired", message: "too old resource version: 1 (42)")
        ])
        guard case .error(let error) = events.first else {
            Issue.record("expected an ERROR event, got \(events)")
            return
        }
        #expect(error.isGone)
        #expect(error.code == 410)
        #expect(error.reason == "Expired")
        #expect(error.message == "too old resource version: 1 (42)")
        #expect(!error.isForbidden && !error.isUnauthorized && !error.isNotFound)
    }

    @Test func unknownEventTypeOrGarbageBreaksTheStream() async throws {
        await #expect(throws: KubeAPIError.self) { _ = try await events([#"{"type":"SURPRISE","object":{}}"#]) }
        await #expect(throws: KubeAPIError.self) { _ = try await events([#"{"type":"ADDED","object":{]"#]) }
    }

    @Test func objectOfAnotherKindIsReportedNotDropped() {
        let item = DecodedObject.decode(
            try! JSONValue(json: #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns"}}"#),
            resource: Self.resource, source: "test")
        #expect(item.object == nil)
        #expect(item.diagnostics.map(\.message) == ["expected a Service (v1), got kind Pod; skipped"])
    }

    @Test func listItemsGetKindAndVersionFromTheResource() {
        let item = DecodedObject.decode(Canned.listItem(Canned.service("x")), resource: Self.resource, source: "t")
        #expect(item.object?.service?.ref.name == "x")
        #expect(item.diagnostics.isEmpty)
    }

    // MARK: - Errors and requests

    @Test(arguments: [
        (401, "Unauthorized", [false, true, false, false]), (403, "Forbidden", [false, false, true, false]),
        (404, "NotFound", [false, false, false, true]), (410, "Gone", [true, false, false, false]),
        (500, "InternalError", [false, false, false, false]),
    ])
    func statusResponsesMapToPredicates(code: Int, reason: String, predicates: [Bool]) {
        let body =
            #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"verbatim text","#
            + #""reason":"\#(reason)","code":\#(code)}"#
        let error = KubeAPIError.fromResponse(status: code, body: Array(body.utf8), context: "GET /x")
        #expect([error.isGone, error.isUnauthorized, error.isForbidden, error.isNotFound] == predicates)
        #expect(error.message == "verbatim text")
        #expect(error.reason == reason)
        #expect(error.description == "kubernetes api status \(code) \(reason) (GET /x): verbatim text")
    }

    @Test func nonStatusBodyIsKeptAsTheMessage() {
        let error = KubeAPIError.fromResponse(status: 502, body: Array("Bad Gateway\n".utf8), context: "")
        #expect(error.message == "Bad Gateway")
        #expect(error.code == 502)
    }

    @Test func expiredContinueTokenIsGone() {
        let error = KubeAPIError(kind: .status, code: 410, reason: "Expired", message: "continue expired")
        #expect(error.isGone)
        #expect(!KubeAPIError(kind: .transport, code: 410, message: "").isGone)
    }

    @Test func resourcePathsAndSelectors() {
        #expect(KubeResource.services.path == "/api/v1/services")
        #expect(KubeResource.services.inNamespace("ns").path == "/api/v1/namespaces/ns/services")
        #expect(KubeResource.endpointSlices(.v1beta1).path == "/apis/discovery.k8s.io/v1beta1/endpointslices")
        #expect(KubeResource.endpointSlices(.v1).apiVersion == "discovery.k8s.io/v1")
        #expect(KubeResource.node(named: "n1").fieldSelector == "metadata.name=n1")
        #expect(
            QueryString.make([
                ("labelSelector", KubeResource.proxiedLabelSelector), ("fieldSelector", "metadata.name=a"),
            ])
                == "?labelSelector=%21service.kubernetes.io%2Fservice-proxy-name%2C%21service.kubernetes.io%2Fheadless"
                + "&fieldSelector=metadata.name%3Da")
    }
}
