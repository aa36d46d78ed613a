#if canImport(Glibc)
import Glibc
#endif

/// Every failure of the kernel edge: nft rejected a script, a namespace could not be entered, a
/// listing could not be decoded. Carries the cause verbatim so an operator sees what nft said.
public struct NetfilterError: Error, Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        /// libnftables rejected the script: a parse or evaluation error in user space, or the kernel
        /// refused the batch. Either way nothing of the script was applied.
        case commandFailed
        /// `/var/run/netns/<name>` could not be opened or entered.
        case namespaceUnavailable
        /// `nft_ctx_new` failed, or the context is no longer usable.
        case contextUnavailable
        /// The kernel's JSON listing could not be turned into a `Ruleset`.
        case invalidListing
        /// The request could not be expressed as an nft command (e.g. a table name that is not an
        /// identifier, a script containing NUL); nothing was sent.
        case invalidRequest
        /// libipset rejected an ipset command (a parse error, or the kernel refused it); the commands
        /// before it stayed applied, the rest were not run.
        case ipsetCommandFailed
    }

    public var kind: Kind
    /// The POSIX error behind the failure (`ENOENT`, `EEXIST`, `EBUSY`, ...): the failing system call's
    /// errno, or the one whose text libnftables printed. 0 when there is none (e.g. a syntax error).
    public var code: Int32
    /// The verbatim text: libnftables' error buffer, or the system's description of `code`.
    public var message: String
    /// The commands the error points at, or the start of the script when they are not known.
    public var script: String
    /// The 1-based numbers of the script lines the error points at, when known.
    public var lines: [Int]

    public init(kind: Kind, code: Int32, message: String, script: String = "", lines: [Int] = []) {
        self.kind = kind
        self.code = code
        self.message = message
        self.script = script
        self.lines = lines
    }

    /// The object named does not exist (`No such file or directory`): a missing table, chain, set,
    /// element, or namespace.
    public var isNotFound: Bool { code == ENOENT }
    /// The object exists and differs (`File exists`), e.g. a map element with other data.
    public var isAlreadyExists: Bool { code == EEXIST }
    /// The object is still referenced (`Device or resource busy`), e.g. deleting a set a rule uses.
    public var isBusy: Bool { code == EBUSY }
    /// A set or map is at its declared `size` (the kernel says `Too many open files in system`).
    public var isSetFull: Bool { code == ENFILE }
    /// The process lacks CAP_NET_ADMIN (or CAP_SYS_ADMIN to enter a namespace).
    public var isPermissionDenied: Bool { code == EPERM || code == EACCES }
}

extension NetfilterError: CustomStringConvertible {
    /// The message with over-long lines cut: nft repeats the offending input line, and one `add element`
    /// line can hold a whole map. `message` keeps the full text.
    public var description: String {
        let text = message.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.count > 400 ? $0.prefix(400) + "… (\($0.utf8.count) bytes)" : Substring($0) }
            .joined(separator: "\n")
            .trimmingTrailingNewlines()
        return "\(kind == .ipsetCommandFailed ? "ipset" : "nftables") \(kind.rawValue): \(text)"
    }
}

extension NetfilterError {
    /// The POSIX errors nft reports by their `strerror` text ("Could not process rule: File exists").
    /// Longest texts first, so that no text matches inside a longer one.
    static let knownErrors: [(text: String, code: Int32)] = [
        ("Too many levels of symbolic links", ELOOP),  // a jump/goto loop
        ("Too many open files in system", ENFILE),  // set full
        ("No such file or directory", ENOENT),
        ("Operation not supported", EOPNOTSUPP),
        ("Device or resource busy", EBUSY),
        ("Operation not permitted", EPERM),
        ("Cannot allocate memory", ENOMEM),
        ("Numerical result out of range", ERANGE),
        ("Permission denied", EACCES),
        ("Invalid argument", EINVAL),
        ("Message too long", EMSGSIZE),
        ("File exists", EEXIST),
    ]

    /// An error for a script libnftables rejected with error-buffer text `message`; `lines` are the
    /// failing lines (1-based) when they could be located.
    static func commandFailed(message: String, script: String, lines: [Int]) -> NetfilterError {
        let code = knownErrors.first { message.contains($0.text) }?.code ?? 0
        return NetfilterError(
            kind: .commandFailed, code: code, message: message, script: excerpt(of: script, lines: lines), lines: lines)
    }

    /// The given lines of the script, or its first lines when none are given; long lines are cut.
    static func excerpt(of script: String, lines: [Int]) -> String {
        let scriptLines = script.split(separator: "\n", omittingEmptySubsequences: false)
        var picked = lines.filter { $0 >= 1 && $0 <= scriptLines.count }.map { String(scriptLines[$0 - 1]) }
        if picked.isEmpty {
            let nonEmpty = scriptLines.filter { !$0.isEmpty }
            picked = nonEmpty.prefix(10).map(String.init)
            if nonEmpty.count > 10 { picked.append("… (\(nonEmpty.count - 10) more lines)") }
        }
        return picked.map { $0.utf8.count > 400 ? String($0.prefix(400)) + "…" : $0 }.joined(separator: "\n")
    }

    /// An error for a failed system call.
    static func system(_ kind: Kind, code: Int32, _ what: String) -> NetfilterError {
        NetfilterError(kind: kind, code: code, message: "\(what): \(String(cString: strerror(code)))")
    }
}

extension StringProtocol {
    func trimmingTrailingNewlines() -> String {
        var s = String(self)
        while s.last == "\n" { s.removeLast() }
        return s
    }
}
