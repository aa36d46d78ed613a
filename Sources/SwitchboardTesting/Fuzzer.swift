import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One decoder under fuzzing: its seed corpus, its dictionary, and what one execution checks.
///
/// `body` must return for every input, or throw `FuzzFailure` where an invariant broke (say, a parsed value
/// that does not survive a round trip). The decoder's own error is the expected answer to bad input, so
/// `body` catches it; the decoders' typed throws make any other error a compile error rather than a finding.
/// A crash (a trap, a stack overflow) ends the process with a note naming the input (see `Fuzzer`).
public struct FuzzTarget: Sendable, CustomStringConvertible {
    public var name: String
    public var mutator: FuzzMutator
    /// Iterations of the short run inside `swift test`: a fraction of a second of a debug build.
    public var iterations: Int
    public var body: @Sendable ([UInt8]) throws -> Void

    public init(
        _ name: String, seeds: [[UInt8]], dictionary: [String] = [], iterations: Int,
        _ body: @escaping @Sendable ([UInt8]) throws -> Void
    ) {
        self.name = name
        self.mutator = FuzzMutator(seeds: seeds, dictionary: dictionary.map { Array($0.utf8) })
        self.iterations = iterations
        self.body = body
    }

    public var description: String { name }
}

/// A broken invariant, thrown by a `FuzzTarget`'s body.
public struct FuzzFailure: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// The seed corpus of a target: the files of a directory, in name order (`*.md` notes excluded), one seed
/// each, except that each line of a `*.lines` file is a seed (for short inputs: durations, addresses).
/// Files named `regress-*` are inputs that once crashed or broke an invariant; they run like any seed.
public enum FuzzCorpus {
    public static func load(_ directory: URL) -> [[UInt8]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted().flatMap { name -> [[UInt8]] in
            guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else {
                return []
            }
            let bytes = [UInt8](data)
            guard name.hasSuffix(".lines") else { return [bytes] }
            return bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast(bytes.last == 0x0A ? 1 : 0)
                .map(Array.init)
        }
    }
}

/// How long and with what seed to fuzz, normally from the environment:
///
/// - `SWITCHBOARD_FUZZ_SEED`: the run's seed (decimal or `0x` hex); default `FuzzConfiguration.defaultSeed`.
/// - `SWITCHBOARD_FUZZ_ITERATIONS`: iterations per target, instead of each target's short-run count.
/// - `SWITCHBOARD_FUZZ_SECONDS`: run each target for this long instead (the long run).
/// - `SWITCHBOARD_FUZZ_TARGET`: only the targets named (comma-separated).
/// - `SWITCHBOARD_FUZZ_REPLAY`: run only this iteration, printing its input first (reproducing a crash).
public struct FuzzConfiguration: Sendable {
    public static let defaultSeed: UInt64 = 0x5357_4348_424f_4152

    public var seed: UInt64 = defaultSeed
    public var iterations: Int?
    public var seconds: Double?
    public var targets: Set<String>?
    public var replay: Int?
    /// An input that takes longer than this is a finding (super-linear work on some input).
    public var slowInput: Duration = .seconds(2)
    /// An input still running after this is a hang: the watchdog prints it and aborts the process.
    public var hangLimit: Duration = .seconds(60)

    public init() {}

    public static func environment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> FuzzConfiguration {
        var configuration = FuzzConfiguration()
        func number(_ key: String) -> UInt64? {
            guard let text = env[key]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            if text.hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) }
            return UInt64(text)
        }
        if let seed = number("SWITCHBOARD_FUZZ_SEED") { configuration.seed = seed }
        configuration.iterations = number("SWITCHBOARD_FUZZ_ITERATIONS").map { Int($0) }
        configuration.seconds = env["SWITCHBOARD_FUZZ_SECONDS"].flatMap(Double.init)
        configuration.replay = number("SWITCHBOARD_FUZZ_REPLAY").map { Int($0) }
        if let names = env["SWITCHBOARD_FUZZ_TARGET"], !names.isEmpty {
            configuration.targets = Set(names.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        return configuration
    }
}

