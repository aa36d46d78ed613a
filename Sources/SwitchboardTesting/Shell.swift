import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a process ended: an exit code, or the signal that killed it.
public struct ExitStatus: Hashable, Sendable, CustomStringConvertible {
    /// The exit code, or the signal number when `signaled` is true.
    public var code: Int32
    /// Whether the process was killed by a signal rather than exiting.
    public var signaled: Bool

    public init(code: Int32, signaled: Bool = false) {
        self.code = code
        self.signaled = signaled
    }

    public var succeeded: Bool { !signaled && code == 0 }

    public var description: String { signaled ? "killed by signal \(code)" : "exit \(code)" }
}

/// What a finished command produced.
public struct ShellResult: Sendable, CustomStringConvertible {
    /// The full argument vector as executed (including the `ip netns exec NS` prefix, if any).
    public var command: [String]
    public var status: ExitStatus
    public var stdout: String
    public var stderr: String
    /// The command outlived its timeout and was stopped (SIGTERM, then SIGKILL).
    public var timedOut: Bool

    public var succeeded: Bool { status.succeeded && !timedOut }

    /// Returns `self` if the command succeeded; throws a `ShellError` carrying its stderr otherwise.
    @discardableResult
    public func checked() throws(ShellError) -> ShellResult {
        if timedOut { throw ShellError(code: .timedOut, command: command, message: stderr, status: status) }
        if !status.succeeded { throw ShellError(code: .failed, command: command, message: stderr, status: status) }
        return self
    }

