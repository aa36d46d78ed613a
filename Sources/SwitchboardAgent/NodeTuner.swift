import Logging
import SwitchboardCore

/// Writes what `NodeTuning` plans, once at start: reads the tunables it compares, writes each planned value,
/// and logs one line per write (`notice`) and one per refusal (`warning`, with the kernel's reason). Nothing
/// here throws: a node whose kernel refuses a setting (a network namespace where `nf_conntrack_max` is
/// read-only, a read-only `/proc/sys`, no `CAP_SYS_RESOURCE` for a negative OOM score) still needs its
/// Services. (kube-proxy goes on after a refused OOM score, but stops on a refused conntrack setting.)
public enum NodeTuner {
    /// What became of one planned write.
    public struct Outcome: Hashable, Sendable {
        public var write: TunableWrite
        /// The value read before, if it could be read.
        public var previous: Int?
        /// Why the kernel refused it; nil when written.
        public var error: TunableError?
    }

    @discardableResult
    public static func apply(_ tuning: NodeTuning, backend: some TunablesBackend, logger: Logger) -> [Outcome] {
        let cpus = backend.onlineCPUs()
        var current: [Tunable: Int] = [:]
        for tunable in tuning.consulted {
            do {
                current[tunable] = try backend.read(tunable)
            } catch {
                logger.debug("cannot read \(tunable.rawValue): \(error)")
            }
        }
        if let max = tuning.conntrackMax(cpus: cpus) {
            logger.info("conntrack: nf_conntrack_max \(max) wanted for \(cpus) CPUs (raised only, never lowered)",
                        metadata: ["current": "\(current[.conntrackMax].map(String.init) ?? "unknown")"])
        }
        var outcomes: [Outcome] = []
        for write in tuning.plan(cpus: cpus, current: current) {
            let previous = current[write.tunable]
            let was = previous.map { " (was \($0))" } ?? ""
            do {
                try backend.write(write.value, to: write.tunable)
                logger.notice("set \(write.tunable.rawValue) to \(write.value)\(was)")
                outcomes.append(Outcome(write: write, previous: previous, error: nil))
            } catch {
                let scope = write.tunable.isGlobal && !error.isNotFound
                    ? " (node-wide: only a privileged process in the host's network namespace may change it)" : ""
                logger.warning(
                    "cannot set \(write.tunable.rawValue) to \(write.value)\(was): \(error)\(scope); continuing")
                outcomes.append(Outcome(write: write, previous: previous, error: error))
            }
        }
        return outcomes
    }
}
