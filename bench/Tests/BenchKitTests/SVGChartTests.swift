import Foundation
import Testing

@testable import BenchKit

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Collects what the SVG tests look at while proving the document parses as XML.
final class SVGInspector: NSObject, XMLParserDelegate {
    var elements: [String: Int] = [:]
    var classes: [String] = []
    var seriesNames: [String] = []
    var texts: [String] = []
    var polylinePoints: [String] = []
    private var text = ""

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        elements[name, default: 0] += 1
        if let c = attributes["class"] { classes.append(c) }
        if name == "g", attributes["class"] == "series", let n = attributes["data-name"] { seriesNames.append(n) }
        if name == "polyline" { polylinePoints.append(attributes["points"] ?? "") }
        text = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" { texts.append(text) }
    }

    static func inspect(_ svg: String) throws -> SVGInspector {
        let inspector = SVGInspector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = inspector
        let ok = parser.parse()
        try #require(ok, "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
        return inspector
    }
}

@Suite("SVG chart")
struct SVGChartTests {
    let series = [
        ChartSeries(name: "Switchboard <libnftables> & co", [(100, 20), (1000, 250), (10000, 3500), (30000, 11000)]),
        ChartSeries(name: "nft -f \"exec\"", [(100, 30), (1000, 100), (10000, 1000)], dashed: true),
        ChartSeries(name: "kube-proxy", [(100, 400), (10000, 9000)]),
    ]

    @Test(arguments: [LineChart.Scale.log, .linear])
    func wellFormedWithOnePolylinePerSeriesAndLabelledAxes(yScale: LineChart.Scale) throws {
        let chart = LineChart(
            title: "Sync latency", xLabel: "Services", yLabel: "latency (ms)", series: series, yScale: yScale
        )
        let svg = chart.svg()
        let doc = try SVGInspector.inspect(svg)
        #expect(doc.elements["svg"] == 1)
        #expect(doc.elements["polyline"] == series.count)
        #expect(doc.seriesNames == series.map(\.name))  // names survive escaping
        #expect(doc.elements["circle"] == series.map(\.points.count).reduce(0, +))
        #expect(doc.classes.contains("x-axis") && doc.classes.contains("y-axis"))
        for label in ["Services", "latency (ms)", "Sync latency"] { #expect(doc.texts.contains(label)) }
        // Tick labels on both axes: the x axis spans 100..30k, so 100, 1k, 10k and 100k are there.
        for label in ["100", "1k", "10k"] { #expect(doc.texts.contains(label), "no x tick \(label)") }
        // The legend names every series.
        for s in series { #expect(doc.texts.contains(s.name)) }
        #expect(chart.svg() == svg)  // deterministic
    }

    @Test func pointsAreInsideThePlotAndOrderedByX() throws {
        let chart = LineChart(
            title: "t", xLabel: "x", yLabel: "y",
            series: [ChartSeries(name: "s", [(1000, 5), (100, 1), (10000, 50)])], width: 600, height: 400
        )
        let doc = try SVGInspector.inspect(chart.svg())
        let points = try #require(doc.polylinePoints.first).split(separator: " ").map { pair in
            pair.split(separator: ",").map { Double($0)! }
        }
        #expect(points.count == 3)
        #expect(points.map { $0[0] } == points.map { $0[0] }.sorted())
        for p in points { #expect(p[0] >= 0 && p[0] <= 600 && p[1] >= 0 && p[1] <= 400) }
    }

    @Test func logAxesSkipValuesThatCannotBePlotted() throws {
        let chart = LineChart(
            title: "t", xLabel: "x", yLabel: "y",
            series: [ChartSeries(name: "s", [(100, 0), (1000, 5), (.nan, 3)]), ChartSeries(name: "empty", [])]
        )
        let doc = try SVGInspector.inspect(chart.svg())
        #expect(doc.elements["polyline"] == 2)
        #expect(doc.elements["circle"] == 1)
    }

    @Test func chartsFromResults() throws {
        let results = sampleResults()
        let sync = try SVGInspector.inspect(results.syncLatencyChart().svg())
        #expect(sync.elements["polyline"] == 3)
        let kubeProxy = ChartSeries(name: "kube-proxy (nftables mode)", [(100, 900), (10000, 20000)])
        let more = try SVGInspector.inspect(results.syncLatencyChart(more: [kubeProxy]).svg())
        #expect(more.elements["polyline"] == 4)
        #expect(more.seriesNames.last == "kube-proxy (nftables mode)")
        let dataPlane = try SVGInspector.inspect(results.dataPlaneChart().svg())
        #expect(dataPlane.elements["polyline"] == 3)
        #expect(dataPlane.texts.contains("connect time (µs)"))
    }

    @Test(arguments: [(100.0, "100"), (1000, "1k"), (20000, "20k"), (0.5, "0.5"), (2.5, "2.5"), (0.02, "0.02"),
                      (1500, "1500")])
    func tickLabels(value: Double, text: String) {
        #expect(tickLabel(value) == text)
    }

    /// `svg()` is now a document around `body()`; the document must be as it was.
    @Test func singleChartDocumentShape() throws {
        let svg = LineChart(title: "t <1>", xLabel: "x", yLabel: "y", series: series).svg()
        #expect(svg.hasPrefix("""
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="760" height="460" viewBox="0 0 760 460" \
            font-family="sans-serif" font-size="12">
            <title>t &lt;1&gt;</title>
            <rect width="760" height="460" fill="white"/>

            """))
        #expect(svg.hasSuffix("</g>\n</svg>\n"))
    }

    @Test func stackedChartsShareOneDocument() throws {
        let top = LineChart(title: "memory", xLabel: "Services", yLabel: "MiB", series: series, height: 400)
        let bottom = LineChart(
            title: "time", xLabel: "Services", yLabel: "s", series: [series[0]], width: 600, height: 300)
        let svg = stackedSVG([top, bottom], title: "both & more")
        let doc = try SVGInspector.inspect(svg)
        #expect(doc.elements["svg"] == 1 && doc.elements["title"] == 1)
        #expect(doc.elements["polyline"] == series.count + 1)
        #expect(doc.classes.filter { $0 == "panel" }.count == 2)
        for label in ["memory", "time", "MiB", "s"] { #expect(doc.texts.contains(label)) }
        // As wide as the widest, as high as both; the second panel starts below the first.
        #expect(svg.contains("width=\"760\" height=\"700\" viewBox=\"0 0 760 700\""))
        #expect(svg.contains("<g class=\"panel\" transform=\"translate(0 400)\">"))
        #expect(svg.contains("<title>both &amp; more</title>"))
        #expect(stackedSVG([top, bottom], title: "both & more") == svg)
    }

    @Test func escaping() {
        #expect(escapeXML("a<b>&\"c\"'") == "a&lt;b&gt;&amp;&quot;c&quot;&apos;")
    }
}