/// One input that broke a target, with what it takes to replay it.
public struct FuzzFinding: Sendable, CustomStringConvertible {
    public var target: String
    public var seed: UInt64
    /// nil for an input of the seed corpus itself.
    public var iteration: Int?
    public var input: [UInt8]
    public var problem: String

    public var description: String {
        let origin = iteration.map { "seed 0x\(String(seed, radix: 16)), iteration \($0)" } ?? "seed corpus"
        return """
            fuzz target \(target), \(origin): \(problem)
              input (\(input.count) bytes), base64: \(Data(input).base64EncodedString())
              escaped: \(Fuzzer.escaped(input.prefix(600)))\(input.count > 600 ? "…" : "")
            """
    }
}

/// What one target's run did.
public struct FuzzReport: Sendable, CustomStringConvertible {
    public var target: String
    public var seed: UInt64
    public var executions = 0
    public var corpusSize = 0
    public var duration = Duration.zero
    public var slowest = Duration.zero
    public var findings: [FuzzFinding] = []
    /// Findings past the first ten are counted, not kept.
    public var findingCount = 0

    public var summary: String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        let slowestMs = Double(slowest.components.attoseconds) * 1e-15 + Double(slowest.components.seconds) * 1e3
        return "fuzz \(target): \(executions) executions (\(corpusSize) seeds) in "
            + String(format: "%.2f s (%.0f/s)", seconds, Double(executions) / max(seconds, 1e-9))
            + ", seed 0x\(String(seed, radix: 16)), slowest input "
            + String(format: "%.1f ms", slowestMs) + ", \(findingCount) findings"
    }

    public var description: String {
        ([summary] + findings.map(\.description)).joined(separator: "\n")
    }
}

/// Runs a `FuzzTarget`: first every seed as it is, then mutated inputs, each a function of the run's seed and
/// its iteration number only (see `FuzzMutator.input(seed:iteration:)`), so any one replays alone.
///
/// A crash cannot be caught in-process, so while a target runs, a signal handler (on its own stack, so a
/// stack overflow reaches it) prints the target, seed and iteration before the process dies, with the
/// environment that replays that input and prints it; a watchdog thread does the same for an input that
/// runs past `hangLimit`, then aborts. Both are removed when the run ends.
public enum Fuzzer {
    /// Runs never overlap (the crash note and signal handlers are per process), even from parallel tests.
    private static let exclusive = Mutex(())

    public static func run(_ target: FuzzTarget, _ configuration: FuzzConfiguration = .environment()) -> FuzzReport {
        exclusive.withLock { _ in runAlone(target, configuration) }
    }

    private static func runAlone(_ target: FuzzTarget, _ configuration: FuzzConfiguration) -> FuzzReport {
        var report = FuzzReport(target: target.name, seed: configuration.seed)
        if let only = configuration.targets, !only.contains(target.name) { return report }
        let seeds = target.mutator.seeds
        report.corpusSize = seeds.count

        let guardRail = CrashGuard(target: target.name, seed: configuration.seed, hangLimit: configuration.hangLimit)
        defer { guardRail.stop() }
        let clock = ContinuousClock()
        let start = clock.now

        func execute(_ input: [UInt8], iteration: Int?, guardIndex: Int) {
            guardRail.begin(guardIndex)
            let before = clock.now
            var problem: String?
            do {
                try target.body(input)
            } catch {
                problem = "\(error)"
            }
            let elapsed = clock.now - before
            report.executions += 1
            report.slowest = max(report.slowest, elapsed)
            if problem == nil, elapsed > configuration.slowInput { problem = "took \(elapsed) (a hang?)" }
            if let problem {
                report.findingCount += 1
                if report.findings.count < 10 {
                    report.findings.append(FuzzFinding(
                        target: target.name, seed: configuration.seed, iteration: iteration, input: input,
                        problem: problem))
                }
            }
        }

        if let replay = configuration.replay {
            let input = target.mutator.input(seed: configuration.seed, iteration: replay)
            let finding = FuzzFinding(
                target: target.name, seed: configuration.seed, iteration: replay, input: input, problem: "replaying")
            FileHandle.standardError.write(Data("\(finding)\n".utf8))
            execute(input, iteration: replay, guardIndex: replay)
        } else {
            for (index, seed) in seeds.enumerated() {
                execute(seed, iteration: nil, guardIndex: -1 - index)
            }
            let deadline = configuration.seconds.map { start + .milliseconds(Int64($0 * 1000)) }
            let iterations = deadline == nil ? configuration.iterations ?? target.iterations : Int.max
            var iteration = 0
            while iteration < iterations {
                if let deadline, iteration % 64 == 0, clock.now >= deadline { break }
                execute(target.mutator.input(seed: configuration.seed, iteration: iteration), iteration: iteration,
                        guardIndex: iteration)
                iteration += 1
            }
        }
        report.duration = clock.now - start
        return report
    }

