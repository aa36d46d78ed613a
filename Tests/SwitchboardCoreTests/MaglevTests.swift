import SwitchboardCore
import Testing
import SwitchboardTestTraits
import SwitchboardTesting

/// Backend identities as the compiler writes them: sequential pod IPs, the common and least random-looking case.
private func ipv4Backends(_ n: Int) -> [String] {
    (0..<n).map { "10.0.\($0 / 256).\($0 % 256):8080" }
}

private func ipv6Backends(_ n: Int) -> [String] {
    (0..<n).map { "[fd00::\(String($0 + 1, radix: 16))]:443" }
}

/// What removing `removed` from `before` did to the slots: how many changed, how many of those had belonged to the
/// removed backend, and whether every one of those went to a survivor.
private struct Removal {
    var changed = 0
    var owned = 0
    var survivorsMoved: Int { changed - owned }
    var ownedAllReassigned = true

    init(before: MaglevTable, after: MaglevTable, removed: String) {
        for i in 0..<before.size {
            let old = before.backend(forSlot: i)
            let new = after.backend(forSlot: i)
            if old == removed {
                owned += 1
                if new == removed { ownedAllReassigned = false }
            }
            if old != new { changed += 1 }
        }
    }
}

@Suite("Maglev tables", .exclusive)
struct MaglevTests {
    // MARK: Golden tables: kernel state shared across nodes and releases.

