import Foundation

/// Where the `switchboard` executable under test is: `SWITCHBOARD_BIN`, or the one SwiftPM built
/// next to the test bundle (`swift build --build-tests` builds it too).
public enum SwitchboardBinary {
    public static var path: String? {
        if let env = ProcessInfo.processInfo.environment["SWITCHBOARD_BIN"], !env.isEmpty { return env }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The test runner may be inside `<name>.xctest/...`; walk up to the build directory.
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("switchboard").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    /// Why tests that drive the binary cannot run, or nil.
    public static var unavailableReason: String? {
        path == nil ? "the switchboard executable was not found (build it, or set SWITCHBOARD_BIN)" : nil
    }
}
