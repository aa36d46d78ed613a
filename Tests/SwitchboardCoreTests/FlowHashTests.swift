import NetworkTypes
import SwitchboardCore
import Testing

/// The slot a flow hashes to, checked against what the kernel computed. Each vector was observed on Linux
/// 6.18 with nft 1.0.6: a rule `ct mark set jhash ip saddr . th sport mod M seed 0x5b1e0c1d` (and its ip6
/// twin) in a scratch namespace, one UDP datagram per flow, the slot read back as the conntrack entry's
/// mark. `FlowHashKernelTests` (EndToEndTests) repeats the observation against the running kernel.
@Suite("FlowHash: the kernel's jhash of a flow")
struct FlowHashTests {
    /// (source, source port, M, slot the kernel chose)
    static let observed: [(String, Int, Int, Int)] = [
        ("10.1.2.1", 1, 13, 3), ("10.1.2.1", 1, 61, 15), ("10.1.2.1", 1, 251, 64), ("10.1.2.1", 1, 4093, 1044),
        ("10.1.2.1", 1, 65521, 16713),
        ("10.1.2.1", 40000, 13, 11), ("10.1.2.1", 40000, 61, 54), ("10.1.2.1", 40000, 251, 226),
        ("10.1.2.1", 40000, 4093, 3688), ("10.1.2.1", 40000, 65521, 59047),
        ("10.1.2.1", 65535, 13, 10), ("10.1.2.1", 65535, 61, 49), ("10.1.2.1", 65535, 251, 205),
        ("10.1.2.1", 65535, 4093, 3344), ("10.1.2.1", 65535, 65521, 53534),
        ("10.77.3.9", 32768, 13, 2), ("10.77.3.9", 32768, 61, 13), ("10.77.3.9", 32768, 251, 57),
        ("10.77.3.9", 32768, 4093, 929), ("10.77.3.9", 32768, 65521, 14883),
        ("10.77.3.9", 55555, 13, 7), ("10.77.3.9", 55555, 61, 36), ("10.77.3.9", 55555, 251, 148),
        ("10.77.3.9", 55555, 4093, 2416), ("10.77.3.9", 55555, 65521, 38689),
        ("127.0.0.1", 12345, 13, 12), ("127.0.0.1", 12345, 61, 56), ("127.0.0.1", 12345, 251, 232),
        ("127.0.0.1", 12345, 4093, 3790), ("127.0.0.1", 12345, 65521, 60673),
        ("::1", 3333, 13, 4), ("::1", 3333, 61, 23), ("::1", 3333, 251, 95), ("::1", 3333, 4093, 1549),
        ("::1", 3333, 65521, 24806),
        ("fd00::1", 1, 13, 2), ("fd00::1", 1, 61, 11), ("fd00::1", 1, 251, 48), ("fd00::1", 1, 4093, 785),
        ("fd00::1", 1, 65521, 12571),
        ("fd00::1", 40000, 13, 11), ("fd00::1", 40000, 61, 54), ("fd00::1", 40000, 251, 223),
        ("fd00::1", 40000, 4093, 3639), ("fd00::1", 40000, 65521, 58263),
        ("fd00:abcd::1234", 2222, 13, 4), ("fd00:abcd::1234", 2222, 61, 21), ("fd00:abcd::1234", 2222, 251, 87),
        ("fd00:abcd::1234", 2222, 4093, 1428), ("fd00:abcd::1234", 2222, 65521, 22872),
        ("fd00:abcd::1234", 65535, 13, 12), ("fd00:abcd::1234", 65535, 61, 60),
        ("fd00:abcd::1234", 65535, 251, 249), ("fd00:abcd::1234", 65535, 4093, 4067),
        ("fd00:abcd::1234", 65535, 65521, 65120),
    ]

    @Test("every slot the kernel was seen to choose", arguments: 0..<observed.count)
    func kernelVectors(_ index: Int) throws {
        let (source, port, m, slot) = Self.observed[index]
        let address = try #require(IPAddress(source))
        #expect(FlowHash.slot(source: address, sourcePort: port, tableSize: m) == slot, "\(source):\(port) mod \(m)")
    }

    /// lookup3's published check values for `hashlittle` (lookup3.c's driver): "" and "Four score and seven
    /// years ago" with initval 0 and 1. These pin the algorithm itself, apart from the kernel's key layout.
    @Test("lookup3 reference values")
    func lookup3() {
        #expect(FlowHash.jhash([], seed: 0) == 0xdead_beef)
        let text = Array("Four score and seven years ago".utf8)
        #expect(FlowHash.jhash(text, seed: 0) == 0x1777_0551)
        #expect(FlowHash.jhash(text, seed: 1) == 0xcd62_8161)
    }

    @Test("the ruleset's seed text is FlowHash.seed")
    func seedText() {
        #expect(RulesetNames.jhashSeed == "0x5b1e0c1d")
    }

    @Test("a slot is always inside the table")
    func inRange() throws {
        let address = try #require(IPAddress("192.0.2.77"))
        for m in MaglevTable.ladder {
            for port in stride(from: 0, through: 65535, by: 4093) {
                #expect((0..<m).contains(FlowHash.slot(source: address, sourcePort: port, tableSize: m)))
            }
        }
    }
}
