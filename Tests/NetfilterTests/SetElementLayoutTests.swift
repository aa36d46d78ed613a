import NFTModel
import SwitchboardCore
import Testing

@testable import Netfilter

/// The bytes `NetlinkSetElements` sends for an element, without a kernel: each concatenated field padded to
/// a 32-bit register, addresses and ports in network order, the Maglev slot in host order.
@Suite struct SetElementLayoutTests {
    static func encode(_ types: [String], _ text: String) throws -> [UInt8] {
        let layout = try #require(ValueLayout(types: types))
        // The encoder writes whole registers; the kernel gets `length` bytes of them.
        var bytes = [UInt8](repeating: 0xAA, count: 64)
        var text = text
        try text.withUTF8 { utf8 in
            try bytes.withUnsafeMutableBytes { out in try layout.encode(utf8, into: out.baseAddress!) }
        }
        return Array(bytes.prefix(layout.length))
    }

    /// The slot's 4 bytes as the CPU stores a `UInt32`: what numgen and jhash leave in their register.
    static func host(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    static let vip = ["ipv4_addr", "inet_proto", "inet_service"]

    @Test func backendsKeyAndData() throws {
        #expect(
            try Self.encode(Self.vip + ["integer"], "10.96.0.10 . tcp . 80 . 17")
                == [10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0] + Self.host(17))
        #expect(
            try Self.encode(["ipv4_addr", "inet_service"], "10.244.1.5 . 8080") == [10, 244, 1, 5, 0x1F, 0x90, 0, 0])
        #expect(
            try Self.encode(["inet_proto", "inet_service", "integer"], "sctp . 30000 . 65520")
                == [132, 0, 0, 0, 0x75, 0x30, 0, 0] + Self.host(65520))
        #expect(
            try Self.encode(["ipv4_addr", "ipv4_addr"], "10.244.1.5 . 10.244.1.5") == [10, 244, 1, 5, 10, 244, 1, 5])
        #expect(try Self.encode(["mark"], "0x00004000") == Self.host(0x4000))
        // A single type is not padded: the canary's key is 2 bytes, a lone protocol 1.
        #expect(try Self.encode(["inet_proto"], "17") == [17])
        #expect(try Self.encode(["inet_service"], "1") == [0, 1])
        #expect(try Self.encode(["ipv4_addr"], "10.96.0.1") == [10, 96, 0, 1])
    }

    @Test func ipv6() throws {
        let key = try Self.encode(
            ["ipv6_addr", "inet_proto", "inet_service", "integer"], "fd00:10:96::a . udp . 53 . 4092")
        #expect(key.count == 28)
        #expect(key.prefix(16) == [0xFD, 0, 0, 0x10, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0A][...])
        #expect(Array(key.dropFirst(16)) == [17, 0, 0, 0, 0, 53, 0, 0] + Self.host(4092))
        let loopback = [UInt8](repeating: 0, count: 15) + [1]
        #expect(try Self.encode(["ipv6_addr", "inet_service"], "::1 . 443") == loopback + [1, 0xBB, 0, 0])
    }

    @Test(arguments: [
        (["ipv4_addr"], "10.0.0.256", "field 1 \"10.0.0.256\" is not a valid ipv4_addr"),
        (["ipv4_addr"], "10.0.0", "field 1 \"10.0.0\" is not a valid ipv4_addr"),
        (["ipv4_addr"], "010.0.0.1", "field 1 \"010.0.0.1\" is not a valid ipv4_addr"),
        (["ipv4_addr", "inet_proto"], "10.0.0.1 . tcpx", "field 2 \"tcpx\" is not a valid inet_proto"),
        (["inet_service"], "65536", "field 1 \"65536\" is not a valid inet_service"),
        (["inet_service"], "http", "field 1 \"http\" is not a valid inet_service"),
        (["integer"], "4294967296", "field 1 \"4294967296\" is not a valid integer"),
        (["ipv6_addr"], "10.0.0.1", "field 1 \"10.0.0.1\" is not a valid ipv6_addr"),
        (["ipv4_addr", "inet_service"], "10.0.0.1", "expected 2 fields separated by \" . \""),
        (["ipv4_addr", "inet_service"], "10.0.0.1 . 80 . 7", "field 2 \"80 . 7\" is not a valid inet_service"),
        (["ipv4_addr", "inet_service"], "10.0.0.1 .80", "expected 2 fields separated by \" . \""),
    ])
    func rejectsText(types: [String], text: String, reason: String) throws {
        let layout = try #require(ValueLayout(types: types))
        var bytes = [UInt8](repeating: 0, count: 64)
        var text = text
        let error = try #require(throws: ElementTextError.self) {
            try text.withUTF8 { utf8 in
                try bytes.withUnsafeMutableBytes { out in try layout.encode(utf8, into: out.baseAddress!) }
            }
        }
        #expect(error.describe(types: types) == reason)
    }

    @Test func comments() throws {
        func split(_ key: String) throws -> (String, String?) {
            var key = key
            return try key.withUTF8 { bytes in
                let (length, comment) = try splitComment(bytes)
                return (
                    String(decoding: bytes[..<length], as: UTF8.self),
                    comment.map { String(decoding: bytes[$0], as: UTF8.self) }
                )
            }
        }
        #expect(try split("10.96.0.1 . tcp . 80") == ("10.96.0.1 . tcp . 80", nil))
        #expect(try split("10.96.0.1 . tcp . 80 comment \"ns/svc:http\"") == ("10.96.0.1 . tcp . 80", "ns/svc:http"))
        #expect(try split("10.96.0.1 comment \"\"") == ("10.96.0.1", ""))
        #expect(try split("10.96.0.1 comment \"" + String(repeating: "x", count: 128) + "\"").1?.count == 128)
        for bad in [
            "10.96.0.1 comment \"unterminated", "10.96.0.1 comment \"a\"b\"",
            "10.96.0.1 comment \"" + String(repeating: "x", count: 129) + "\"",
        ] {
            #expect(throws: ElementTextError.comment) { _ = try split(bad) }
        }
    }

    /// Which of the skeleton's sets have a layout (what `NetlinkSetElements.canWrite` says): all but ranges,
    /// timeouts and verdict maps.
    @Test func layoutsOfTheSkeletonsSets() throws {
        let ruleset = compile(ClusterState(), for: NodeContext(nodeName: "node-a")).ruleset
        let table = try #require(ruleset[TableID(.ip, NodeContext.defaultTableName)])
        func hasLayout(_ set: NFTSet) -> Bool { SetElementLayout(set) != nil }
        let refused = table.sets.values.filter { !hasLayout($0) }.map(\.name).sorted()
        let ranges = [RulesetNames.firewallAllow, RulesetNames.nodePortAddresses, RulesetNames.podCIDRs]
        let packetPath = [RulesetNames.affinity, RulesetNames.affinityNodePorts, RulesetNames.affinityServices]
        #expect(refused == (ranges + packetPath).sorted())
        for name in [
            RulesetNames.backends, RulesetNames.nodePortBackends, RulesetNames.hairpin, RulesetNames.serviceVIPs(13),
        ] {
            #expect(hasLayout(try #require(table.sets[name])))
        }
        #expect(hasLayout(NFTSet(name: "slots", keyType: .hashSlot, dataType: "ipv4_addr", size: 13)))
        #expect(!hasLayout(NFTSet(name: "slots", keyType: .hashSlot, dataType: "verdict", size: 13)))
        #expect(!hasLayout(NFTSet(name: "s", keyType: .types(["ether_addr"]))))
        #expect(!hasLayout(NFTSet(name: "s", keyType: .types([]))))
        // Five IPv6 addresses are 80 bytes: more than a key may have.
        #expect(!hasLayout(NFTSet(name: "s", keyType: .types(Array(repeating: "ipv6_addr", count: 5)))))
    }
}