    public var description: String {
        "`\(Shell.render(command))`: \(timedOut ? "timed out" : status.description)"
            + (stderr.isEmpty ? "" : ": \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}

/// The one error of this module's process edge: which command, what went wrong, the verbatim stderr.
public struct ShellError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The executable was not found on `PATH`.
        case notFound
        /// `posix_spawn` itself failed (exec, temp files).
        case launchFailed
        /// The command ran and exited unsuccessfully.
        case failed
        /// The command outlived its timeout.
        case timedOut
        /// A background process exited before it signalled readiness.
        case exitedEarly
    }

    public var code: Code
    public var command: [String]
    /// Verbatim: the command's stderr, or the launch error.
    public var message: String
    public var status: ExitStatus?

    public init(code: Code, command: [String], message: String, status: ExitStatus? = nil) {
        self.code = code
        self.command = command
        self.message = message
        self.status = status
    }

    public var isTimeout: Bool { code == .timedOut }
    public var isNotFound: Bool { code == .notFound }

    public var description: String {
        var text = "`\(Shell.render(command))` \(code.rawValue)"
        if let status { text += " (\(status))" }
        let trimmed = message.trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.isEmpty { text += ": \(trimmed)" }
        return text
    }
}

/// Runs processes, optionally inside a network namespace (`ip netns exec NS ...`).
///
/// Output goes to temporary files rather than pipes: a command that forks (or is killed while a child still
/// holds its stdout) can never make the reader hang, and nothing has to drain pipes concurrently.
/// Waiting never blocks the cooperative pool: async calls wait on a thread of their own or a termination callback.
public enum Shell {
    /// Runs a command to completion and captures its output. Throws only if it can't be started;
    /// a non-zero exit is reported in the result (use `.checked()` to turn it into an error).
    public static func run(
        _ arguments: [String],
        in netns: String? = nil,
        input: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws(ShellError) -> ShellResult {
        let result = await offload {
            Result { () throws(ShellError) in
                try runBlocking(arguments, in: netns, input: input, timeout: timeout)
            }
        }
        return try result.get()
    }

    /// `run`, blocking the calling thread. For teardown paths that must work from `defer` and `deinit`.
    public static func runBlocking(
        _ arguments: [String],
        in netns: String? = nil,
        input: String? = nil,
        timeout: Duration = .seconds(30)
    ) throws(ShellError) -> ShellResult {
        let process = try launch(arguments, in: netns, input: input)
        var timedOut = false
        if process.wait(timeout: timeout) == nil {
            timedOut = true
            process.stopBlocking(grace: .seconds(1))
        }
        let status = process.wait(timeout: nil) ?? ExitStatus(code: SIGKILL, signaled: true)
        let output = process.output()
        return ShellResult(
            command: process.command,
            status: status,
            stdout: output.stdout,
            stderr: output.stderr,
            timedOut: timedOut
        )
    }

    /// Starts a long-running command and returns at once; stop it with `stop()` (SIGTERM, then SIGKILL).
    public static func start(_ arguments: [String], in netns: String? = nil) throws(ShellError) -> BackgroundProcess {
        try launch(arguments, in: netns, input: nil)
    }

    /// The absolute path of an executable: as given when it contains a `/`, else searched on `PATH`
    /// and then the sbin directories (where `ip`, `nft` and `sysctl` live but a non-login `PATH` may not look).
    public static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs =
            path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for dir in dirs where !dir.isEmpty {
            let candidate = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// A copy-pasteable rendering of an argument vector (for messages only).
    public static func render(_ arguments: [String]) -> String {
        arguments.map { arg in
            let plain = !arg.isEmpty && arg.allSatisfy { $0.isLetter || $0.isNumber || "-_./:=,@%+".contains($0) }
            return plain ? arg : "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }

    // MARK: - Internals

    static func launch(
        _ arguments: [String],
        in netns: String?,
        input: String?
    ) throws(ShellError) -> BackgroundProcess {
        precondition(!arguments.isEmpty, "Shell: empty command")
        let command = netns.map { ["ip", "netns", "exec", $0] + arguments } ?? arguments
        guard let executable = which(command[0]) else {
            throw ShellError(code: .notFound, command: command, message: "\(command[0]) not found on PATH")
        }
        return try BackgroundProcess(executable: executable, command: command, input: input)
    }

    /// Runs blocking `body` on a thread of its own. Not `DispatchQueue.global()`: on Linux its pool is as
    /// wide as the machine has CPUs (two here), so with tests running side by side a few long waits
    /// (a control plane starting, a process's grace period) would hold every other test's commands back.
    static func offload<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}

/// A started process. `pid` is the command's own pid: `ip netns exec` execs the command in place.
///
/// Spawned with `posix_spawn`: the child gets stdin (a file or /dev/null), stdout and stderr (files), every
/// other descriptor closed (`closefrom`), an empty signal mask and default signal dispositions. So no
/// descriptor of this process, or of a sibling spawned at the same moment from another thread, leaks into
/// a child: a daemon a script leaves running cannot hold anything the test waits on. One thread per child
/// blocks in `waitpid` for exactly its pid and records the exit.
///
/// Signals are only sent while the process is known to be running (its exit not yet observed), so a
/// recycled pid is never signalled.
public final class BackgroundProcess: @unchecked Sendable, CustomStringConvertible {
    public let pid: Int32
    /// The full argument vector as executed.
    public let command: [String]

    // `@unchecked Sendable`: every mutable field is `state`'s, guarded by its lock.
    private let state: State

    init(executable: String, command: [String], input: String?) throws(ShellError) {
        let base = FileManager.default.temporaryDirectory.path + "/sbt-shell-" + UUID().uuidString
        let state = State(base: base, hasInput: input != nil)
        self.state = state
        self.command = command
        guard FileManager.default.createFile(atPath: state.stdoutPath, contents: nil),
            FileManager.default.createFile(atPath: state.stderrPath, contents: nil)
        else {
            state.removeFiles()
            throw ShellError(code: .launchFailed, command: command, message: "cannot create \(base).*")
        }
        if let inputPath = state.inputPath, let input {
            guard FileManager.default.createFile(atPath: inputPath, contents: Data(input.utf8)) else {
                state.removeFiles()
                throw ShellError(code: .launchFailed, command: command, message: "cannot create \(inputPath)")
            }
        }
        let (spawned, code) = Self.spawn(
            executable, command, stdin: state.inputPath ?? "/dev/null", stdout: state.stdoutPath,
            stderr: state.stderrPath)
        guard let spawned else {
            state.removeFiles()
            throw ShellError(
                code: .launchFailed, command: command, message: "posix_spawn: \(String(cString: strerror(code)))")
        }
        pid = spawned
        let child = pid
        let reaper = Thread {
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 {
                if errno != EINTR {
                    state.finish(ExitStatus(code: 127, signaled: false))  // not our child any more: cannot happen
                    return
                }
            }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (they are macros).
            let signal = status & 0x7f
            state.finish(signal == 0 ? ExitStatus(code: (status >> 8) & 0xff) : ExitStatus(code: signal, signaled: true))
        }
        reaper.name = "reap-\(child)"
        reaper.stackSize = 256 << 10
        reaper.start()
    }

    /// `posix_spawn` with the descriptors and signal state described on the type: the child's pid, or nil and
    /// the error number.
    private static func spawn(
        _ executable: String, _ arguments: [String], stdin: String, stdout: String, stderr: String
    ) -> (pid_t?, Int32) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_TRUNC, 0)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_TRUNC, 0)
        _ = spawnAddClosefrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, &argv, environ)
        return code == 0 ? (pid, 0) : (nil, code)
    }

