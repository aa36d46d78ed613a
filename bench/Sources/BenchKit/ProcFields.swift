/// The `Key:   1234 kB` lines of `/proc/meminfo` and `/proc/<pid>/status`, as bytes by key. Lines without
/// a `kB` number (`Name:`, `State:`) are left out.
public func procKiBFields(_ text: String) -> [String: Int] {
    var out: [String: Int] = [:]
    for line in text.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let words = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 2, words[1] == "kB", let kib = Int(words[0]) else { continue }
        out[String(line[..<colon])] = kib * 1024
    }
    return out
}
