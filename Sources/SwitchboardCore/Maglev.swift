/// A Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI'16,
/// section 3.4): `size` slots, each naming one backend, so that a flow hashed to a slot always reaches the same
/// backend.
///
/// The table is kernel state shared by every node and across upgrades: each node renders it into an nft map that
/// `jhash <flow> mod M` indexes, and a flow that ECMP moves from one node to another only keeps its backend if both
/// nodes built the same table. So the table is a pure function of the *set* of backend identities and the size:
/// input order and duplicates do not matter, no history is consulted, and both hashes are fixed forever (golden
/// tests pin them).
public struct MaglevTable: Hashable, Sendable {
    /// Distinct backend identities (e.g. `"10.0.0.5:8080"`), sorted by their UTF-8 bytes so that the order, and
    /// therefore the population order below, is the same on every node and independent of Unicode tables.
    public let backends: [String]
    /// `slots[i]` is an index into `backends`; `slots.count == size`, a prime (empty when there are no backends).
    public let slots: [Int]

    /// The number of slots, M: the number of elements the kernel map holds for this service port.
    public var size: Int { slots.count }

    /// Builds the NSDI'16 table for `backends` (in any order, duplicates ignored) with `size` slots.
    ///
    /// Each backend gets a permutation of the slots, `offset + j * skip (mod M)`, with `offset = h1 mod M` and
    /// `skip = h2 mod (M - 1) + 1` from two independent stable hashes of its identity; because M is prime, every
    /// skip is coprime with M and the permutation visits every slot. Backends then take turns, in sorted order,
    /// claiming the next still-free slot of their permutation until the table is full. The turns are what make the
    /// shares even (every backend ends with floor(M/N) or ceil(M/N) slots); the permutations are what keep most
    /// slots in place when a backend comes or goes.
    ///
    /// With no backends the table is empty whatever `size` says: there is nothing to map to, and the compiler
    /// rejects traffic for such a port instead. With more backends than slots only the first `size` backends in
    /// sorted order get a slot, which the sizing rule never asks for below its top rung.
    ///
    /// - Precondition: `size` is prime when `backends` is not empty.
    public init(backends: some Sequence<String>, size: Int) {
        let ids = Self.canonicalBackends(backends)
        self.backends = ids
        guard !ids.isEmpty else {
            self.slots = []
            return
        }
        precondition(Self.isPrime(size), "a Maglev table size must be prime, got \(size)")
        var offsets: [Int] = []
        var skips: [Int] = []
        offsets.reserveCapacity(ids.count)
        skips.reserveCapacity(ids.count)
        let m = UInt64(size)
        for id in ids {
            offsets.append(Int(Self.offsetHash(id) % m))
            skips.append(Int(Self.skipHash(id) % (m - 1)) + 1)
        }
        self.slots = Self.populate(offsets: offsets, skips: skips, size: size)
    }

    /// Builds the table for `backends` with the size the sizing rule gives for their distinct count.
    public init(backends: some Sequence<String>) {
        let ids = Self.canonicalBackends(backends)
        self.init(backends: ids, size: Self.size(forBackendCount: ids.count))
    }

    /// The backend identity a slot maps to.
    public func backend(forSlot slot: Int) -> String {
        backends[slots[slot]]
    }

    /// How many slots each backend holds, in `backends` order.
    public var shares: [Int] {
        var counts = [Int](repeating: 0, count: backends.count)
        for b in slots {
            counts[b] += 1
        }
        return counts
    }

    /// The number of slots whose backend identity differs between `old` and this table: the map elements an update
    /// rewrites and the share of new flows that land elsewhere.
    ///
    /// Tables of different sizes differ in every slot: the kernel hashes flows `mod M`, so when M changes every
    /// flow is rehashed and the whole map is replaced.
    public func changedSlotCount(from old: MaglevTable) -> Int {
        guard old.size == size else { return Swift.max(old.size, size) }
        var changed = 0
        for i in 0..<size where old.backends[old.slots[i]] != backends[slots[i]] {
            changed += 1
        }
        return changed
    }

