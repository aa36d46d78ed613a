import NetworkTypes
import Testing

/// Parsing and printing addresses and prefixes: strict on input (as Kubernetes validation), canonical on output
/// (as nft and `inet_ntop` print).
@Suite struct IPAddressTests {
    @Test(arguments: [
        ("10.0.0.1", "10.0.0.1", IPFamily.v4), ("0.0.0.0", "0.0.0.0", .v4), ("255.255.255.255", "255.255.255.255", .v4),
        ("FD00:0::1", "fd00::1", .v6), ("2001:DB8:0:0:0:0:0:1", "2001:db8::1", .v6), ("::", "::", .v6),
        ("0:0:0:0:0:0:0:1", "::1", .v6), ("fe80:0:0:0:1:0:0:0", "fe80::1:0:0:0", .v6),
        ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1", .v6), ("::ffff:10.0.0.1", "::ffff:10.0.0.1", .v6),
    ])
    func ipAddressParsesToCanonicalText(text: String, canonical: String, family: IPFamily) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == canonical)
        #expect(address.family == family)
        #expect(IPAddress(canonical) == address)
    }

    @Test(arguments: [
        "010.0.0.1", "10.0.0.01", "10.00.0.1", "1.2.3", "1.2.3.4.5", "256.0.0.1", "", " 10.0.0.1", "10.0.0.1 ",
        "10.0.0.-1", "+1.2.3.4", "1.2.3.4/32", "１.2.3.4", "fe80::1%eth0", "::ffff:010.0.0.1", "1:2:3:4:5:6:7:8:9",
        "gg::1", ":::1", "1.2.3.4:80", "0x0a.0.0.1",
    ])
    func ipAddressRejects(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test(arguments: [
        ("10.1.2.3/8", "10.0.0.0/8"), ("192.168.1.255/24", "192.168.1.0/24"), ("10.0.0.1/32", "10.0.0.1"),
        ("11.0.0.0/7", "10.0.0.0/7"), ("0.0.0.0/0", "0.0.0.0/0"), ("fd00::1/64", "fd00::/64"),
        ("FD00:0:0:0:ffff::1/112", "fd00::ffff:0:0:0/112"), ("2001:db8:abcd:12::1/48", "2001:db8:abcd::/48"),
        ("::1/128", "::1"),
    ])
    func cidrIsMaskedAndCanonical(text: String, canonical: String) throws {
        #expect(try #require(CIDR(text)).description == canonical)
    }

    @Test(arguments: [
        "10.0.0.0/33", "10.0.0.0", "10.0.0.0/", "/8", "010.0.0.0/8", "fd00::/129", "10.0.0.0/-1", "10.0.0.0/8/8",
        "10.0.0.0/ 8", "10.0.0.0/+8",
    ])
    func cidrRejects(text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test func cidrContains() throws {
        let v4 = try #require(CIDR("10.0.0.0/8"))
        #expect(v4.contains(ip("10.255.0.1")))
        #expect(!v4.contains(ip("11.0.0.1")))
        #expect(!v4.contains(ip("::ffff:10.0.0.1")))
        let v6 = try #require(CIDR("fd00:10:96::/108"))
        #expect(v6.contains(ip("fd00:10:96::6c36")))
        #expect(!v6.contains(ip("fd00:10:97::1")))
    }
}

private func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}
