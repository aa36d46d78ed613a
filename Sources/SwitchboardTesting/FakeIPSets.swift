import NFTModel
import Synchronization

/// An in-memory `IPSetBackend` with the kernel's rules for what the export uses: `create` of an existing
/// name fails, `add` needs the set, `swap` needs both sets with the same type and family, `destroy` needs
/// the set (and fails while `referenced` names it). Runs stop at the first failing command, as libipset's do.
/// Every command run is recorded in `log`; `failing` makes commands that match it fail.
public final class FakeIPSets: IPSetBackend {
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var command: String
        public var message: String
        public var description: String { "\(command): \(message)" }
    }

    private struct State {
        var sets: [String: IPSet] = [:]
        var log: [IPSetCommand] = []
        var referenced: Set<String> = []
        var failing: (@Sendable (IPSetCommand) -> Bool)?
        var failReads = false
    }

    private let state = Mutex(State())

    public init() {}

    /// The sets as they are now.
    public var sets: [String: IPSet] { state.withLock { $0.sets } }
    /// Every command run so far, failed ones included.
    public var log: [IPSetCommand] { state.withLock { $0.log } }
    public func clearLog() { state.withLock { $0.log = [] } }
    /// Sets a rule references (destroy fails for them).
    public func setReferenced(_ names: Set<String>) { state.withLock { $0.referenced = names } }
    /// Commands for which this returns true fail; nil: none fail.
    public func setFailing(_ predicate: (@Sendable (IPSetCommand) -> Bool)?) { state.withLock { $0.failing = predicate } }
    /// Makes `headers` and `read` fail.
    public func setFailReads(_ fail: Bool) { state.withLock { $0.failReads = fail } }
    /// Removes a set behind the exporter's back (someone ran `ipset destroy`).
    public func remove(_ name: String) { _ = state.withLock { $0.sets.removeValue(forKey: name) } }

    public func headers() async throws -> [String: IPSetHeader] {
        try state.withLock { state in
            if state.failReads { throw Failure(command: "list -t", message: "read failure") }
            return state.sets.mapValues(\.header)
        }
    }

    public func read(_ names: [String]) async throws -> [String: IPSet] {
        try state.withLock { state in
            if state.failReads { throw Failure(command: "list", message: "read failure") }
            return state.sets.filter { names.contains($0.key) }
        }
    }

    public func run(_ commands: [IPSetCommand]) async throws {
        try state.withLock { state in
            for command in commands {
                state.log.append(command)
                func fail(_ message: String) -> Failure { Failure(command: command.description, message: message) }
                if let failing = state.failing, failing(command) { throw fail("injected failure") }
                switch command {
                case .create(let name, let type, let family):
                    guard state.sets[name] == nil else { throw fail("set with the same name already exists") }
                    state.sets[name] = IPSet(name: name, type: type, family: family)
                case .add(let name, let entry):
                    guard state.sets[name] != nil else { throw fail("set does not exist") }
                    guard state.sets[name]!.entries.insert(entry).inserted else { throw fail("already added") }
                case .swap(let a, let b):
                    guard let first = state.sets[a], let second = state.sets[b] else { throw fail("set does not exist") }
                    guard first.header == second.header else { throw fail("type does not match") }
                    state.sets[a]!.entries = second.entries
                    state.sets[b]!.entries = first.entries
                case .destroy(let name):
                    guard state.sets[name] != nil else { throw fail("set does not exist") }
                    guard !state.referenced.contains(name) else { throw fail("in use by a kernel component") }
                    state.sets[name] = nil
                }
            }
        }
    }
}
