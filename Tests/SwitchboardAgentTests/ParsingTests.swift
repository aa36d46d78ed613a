import Foundation
import Testing

@testable import SwitchboardAgent

@Suite struct RFC3339Tests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2023-11-14T22:13:20Z", 1_700_000_000),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000.5),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000.123456789),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000),
        ("2023-11-14T21:43:20-00:30", 1_700_000_000),
        ("2024-02-29T00:00:00Z", 1_709_164_800),
        ("1969-12-31T23:59:59Z", -1),
        ("2023-11-14t22:13:20z", 1_700_000_000),
    ])
    func parses(text: String, seconds: Double) throws {
        let date = try #require(RFC3339.parse(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 1e-6)
    }

    @Test(arguments: [
        "", "2023-11-14", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "2023-11-14T24:00:00Z", "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20Zjunk", "2023-11-14T22:13:20+0100",
        "not a date",
    ])
    func rejects(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test(arguments: [0.0, 1_700_000_000, 1_709_164_800, 951_782_400, -86_400, 4_102_444_800])
    func formatsAndParsesBack(seconds: Double) {
        let date = Date(timeIntervalSince1970: seconds)
        let text = RFC3339.format(date)
        #expect(RFC3339.parse(text) == date, "\(text)")
    }

    @Test func formatsWholeSecondsInUTC() {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_700_000_000.9)) == "2023-11-14T22:13:20Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
    }
}

@Suite struct BindAddressTests {
    @Test(
        arguments: [
            ("0.0.0.0:10256", nil, "0.0.0.0", 10256),
            ("127.0.0.1:0", nil, "127.0.0.1", 0),
            ("[::]:10256", nil, "::", 10256),
            ("[fd00::1]:80", nil, "fd00::1", 80),
            ("10.0.0.1", 10249, "10.0.0.1", 10249),
            ("::1", 10249, "::1", 10249),
            ("[::1]", 10249, "::1", 10249),
            ("localhost:9000", nil, "localhost", 9000),
        ] as [(String, Int?, String, Int)])
    func parses(text: String, defaultPort: Int?, host: String, port: Int) {
        #expect(BindAddress(text, defaultPort: defaultPort) == BindAddress(host: host, port: port))
    }

    @Test(arguments: ["", ":80", "10.0.0.1", "10.0.0.1:x", "10.0.0.1:70000", "[::1", "[::1]80", "10.0.0.1:-1"])
    func rejects(text: String) {
        #expect(BindAddress(text) == nil)
    }

    @Test func describesIPv6InBrackets() {
        #expect(BindAddress(host: "::", port: 10256).description == "[::]:10256")
        #expect(BindAddress.defaultHealthz.description == "0.0.0.0:10256")
        #expect(BindAddress.defaultMetrics.description == "127.0.0.1:10249")
    }
}

@Suite struct AgentConfigurationTests {
    @Test func defaultsAreKubeProxys() {
        let configuration = AgentConfiguration()
        #expect(configuration.minSyncPeriod == .seconds(1))
        #expect(configuration.syncPeriod == .seconds(30))
        #expect(configuration.healthzTimeout == .seconds(60))
        #expect(configuration.fullRebuildPeriod == .seconds(3600))  // kube-proxy's nftables mode: hourly
        #expect(configuration.problem == nil)
    }

    @Test func invalidPeriodsAreReported() {
        #expect(AgentConfiguration(syncPeriod: .zero).problem != nil)
        #expect(AgentConfiguration(minSyncPeriod: .seconds(40)).problem != nil)
        #expect(AgentConfiguration(minSyncPeriod: .seconds(-1)).problem != nil)
        #expect(AgentConfiguration(fullRebuildPeriod: .zero).problem == "--full-rebuild-period must be positive")
    }
}
