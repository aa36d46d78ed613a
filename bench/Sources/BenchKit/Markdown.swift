/// A Markdown table with right-aligned (numeric) columns. A `|` inside a cell is escaped, so a cell can't
/// split the row; every row is padded or cut to the header's width.
public func markdownTable(_ header: [String], _ rows: [[String]]) -> String {
    func line(_ cells: [String]) -> String {
        let fitted = (cells + Array(repeating: "", count: max(0, header.count - cells.count))).prefix(header.count)
        return "| " + fitted.map { $0.replacingAll("|", with: "\\|") }.joined(separator: " | ") + " |\n"
    }
    return line(header) + "|" + String(repeating: "---:|", count: header.count) + "\n" + rows.map(line).joined()
}

extension String {
    /// Every occurrence of `target` replaced, without Foundation.
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(count)
        for c in self {
            if c == target { out += replacement } else { out.append(c) }
        }
        return out
    }
}
