import Foundation
import KubeAPI
import SwitchboardAgent
import SwitchboardCore

/// Lists the cluster once through `kubeconfig`: Services, EndpointSlices and the Node named `nodeName`
/// (what `diff --kubeconfig` and `explain --kubeconfig` read). Malformed objects come back as diagnostics.
func readCluster(kubeconfig: String, nodeName: String) async throws -> (ClusterState, [Diagnostic]) {
    let snapshot: (objects: [KubeObject], diagnostics: [Diagnostic])
    do {
        let config = try KubeConfig.load(kubeconfigPath: kubeconfig)
        if let warning = config.insecureWarning {
            FileHandle.standardError.write(Data("switchboard: warning: \(warning)\n".utf8))
        }
        // One shot: a connection that fails (a refused certificate, nothing listening) is reported at once.
        let client = try KubeClient(config: config, options: .init(retryConnections: false))
        do {
            snapshot = try await client.snapshot(nodeName: nodeName)
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    } catch {
        throw CLIError("reading the cluster: \(error)")
    }
    return (ClusterState(snapshot.objects), snapshot.diagnostics)
}
