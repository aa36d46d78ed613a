import SwitchboardCore
import Testing

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("1s", Duration.seconds(1)), ("500ms", .milliseconds(500)), ("1m30s", .seconds(90)), ("2h", .seconds(7200)),
        ("0", .zero), ("1.5s", .milliseconds(1500)), ("100us", .microseconds(100)), ("30s", .seconds(30)),
    ])
    func parses(text: String, expected: Duration) { #expect(GoDuration.parse(text) == expected) }

    @Test(arguments: ["", "1", "s", "1x", "-1s", "1s2", "abc"])
    func rejects(text: String) { #expect(GoDuration.parse(text) == nil) }
}
