import SwitchboardCore
import Testing

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("1s", Duration.seconds(1)), ("500ms", .milliseconds(500)), ("1m30s", .seconds(90)), ("2h", .seconds(7200)),
        ("0", .zero), ("1.5s", .milliseconds(1500)), ("100us", .microseconds(100)), ("30s", .seconds(30)),
    ])
    func parses(text: String, expected: Duration) { #expect(GoDuration.parse(text) == expected) }

    /// Found by FuzzTests: trimming a long blank run took time quadratic in its length (half a minute at 64k).
    @Test func longBlankRunsAreTrimmed() {
        let blanks = String(repeating: " ", count: 100_000)
        #expect(GoDuration.parse("1s" + blanks) == .seconds(1))
        #expect(GoDuration.parse(blanks + "2m" + blanks) == .seconds(120))
        #expect(GoDuration.parse("1" + blanks) == nil)
    }

    @Test(arguments: ["", "1", "s", "1x", "-1s", "1s2", "abc"])
    func rejects(text: String) { #expect(GoDuration.parse(text) == nil) }
}
