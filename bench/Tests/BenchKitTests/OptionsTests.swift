import Testing

@testable import BenchKit

@Suite("option parsing")
struct OptionsTests {
    @Test func defaults() throws {
        let o = try Options.parse([])
        #expect(o.sizes == [100, 1000, 10000, 30000])
        #expect(o.changes == 200 && o.endpointsPerService == 10 && o.connects == 2000)
        #expect(!o.quick && o.resultBaseName == "latest")
    }

    @Test func quickShrinksWhatWasNotGiven() throws {
        let o = try Options.parse(["--quick"])
        #expect(o.sizes == [100, 1000] && o.changes == 30 && o.connects == 300)
        #expect(o.resultBaseName == "quick")
        let given = try Options.parse(["--changes", "7", "--quick", "--sizes", "50", "--connects", "0"])
        #expect(given.sizes == [50] && given.changes == 7 && given.connects == 0)
    }

    @Test func everyFlag() throws {
        let o = try Options.parse([
            "--sizes", "100,2000", "--endpoints", "3", "--changes", "20", "--connects", "500",
            "--output", "/tmp/x", "--seed", "9", "--cold-batches-above", "0",
        ])
        var expected = Options()
        expected.sizes = [100, 2000]
        expected.endpointsPerService = 3
        expected.changes = 20
        expected.connects = 500
        expected.outputDirectory = "/tmp/x"
        expected.seed = 9
        expected.coldBatchesAbove = 0
        #expect(o == expected)
        #expect(try Options.parse([]).coldBatchesAbove == 2_000_000)
    }

    @Test(arguments: [
        ["--sizes"], ["--sizes", "100,x"], ["--sizes", "0"], ["--sizes", ""], ["--changes", "-1"],
        ["--connects", "-5"], ["--endpoints", "many"], ["--seed", "-1"], ["--frobnicate"], ["--help"],
        ["--cold-batches-above", "-1"], ["--cold-batches-above", "lots"],
    ])
    func rejects(arguments: [String]) {
        #expect(throws: Options.UsageError.self) { try Options.parse(arguments) }
    }
}
