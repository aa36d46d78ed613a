import Foundation
import SwitchboardCore
import Synchronization
import Testing

@testable import KubeAPI
import SwitchboardTestTraits
import SwitchboardTesting

/// A `ListWatcher` that answers from a script, in order, and records what it was asked. When the script runs
/// out, requests hang until cancelled, like a quiet server.
final class FakeListWatcher: ListWatcher {
    enum Reply: Sendable {
        case list(ListResult)
        case watch(ScriptedChunks)
        case fail(KubeAPIError)
    }

    private let state: Mutex<(replies: [Reply], calls: [String])>

    init(_ replies: [Reply]) {
        state = Mutex((replies, []))
    }

    var calls: [String] { state.withLock { $0.calls } }

    private func take(_ call: String) async throws -> Reply {
        let reply = state.withLock { state -> Reply? in
            state.calls.append(call)
            return state.replies.isEmpty ? nil : state.replies.removeFirst()
        }
        guard let reply else {
            try await Task.sleep(for: .seconds(3600))
            throw CancellationError()
        }
        if case .fail(let error) = reply { throw error }
        return reply
    }

    func list(_ resource: KubeResource, pageSize: Int, fromCache: Bool) async throws -> ListResult {
        guard case .list(let result) = try await take(fromCache ? "list from cache" : "list") else {
            throw KubeAPIError(kind: .invalidResponse, message: "script expected a watch, got a list")
        }
        return result
    }

    func watch(
        _ resource: KubeResource, from resourceVersion: String, timeoutSeconds: Int
    ) async throws
        -> WatchEventStream
    {
        guard case .watch(let chunks) = try await take("watch from \(resourceVersion)") else {
            throw KubeAPIError(kind: .invalidResponse, message: "script expected a list, got a watch")
        }
        return WatchEventStream(resource: resource, source: "fake", chunks: chunks)
    }
}

@Suite(.exclusive) struct InformerTests {
    static let resource = KubeResource.services.inNamespace("ns")
    static let fast = InformerOptions(backoff: Backoff(initial: .milliseconds(1), maximum: .milliseconds(5)))

    static func list(_ services: [String], version: String) -> ListResult {
        ListResult(
            items: services.map { DecodedObject.decode(Canned.listItem($0), resource: resource, source: "t") },
            resourceVersion: version)
    }

