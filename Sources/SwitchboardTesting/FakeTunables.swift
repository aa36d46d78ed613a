import SwitchboardCore
import Synchronization

/// Kernel tunables in memory, with `KernelTunables`' semantics: a tunable with no value does not exist
/// (`.notFound`, as without the `nf_conntrack` module), a denied one can be read but not written
/// (`.denied`, as `nf_conntrack_max` inside a network namespace), a refused one can be read but rejects
/// every value (`.refused`, as the hash size answers a write from inside a network namespace with
/// `EOPNOTSUPP`). Every successful write is recorded, in order.
public final class FakeTunables: TunablesBackend {
    private struct State {
        var values: [Tunable: Int]
        var writes: [TunableWrite] = []
    }

    private let state: Mutex<State>
    private let cpus: Int
    private let denied: Set<Tunable>
    private let refused: Set<Tunable>

    public init(cpus: Int = 4, values: [Tunable: Int] = [:], denied: Set<Tunable> = [], refused: Set<Tunable> = []) {
        self.cpus = cpus
        self.denied = denied
        self.refused = refused
        state = Mutex(State(values: values))
    }

    /// The values now.
    public var values: [Tunable: Int] { state.withLock { $0.values } }

    /// The writes that succeeded, in order.
    public var writes: [TunableWrite] { state.withLock { $0.writes } }

    public func onlineCPUs() -> Int { cpus }

    public func read(_ tunable: Tunable) throws(TunableError) -> Int {
        guard let value = state.withLock({ $0.values[tunable] }) else {
            throw TunableError(.notFound, tunable, "No such file or directory (fake)")
        }
        return value
    }

    public func write(_ value: Int, to tunable: Tunable) throws(TunableError) {
        if denied.contains(tunable) { throw TunableError(.denied, tunable, "Permission denied (fake)") }
        if refused.contains(tunable) { throw TunableError(.refused, tunable, "Operation not supported (fake)") }
        try state.withLock { (state: inout State) throws(TunableError) in
            guard state.values[tunable] != nil else {
                throw TunableError(.notFound, tunable, "No such file or directory (fake)")
            }
            state.values[tunable] = value
            state.writes.append(TunableWrite(tunable, value))
        }
    }
}
