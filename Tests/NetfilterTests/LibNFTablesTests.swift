import Foundation
import NFTModel
import Netfilter
import SwitchboardTesting
import Testing
import SwitchboardTestTraits

/// libnftables in-process: errors, namespaces, threads. Every test that changes a ruleset does it in a
/// scratch namespace; the host's ruleset is only ever read.
@Suite(.exclusive) struct LibNFTablesTests {
    @Test func runsScriptsAndListsJSON() async throws {
        try skipUnlessScratchNamespaces()
        try await ScratchNamespace.with(purpose: "lib") { ns in
            let nft = try LibNFTables(networkNamespace: ns.name)
            #expect(nft.networkNamespace == ns.name)
            let created = try await nft.run("add table ip t\nadd chain ip t c\nadd rule ip t c ip daddr 192.0.2.1 drop")
            #expect(created == "")
            let text = try await nft.run("list ruleset")
            #expect(text.contains("ip daddr 192.0.2.1 drop"))
            let json = try await nft.listJSON("list table ip t")
            #expect(json.hasPrefix("{\"nftables\": ["))
            #expect(json.contains("\"chain\": \"c\""))
            // The blocking overload, from a plain thread, sees the same context.
            let blocking = try await onPlainThread { try nft.run("list chain ip t c") }
            #expect(blocking.contains("ip daddr 192.0.2.1 drop"))
            // Text mode after a JSON listing: flags are per call.
            #expect(try await nft.run("list table ip t").hasPrefix("table ip t {"))
        }
    }

    @Test func errorsCarryNFTMessageAndTheFailingLine() async throws {
        try skipUnlessScratchNamespaces()
        try await ScratchNamespace.with(purpose: "lib") { ns in
            let nft = try LibNFTables(networkNamespace: ns.name)
            do {
                _ = try await nft.run("delete table ip no-such-table")
                Issue.record("accepted")
            } catch let error as NetfilterError {
                #expect(error.kind == .commandFailed)
                #expect(error.isNotFound)
                #expect(error.code == ENOENT)
                #expect(error.message.hasPrefix("Error: "))
                #expect(error.message.contains("No such file or directory"))
                #expect(error.message.contains("delete table ip no-such-table"))
                #expect(error.script == "delete table ip no-such-table")
                #expect(error.lines == [1])
            }

            // A kernel-side failure in the middle of a longer script names that line only.
            let script = """
                add table ip t
                add chain ip t a
                add set ip t s { type ipv4_addr; }
                delete element ip t s { 192.0.2.1 }
                add chain ip t b
                """
            do {
                _ = try await nft.run(script)
                Issue.record("accepted")
            } catch let error as NetfilterError {
                #expect(error.isNotFound)
                #expect(error.message.contains("Could not process rule: No such file or directory"))
                // libnftables 1.0.6 quotes the buffer's first line for any error in a buffer; the error
                // finds the real one.
                #expect(error.script == "delete element ip t s { 192.0.2.1 }")
                #expect(error.lines == [4])
                #expect(String(describing: error).hasPrefix("nftables commandFailed: Error:"))
            }
            // All or nothing: the table from the first line is not there.
            #expect(try await nft.run("list ruleset") == "")

            do {
                _ = try await nft.run("add tabel ip t")
                Issue.record("accepted")
            } catch let error as NetfilterError {
                #expect(error.kind == .commandFailed)
                #expect(error.code == 0)
                #expect(error.message.contains("syntax error"))
            }

            do {
                _ = try await nft.run("add table ip t\0; flush ruleset")
                Issue.record("accepted")
            } catch let error as NetfilterError {
                #expect(error.kind == .invalidRequest)
            }
        }
    }

    @Test func missingOrInvalidNamespaceFailsAtInit() throws {
        let missing = "sbt-does-not-exist-\(UInt32.random(in: 0...UInt32.max))"
        let error = try #require(throws: NetfilterError.self) { _ = try LibNFTables(networkNamespace: missing) }
        #expect(error.kind == .namespaceUnavailable)
        #expect(error.isNotFound)
        #expect(error.message.hasPrefix("open /var/run/netns/\(missing): No such file or directory"))
        for name in ["", "..", "a/b", "../../proc/1/ns/net"] {
            let error = try #require(throws: NetfilterError.self) { _ = try LibNFTables(networkNamespace: name) }
            #expect(error.kind == .invalidRequest)
        }
    }

