import Foundation

/// A uniquely named, empty network namespace for one test: `sbt-<purpose>-<random>`, created and
/// deleted with `/usr/sbin/ip netns`. Tests that touch a kernel work in one of these, never in the
/// host's own namespace.
///
/// ```swift
/// try await ScratchNamespace.with(purpose: "contract") { ns in
///     let backend = try KernelNFTables(networkNamespace: ns.name)
///     ...
/// }  // deleted here, also when the body throws
/// ```
public struct ScratchNamespace: Sendable, Hashable {
    /// The name under `/var/run/netns`.
    public let name: String

    public static let ipPath = "/usr/sbin/ip"

    /// Why scratch namespaces cannot be made here, or nil when they can: the one probe of the tests,
    /// `Skip.privilegedTestsUnavailableReason` (root, `ip`, Python, a namespace with a veth pair and a bridge,
    /// and `SWITCHBOARD_SKIP_PRIVILEGED` unset), probed once per process.
    public static var unavailableReason: String? { Skip.privilegedTestsUnavailableReason }

    public static var isAvailable: Bool { unavailableReason == nil }

    /// Creates `sbt-<purpose>-<random>`. `purpose` is cut to keep the name short and readable.
    public static func create(purpose: String) throws -> ScratchNamespace {
        let cleaned = String(purpose.map { $0.isLetter || $0.isNumber ? $0 : "-" }.prefix(20))
        let name = "sbt-\(cleaned)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try run(["netns", "add", name])
        return ScratchNamespace(name: name)
    }

    /// Deletes the namespace; best effort (a missing namespace is fine). A namespace lives on, unnamed,
    /// while a thread or socket still holds it, and goes away with the last of them.
    public func delete() {
        _ = try? Self.run(["netns", "delete", name])
    }

    /// Runs `body` with a fresh namespace and deletes it afterwards, whether `body` returns or throws.
    public static func with<T>(
        purpose: String, _ body: (ScratchNamespace) async throws -> T
    ) async throws -> T {
        // Created and deleted off the cooperative pool: `ip` blocks, and tests run side by side.
        let ns = try await Shell.offload { Result { try create(purpose: purpose) } }.get()
        do {
            let result = try await body(ns)
            await Shell.offload { ns.delete() }
            return result
        } catch {
            await Shell.offload { ns.delete() }
            throw error
        }
    }

    /// Runs a command inside the namespace (`ip netns exec <name> ...`) and returns its standard output;
    /// for test set-up and inspection only.
    @discardableResult
    public func exec(_ arguments: [String]) throws -> String {
        try Self.run(["netns", "exec", name] + arguments)
    }

    public struct CommandError: Error, CustomStringConvertible {
        public var arguments: [String]
        public var status: Int32
        public var stderr: String
        public var description: String { "ip \(arguments.joined(separator: " ")) exited \(status): \(stderr)" }
    }

    /// Runs `ip` (spawned as `Shell` spawns: no descriptor leaks into it) and returns its stdout.
    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        let result = try Shell.runBlocking([ipPath] + arguments, timeout: .seconds(30))
        guard result.succeeded else {
            throw CommandError(
                arguments: arguments, status: result.status.code,
                stderr: result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return result.stdout
    }
}
