/// Progress of one long phase (the changes of one size, the connects of one size), as lines for stderr:
/// `size 10000 · single-change 120/200 · 35.2 s elapsed · ETA 23.5 s`. Pure: the caller passes the time,
/// in seconds from any fixed origin, and prints what `step` returns.
public struct ProgressMeter: Sendable {
    public let label: String
    public let total: Int
    public let start: Double
    /// Minimum seconds between two lines; the last step always gets one.
    public let interval: Double
    private var lastLine: Double

    public init(label: String, total: Int, at now: Double, interval: Double = 5) {
        self.label = label
        self.total = total
        self.start = now
        self.interval = interval
        self.lastLine = now
    }

    /// The line for `done` of `total` at time `now`, or nil when the previous one is less than `interval` old.
    public mutating func step(_ done: Int, at now: Double) -> String? {
        guard done >= total || now - lastLine >= interval else { return nil }
        lastLine = now
        return progressLine(label: label, done: done, total: total, elapsed: now - start)
    }
}

/// `label done/total · elapsed · ETA`, the ETA extrapolated linearly from the rate so far.
public func progressLine(label: String, done: Int, total: Int, elapsed: Double) -> String {
    var line = "\(label) \(done)/\(total) · \(durationText(elapsed)) elapsed"
    if done >= total {
        line += " · done"
    } else if done > 0 {
        line += " · ETA \(durationText(elapsed / Double(done) * Double(total - done)))"
    }
    return line
}

/// `0.4 s`, `12.3 s`, `4m05s`, `1h02m`.
public func durationText(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    if seconds < 60 { return "\(fixed(seconds, 1)) s" }
    let whole = Int(seconds.rounded())
    if whole < 3600 {
        let s = whole % 60
        return "\(whole / 60)m\(s < 10 ? "0" : "")\(s)s"
    }
    let m = (whole / 60) % 60
    return "\(whole / 3600)h\(m < 10 ? "0" : "")\(m)m"
}