    /// Two contexts in two namespaces: what one applies, the other does not see, nor does the host; the
    /// worker threads are in their namespaces and no other thread of the process is.
    @Test func namespacesStayIsolated() async throws {
        try skipUnlessScratchNamespaces()
        let hostNamespace = try namespaceInode("/proc/self/ns/net")
        let unique = TableID(.ip, "sbt_iso_\(UInt32.random(in: 0...UInt32.max))")
        // Read-only look at the host: a context without a namespace, listing only.
        let host = try KernelNFTables()
        let hostHadSwitchboard = try await host.library.hasTable(Fixture.table)

        try await ScratchNamespace.with(purpose: "iso1") { ns1 in
            try await ScratchNamespace.with(purpose: "iso2") { ns2 in
                let one = try LibNFTables(networkNamespace: ns1.name)
                let two = try LibNFTables(networkNamespace: ns2.name)
                _ = try await one.run(Fixture.a.transaction(from: .empty).description)
                _ = try await one.run("add table \(unique)")
                _ = try await two.run("add table ip only-in-two")

                #expect(try await one.hasTable(Fixture.table))
                #expect(try await one.hasTable(unique))
                #expect(try await !one.hasTable(TableID(.ip, "only-in-two")))
                #expect(try await !two.hasTable(Fixture.table))
                #expect(try await !two.hasTable(unique))
                #expect(try await two.run("list ruleset") == "table ip only-in-two {\n}\n")
                #expect(try await !host.library.hasTable(unique))
                #expect(try await host.library.hasTable(Fixture.table) == hostHadSwitchboard)
                // `ip netns exec` agrees with what the contexts report.
                #expect(try ns2.exec(["/usr/sbin/nft", "list", "tables"]) == "table ip only-in-two\n")

                // Threads: one worker in each namespace; nothing else left the host namespace.
                let ns1Inode = try namespaceInode("/var/run/netns/" + ns1.name)
                let ns2Inode = try namespaceInode("/var/run/netns/" + ns2.name)
                let workerName = { (ns: ScratchNamespace) in String("nft-\(ns.name)".prefix(15)) }
                // Each worker is back in its namespace a moment after it resumed its last caller.
                #expect(try await settles {
                    let threads = try threadNamespaces()
                    return threads.filter { $0.namespace == ns1Inode }.map(\.name) == [workerName(ns1)]
                        && threads.filter { $0.namespace == ns2Inode }.map(\.name) == [workerName(ns2)]
                })
                let threads = try threadNamespaces()
                // Other tests running in parallel have worker threads of their own in their namespaces.
                let workers = ["nft-", "ipset-", "ct-", "nl-"]
                let others = threads.filter { thread in !workers.contains { thread.name.hasPrefix($0) } }
                #expect(others.allSatisfy { $0.namespace == hostNamespace }, "\(others.filter { $0.namespace != hostNamespace })")
                #expect(try namespaceInode("/proc/self/ns/net") == hostNamespace)

                // Released contexts take their threads with them.
                withExtendedLifetime(one) {}
                withExtendedLifetime(two) {}
            }
        }
        #expect(try await !host.library.hasTable(unique))
        #expect(try await host.library.hasTable(Fixture.table) == hostHadSwitchboard)
    }

    @Test func releasingTheContextEndsItsThread() async throws {
        try skipUnlessScratchNamespaces()
        try await ScratchNamespace.with(purpose: "thr") { ns in
            let inode = try namespaceInode("/var/run/netns/" + ns.name)
            do {
                let nft = try LibNFTables(networkNamespace: ns.name)
                _ = try await nft.run("add table ip t")
                // The worker resumes its callers from its starting namespace and then goes back: look twice.
                #expect(try await settles { try threadNamespaces().contains { $0.namespace == inode } })
            }
            // deinit waits for the worker to free the context; the kernel reaps the thread right after.
            var remaining = true
            for _ in 0..<100 where remaining {
                remaining = try threadNamespaces().contains { $0.namespace == inode }
                if remaining { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(!remaining)
        }
    }

    /// Many tasks at once on one context: calls are serialized on its thread, none is lost.
    @Test func concurrentCallersAreSerialized() async throws {
        try skipUnlessScratchNamespaces()
        try await ScratchNamespace.with(purpose: "conc") { ns in
            let nft = try LibNFTables(networkNamespace: ns.name)
            _ = try await nft.run("add table ip t")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<64 {
                    group.addTask {
                        _ = try await nft.run("add chain ip t c\(i)\nadd rule ip t c\(i) ip daddr 192.0.2.\(i) drop")
                    }
                }
                try await group.waitForAll()
            }
            let listing = try await nft.run("list table ip t")
            #expect(listing.components(separatedBy: "\tchain c").count - 1 == 64)
        }
    }
}

extension LibNFTables {
    /// Whether a table exists (read-only).
    func hasTable(_ id: TableID) async throws -> Bool {
        do {
            _ = try await listJSON("list table \(id)")
            return true
        } catch {
            if error.isNotFound { return false }
            throw error
        }
    }
}

/// The inode of a namespace file (`/proc/.../ns/net` or a bind mount under `/var/run/netns`).
func namespaceInode(_ path: String) throws -> UInt64 {
    var st = stat()
    guard stat(path, &st) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    return UInt64(st.st_ino)
}

/// Every thread of this process with its name and network namespace.
/// Whether `check` holds within a second (polled every 5 ms).
func settles(_ check: () throws -> Bool) async throws -> Bool {
    for _ in 0..<200 {
        if try check() { return true }
        try await Task.sleep(for: .milliseconds(5))
    }
    return false
}

func threadNamespaces() throws -> [(name: String, namespace: UInt64)] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { tid in
        guard let comm = try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8),
              let inode = try? namespaceInode("/proc/self/task/\(tid)/ns/net")
        else { return nil }  // the thread ended while we looked
        return (comm.trimmingCharacters(in: .newlines), inode)
    }
}

/// Runs blocking work on a new thread (never on the cooperative pool) and awaits its result.
func onPlainThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