    /// Bytes as a Swift string literal's content: printable ASCII as is, the rest escaped.
    public static func escaped(_ bytes: some Sequence<UInt8>) -> String {
        var out = ""
        for byte in bytes {
            switch byte {
            case 0x5C: out += "\\\\"
            case 0x22: out += "\\\""
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }
}

// MARK: - Crash and hang notes

/// What the signal handler prints: fixed buffers filled before the run, so the handler only calls `write`.
private struct CrashNoteBuffers {
    var head: UnsafeMutableBufferPointer<UInt8>  // "fuzz: target T, seed S crashed at "
    var replay: UnsafeMutableBufferPointer<UInt8>  // "replay: SWITCHBOARD_FUZZ_TARGET=T SWITCHBOARD_FUZZ_SEED=S "
    var scratch: UnsafeMutableBufferPointer<UInt8>
    var iteration = 0
    var active = false
}

nonisolated(unsafe) private var crashNote = CrashNoteBuffers(
    head: .allocate(capacity: 512), replay: .allocate(capacity: 512), scratch: .allocate(capacity: 64))
nonisolated(unsafe) private var previousActions: [sigaction] = []
private let crashSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE]

private func writeAll(_ buffer: UnsafeBufferPointer<UInt8>, count: Int) {
    var offset = 0
    while offset < count {
        let written = write(2, buffer.baseAddress! + offset, count - offset)
        if written <= 0 { return }
        offset += written
    }
}

/// Decimal digits of `value` into the scratch buffer; returns their count. Async-signal-safe.
private func formatDecimal(_ value: Int, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
    var magnitude = value.magnitude
    var digits = 0
    repeat {
        buffer[buffer.count - 1 - digits] = UInt8(48 + magnitude % 10)
        magnitude /= 10
        digits += 1
    } while magnitude > 0
    var count = 0
    if value < 0 {
        buffer[0] = UInt8(ascii: "-")
        count = 1
    }
    for i in 0..<digits { buffer[count + i] = buffer[buffer.count - digits + i] }
    return count + digits
}

private func crashHandler(_ signal: Int32) {
    if crashNote.active {
        crashNote.active = false
        let note = crashNote
        let headLength = note.head.firstIndex(of: 0) ?? 0
        writeAll(UnsafeBufferPointer(note.head), count: headLength)
        let iteration = note.iteration
        if iteration < 0 {
            // Seeds run first, as guard indices -1, -2, ...: seed file k (0-based, in name order).
            let label: StaticString = "seed corpus input "
            writeAll(UnsafeBufferPointer(start: label.utf8Start, count: label.utf8CodeUnitCount),
                     count: label.utf8CodeUnitCount)
            let n = formatDecimal(-1 - iteration, into: note.scratch)
            writeAll(UnsafeBufferPointer(note.scratch), count: n)
        } else {
            let label: StaticString = "iteration "
            writeAll(UnsafeBufferPointer(start: label.utf8Start, count: label.utf8CodeUnitCount),
                     count: label.utf8CodeUnitCount)
            let n = formatDecimal(iteration, into: note.scratch)
            writeAll(UnsafeBufferPointer(note.scratch), count: n)
            let newline: StaticString = "\n"
            writeAll(UnsafeBufferPointer(start: newline.utf8Start, count: 1), count: 1)
            writeAll(UnsafeBufferPointer(note.replay), count: note.replay.firstIndex(of: 0) ?? 0)
            let m = formatDecimal(iteration, into: note.scratch)
            writeAll(UnsafeBufferPointer(note.scratch), count: m)
        }
        let end: StaticString = " (the input is printed before it runs)\n"
        writeAll(UnsafeBufferPointer(start: end.utf8Start, count: end.utf8CodeUnitCount), count: end.utf8CodeUnitCount)
    }
    // Hand the signal on: restore what was installed before (the Swift runtime's backtracer, or the default)
    // and return, so the faulting instruction faults again under it. abort() re-raises by itself.
    for (i, number) in crashSignals.enumerated() where i < previousActions.count {
        var old = previousActions[i]
        sigaction(number, &old, nil)
    }
}

/// Installs the crash note and the hang watchdog for one run; `stop()` removes both.
private final class CrashGuard: @unchecked Sendable {
    private let current = Atomic<Int>(Int.min)
    private let started = Atomic<Int64>(0)
    private let running = Atomic<Bool>(true)
    private let target: String
    private let seed: UInt64
    private var alternateStack: stack_t = stack_t()
    private var previousStack: stack_t = stack_t()

