import Synchronization
import Testing

/// A Swift Testing trait for tests that must not overlap with each other when `swift test` runs tests in
/// parallel: those that time what they observe (a sync within 3 s, a read timeout after 1 s), start
/// processes and network namespaces, send real traffic, or keep both cores busy for seconds (property and
/// fuzz runs). Every test case that carries it, directly or through its suite, runs alone among them, in
/// the order they ask; tests without it still run beside them.
///
/// Why it is needed: Swift concurrency's cooperative pool is as wide as the machine (two threads here),
/// and Swift Testing starts every test at once. Without the trait, a minute of CPU-bound property cases
/// keeps a test's awaits from resuming, and a test that expects an event within seconds fails.
///
/// ```swift
/// @Suite(.exclusive) struct ControllerTests { ... }
/// ```
public struct Exclusive: SuiteTrait, TestTrait, TestScoping {
    /// A suite's trait reaches every test in it.
    public var isRecursive: Bool { true }

    /// One turn per test case (a parameterized test's cases take turns too); none for a suite itself.
    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        testCase == nil ? nil : self
    }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // A test with the trait in a suite with the trait gets it twice: the inner one must not wait for
        // the outer one's turn.
        if Self.holding {
            try await function()
            return
        }
        await Self.turns.acquire()
        defer { Self.turns.release() }
        try await Self.$holding.withValue(true) { try await function() }
    }

    @TaskLocal private static var holding = false
    private static let turns = Turns()
}

extension Trait where Self == Exclusive {
    /// See `Exclusive`.
    public static var exclusive: Exclusive { Exclusive() }
}

/// A first-come, first-served lock for async code that never blocks a thread while waiting.
final class Turns: Sendable {
    private struct State {
        var taken = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> Bool in
                if state.taken {
                    state.waiting.append(continuation)
                    return false
                }
                state.taken = true
                return true
            }
            if granted { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.taken = false
                return nil
            }
            return state.waiting.removeFirst()  // the turn passes straight to the next in line
        }
        next?.resume()
    }
}
