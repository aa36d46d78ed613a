import NFTModel

/// An in-memory `NFTablesBackend` with the kernel's semantics for the commands the planner emits.
///
/// `apply` runs the transaction command by command against a copy of the ruleset and commits the copy
/// only if every command succeeds, as the kernel does with a batch. The checks are the kernel's
/// (pinned by the contract tests in NetfilterTests, which run the same cases against a real kernel in a
/// scratch namespace):
///
/// - `add table` of an existing table is a no-op; `delete table` of a missing one fails (ENOENT).
/// - `add chain`/`add set`/`add map` need the table; re-adding an existing one with the same
///   declaration is a no-op. A base chain of another type, or a set with another key, data type or
///   flags, fails with EEXIST; a regular chain re-declared as a base chain (with its policy), or a base
///   chain with another hook or priority, fails with EOPNOTSUPP; a base chain re-added with another
///   policy takes the new policy.
/// - `add rule` needs its chain and every set (`@name`) and chain (`jump`/`goto name`) it refers to.
/// - `add element` needs the set and, for verdict data, the chain; an existing key with the same data
///   is a no-op (whatever the comment: the element keeps its own), with other data EEXIST; a set at its
///   `size` is full (ENFILE).
/// - `delete element` of a missing key fails (ENOENT).
/// - `flush chain` needs the chain and drops its rules and their references.
/// - `delete chain`/`delete set` of a missing object fails (ENOENT); of one that a rule or a map element
///   (`goto x`, `jump x`) of *another* place still refers to fails with EBUSY. A chain's own rules do
///   not keep it alive (Linux ≥ 5.9 deletes them with the chain).
///
/// Not modelled: jump loops (ELOOP), jumps to base chains, key syntax. Rules and elements are compared
/// as text, as `Ruleset` holds them.
public actor FakeNFTables: NFTablesBackend {
    /// What the "kernel" holds now.
    public private(set) var ruleset: Ruleset
    /// Every transaction that was committed (empty ones are not), in order.
    public private(set) var committed: [Transaction] = []
    /// How many times `apply` was called, successful or not.
    public private(set) var applyCount = 0

    private var injectedFailures: [FakeNFTablesError] = []

    public init(_ ruleset: Ruleset = .empty) {
        self.ruleset = ruleset
    }

    public func apply(_ transaction: Transaction) throws {
        applyCount += 1
        if !injectedFailures.isEmpty { throw injectedFailures.removeFirst() }
        guard !transaction.isEmpty else { return }
        var state = FakeKernelState(ruleset)
        for (index, command) in transaction.commands.enumerated() {
            try state.execute(command, index: index)
        }
        ruleset = state.ruleset
        committed.append(transaction)
    }

    public func read(_ tables: Set<TableID>) -> Ruleset {
        ruleset.restricted(to: tables)
    }

    public func readSet(_ table: TableID, _ name: String) -> NFTSet? {
        ruleset[table]?.sets[name]
    }

    /// Changes the state directly, without any check: someone editing the table by hand (drift).
    public func edit(_ body: @Sendable (inout Ruleset) -> Void) {
        body(&ruleset)
    }

    /// Makes the next `apply` fail with `error` without touching the state (the kernel refusing a batch
    /// for a reason the fake does not model, e.g. out of memory).
    public func failNextApply(
        with error: FakeNFTablesError = FakeNFTablesError(
            code: .injected, message: "Error: Could not process rule: Cannot allocate memory", command: "")
    ) {
        injectedFailures.append(error)
    }
}

/// Why `FakeNFTables` rejected a transaction, worded as libnftables words it.
public struct FakeNFTablesError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kernel error the fake reports, by its errno name.
    public enum Code: String, Hashable, Sendable {
        case notFound = "No such file or directory"  // ENOENT
        case alreadyExists = "File exists"  // EEXIST
        case busy = "Device or resource busy"  // EBUSY
        case notSupported = "Operation not supported"  // EOPNOTSUPP
        case setFull = "Too many open files in system"  // ENFILE
        case invalid = "Invalid argument"  // EINVAL
        case injected = "injected failure"
    }

    public var code: Code
    /// `Error: Could not process rule: <strerror>` and the failing command, as nft prints them.
    public var message: String
    /// The failing command's text.
    public var command: String
    /// The failing command's position in the transaction.
    public var commandIndex: Int?

    public init(code: Code, message: String, command: String, commandIndex: Int? = nil) {
        self.code = code
        self.message = message
        self.command = command
        self.commandIndex = commandIndex
    }

    public var isNotFound: Bool { code == .notFound }
    public var isAlreadyExists: Bool { code == .alreadyExists }
    public var isBusy: Bool { code == .busy }
    public var isSetFull: Bool { code == .setFull }

    public var description: String { message }
}

/// The ruleset being changed by one transaction, with the reference counts the kernel keeps.
struct FakeKernelState {
    var ruleset: Ruleset
    /// How many rules and map elements refer to each chain / set, per table.
    private var chainUses: [TableID: [String: Int]] = [:]
    private var setUses: [TableID: [String: Int]] = [:]

    init(_ ruleset: Ruleset) {
        self.ruleset = ruleset
        for (id, table) in ruleset.tables {
            for chain in table.chains.values {
                for rule in chain.rules { count(NFTReferences(rule.text), in: id, by: 1) }
            }
            for set in table.sets.values where set.isMap {
                for data in set.elements.values { count(NFTReferences(data), in: id, by: 1) }
            }
        }
    }

    private mutating func count(_ refs: NFTReferences, in id: TableID, by delta: Int) {
        for name in refs.chains { chainUses[id, default: [:]][name, default: 0] += delta }
        for name in refs.sets { setUses[id, default: [:]][name, default: 0] += delta }
    }

