import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who owns which test namespaces: `/run/switchboard-testing/<id>.json` holds the creating process (pid and
/// start time) and the namespace names. Leftovers are cleaned only when that process is gone, so a crashed
/// run is cleaned up while concurrent test processes (and anyone else's `sbt-` namespaces) are left alone.
enum Marker {
    static let directory = Topology.ownershipDirectory

    struct Content: Codable {
        var pid: Int32
        var startTime: String
        var namespaces: [String]
    }

    /// Picks an id none of whose namespaces exist, and records ownership before anything is created.
    static func claimID(namespaces suffixes: [String]) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        for _ in 0..<100 {
            let id = String((0..<4).map { _ in alphabet.randomElement()! })
            let names = suffixes.map { "sbt-\(id)-\($0)" }
            let path = "\(directory)/\(id).json"
            if names.contains(where: { FileManager.default.fileExists(atPath: "/run/netns/\($0)") }) { continue }
            let content = Content(pid: getpid(), startTime: startTime(of: getpid()) ?? "", namespaces: names)
            let data = try JSONEncoder().encode(content)
            // O_EXCL: two processes can't claim the same id.
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd < 0 { continue }
            _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            return id
        }
        throw TopologyError("could not find a free namespace id")
    }

    static func remove(id: String) {
        try? FileManager.default.removeItem(atPath: "\(directory)/\(id).json")
    }

    static func removeLeftovers() -> [String] {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for file in files.sorted() where file.hasSuffix(".json") {
            let path = "\(directory)/\(file)"
            guard let data = FileManager.default.contents(atPath: path),
                let content = try? JSONDecoder().decode(Content.self, from: data)
            else { continue }
            let alive = kill(content.pid, 0) == 0 && startTime(of: content.pid) == content.startTime
            if alive { continue }
            let namespaces = content.namespaces.filter { $0.hasPrefix("sbt-") }
            Topology.deleteNamespaces(namespaces)
            try? FileManager.default.removeItem(atPath: path)
            removed += namespaces
        }
        return removed
    }

    private static let cleaned: Void = { _ = removeLeftovers() }()

    /// Removes namespaces left by test processes that died without tearing down (once per process).
    static func cleanLeftoversOnce() { _ = cleaned }

    /// Field 22 of /proc/<pid>/stat: with the pid, identifies a process across pid reuse.
    static func startTime(of pid: Int32) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }
}