    @Test func goldenThreeBackendsSize13() {
        let table = MaglevTable(backends: ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], size: 13)
        #expect(table.backends == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
        #expect(table.slots == [1, 1, 2, 2, 1, 0, 0, 1, 2, 0, 0, 2, 0])
        #expect(table.shares == [5, 4, 4])
    }

    @Test func goldenMixedFamiliesSize31() {
        let table = MaglevTable(backends: ["[fd00::2]:8080", "10.0.0.2:80", "[fd00::1]:80", "10.0.0.1:80"], size: 31)
        #expect(table.backends == ["10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:80", "[fd00::2]:8080"])
        #expect(
            table.slots == [
                3, 1, 3, 2, 3, 2, 0, 0, 2, 0, 0, 2, 3, 1, 1, 3, 1, 0, 0, 2, 3, 2, 2, 1, 3, 1, 2, 1, 0, 0, 1,
            ]
        )
    }

    // MARK: Same set, same table.

    @Test(arguments: [1, 2, 3, 10, 37, 100])
    func orderAndDuplicatesDoNotMatter(n: Int) {
        let backends = ipv4Backends(n) + ipv6Backends(n / 3)
        let reference = MaglevTable(backends: backends)
        var rng = SplitMix64(seed: UInt64(n))
        for _ in 0..<8 {
            let duplicates = (0..<Int.random(in: 0...n, using: &rng)).map { _ in backends.randomElement(using: &rng)! }
            let shuffled = (backends + duplicates).shuffled(using: &rng)
            #expect(MaglevTable(backends: shuffled) == reference)
            #expect(MaglevTable(backends: shuffled, size: 251) == MaglevTable(backends: backends, size: 251))
        }
        #expect(reference.backends.count == backends.count)
    }

    @Test func emptyBackendsGiveAnEmptyTable() {
        #expect(MaglevTable(backends: [], size: 13).slots.isEmpty)
        #expect(MaglevTable(backends: [String]()).size == 0)
    }

    @Test func moreBackendsThanSlotsFillsEverySlotOnce() {
        let table = MaglevTable(backends: ipv4Backends(20), size: 13)
        #expect(table.size == 13)
        #expect(table.shares == Array(repeating: 1, count: 13) + Array(repeating: 0, count: 7))
    }

    @Test func compositeSizeIsRejected() async {
        await #expect(processExitsWith: .failure) {
            _ = MaglevTable(backends: ["10.0.0.1:80"], size: 12)
        }
    }

    // MARK: Sizing rule.

    @Test func ladderIsStrictlyIncreasingPrimes() {
        let ladder = MaglevTable.ladder
        #expect(zip(ladder, ladder.dropFirst()).allSatisfy { $0 < $1 })
        for p in ladder {
            #expect(p >= 2 && (2..<p).prefix { $0 * $0 <= p }.allSatisfy { p % $0 != 0 }, "\(p) is not prime")
        }
    }

    @Test func sizeIsFromTheLadderMonotonicAndAtLeastTenPerBackend() {
        var previous = 0
        for n in 0...10_000 {
            let m = MaglevTable.size(forBackendCount: n)
            #expect(MaglevTable.ladder.contains(m))
            #expect(m >= previous, "size dropped from \(previous) to \(m) at n = \(n)")
            if n * 10 <= MaglevTable.ladder.last! {
                #expect(m >= 10 * n)
            }
            previous = m
        }
        #expect(MaglevTable.size(forBackendCount: Int.max) == MaglevTable.ladder.last!)
    }

    /// The element counts documented on `size(forBackendCount:)`.
    @Test(arguments: [
        (1, 13), (2, 31), (3, 31), (5, 61), (10, 127), (20, 251), (50, 509), (100, 1021), (1000, 16381),
    ])
    func documentedElementCounts(n: Int, m: Int) {
        #expect(MaglevTable.size(forBackendCount: n) == m)
        #expect(MaglevTable(backends: ipv4Backends(n)).size == m)
    }

    /// Every share within 10% of the mean for every backend count the rule covers with room to spare.
    @Test func defaultSizingKeepsSharesWithinTenPercent() {
        for n in 1...200 {
            let table = MaglevTable(backends: ipv6Backends(n))
            let mean = Double(table.size) / Double(n)
            let shares = table.shares
            #expect(shares.count == n)
            #expect(shares.allSatisfy { $0 == table.size / n || $0 == (table.size + n - 1) / n }, "n = \(n)")
            let worst = shares.map { abs(Double($0) - mean) / mean }.max()!
            #expect(worst <= 0.10, "n = \(n), M = \(table.size): a share is \(worst * 100)% off the mean")
        }
    }

    // MARK: Disruption.

    /// At the default sizing Maglev moves more than the removed backend's slots (see `size(forBackendCount:)`);
    /// these are the documented worst cases over every removal, with identities of both families, and a regression
    /// guard for the construction.
    @Test(arguments: [
        (2, 0.52, 0.36), (3, 0.39, 0.36), (5, 0.32, 0.25), (10, 0.31, 0.20), (37, 0.12, 0.10), (100, 0.06, 0.06),
        (200, 0.035, 0.03),
    ])
    func disruptionAtDefaultSizing(n: Int, removalBound: Double, additionBound: Double) {
        for family in [ipv4Backends, ipv6Backends] {
            let all = family(n + 1)
            let backends = Array(all.prefix(n))
            let table = MaglevTable(backends: backends)
            let m = table.size
            for removed in backends {
                let after = MaglevTable(backends: backends.filter { $0 != removed }, size: m)
                let r = Removal(before: table, after: after, removed: removed)
                #expect(r.ownedAllReassigned)
                #expect(r.changed == after.changedSlotCount(from: table))
                #expect(Double(r.changed) <= removalBound * Double(m), "n = \(n), M = \(m): \(r.changed) slots moved")
            }
            let grown = MaglevTable(backends: all, size: m)
            let added = grown.changedSlotCount(from: table)
            #expect(added >= grown.shares[grown.backends.firstIndex(of: all[n])!])
            #expect(Double(added) <= additionBound * Double(m), "n = \(n), M = \(m): \(added) slots moved")
        }
    }

    /// With M large enough, the construction is close to minimally disruptive: removing one of n moves at most
    /// M/n + 1% of M slots, adding one at most M/(n+1) + 1% of M. These are the smallest ladder sizes where that
    /// holds for these identities, the figures quoted on `size(forBackendCount:)` for what that bound would cost.
    @Test(arguments: [(2, 251), (3, 1021), (5, 4093), (10, 8191), (37, 32749), (100, 32749), (200, 65521)])
    func nearMinimalDisruptionWithLargeTables(n: Int, m: Int) {
        let all = ipv4Backends(n + 1)
        let backends = Array(all.prefix(n))
        let table = MaglevTable(backends: backends, size: m)
        let slack = 0.01 * Double(m)
        for removed in backends {
            let after = MaglevTable(backends: backends.filter { $0 != removed }, size: m)
            let r = Removal(before: table, after: after, removed: removed)
            #expect(r.ownedAllReassigned)
            #expect(Double(r.changed) <= Double(m) / Double(n) + slack, "removing \(removed): \(r.changed) moved")
            #expect(Double(r.survivorsMoved) <= slack + Double(m) / Double(n) - Double(r.owned))
        }
        let added = MaglevTable(backends: all, size: m).changedSlotCount(from: table)
        #expect(Double(added) <= Double(m) / Double(n + 1) + slack, "adding: \(added) moved")
    }

    @Test func tablesOfDifferentSizesDifferEverywhere() {
        let small = MaglevTable(backends: ipv4Backends(3), size: 13)
        let large = MaglevTable(backends: ipv4Backends(3), size: 31)
        #expect(large.changedSlotCount(from: small) == 31)
        #expect(small.changedSlotCount(from: small) == 0)
    }
}

extension MaglevTests {
    @Suite("Stable hashes")
    struct StableHashes {
        /// FNV-1a 64 reference vectors: a change here renames every kernel object and reshuffles every Maglev table.
        @Test(arguments: [
            ("", 0xcbf2_9ce4_8422_2325 as UInt64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
            ("10.0.0.1:80", 0x529f_5a4b_643f_a605),
        ])
        func stableHash64Golden(input: String, expected: UInt64) {
            #expect(stableHash64(input) == expected)
        }
    }
}
