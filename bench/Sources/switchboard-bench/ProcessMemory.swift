import BenchKit
import Foundation

/// Memory figures from procfs: a process's resident set and its peak, and the kernel's slab totals.
enum ProcessMemory {
    /// Resets this process's peak resident set (`VmHWM`) to the current one (Linux ≥ 4.0: writing 5 to
    /// `clear_refs`), so the next `peakRSS` covers only what happens after this call. False if refused.
    @discardableResult
    static func resetPeak() -> Bool { resetPeak(of: "self") }

    /// Resets `pid`'s `VmHWM` to its current RSS (`/proc/PID/clear_refs`, 5).
    static func resetPeak(of pid: Int32) -> Bool { resetPeak(of: String(pid)) }

    private static func resetPeak(of process: String) -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/\(process)/clear_refs") else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5\n".utf8))) != nil
    }

    static var status: [String: Int] { fields("/proc/self/status") }
    /// Another process's (`VmRSS`, `VmHWM`, ...): empty once it has gone.
    static func status(of pid: Int32) -> [String: Int] { fields("/proc/\(pid)/status") }
    static var meminfo: [String: Int] { fields("/proc/meminfo") }

    private static func fields(_ path: String) -> [String: Int] {
        // procfs files report size 0; read until EOF.
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        return procKiBFields(String(decoding: data, as: UTF8.self))
    }
}
