/// A line diff in unified format (`---`/`+++` headers, `@@` hunks with context), as `diff -u` prints.
///
/// Myers' O((N+M)·D) algorithm: rulesets are large but a sync changes little, so D is small.
public struct UnifiedDiff: Sendable {
    public enum Line: Hashable, Sendable {
        case same(String), removed(String), added(String)
    }

    public let lines: [Line]

    public init(old: [String], new: [String]) {
        lines = Self.myers(old, new)
    }

    public init(old: String, new: String) {
        self.init(old: Self.split(old), new: Self.split(new))
    }

    public var isEmpty: Bool { !lines.contains { if case .same = $0 { return false } else { return true } } }

    /// The unified-format text; `colour` adds ANSI red/green/cyan as `git diff` does on a terminal.
    public func render(oldName: String, newName: String, context: Int = 3, colour: Bool = false) -> String {
        guard !isEmpty else { return "" }
        let red = colour ? "\u{1B}[31m" : "", green = colour ? "\u{1B}[32m" : ""
        let cyan = colour ? "\u{1B}[36m" : "", bold = colour ? "\u{1B}[1m" : "", reset = colour ? "\u{1B}[0m" : ""
        var out = "\(bold)--- \(oldName)\(reset)\n\(bold)+++ \(newName)\(reset)\n"
        // Indexes of changed lines, grouped into hunks with `context` lines around them.
        let changed = lines.indices.filter { if case .same = lines[$0] { return false } else { return true } }
        var hunks: [(Int, Int)] = []
        for i in changed {
            let lo = max(0, i - context), hi = min(lines.count - 1, i + context)
            if let last = hunks.last, lo <= last.1 + 1 { hunks[hunks.count - 1].1 = hi } else { hunks.append((lo, hi)) }
        }
        // Line numbers before each index.
        var oldNo = [Int](repeating: 0, count: lines.count + 1), newNo = oldNo
        for (i, line) in lines.enumerated() {
            oldNo[i + 1] = oldNo[i] + (line.isNew ? 0 : 1)
            newNo[i + 1] = newNo[i] + (line.isOld ? 0 : 1)
        }
        for (lo, hi) in hunks {
            let slice = lines[lo...hi]
            let oldCount = slice.filter { !$0.isNew }.count, newCount = slice.filter { !$0.isOld }.count
            let oldStart = oldCount == 0 ? oldNo[lo] : oldNo[lo] + 1
            let newStart = newCount == 0 ? newNo[lo] : newNo[lo] + 1
            out += "\(cyan)@@ -\(oldStart),\(oldCount) +\(newStart),\(newCount) @@\(reset)\n"
            for line in slice {
                switch line {
                case .same(let s): out += " \(s)\n"
                case .removed(let s): out += "\(red)-\(s)\(reset)\n"
                case .added(let s): out += "\(green)+\(s)\(reset)\n"
                }
            }
        }
        return out
    }

    private static func split(_ s: String) -> [String] {
        var parts = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if parts.last == "" { parts.removeLast() }
        return parts
    }

    private static func myers(_ a: [String], _ b: [String]) -> [Line] {
        // Common prefix and suffix cost nothing to match; only the middle goes through Myers.
        var prefix = 0
        while prefix < a.count && prefix < b.count && a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix && suffix < b.count - prefix
            && a[a.count - 1 - suffix] == b[b.count - 1 - suffix]
        {
            suffix += 1
        }
        let middleA = Array(a[prefix..<(a.count - suffix)]), middleB = Array(b[prefix..<(b.count - suffix)])
        return a[..<prefix].map { .same($0) } + middle(middleA, middleB)
            + a[(a.count - suffix)...].map { .same($0) }
    }

    private static func middle(_ a: [String], _ b: [String]) -> [Line] {
        let n = a.count, m = b.count
        if n == 0 { return b.map { .added($0) } }
        if m == 0 { return a.map { .removed($0) } }
        let maxD = n + m
        let offset = maxD + 1
        var v = [Int](repeating: 0, count: 2 * maxD + 3)
        // trace[d] holds v[-d-1 ... d+1] as it was before step d: O(D²) memory, not O(D·(N+M)).
        var trace: [[Int]] = []
        outer: for d in 0...maxD {
            trace.append(Array(v[(offset - d - 1)...(offset + d + 1)]))
            var k = -d
            while k <= d {
                var x = (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]))
                    ? v[offset + k + 1] : v[offset + k - 1] + 1
                var y = x - k
                while x < n && y < m && a[x] == b[y] {
                    x += 1
                    y += 1
                }
                v[offset + k] = x
                if x >= n && y >= m { break outer }
                k += 2
            }
        }
        var x = n, y = m
        var out: [Line] = []
        for d in stride(from: trace.count - 1, through: 0, by: -1) {
            let saved = trace[d]
            func at(_ k: Int) -> Int { saved[k + d + 1] }
            let k = x - y
            let prevK = (k == -d || (k != d && at(k - 1) < at(k + 1))) ? k + 1 : k - 1
            let prevX = d == 0 ? 0 : at(prevK)
            let prevY = prevX - prevK
            while x > prevX && y > prevY {
                out.append(.same(a[x - 1]))
                x -= 1
                y -= 1
            }
            if d > 0 {
                if x == prevX { out.append(.added(b[y - 1])) } else { out.append(.removed(a[x - 1])) }
            }
            x = prevX
            y = prevY
        }
        return out.reversed()
    }
}

extension UnifiedDiff.Line {
    fileprivate var isNew: Bool { if case .added = self { return true } else { return false } }
    fileprivate var isOld: Bool { if case .removed = self { return true } else { return false } }
}
