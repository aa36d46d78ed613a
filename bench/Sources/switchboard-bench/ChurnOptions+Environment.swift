import BenchKit
import Foundation

/// The defaults of the churn and peer runs that come from the environment and the file system, kept out of
/// `BenchKit` (pure option values).
extension ChurnOptions {
    /// The script that starts the control plane, or nil with the reason.
    func upScript() -> (path: String?, reason: String) {
        let candidates = [k8sUp, ProcessInfo.processInfo.environment["SWITCHBOARD_K8S_UP"], "../shared/k8s/up.sh"]
        for case let path? in candidates where !path.isEmpty {
            if FileManager.default.isExecutableFile(atPath: path) {
                return (URL(fileURLWithPath: path).standardizedFileURL.path, "")
            }
        }
        return (nil, "no executable up.sh (tried --k8s-up, $SWITCHBOARD_K8S_UP, ../shared/k8s/up.sh)")
    }

    /// The `switchboard` binary: `--switchboard-bin`, `$SWITCHBOARD_BIN`, or the one built next to us.
    func switchboardPath() -> String? {
        if let switchboardBinary { return switchboardBinary }
        if let env = ProcessInfo.processInfo.environment["SWITCHBOARD_BIN"], !env.isEmpty { return env }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("switchboard").path
        return FileManager.default.isExecutableFile(atPath: beside) ? beside : nil
    }
}