    init(target: String, seed: UInt64, hangLimit: Duration) {
        self.target = target
        self.seed = seed
        func fill(_ buffer: UnsafeMutableBufferPointer<UInt8>, _ text: String) {
            let bytes = Array(text.utf8.prefix(buffer.count - 1)) + [0]
            _ = buffer.initialize(from: bytes)
        }
        let seedText = "0x" + String(seed, radix: 16)
        fill(crashNote.head, "\nfuzz: target \(target), seed \(seedText) crashed on ")
        fill(
            crashNote.replay,
            "replay: SWITCHBOARD_FUZZ_TARGET=\(target) SWITCHBOARD_FUZZ_SEED=\(seedText) SWITCHBOARD_FUZZ_REPLAY=")

        let size = 1 << 16
        alternateStack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        alternateStack.ss_size = size
        alternateStack.ss_flags = 0
        sigaltstack(&alternateStack, &previousStack)
        previousActions = crashSignals.map { number in
            var action = sigaction()
            #if canImport(Darwin)
                action.__sigaction_u.__sa_handler = crashHandler
            #else
                action.__sigaction_handler.sa_handler = crashHandler
            #endif
            action.sa_flags = Int32(SA_ONSTACK)
            sigemptyset(&action.sa_mask)
            var old = sigaction()
            sigaction(number, &action, &old)
            return old
        }

        let limit = Int64(hangLimit.components.seconds) * 1000
        let thread = Thread { [self] in
            var seen = Int.min
            var since = Self.milliseconds()
            while running.load(ordering: .acquiring) {
                usleep(100_000)
                let now = current.load(ordering: .relaxed)
                if now != seen {
                    seen = now
                    since = Self.milliseconds()
                } else if now != Int.min, Self.milliseconds() - since > limit {
                    let what = now < 0 ? "seed corpus input \(-1 - now)" : "iteration \(now)"
                    let message = "\nfuzz: target \(target), seed 0x\(String(seed, radix: 16)) hung on \(what) "
                        + "(over \(limit / 1000) s)\nreplay: SWITCHBOARD_FUZZ_TARGET=\(target) "
                        + "SWITCHBOARD_FUZZ_SEED=0x\(String(seed, radix: 16)) SWITCHBOARD_FUZZ_REPLAY=\(now)\n"
                    FileHandle.standardError.write(Data(message.utf8))
                    crashNote.active = false
                    abort()
                }
            }
        }
        thread.start()
        crashNote.active = true
    }

    private static func milliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// Marks the start of one execution (iteration, or -1 - k for seed k).
    func begin(_ index: Int) {
        crashNote.iteration = index
        current.store(index, ordering: .relaxed)
    }

    func stop() {
        crashNote.active = false
        running.store(false, ordering: .releasing)
        for (i, number) in crashSignals.enumerated() where i < previousActions.count {
            var old = previousActions[i]
            sigaction(number, &old, nil)
        }
        previousActions = []
        var current = stack_t()
        sigaltstack(&previousStack, &current)
        alternateStack.ss_sp?.deallocate()
    }
}