    /// The full life of an informer against a scripted server: list with a bad item, watch with a bad update,
    /// bookmarks, a dropped connection (resume, no re-list), `410 Gone` (re-list, new `.synced`).
    @Test func listWatchResumeAndRelist() async throws {
        let fake = FakeListWatcher([
            .list(Self.list([Canned.service("a"), Canned.service("bad", port: 0)], version: "10")),
            .watch(
                ScriptedChunks(
                    [
                        String(Canned.event("ADDED", Canned.service("b", version: "11")).prefix(50)),
                        String(Canned.event("ADDED", Canned.service("b", version: "11")).dropFirst(50))
                            + Canned.event("MODIFIED", Canned.service("a", version: "12", port: 99_999)),
                        Canned.bookmark("20"),
                    ], ending: .failure(KubeAPIError(kind: .transport, message: "connection reset")))),
            .watch(
                ScriptedChunks(
                    [Canned.error(410, reason: "Expired", message: "too old resource version: 20 (25)")],
                    ending: .hang)),
            .list(Self.list([Canned.service("b", version: "11")], version: "30")),
            .watch(ScriptedChunks([Canned.event("DELETED", Canned.service("b", version: "31"))], ending: .hang)),
        ])
        let informer = Informer(source: fake, resource: Self.resource, options: Self.fast)
        let events = try await withInformer(informer) { log in
            try await log.waitFor("the delete after the re-list") { $0.last?.summary == "delete Service ns/b" }
        }
        #expect(
            events.map(\.summary) == [
                "synced[Service ns/a]",
                "diagnostics[error: Service ns/bad spec.ports[0].port: port 0 is out of range 1-65535; "
                    + "Service skipped]",
                "upsert Service ns/b",
                "delete Service ns/a",
                "diagnostics[error: Service ns/a spec.ports[0].port: port 99999 is out of range 1-65535; "
                    + "Service skipped]",
                "interrupted(0 transport, retry in \(Self.delay(events[5])))",
                "recovered",
                "interrupted(410 status, retry in \(Self.delay(events[7])))",
                "recovered",
                "synced[Service ns/b]",
                "delete Service ns/b",
            ])
        // Only the first list may come from the watch cache; the re-list after 410 reads etcd.
        #expect(fake.calls == ["list from cache", "watch from 10", "watch from 20", "list", "watch from 30"])
    }

    static func delay(_ event: InformerEvent) -> Duration {
        if case .interrupted(_, let delay) = event { return delay }
        return .zero
    }

    @Test func failedRequestsAreRetriedAndReported() async throws {
        let forbidden = KubeAPIError(kind: .status, code: 403, reason: "Forbidden", message: "no")
        let fake = FakeListWatcher([
            .fail(forbidden), .fail(KubeAPIError(kind: .transport, message: "refused")),
            .list(Self.list([], version: "5")),
            .fail(KubeAPIError(kind: .status, code: 500, message: "boom")),  // opening the watch
            .watch(ScriptedChunks([Canned.event("ADDED", Canned.service("a"))], ending: .hang)),
        ])
        let events = try await withInformer(Informer(source: fake, resource: Self.resource, options: Self.fast)) {
            log in
            try await log.waitFor("the upsert") { $0.last?.summary == "upsert Service ns/a" }
        }
        #expect(events.map(\.summary).filter { $0.hasPrefix("interrupted") }.count == 3)
        // The first success after failures says so, once.
        #expect(
            events.map { $0.summary.hasPrefix("interrupted") ? "interrupted" : $0.summary } == [
                "interrupted", "interrupted", "recovered", "synced[]", "interrupted", "recovered",
                "upsert Service ns/a",
            ])
        // Nothing was listed before the first success, so every attempt may use the cache.
        #expect(fake.calls == ["list from cache", "list from cache", "list from cache", "watch from 5", "watch from 5"])
        guard case .interrupted(let first, _) = events.first else { return }
        #expect(first.isForbidden)
    }

    @Test func aWatchThatEndsCleanlyIsResumedNotRelisted() async throws {
        let fake = FakeListWatcher([
            .list(Self.list([], version: "5")),
            .watch(ScriptedChunks([Canned.event("ADDED", Canned.service("a", version: "6"))])),
            .watch(ScriptedChunks([])),
            .watch(ScriptedChunks([Canned.event("ADDED", Canned.service("b", version: "7"))], ending: .hang)),
        ])
        let events = try await withInformer(Informer(source: fake, resource: Self.resource, options: Self.fast)) {
            log in
            try await log.waitFor("b") { $0.last?.summary == "upsert Service ns/b" }
        }
        #expect(events.map(\.summary) == ["synced[]", "upsert Service ns/a", "upsert Service ns/b"])
        #expect(fake.calls == ["list from cache", "watch from 5", "watch from 6", "watch from 6"])
    }

    @Test func cancellationEndsAnInformerWaitingInBackoff() async throws {
        // A refusal (not a transport failure, which is retried within 2 s whatever the backoff says).
        let fake = FakeListWatcher([.fail(KubeAPIError(kind: .status, code: 503, reason: "ServiceUnavailable", message: "no"))])
        let slow = InformerOptions(backoff: Backoff(initial: .seconds(600), maximum: .seconds(600)))
        // withInformer checks that cancelling takes well under the 10 minutes the backoff would wait.
        _ = try await withInformer(Informer(source: fake, resource: Self.resource, options: slow)) { log in
            try await log.waitFor("the failure") { !$0.isEmpty }
        }
    }

    // MARK: - Reflector (no I/O)

    @Test func reflectorKeepsResourceVersionFromEventsAndBookmarks() {
        var reflector = Reflector(kind: .services)
        #expect(reflector.nextStep == .list)
        _ = reflector.listed(Self.list([], version: "3"))
        #expect(reflector.nextStep == .watch(from: "3"))
        let added = DecodedObject.decode(
            try! JSONValue(json: Canned.service("a", version: "4")), resource: Self.resource, source: "t")
        #expect(reflector.received(.added(added)).events == [.upsert(added.object!)])
        #expect(reflector.nextStep == .watch(from: "4"))
        _ = reflector.received(.bookmark(resourceVersion: "9"))
        #expect(reflector.nextStep == .watch(from: "9"))
        let gone = KubeAPIError(kind: .status, code: 410, message: "gone")
        #expect(reflector.received(.error(gone)).failure == gone)
        var random = SplitMix64(seed: 1)
        _ = reflector.watchEnded(openFor: .seconds(1), requested: .seconds(300), error: gone, using: &random)
        #expect(reflector.nextStep == .list)
    }

    @Test func http410WhenOpeningTheWatchMeansRelist() {
        var reflector = Reflector(kind: .services, resourceVersion: "3")
        var random = SplitMix64(seed: 3)
        _ = reflector.requestFailed(KubeAPIError(kind: .status, code: 500, message: "x"), using: &random)
        #expect(reflector.nextStep == .watch(from: "3"))
        _ = reflector.requestFailed(KubeAPIError(kind: .status, code: 410, message: "gone"), using: &random)
        #expect(reflector.nextStep == .list)
    }

    @Test func deleteOfAnUndecodableObjectRemovesTheKnownVersion() {
        var reflector = Reflector(kind: .services)
        _ = reflector.listed(Self.list([Canned.service("a")], version: "3"))
        let bad = DecodedObject.decode(
            try! JSONValue(json: Canned.service("a", version: "4", port: 0)), resource: Self.resource, source: "t")
        #expect(bad.object == nil)
        let events = reflector.received(.deleted(bad)).events
        #expect(events.map(\.summary) == ["delete Service ns/a"])
        // Never known, never decoded: nothing to say.
        #expect(reflector.received(.deleted(bad)).events.isEmpty)
    }

    struct Ending: Sendable, CustomTestStringConvertible {
        var openFor: Duration
        var error: KubeAPIError?
        var resetsBackoff: Bool
        var waits: Bool
        var testDescription: String { "open \(openFor), \(error.map { "error \($0.code)" } ?? "clean")" }
    }

    @Test(arguments: [
        // The server's normal timeout: resume at once, backoff reset.
        Ending(openFor: .seconds(299), error: nil, resetsBackoff: true, waits: false),
        // A short clean end (a server closing watches at once) must not become a busy loop.
        Ending(openFor: .milliseconds(5), error: nil, resetsBackoff: false, waits: true),
        // A long-lived watch broken by a restart: backoff starts over, but still waits a little.
        Ending(
            openFor: .seconds(45), error: KubeAPIError(kind: .transport, message: "reset"), resetsBackoff: true,
            waits: true),
        Ending(
            openFor: .seconds(2), error: KubeAPIError(kind: .transport, message: "reset"), resetsBackoff: false,
            waits: true),
    ])
    func watchEndings(ending: Ending) {
        var reflector = Reflector(kind: .services, backoff: Backoff(initial: .seconds(1), maximum: .seconds(8)), resourceVersion: "1")
        var random = SplitMix64(seed: 7)
        for _ in 0..<3 { _ = reflector.requestFailed(KubeAPIError(kind: .transport, message: "x"), using: &random) }
        #expect(reflector.backoff.failures == 3)
        let delay = reflector.watchEnded(
            openFor: ending.openFor, requested: .seconds(300), error: ending.error,
            using: &random)
        #expect((delay == .zero) == !ending.waits)
        let expectedFailures = (ending.resetsBackoff ? 0 : 3) + (ending.waits ? 1 : 0)
        #expect(reflector.backoff.failures == expectedFailures)
        #expect(reflector.nextStep == .watch(from: "1"))
    }

    /// No answer (a server away or restarting) is retried within 2 s however long it lasts; an answer that
    /// says no (here 503) backs off to the full maximum.
    @Test func anUnreachableServerIsRetriedWithinTwoSecondsARefusingOneBacksOff() {
        var random = SplitMix64(seed: 3)
        var away = Reflector(kind: .services, backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(30)))
        var refusing = away
        var awayDelays: [Duration] = [], refusingDelays: [Duration] = []
        for _ in 0..<40 {
            awayDelays.append(away.requestFailed(KubeAPIError(kind: .transport, message: "refused"), using: &random))
            refusingDelays.append(refusing.requestFailed(
                KubeAPIError(kind: .status, code: 503, reason: "ServiceUnavailable", message: "x"), using: &random))
        }
        #expect(awayDelays.allSatisfy { $0 <= .seconds(2) })
        #expect(refusingDelays.allSatisfy { $0 <= .seconds(30) })
        #expect(refusingDelays.suffix(20).contains { $0 > .seconds(10) }, "\(refusingDelays)")
        // A watch that broke without an answer: the same cap.
        #expect(away.watchEnded(
            openFor: .milliseconds(1), requested: .seconds(60), error: KubeAPIError(kind: .transport, message: "reset"),
            using: &random) <= .seconds(2))
    }

    @Test func backoffDoublesToTheCapWithFullJitter() {
        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(30))
        var random = SplitMix64(seed: 42)
        var ceilings: [Duration] = []
        for _ in 0..<12 {
            let ceiling = backoff.ceiling
            ceilings.append(ceiling)
            let delay = backoff.fail(using: &random)
            #expect(delay >= .zero && delay <= ceiling)
        }
        #expect(
            ceilings.prefix(9).map { $0 / .milliseconds(1) } == [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000])
        #expect(ceilings.dropFirst(8).allSatisfy { $0 == .seconds(30) })
        for _ in 0..<100 { _ = backoff.fail(using: &random) }
        #expect(backoff.ceiling == .seconds(30))
        backoff.reset()
        #expect(backoff.ceiling == .milliseconds(200))
    }
}
