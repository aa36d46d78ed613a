import NFTListing
import NFTModel

#if canImport(Glibc)
import Glibc
#endif

/// The real `NFTablesBackend`: applies transactions through libnftables in one batch each and reads
/// tables back from the kernel's JSON listing.
public struct KernelNFTables: NFTablesBackend {
    public let library: LibNFTables
    /// Bulk element writes one level down (`applyElements`); nil: everything goes through libnftables.
    public let netlink: NetlinkSetElements?

    public init(library: LibNFTables, netlink: NetlinkSetElements? = nil) {
        self.library = library
        self.netlink = netlink
    }

    /// A backend with its own libnftables context and netlink socket, in `networkNamespace`
    /// (`/var/run/netns/<name>`) or, when nil, in the process's own network namespace. Without the socket
    /// (refused), element batches go through libnftables too.
    public init(networkNamespace: String? = nil) throws(NetfilterError) {
        self.library = try LibNFTables(networkNamespace: networkNamespace)
        self.netlink = try? NetlinkSetElements(networkNamespace: networkNamespace)
    }

    /// A batch of `add element` commands as one nfnetlink batch written through libnftnl
    /// (`NetlinkSetElements`), skipping libnftables' parser (~13 µs and ~2 KB of memory per element, against
    /// ~1 µs): atomic all the same. A batch naming a set whose elements it cannot encode (interval sets,
    /// verdict maps), or any other command, goes through `apply`.
    public func applyElements(_ transaction: Transaction, declarations: [TableID: [String: NFTSet]]) async throws {
        guard let netlink else { return try await apply(transaction) }
        var groups: [NetlinkSetElements.Group] = []
        for command in transaction.commands {
            guard case .addElements(let id, let name, let elements) = command, let set = declarations[id]?[name],
                NetlinkSetElements.canWrite(set)
            else { return try await apply(transaction) }
            var named = set
            named.name = name
            groups.append((table: id, set: named, elements: elements))
        }
        try await netlink.add(groups)
    }

    /// Submits `transaction.description`, the exact script `switchboard diff` shows, as one
    /// `nft_run_cmd_from_buffer` call: libnftables puts all its commands in one netlink batch, which the
    /// kernel commits whole or not at all. An empty transaction sends nothing.
    ///
    /// Throws `NetfilterError` (`.commandFailed`, with nft's message) when the batch is rejected; the
    /// kernel then holds exactly what it held before.
    public func apply(_ transaction: Transaction) async throws {
        guard !transaction.isEmpty else { return }
        _ = try await library.run(transaction.description)
    }

    /// The given tables as the kernel holds them now; a table that does not exist is simply absent.
    ///
    /// Each table is listed on its own (`list table ip switchboard`), so other tables on the node, which
    /// can be large (iptables-nft, firewalld), are neither fetched nor parsed.
    public func read(_ tables: Set<TableID>) async throws -> Ruleset {
        var result = Ruleset()
        for id in tables.sorted() {
            guard isValidNFTIdentifier(id.name) else {
                throw NetfilterError(kind: .invalidRequest, code: EINVAL, message: "invalid table name \"\(id.name)\"")
            }
            let json: String
            do {
                json = try await library.listJSON("list table \(id)")
            } catch {
                // Not `catch where error.isNotFound`: with typed throws in an async loop, Swift 6.3's
                // SIL passes never finish compiling that form.
                if error.isNotFound { continue }
                throw error
            }
            if let table = try Self.decode(json)[id] { result[id] = table }
        }
        return result
    }

    /// One table's declarations, cheaply whatever its sets hold: its chains (names and hooks, WITHOUT rules,
    /// from `list chains`) and its sets (names, and whether each is a map; no types, no elements) from a
    /// netlink GETSET dump. nil when the table does not exist.
    ///
    /// Why not a listing: libnftables 1.0.6 fetches every element of every set for any listing that shows a
    /// set or a rule, `-t` or not (3 s and 250 MB for a table of 150k elements, gigabytes at 10k Services).
    /// What reads this (the staged rebuild: which names the kernel uses, what to delete) needs names only.
    /// Without a netlink socket (it failed to open), the terse listing.
    public func readDeclarations(_ table: TableID) async throws -> Table? {
        guard isValidNFTIdentifier(table.name) else {
            throw NetfilterError(kind: .invalidRequest, code: EINVAL, message: "invalid table name \"\(table.name)\"")
        }
        guard let netlink else {
            let json: String
            do {
                json = try await library.listTerseJSON("list table \(table)")
            } catch {
                if error.isNotFound { return nil }
                throw error
            }
            return try Self.decode(json)[table]
        }
        guard let sets = try await netlink.sets(of: table) else { return nil }
        let json = try await library.listJSON("list chains \(table.family.rawValue)")
        var declared = Table(id: table)
        for (name, chain) in try Self.decode(json)[table]?.chains ?? [:] {
            declared.chains[name] = chain.declarationOnly
        }
        for set in sets {
            // A placeholder declaration: the name and map-ness are all a reader of this may use.
            declared.sets[set.name] = NFTSet(name: set.name, keyType: .types([]), dataType: set.isMap ? "" : nil)
        }
        return declared
    }

    /// `list set` (or `list map`) of one set: libnftables fetches only that set's elements.
    public func readSet(_ table: TableID, _ name: String) async throws -> NFTSet? {
        guard isValidNFTIdentifier(table.name), isValidNFTIdentifier(name) else {
            throw NetfilterError(kind: .invalidRequest, code: EINVAL, message: "invalid name \"\(table.name)\" / \"\(name)\"")
        }
        for keyword in ["set", "map"] {
            let json: String
            do {
                json = try await library.listJSON("list \(keyword) \(table) \(name)")
            } catch {
                if error.isNotFound { continue }
                throw error
            }
            if let set = try Self.decode(json)[table]?.sets[name] { return set }
        }
        return nil
    }

    /// Every table in the namespace, ours and everyone else's, for `switchboard diff`.
    public func readAll() async throws -> Ruleset {
        try Self.decode(try await listRulesetJSON())
    }

    /// `nft -j list ruleset`, verbatim.
    public func listRulesetJSON() async throws(NetfilterError) -> String {
        try await library.listJSON("list ruleset")
    }

    /// `nft list ruleset`, verbatim: what an operator would see.
    public func listRuleset() async throws(NetfilterError) -> String {
        try await library.run("list ruleset")
    }

    /// Decodes a JSON listing; a listing that does not parse is an `.invalidListing` error that keeps the
    /// decoder's message (with the offset, line and column it stopped at).
    static func decode(_ json: String) throws(NetfilterError) -> Ruleset {
        do {
            return try Ruleset(nftJSON: json)
        } catch {
            throw NetfilterError(kind: .invalidListing, code: 0, message: String(describing: error))
        }
    }
}