    mutating func execute(_ command: Command, index: Int) throws(FakeNFTablesError) {
        func fail(_ code: FakeNFTablesError.Code) -> FakeNFTablesError {
            let text = command.description
            return FakeNFTablesError(
                code: code, message: "Error: Could not process rule: \(code.rawValue)\n\(text)\n", command: text,
                commandIndex: index)
        }
        func table(_ id: TableID) throws(FakeNFTablesError) -> Table {
            guard let table = ruleset.tables[id] else { throw fail(.notFound) }
            return table  // a reference to shared storage: reading it copies nothing
        }

        switch command {
        case .addTable(let id):
            if ruleset.tables[id] == nil { ruleset.tables[id] = Table(id: id) }

        case .deleteTable(let id):
            _ = try table(id)
            ruleset.tables[id] = nil
            chainUses[id] = nil
            setUses[id] = nil

        case .addChain(let id, let chain):
            // Mutations go through `ruleset.tables[id]!` in place: copying a table per command would make
            // a transaction of many rules quadratic.
            if let existing = try table(id).chains[chain.name] {
                switch (existing.base, chain.base) {
                case (_, nil): break
                // Our base chains always carry a policy, and the kernel answers a policy for a regular
                // chain with EOPNOTSUPP before it looks at the hook.
                case (nil, _?): throw fail(.notSupported)
                case (let old?, let new?):
                    if old.type != new.type { throw fail(.alreadyExists) }
                    if old.hook != new.hook || old.priority != new.priority { throw fail(.notSupported) }
                    ruleset.tables[id]!.chains[chain.name]!.base!.policy = new.policy
                }
            } else {
                // `add chain` declares; rules come as `add rule` (the command's text carries none).
                ruleset.tables[id]!.chains[chain.name] = chain.declarationOnly
            }

        case .flushChain(let id, let name):
            guard let chain = try table(id).chains[name] else { throw fail(.notFound) }
            for rule in chain.rules { count(NFTReferences(rule.text), in: id, by: -1) }
            ruleset.tables[id]!.chains[name]!.rules = []

        case .deleteChain(let id, let name):
            guard let chain = try table(id).chains[name] else { throw fail(.notFound) }
            // The chain's own rules go with it; only references from elsewhere keep it.
            let own = chain.rules.reduce(0) { $0 + NFTReferences($1.text).chains.filter { $0 == name }.count }
            if (chainUses[id]?[name] ?? 0) - own > 0 { throw fail(.busy) }
            for rule in chain.rules { count(NFTReferences(rule.text), in: id, by: -1) }
            ruleset.tables[id]!.chains[name] = nil
            chainUses[id]?[name] = nil

        case .addRule(let id, let chainName, let rule):
            guard try table(id).chains[chainName] != nil else { throw fail(.notFound) }
            let refs = NFTReferences(rule.text)
            for name in refs.sets where ruleset.tables[id]!.sets[name] == nil { throw fail(.notFound) }
            for name in refs.chains where ruleset.tables[id]!.chains[name] == nil { throw fail(.notFound) }
            ruleset.tables[id]!.chains[chainName]!.rules.append(rule)
            count(refs, in: id, by: 1)

        case .addSet(let id, let set):
            if let existing = try table(id).sets[set.name] {
                if existing.keyType != set.keyType || existing.dataType != set.dataType || existing.flags != set.flags {
                    throw fail(.alreadyExists)
                }
            } else {
                ruleset.tables[id]!.sets[set.name] = set.declarationOnly
            }

        case .deleteSet(let id, let name, _):
            guard let set = try table(id).sets[name] else { throw fail(.notFound) }
            if (setUses[id]?[name] ?? 0) > 0 { throw fail(.busy) }
            if set.isMap {
                for data in set.elements.values { count(NFTReferences(data), in: id, by: -1) }
            }
            ruleset.tables[id]!.sets[name] = nil
            setUses[id]?[name] = nil

        case .flushSet(let id, let name, _):
            guard let set = try table(id).sets[name] else { throw fail(.notFound) }
            if set.isMap {
                for data in set.elements.values { count(NFTReferences(data), in: id, by: -1) }
            }
            ruleset.tables[id]!.sets[name]!.elements = [:]

        case .addElements(let id, let setName, let elements):
            guard ruleset.tables[id] != nil else { throw fail(.notFound) }
            guard var set = ruleset.tables[id]!.sets[setName] else { throw fail(.notFound) }
            // Taken out of the ruleset while it changes, so that a 100k-element add does not copy it
            // once per element.
            ruleset.tables[id]!.sets[setName] = nil
            defer { ruleset.tables[id]!.sets[setName] = set }
            for element in elements {
                if set.isMap == element.data.isEmpty { throw fail(.invalid) }
                let refs = NFTReferences(element.data)
                for name in refs.chains where ruleset.tables[id]!.chains[name] == nil { throw fail(.notFound) }
                if let existing = set.elements[element.key] {
                    // The element stays as it is, its comment too: a new comment needs delete and add.
                    if existing != element.data { throw fail(.alreadyExists) }
                    continue
                }
                if let size = set.size, set.elements.count >= size { throw fail(.setFull) }
                set.elements.set(element.key, element.data, comment: element.comment)
                count(refs, in: id, by: 1)
            }

        case .deleteElements(let id, let setName, let keys):
            guard ruleset.tables[id] != nil else { throw fail(.notFound) }
            guard var set = ruleset.tables[id]!.sets[setName] else { throw fail(.notFound) }
            ruleset.tables[id]!.sets[setName] = nil
            defer { ruleset.tables[id]!.sets[setName] = set }
            for key in keys {
                guard let data = set.elements.removeValue(forKey: key) else { throw fail(.notFound) }
                count(NFTReferences(data), in: id, by: -1)
            }
        }
    }
}

