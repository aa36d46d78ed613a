import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whether privileged tests (root, network namespaces, real traffic) can run here, and why not.
///
/// This library does not import a test framework; with Swift Testing, gate a suite or test with a condition
/// trait, which reports every skipped test with the comment, while the first evaluation also prints the
/// concrete reason found by the probe:
///
/// ```swift
/// @Suite(.enabled(if: Skip.privilegedTestsAvailable, "needs root and ip netns (see the SKIP line)"))
/// ```
///
/// Set `SWITCHBOARD_SKIP_PRIVILEGED=1` to skip them deliberately (e.g. on a developer machine as root).
public enum Skip {
    /// Why privileged tests can't run, or nil when they can. Probed once per process: euid 0, `ip` and
    /// Python 3 present, and a scratch namespace can be created with a veth pair and a bridge in it.
    public static let privilegedTestsUnavailableReason: String? = probe()

    /// True when privileged tests can run; otherwise prints the reason (once per process) to stderr.
    public static var privilegedTestsAvailable: Bool {
        if privilegedTestsUnavailableReason == nil { return true }
        _ = printReason
        return false
    }

    private static let printReason: Void = {
        let text = "SKIP privileged tests (netns, real traffic): \(privilegedTestsUnavailableReason ?? "")\n"
        FileHandle.standardError.write(Data(text.utf8))
    }()

    private static func probe() -> String? {
        if let value = ProcessInfo.processInfo.environment["SWITCHBOARD_SKIP_PRIVILEGED"], !value.isEmpty,
            value != "0"
        {
            return "SWITCHBOARD_SKIP_PRIVILEGED=\(value)"
        }
        #if os(Linux)
            guard geteuid() == 0 else { return "not root (euid \(geteuid())); network namespaces need CAP_SYS_ADMIN" }
            guard Shell.which("ip") != nil else { return "`ip` (iproute2) not found" }
            guard FileManager.default.isExecutableFile(atPath: Traffic.python) else { return "python3 not found" }
            let namespace = "sbt-probe\(getpid() % 100_000)"
            let steps: [[String]] = [
                ["ip", "netns", "add", namespace],
                ["ip", "-n", namespace, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb"],
                ["ip", "-n", namespace, "link", "add", "name", "br0", "type", "bridge"],
                ["ip", "netns", "exec", namespace, Traffic.python, "-I", "-c", "import socket"],
            ]
            defer { _ = try? Shell.runBlocking(["ip", "netns", "del", namespace], timeout: .seconds(5)) }
            for step in steps {
                do {
                    try Shell.runBlocking(step, timeout: .seconds(10)).checked()
                } catch {
                    return "probe failed: \(error)"
                }
            }
            return nil
        #else
            return "network namespaces are Linux-only"
        #endif
    }
}
