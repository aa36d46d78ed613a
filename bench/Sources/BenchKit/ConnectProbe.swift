/// One target's outcome as the connect prober (the Python process `ConnectProber` starts in the node
/// namespace) prints it: `<index> <ns> <attempts>`, where `ns` is the `CLOCK_MONOTONIC` time in nanoseconds at
/// which the first connect to the target completed, or -1 when none did in time.
public struct ProbeOutcome: Sendable, Equatable {
    public var index: Int
    /// nil: no connect completed before the prober gave up on this target.
    public var connectedAtNanoseconds: Int64?
    /// Connects started for this target (one every few ms until one completed).
    public var attempts: Int

    public init(index: Int, connectedAtNanoseconds: Int64?, attempts: Int) {
        self.index = index
        self.connectedAtNanoseconds = connectedAtNanoseconds
        self.attempts = attempts
    }

    /// Every outcome line of the prober's output so far, in order. Other lines (`ready`) and a last line still
    /// being written (no newline yet) are left out, so the output can be read while the prober runs.
    public static func parse(_ output: String) -> [ProbeOutcome] {
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        lines.removeLast()  // after the last "\n": empty, or a line not finished yet
        return lines.compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, let index = Int(fields[0]), let ns = Int64(fields[1]),
                let attempts = Int(fields[2])
            else { return nil }
            return ProbeOutcome(index: index, connectedAtNanoseconds: ns >= 0 ? ns : nil, attempts: attempts)
        }
    }
}
