import NetworkTypes
import Testing

/// A filter matches the entries whose fields equal the ones it names; a field it leaves out matches anything.
@Suite struct ConntrackFilterTests {
    @Test func filterMatching() {
        let f = ConntrackFilter(family: .v4, protocol: .udp, originalDestination: ip("10.96.0.10"),
                                originalDestinationPort: 53, replySource: ip("10.244.1.2"))
        #expect(f.matches(family: .v4, protocol: .udp, originalDestination: ip("10.96.0.10"), originalDestinationPort: 53,
                          replySource: ip("10.244.1.2")))
        #expect(!f.matches(family: .v4, protocol: .udp, originalDestination: ip("10.96.0.10"), originalDestinationPort: 53,
                           replySource: ip("10.244.1.3")))
        #expect(!f.matches(family: .v4, protocol: .tcp, originalDestination: ip("10.96.0.10"), originalDestinationPort: 53,
                           replySource: ip("10.244.1.2")))
        let any = ConntrackFilter(family: .v4, protocol: .udp, originalDestinationPort: 30053)
        #expect(any.matches(family: .v4, protocol: .udp, originalDestination: ip("10.200.0.1"), originalDestinationPort: 30053,
                            replySource: ip("10.244.1.7")))
        #expect(!any.matches(family: .v6, protocol: .udp, originalDestination: ip("fd00::1"), originalDestinationPort: 30053,
                             replySource: ip("fd00::2")))
    }
}

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