    // MARK: - Sizing

    /// The prime ladder M is chosen from: the largest prime below each power of two from 2^4 to 2^16.
    ///
    /// Primes, because the permutation's skip must be coprime with M for every backend; roughly doubling, because
    /// that bounds both the waste (a table is never more than about twice the size its backend count needs) and
    /// the number of distinct sizes a service passes through as it scales (see `size(forBackendCount:)`). Changing
    /// this list changes the tables every node computes, so it is as stable as the hashes.
    public static let ladder: [Int] = [13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521]

    /// The minimum mean share, in slots per backend, that the sizing rule guarantees.
    public static let minimumSlotsPerBackend = 10

    /// The table size M for `n` distinct backends: the smallest ladder prime with at least 10 slots per backend
    /// (`M >= 10 n`); the smallest rung (13) for n <= 1, and the top rung (65521) for n > 6552.
    ///
    /// **Why a function of n alone.** Every node builds its table independently from the same EndpointSlices, and
    /// they agree only if M does. A rule that remembered the previous M (true hysteresis) would let two nodes that
    /// saw different histories (one restarted, one did not) disagree for as long as the service lives. The ladder
    /// is the substitute: M changes only when n crosses a rung's threshold (n = 2, 4, 7, 13, 26, 51, 103, 204,
    /// 410, 820, 1639, 3275), a dozen times over a service's whole range rather than on every scale step. Crossing
    /// one replaces the whole map and rehashes every new flow (`jhash mod M` changes); established connections keep
    /// their conntrack entry on the node that has them.
    ///
    /// **Balance.** Round-robin population gives every backend floor(M/n) or ceil(M/n) slots, always less than one
    /// slot from the mean M/n. With `M >= 10 n` one slot is at most 10% of the mean, so every share is within 10%
    /// of the mean whatever the fractional part of M/n. The exact criterion,
    /// `max(M/n - floor(M/n), ceil(M/n) - M/n) / (M/n) <= 0.10`, admits some smaller M, but not monotonically:
    /// 127 slots pass for n = 13 and 15 but fail for 14 (shares of 9 and 10 around a mean of 9.07), so "the
    /// smallest rung that passes" would flap between sizes as a deployment scales by one. Made monotonic (stay on
    /// a rung until n first fails) it reaches about M/9.1 instead of M/10 (127 up to n = 13, 1021 up to 112), a
    /// saving on one n in ten, not worth a rule nobody can check by hand. Above n = 6552 the top rung keeps M at
    /// 65521 and shares drift further from the mean (M/n < 10); above 65521 backends some get no slot.
    ///
    /// **Cost.** The kernel pays about 100 bytes and 12 µs of `nft -f` per map element, and a service port's map
    /// holds M elements:
    ///
    ///     backends n   1    2    3    5   10   20   50   100   1000
    ///     M (slots)   13   31   31   61  127  251  509  1021  16381
    ///
    /// so 10k service ports of 10 endpoints hold 1.27M elements: about 127 MB, and 15 s for a full sync from
    /// scratch (partial syncs write only changed elements).
    ///
    /// **Disruption, the price of that budget.** Maglev keeps its shares even by letting backends take turns, so
    /// removing one of n backends moves not only that backend's slots but also some slots between survivors, and
    /// the fewer slots per backend, the more. Measured with this rule for every removal at every n in 2...200 and
    /// three families of identities (sequential IPv4, sequential IPv6, scattered IPv4 with mixed ports), slots
    /// moved between survivors average 3.1% of M, worst 22.8% (n = 7, M = 61); adding one backend moves on
    /// average 4.0% of M besides the newcomer's share, worst 15.0% (n = 12). In total, removing one backend moves
    /// at worst 52% of M for n = 2 (ideal 50%), 31% for n = 10 (ideal 10%), 11% for n = 37 (2.7%), 5.7% for
    /// n = 100 (1%), 3.6% for n = 200 (0.5%). Bounding it by M/n + 1% of M takes M = 8191 to 32749 for n = 10
    /// (depending on the identities), 32749 for n = 100 and 65521 for n = 200: 330 to 3300 slots per backend,
    /// 30x to 260x the elements of this rule, i.e. 8 to 33 GB of kernel memory for the 10k x 10 cluster above.
    /// We accept the churn: it reassigns only new flows (conntrack pins established ones to their backend), and it
    /// matters across nodes only for flows that also change node while the endpoints change.
    public static func size(forBackendCount n: Int) -> Int {
        let (wanted, overflow) = Swift.max(n, 1).multipliedReportingOverflow(by: minimumSlotsPerBackend)
        if overflow { return ladder[ladder.count - 1] }
        return ladder.first { $0 >= wanted } ?? ladder[ladder.count - 1]
    }

