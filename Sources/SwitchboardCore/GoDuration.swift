/// Durations as Kubernetes components spell them in flags and config files (Go's
/// `time.ParseDuration`): `1s`, `500ms`, `1m30s`, `2h`, `0`. A bare number other than 0 is rejected,
/// as Go does.
public enum GoDuration {
    public static func parse(_ text: String) -> Duration? {
        var s = Substring(text.trimmingASCIISpaces)
        if s == "0" { return .zero }
        guard !s.isEmpty else { return nil }
        var total: Double = 0  // nanoseconds
        while !s.isEmpty {
            let number = s.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            s = s.dropFirst(number.count)
            let unit = s.prefix { $0.isASCII && $0.isLetter || $0 == "µ" }
            s = s.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            total += value * scale
        }
        guard total.isFinite, total < 1e18 else { return nil }
        return .nanoseconds(Int64(total.rounded()))
    }
}

extension String {
    fileprivate var trimmingASCIISpaces: Substring {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        // Not `s = s.dropLast()`, which walks the whole substring each time: a run of 64k trailing blanks took
        // half a minute (found by FuzzTests).
        while s.last == " " { s.removeLast() }
        return s
    }
}