    public var description: String { "pid \(pid): \(Shell.render(command))" }

    /// Whether the process is still running (its exit has not been observed).
    public var isRunning: Bool { state.condition.withLock { state.status == nil } }

    /// How it ended, or nil while it runs.
    public var exitStatus: ExitStatus? { state.condition.withLock { state.status } }

    /// Everything it has written so far (all of it once it has exited).
    public func output() -> (stdout: String, stderr: String) {
        if let final = state.condition.withLock({ state.finalOutput }) { return final }
        return (State.read(state.stdoutPath), State.read(state.stderrPath))
    }

    /// Waits for exit without blocking a thread.
    @discardableResult
    public func wait() async -> ExitStatus {
        await withCheckedContinuation { continuation in
            state.condition.lock()
            if let status = state.status {
                state.condition.unlock()
                continuation.resume(returning: status)
            } else {
                state.waiters.append(continuation)
                state.condition.unlock()
            }
        }
    }

    /// Blocks until exit or until the timeout passes (nil: no limit). Returns nil on timeout.
    public func wait(timeout: Duration?) -> ExitStatus? {
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0.seconds) }
        state.condition.lock()
        defer { state.condition.unlock() }
        while state.status == nil {
            if let deadline {
                if !state.condition.wait(until: deadline) && state.status == nil { return nil }
            } else {
                state.condition.wait()
            }
        }
        return state.status
    }

    /// Sends a signal if the process is still running; returns whether it was sent.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        state.condition.withLock { state.status == nil && kill(pid, signal) == 0 }
    }

    /// SIGTERM, then SIGKILL if it is still running after `grace`; returns once it has exited.
    @discardableResult
    public func stop(grace: Duration = .seconds(1)) async -> ExitStatus {
        if let status = exitStatus { return status }
        return await Shell.offload { self.stopBlocking(grace: grace) }
    }

    /// `stop`, blocking the calling thread.
    @discardableResult
    public func stopBlocking(grace: Duration = .seconds(1)) -> ExitStatus {
        signal(SIGTERM)
        if let status = wait(timeout: grace) { return status }
        signal(SIGKILL)
        return wait(timeout: nil)!
    }

    /// Exit bookkeeping, shared with the reaper thread (which may outlive the handle).
    private final class State: @unchecked Sendable {
        // `@unchecked Sendable`: every mutable field is guarded by `condition`.
        let condition = NSCondition()
        var status: ExitStatus?
        var finalOutput: (stdout: String, stderr: String)?
        var waiters: [CheckedContinuation<ExitStatus, Never>] = []
        let stdoutPath: String
        let stderrPath: String
        let inputPath: String?

        init(base: String, hasInput: Bool) {
            stdoutPath = base + ".out"
            stderrPath = base + ".err"
            inputPath = hasInput ? base + ".in" : nil
        }

        func finish(_ status: ExitStatus) {
            let output = (Self.read(stdoutPath), Self.read(stderrPath))
            removeFiles()
            condition.lock()
            self.status = status
            finalOutput = output
            let waiting = waiters
            waiters = []
            condition.broadcast()
            condition.unlock()
            for waiter in waiting { waiter.resume(returning: status) }
        }

        func removeFiles() {
            for path in [stdoutPath, stderrPath] + (inputPath.map { [$0] } ?? []) {
                try? FileManager.default.removeItem(atPath: path)
            }
        }

        static func read(_ path: String) -> String {
            (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        }
    }
}

/// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34): in <spawn.h> but not in Swift's Glibc module.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func spawnAddClosefrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

extension Duration {
    /// Seconds as a floating-point value, for Foundation APIs.
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}

extension Shell {
    /// `arguments`, run with every descriptor above stderr closed first. `Shell` spawns every child that
    /// way already (and waits with `waitpid`, not for descriptors to close); this is for scripts that leave
    /// daemons running (../shared/k8s's up.sh), should they be handed to another spawner.
    public static func detachingDaemons(_ arguments: [String]) -> [String] {
        let close = #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; exec "$@""#
        return ["bash", "-c", close, "bash"] + arguments
    }
}
