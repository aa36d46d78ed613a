import Logging
import NFTModel
import SwitchboardCore

/// `--ipset-export`: after every successful sync, keeps kube-proxy's IPVS-mode ipsets (`KUBE-CLUSTER-IP`,
/// ...; see `IPSetExport`) equal to what Switchboard serves, for iptables firewalls written against them.
///
/// A set whose content differs from what was last written, or whose kernel set is missing (or of another
/// type), is rebuilt beside the live one and swapped in (`IPSetPlan`): a rule matching the set sees the old
/// or the new members, never a partial set. Sets that did not change are not touched. On its first pass the
/// exporter reads what the kernel holds, so a restarted agent does not rebuild sets that are already right.
///
/// Failures are logged and counted (`switchboard_ipset_export_errors_total`) and never stop the agent; a set
/// that failed is rebuilt on the next sync.
public actor IPSetExporter: SyncFollower {
    private let backend: any IPSetBackend
    private let logger: Logger
    private let metrics: AgentMetrics?
    private var export: IPSetExport
    /// What the kernel was last made to hold, per set; nil until read from the kernel.
    private var written: [String: IPSet]?

    public init(backend: any IPSetBackend, node: NodeContext, logger: Logger, metrics: AgentMetrics? = nil) {
        self.backend = backend
        self.logger = logger
        self.metrics = metrics
        self.export = IPSetExport(node: node)
    }

    public func synced(_ state: ClusterState, changed: Set<ObjectRef>?) async {
        export.update(state, changed: changed)
        do {
            let plan = try await apply()
            if !plan.isEmpty {
                logger.debug("ipsets exported", metadata: ["sets": "\(plan.steps.map(\.set).joined(separator: ","))"])
            }
        } catch {
            // Each failure was logged and counted where it happened.
        }
    }

    /// One export of `state` from scratch (the `apply` command's single pass); throws the first failure.
    @discardableResult
    public func export(_ state: ClusterState) async throws -> IPSetPlan {
        export.update(state, changed: nil)
        return try await apply()
    }

    /// Plans against the kernel's headers and what was written, then rebuilds each set that needs it. Every
    /// set is tried even when another failed; the first failure is thrown afterwards.
    private func apply() async throws -> IPSetPlan {
        let kernel: [String: IPSetHeader]
        var written: [String: IPSet]
        do {
            kernel = try await backend.headers()
            if let known = self.written {
                written = known
            } else {
                written = try await backend.read(KubeIPSet.allNames)
            }
        } catch {
            fail(error, set: nil)
            throw error
        }
        let desired = export.sets
        let plan = IPSetPlan(desired: desired, written: written, kernel: kernel)
        let byName = Dictionary(uniqueKeysWithValues: desired.map { ($0.name, $0) })
        var firstError: (any Error)?
        for step in plan.steps {
            do {
                try await backend.run(step.commands)
                written[step.set] = byName[step.set]
            } catch {
                written[step.set] = nil
                // The temporary set may be left half-filled; the next plan also removes it, this is tidiness.
                try? await backend.run([.destroy(IPSet.temporaryName(for: step.set))])
                fail(error, set: step.set)
                firstError = firstError ?? error
            }
        }
        self.written = written
        if let firstError { throw firstError }
        return plan
    }

    private func fail(_ error: any Error, set: String?) {
        var metadata: Logger.Metadata = ["error": "\(error)"]
        if let set { metadata["ipset"] = "\(set)" }
        logger.error("ipset export failed", metadata: metadata)
        metrics?.countIPSetExportError()
    }
}
