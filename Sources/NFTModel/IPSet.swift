/// The ipset side of the kernel edge, as pure values: a set's definition and members, the `ipset` commands
/// that change them, and the plan that rebuilds a changed set beside the live one and swaps it in.
///
/// Switchboard exports kube-proxy's IPVS-mode sets (`KUBE-CLUSTER-IP`, ...; see `IPSetExport` in
/// SwitchboardCore) so that iptables firewalls written against them keep working; nftables itself never
/// reads them. The commands are rendered in `ipset restore` syntax, and that text is exactly what libipset
/// parses (`LibIPSet` in Netfilter), so a plan can be printed, tested as text, and applied.

/// The set types the export uses.
public enum IPSetType: String, Hashable, Sendable, CaseIterable {
    case hashIPPort = "hash:ip,port"
    case hashIPPortIP = "hash:ip,port,ip"
    case hashIPPortNet = "hash:ip,port,net"
    case bitmapPort = "bitmap:port"
}

/// An ipset address family (`family inet|inet6`); `bitmap:port` sets have none.
public enum IPSetFamily: String, Hashable, Sendable, CaseIterable {
    case inet
    case inet6
}

/// What `ipset create` fixed for an existing set: its type name and family. `swap` needs both to match.
public struct IPSetHeader: Hashable, Sendable {
    /// As the kernel lists it (`hash:ip,port`); other software's sets may have any type.
    public var typeName: String
    public var family: IPSetFamily?

    public init(typeName: String, family: IPSetFamily?) {
        self.typeName = typeName
        self.family = family
    }
}

/// One set with its members, each in the text `ipset list` prints (`10.96.0.10,tcp:80`, `30080`).
public struct IPSet: Hashable, Sendable {
    public var name: String
    public var type: IPSetType
    /// nil exactly for `bitmap:port`.
    public var family: IPSetFamily?
    public var entries: Set<String>

    public init(name: String, type: IPSetType, family: IPSetFamily?, entries: Set<String> = []) {
        self.name = name
        self.type = type
        self.family = type == .bitmapPort ? nil : family
        self.entries = entries
    }

    public var header: IPSetHeader { IPSetHeader(typeName: type.rawValue, family: family) }

    /// ipset's limit on set names (`IPSET_MAXNAMELEN` - 1).
    public static let maxNameLength = 31

    /// The name of the set a rebuild fills before swapping it in: `<name>-tmp`, or, when that would be
    /// longer than 31 characters, the first 22 characters, a 4-digit hash of the whole name and `-tmp`.
    ///
    /// Stable across processes and releases: a temporary left behind by a crash is found and removed by name.
    public static func temporaryName(for name: String) -> String {
        let plain = name + "-tmp"
        if plain.utf8.count <= maxNameLength { return plain }
        var hash: UInt32 = 0x811c_9dc5  // FNV-1a 32
        for byte in name.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        let digits = String(hash & 0xffff, radix: 16)
        let hex = String(repeating: "0", count: 4 - digits.count) + digits
        return String(decoding: name.utf8.prefix(22), as: UTF8.self) + "-" + hex + "-tmp"
    }
}

/// One ipset command. `description` is the exact line handed to libipset.
public enum IPSetCommand: Hashable, Sendable, CustomStringConvertible {
    /// kube-proxy's parameters: `hashsize 1024 maxelem 65536` for hash types, `range 0-65535` for bitmap:port.
    case create(name: String, type: IPSetType, family: IPSetFamily?)
    case add(name: String, entry: String)
    /// Exchanges two sets' contents under their names: rules that reference either name (iptables
    /// `-m set`) see the other contents at once, without a moment of an empty or half-filled set.
    case swap(String, String)
    case destroy(String)

    public var description: String {
        switch self {
        case .create(let name, .bitmapPort, _):
            return "create \(name) bitmap:port range 0-65535"
        case .create(let name, let type, let family):
            return "create \(name) \(type.rawValue) family \((family ?? .inet).rawValue) hashsize 1024 maxelem 65536"
        case .add(let name, let entry):
            return "add \(name) \(entry)"
        case .swap(let a, let b):
            return "swap \(a) \(b)"
        case .destroy(let name):
            return "destroy \(name)"
        }
    }
}

/// The commands that make the kernel's sets equal to `desired`, grouped per set.
public struct IPSetPlan: Hashable, Sendable, CustomStringConvertible {
    /// One set's rebuild: applied in order, stopping at the first failure.
    public struct Step: Hashable, Sendable {
        public var set: String
        public var commands: [IPSetCommand]
    }

    public var steps: [Step]

    public var isEmpty: Bool { steps.isEmpty }

    /// The whole plan as `ipset restore` lines.
    public var description: String { steps.flatMap(\.commands).map { "\($0)\n" }.joined() }

    /// Plans a **build-then-swap** for every desired set whose members differ from `written` (what was last
    /// written, or what the kernel was read to hold), or whose kernel set is missing or of another type or
    /// family. A set that needs nothing gets no step: it is not touched at all.
    ///
    /// A rebuild creates the live set first if it is missing (destroying it first if it has the wrong type or
    /// family, which the kernel refuses while a rule references it), creates `IPSet.temporaryName` of the same
    /// type (after destroying a leftover one), fills it, swaps it with the live set and destroys it.
    ///
    /// - Parameters:
    ///   - kernel: the headers of every set the kernel holds now (`IPSetBackend.headers()`).
    public init(desired: [IPSet], written: [String: IPSet], kernel: [String: IPSetHeader]) {
        steps = []
        for set in desired.sorted(by: { $0.name < $1.name }) {
            let live = kernel[set.name]
            guard live != set.header || written[set.name] != set else { continue }
            var commands: [IPSetCommand] = []
            let temporary = IPSet.temporaryName(for: set.name)
            if kernel[temporary] != nil { commands.append(.destroy(temporary)) }
            if let live, live != set.header { commands.append(.destroy(set.name)) }
            if live != set.header { commands.append(.create(name: set.name, type: set.type, family: set.family)) }
            commands.append(.create(name: temporary, type: set.type, family: set.family))
            commands += set.entries.sorted().map { .add(name: temporary, entry: $0) }
            commands += [.swap(temporary, set.name), .destroy(temporary)]
            steps.append(Step(set: set.name, commands: commands))
        }
    }
}

/// The ipset edge: `KernelIPSets` (Netfilter, through libipset) is the real one, `FakeIPSets`
/// (SwitchboardTesting) keeps sets in memory with the kernel's rules for create, swap and destroy.
public protocol IPSetBackend: Sendable {
    /// Every set the kernel holds, by name, with its type and family (no members).
    func headers() async throws -> [String: IPSetHeader]
    /// The named sets with their members; names the kernel does not hold, or of a type the export does not
    /// use, are left out.
    func read(_ names: [String]) async throws -> [String: IPSet]
    /// Runs the commands in order and stops at the first that fails (those before it stay applied).
    func run(_ commands: [IPSetCommand]) async throws
}
