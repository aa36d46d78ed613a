import Foundation
import SwitchboardCore
import Synchronization
import Testing

@testable import KubeAPI

/// A fresh temporary directory, removed when `body` returns.
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    let path = FileManager.default.temporaryDirectory.path + "/sbt-kubeapi-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

func write(_ text: String, to path: String) {
    try! FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
}

extension KubeObject {
    var service: Service? {
        if case .service(let s) = self { return s }
        return nil
    }

    var endpointSlice: EndpointSlice? {
        if case .endpointSlice(let s) = self { return s }
        return nil
    }

    var node: Node? {
        if case .node(let n) = self { return n }
        return nil
    }

    /// `Service ns/name`, `EndpointSlice ns/name`, `Node name`: for assertions and messages.
    var label: String {
        switch self {
        case .service(let s): return "Service \(s.ref)"
        case .endpointSlice(let s): return "EndpointSlice \(s.ref)"
        case .node(let n): return "Node \(n.name)"
        }
    }
}

extension ClusterEvent {
    /// A one-line summary, so a failed expectation prints a readable event log.
    var summary: String {
        switch self {
        case .synced(_, let objects): return "synced[\(objects.map(\.label).sorted().joined(separator: ", "))]"
        case .upsert(let object): return "upsert \(object.label)"
        case .delete(let object): return "delete \(object.label)"
        case .diagnostics(let diagnostics):
            return "diagnostics[\(diagnostics.map(\.description).joined(separator: "; "))]"
        }
    }
}

extension InformerEvent {
    /// A one-line summary, so a failed expectation prints a readable event log.
    var summary: String {
        switch self {
        case .cluster(let event): return event.summary
        case .interrupted(let error, let delay): return "interrupted(\(error.code) \(error.kind), retry in \(delay))"
        case .recovered: return "recovered"
        }
    }
}

/// The events an informer running in the background has delivered so far.
final class EventLog: Sendable {
    private let events = Mutex<[InformerEvent]>([])

    func append(_ event: InformerEvent) {
        events.withLock { $0.append(event) }
    }

    var all: [InformerEvent] { events.withLock { $0 } }
    var summaries: [String] { all.map(\.summary) }

    /// Polls until `predicate` holds for the log, failing the test after `deadline`. Generous deadlines only:
    /// this checks that something eventually happens, never how fast.
    @discardableResult
    func waitFor(
        _ what: String, within deadline: Duration = .seconds(10),
        sourceLocation: SourceLocation = #_sourceLocation,
        _ predicate: ([InformerEvent]) -> Bool
    ) async throws -> [InformerEvent] {
        let clock = ContinuousClock()
        let end = clock.now + deadline
        while true {
            let snapshot = all
            if predicate(snapshot) { return snapshot }
            if clock.now >= end {
                Issue.record(
                    "timed out after \(deadline) waiting for \(what); events: \(snapshot.map(\.summary))",
                    sourceLocation: sourceLocation)
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Runs `informer` in a child task while `body` watches its events, then cancels it and checks that it ends
/// promptly (structured concurrency: nothing of it outlives this call).
func withInformer<R: Sendable>(
    _ informer: Informer, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (EventLog) async throws -> R
) async throws -> R {
    let log = EventLog()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for try await event in informer { log.append(event) }
        }
        let result: R
        do {
            result = try await body(log)
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
        let clock = ContinuousClock()
        let start = clock.now
        group.cancelAll()
        do {
            try await group.waitForAll()
            Issue.record("the informer ended without being cancelled", sourceLocation: sourceLocation)
        } catch is CancellationError {
            // expected: cancellation is the only way an informer ends
        }
        let took = start.duration(to: clock.now)
        #expect(took < .seconds(5), "cancelling the informer took \(took)", sourceLocation: sourceLocation)
        return result
    }
}

// MARK: - Canned API objects

enum Canned {
    static func service(_ name: String, namespace: String = "ns", version: String = "1", port: Int = 80) -> String {
        """
        {"apiVersion":"v1","kind":"Service","metadata":{"name":"\(name)","namespace":"\(namespace)",\
        "resourceVersion":"\(version)"},"spec":{"type":"ClusterIP","clusterIP":"10.96.0.10",\
        "clusterIPs":["10.96.0.10"],"ports":[{"port":\(port),"protocol":"TCP","targetPort":8080}]}}
        """
    }

    static func event(_ type: String, _ object: String) -> String {
        "{\"type\":\"\(type)\",\"object\":\(object)}\n"
    }

    static func bookmark(_ version: String) -> String {
        event(
            "BOOKMARK", "{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"\(version)\"}}"
        )
    }

    static func error(_ code: Int, reason: String, message: String) -> String {
        event(
            "ERROR",
            """
            {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"\(message)",\
            "reason":"\(reason)","code":\(code)}
            """)
    }

    /// A list item as the API sends it: without kind and apiVersion.
    static func listItem(_ service: String) -> JSONValue {
        guard case .object(var members) = try! JSONValue(json: service) else { fatalError() }
        members["kind"] = nil
        members["apiVersion"] = nil
        return .object(members)
    }
}

/// Body chunks that end cleanly, fail, or hang (until cancelled) after the last one.
struct ScriptedChunks: AsyncSequence, Sendable {
    enum Ending: Sendable {
        case clean
        case failure(KubeAPIError)
        case hang
    }

    var chunks: [[UInt8]]
    var ending: Ending

    init(_ chunks: [String], ending: Ending = .clean) {
        self.chunks = chunks.map { Array($0.utf8) }
        self.ending = ending
    }

    func makeAsyncIterator() -> Iterator { Iterator(chunks: chunks, ending: ending) }

    struct Iterator: AsyncIteratorProtocol {
        var chunks: [[UInt8]]
        var ending: Ending
        var index = 0

        mutating func next() async throws -> [UInt8]? {
            if index < chunks.count {
                index += 1
                return chunks[index - 1]
            }
            switch ending {
            case .clean: return nil
            case .failure(let error): throw error
            case .hang:
                try await Task.sleep(for: .seconds(3600))
                return nil
            }
        }
    }
}
