#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SwitchboardCore

/// The kernel's tunables as files: `/proc/sys/...` for sysctls (the calling thread's network namespace's
/// view), `/sys/module/nf_conntrack/parameters/hashsize`, `/proc/self/oom_score_adj`. Each call opens the
/// file, reads or writes a decimal integer, and closes it.
public struct KernelTunables: TunablesBackend {
    /// Prepended to every path; empty for the real files. Tests point it at a directory of plain files.
    public let root: String

    public init(root: String = "") { self.root = root }

    /// The node's online CPUs from `/sys/devices/system/cpu/online`, as kube-proxy counts them (its
    /// `nf_conntrack_max` is for the node, not for this process's CPU affinity or quota); the kernel's count
    /// of online processors if that file cannot be read.
    public func onlineCPUs() -> Int {
        if case .success(let text) = contents(root + "/sys/devices/system/cpu/online"),
            let count = NodeTuning.cpuCount(cpuList: text)
        {
            return count
        }
        return max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
    }

    public func read(_ tunable: Tunable) throws(TunableError) -> Int {
        switch contents(root + tunable.path) {
        case .failure(let code): throw Self.error(code.errno, tunable)
        case .success(let text):
            guard let value = Int(text.trimmingBlanks) else {
                throw TunableError(.unreadable, tunable, "not an integer: \"\(text.prefix(40))\"")
            }
            return value
        }
    }

    public func write(_ value: Int, to tunable: Tunable) throws(TunableError) {
        let fd = open(root + tunable.path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error(errno, tunable) }
        defer { close(fd) }
        let bytes = Array(String(value).utf8)
        let written = bytes.withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
        if written < 0 { throw Self.error(errno, tunable) }
        if written != bytes.count {
            throw TunableError(.refused, tunable, "short write: \(written) of \(bytes.count) bytes")
        }
    }

    /// A pseudo-file's text (they are small: one read of 256 bytes), or the error number.
    private func contents(_ path: String) -> Result<String, Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Errno(errno: errno)) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
        if count < 0 { return .failure(Errno(errno: errno)) }
        return .success(String(decoding: buffer[..<count], as: UTF8.self))
    }

    private struct Errno: Error { var errno: Int32 }

    static func error(_ code: Int32, _ tunable: Tunable) -> TunableError {
        let kind: TunableError.Code
        switch code {
        case EACCES, EPERM, EROFS: kind = .denied
        case ENOENT, ENOTDIR: kind = .notFound
        default: kind = .refused
        }
        return TunableError(kind, tunable, "\(String(cString: strerror(code))) (errno \(code))")
    }
}

// libc's read(2) and write(2) by other names: inside the type, `read` and `write` are its own methods.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}

extension String {
    /// Without the blanks and the newline a pseudo-file's value ends with.
    fileprivate var trimmingBlanks: Substring {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" { s.removeLast() }
        return s
    }
}