    // MARK: - Construction

    /// Distinct identities sorted by UTF-8 bytes. Swift's `String` comparison and equality follow Unicode canonical
    /// equivalence, whose tables can change between toolchains; bytes cannot.
    static func canonicalBackends(_ backends: some Sequence<String>) -> [String] {
        let sorted = backends.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var out: [String] = []
        out.reserveCapacity(sorted.count)
        for id in sorted where !(out.last.map { $0.utf8.elementsEqual(id.utf8) } ?? false) {
            out.append(id)
        }
        return out
    }

    /// FNV-1a state after the salt `switchboard/maglev/offset` and a NUL; continuing from it hashes salt + identity.
    private static let offsetSalt = FNV1a64.hash("switchboard/maglev/offset\u{0}".utf8)
    /// As `offsetSalt`, for the skip. The two salts start FNV-1a from different states, and each FNV-1a step is a
    /// bijection of the state, so an identity's two hashes always differ; `fmix64` then decorrelates them.
    private static let skipSalt = FNV1a64.hash("switchboard/maglev/skip\u{0}".utf8)

    /// h1: `fmix64(FNV-1a-64("switchboard/maglev/offset\0" + identity))`.
    static func offsetHash(_ id: String) -> UInt64 {
        stableMix64(FNV1a64.hash(id.utf8, state: offsetSalt))
    }

    /// h2: `fmix64(FNV-1a-64("switchboard/maglev/skip\0" + identity))`.
    static func skipHash(_ id: String) -> UInt64 {
        stableMix64(FNV1a64.hash(id.utf8, state: skipSalt))
    }

    /// The population loop of NSDI'16 Pseudocode 1, on integers only.
    ///
    /// Instead of materialising the N×M permutation matrix, each backend keeps a cursor, its permutation's next
    /// candidate slot, and advances it by its skip, so the build costs O(N) memory besides the table and
    /// O(M log M) probes on average.
    static func populate(offsets: [Int], skips: [Int], size m: Int) -> [Int] {
        let n = offsets.count
        var cursor = offsets
        var table = [Int](repeating: -1, count: m)
        var filled = 0
        while true {
            for i in 0..<n {
                let skip = skips[i]
                var c = cursor[i]
                while table[c] >= 0 {
                    c += skip
                    if c >= m { c -= m }
                }
                table[c] = i
                c += skip
                if c >= m { c -= m }
                cursor[i] = c
                filled += 1
                if filled == m { return table }
            }
        }
    }

    /// Trial division; sizes are at most a few hundred thousand, so this is a few hundred steps.
    static func isPrime(_ x: Int) -> Bool {
        if x < 2 { return false }
        if x < 4 { return true }
        if x % 2 == 0 { return false }
        var d = 3
        while d * d <= x {
            if x % d == 0 { return false }
            d += 2
        }
        return true
    }
}
