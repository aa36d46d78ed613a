import NFTModel

/// The real `IPSetBackend`: the kernel's ipsets through `LibIPSet`, in the process's namespace or in
/// `networkNamespace`.
public final class KernelIPSets: IPSetBackend {
    public let lib: LibIPSet

    public init(networkNamespace: String? = nil) throws(NetfilterError) {
        lib = try LibIPSet(networkNamespace: networkNamespace)
    }

    public init(_ lib: LibIPSet) {
        self.lib = lib
    }

    /// `list -terse`: every set's name, type and family, without members.
    public func headers() async throws -> [String: IPSetHeader] {
        Self.parseListing(try await lib.run("list -t")).mapValues(\.header)
    }

    public func read(_ names: [String]) async throws -> [String: IPSet] {
        let present = try await headers()
        var out: [String: IPSet] = [:]
        for name in names where present[name] != nil {
            for (listed, entry) in Self.parseListing(try await lib.run("list \(name)")) where listed == name {
                guard let type = IPSetType(rawValue: entry.header.typeName) else { continue }
                out[name] = IPSet(name: name, type: type, family: entry.header.family, entries: Set(entry.members))
            }
        }
        return out
    }

    public func run(_ commands: [IPSetCommand]) async throws {
        try await lib.run(lines: commands.map(\.description))
    }

    /// Destroys the named sets that exist, one by one; returns the names destroyed. A set still referenced
    /// by a rule cannot be destroyed: that error is thrown after the others were tried.
    public func destroy(_ names: [String]) async throws -> [String] {
        let present = try await headers()
        var destroyed: [String] = []
        var firstError: (any Error)?
        for name in names where present[name] != nil {
            do {
                try await lib.run(lines: ["destroy \(name)"])
                destroyed.append(name)
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        return destroyed
    }

    /// Parses `ipset list` output (plain mode): per set, its header and the first word of each member line.
    static func parseListing(_ text: String) -> [String: (header: IPSetHeader, members: [String])] {
        var out: [String: (header: IPSetHeader, members: [String])] = [:]
        var name: String?
        var typeName = ""
        var family: IPSetFamily?
        var members: [String] = []
        var inMembers = false
        func flush() {
            if let name { out[name] = (IPSetHeader(typeName: typeName, family: family), members) }
            name = nil
            typeName = ""
            family = nil
            members = []
            inMembers = false
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingTrailingNewlines()
            if line.hasPrefix("Name: ") {
                flush()
                name = String(line.dropFirst("Name: ".count))
            } else if line.hasPrefix("Type: ") {
                typeName = String(line.dropFirst("Type: ".count))
            } else if line.hasPrefix("Header: ") {
                let words = line.split(separator: " ")
                if let i = words.firstIndex(of: "family"), i + 1 < words.count {
                    family = IPSetFamily(rawValue: String(words[i + 1]))
                }
            } else if line == "Members:" {
                inMembers = true
            } else if inMembers, let first = line.split(separator: " ").first {
                members.append(String(first))
            }
        }
        flush()
        return out
    }
}
