#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One named line of a chart: a system (Switchboard, the `nft -f` exec path, kube-proxy, ...) measured at
/// several x values.
public struct ChartSeries: Sendable, Equatable {
    public struct Point: Sendable, Equatable {
        public var x: Double
        public var y: Double
        public init(x: Double, y: Double) {
            self.x = x
            self.y = y
        }
    }

    public var name: String
    public var points: [Point]
    public var dashed: Bool

    public init(name: String, points: [Point], dashed: Bool = false) {
        self.name = name
        self.points = points
        self.dashed = dashed
    }

    public init(name: String, _ pairs: [(Double, Double)], dashed: Bool = false) {
        self.init(name: name, points: pairs.map { Point(x: $0.0, y: $0.1) }, dashed: dashed)
    }
}

/// A line chart rendered to a self-contained SVG document: one `<polyline>` per series (in a
/// `<g class="series">` with its markers), labelled axes with ticks and grid, a title and a legend. Pure and
/// deterministic: the same input gives the same bytes, so charts diff cleanly in git.
public struct LineChart: Sendable {
    public enum Scale: Sendable { case linear, log }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [ChartSeries]
    public var xScale: Scale
    public var yScale: Scale
    public var width: Int
    public var height: Int

    public init(
        title: String, xLabel: String, yLabel: String, series: [ChartSeries], xScale: Scale = .log,
        yScale: Scale = .log, width: Int = 760, height: Int = 460
    ) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.xScale = xScale
        self.yScale = yScale
        self.width = width
        self.height = height
    }

    /// Colour-blind-safe (Okabe–Ito), in series order, repeating.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

    public func svg() -> String {
        svgDocument(width: width, height: height, title: title, body: body())
    }

    /// The chart's elements, from its white background to its legend, without the document around them:
    /// `stackedSVG` places several of these in one document.
    func body() -> String {
        let legendRows = series.count
        let left = 78.0, right = 24.0, top = 44.0
        let bottom = 58.0 + 18.0 * Double(legendRows)
        let plotWidth = Double(width) - left - right
        let plotHeight = Double(height) - top - bottom

        let xAxis = Axis(values: series.flatMap { $0.points.map(\.x) }, scale: xScale)
        let yAxis = Axis(values: series.flatMap { $0.points.map(\.y) }, scale: yScale)
        func px(_ x: Double) -> Double { left + xAxis.fraction(x) * plotWidth }
        func py(_ y: Double) -> Double { top + (1 - yAxis.fraction(y)) * plotHeight }
        func n(_ v: Double) -> String { fixed(v, 1) }

        var s = "<rect width=\"\(width)\" height=\"\(height)\" fill=\"white\"/>\n"
        s += "<text class=\"title\" x=\"\(n(Double(width) / 2))\" y=\"24\" text-anchor=\"middle\" "
        s += "font-size=\"15\" font-weight=\"bold\">\(escapeXML(title))</text>\n"

        // Grid and tick labels.
        s += "<g class=\"grid\" stroke=\"#dddddd\" stroke-width=\"1\">\n"
        for t in xAxis.ticks {
            s += "<line x1=\"\(n(px(t)))\" y1=\"\(n(top))\" x2=\"\(n(px(t)))\" y2=\"\(n(top + plotHeight))\"/>\n"
        }
        for t in yAxis.ticks {
            s += "<line x1=\"\(n(left))\" y1=\"\(n(py(t)))\" x2=\"\(n(left + plotWidth))\" y2=\"\(n(py(t)))\"/>\n"
        }
        s += "</g>\n"
        s += "<g class=\"axes\" stroke=\"#333333\" stroke-width=\"1\">\n"
        s += "<line class=\"x-axis\" x1=\"\(n(left))\" y1=\"\(n(top + plotHeight))\" "
        s += "x2=\"\(n(left + plotWidth))\" y2=\"\(n(top + plotHeight))\"/>\n"
        s += "<line class=\"y-axis\" x1=\"\(n(left))\" y1=\"\(n(top))\" "
        s += "x2=\"\(n(left))\" y2=\"\(n(top + plotHeight))\"/>\n"
        s += "</g>\n"
        s += "<g class=\"tick-labels\" fill=\"#333333\">\n"
        for t in xAxis.ticks {
            s += "<text x=\"\(n(px(t)))\" y=\"\(n(top + plotHeight + 16))\" text-anchor=\"middle\">"
            s += "\(escapeXML(tickLabel(t)))</text>\n"
        }
        for t in yAxis.ticks {
            s += "<text x=\"\(n(left - 6))\" y=\"\(n(py(t) + 4))\" text-anchor=\"end\">"
            s += "\(escapeXML(tickLabel(t)))</text>\n"
        }
        s += "</g>\n"
        s += "<text class=\"x-label\" x=\"\(n(left + plotWidth / 2))\" y=\"\(n(top + plotHeight + 36))\" "
        s += "text-anchor=\"middle\">\(escapeXML(xLabel))</text>\n"
        let yMid = top + plotHeight / 2
        s += "<text class=\"y-label\" x=\"18\" y=\"\(n(yMid))\" text-anchor=\"middle\" "
        s += "transform=\"rotate(-90 18 \(n(yMid)))\">\(escapeXML(yLabel))</text>\n"

        // One group per series: the polyline, then a marker per point.
        for (i, line) in series.enumerated() {
            let colour = Self.palette[i % Self.palette.count]
            let points = line.points.filter { xAxis.accepts($0.x) && yAxis.accepts($0.y) }.sorted { $0.x < $1.x }
            s += "<g class=\"series\" data-name=\"\(escapeXML(line.name))\">\n"
            s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\""
            s += line.dashed ? " stroke-dasharray=\"6 4\"" : ""
            s += " points=\"\(points.map { "\(n(px($0.x))),\(n(py($0.y)))" }.joined(separator: " "))\"/>\n"
            for p in points {
                s += "<circle cx=\"\(n(px(p.x)))\" cy=\"\(n(py(p.y)))\" r=\"3\" fill=\"\(colour)\"/>\n"
            }
            s += "</g>\n"
        }

        // The legend, under the x-axis label.
        s += "<g class=\"legend\">\n"
        for (i, line) in series.enumerated() {
            let colour = Self.palette[i % Self.palette.count]
            let y = top + plotHeight + 56 + 18 * Double(i)
            s += "<line x1=\"\(n(left))\" y1=\"\(n(y - 4))\" x2=\"\(n(left + 28))\" y2=\"\(n(y - 4))\" "
            s += "stroke=\"\(colour)\" stroke-width=\"2\"\(line.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            s += "<text x=\"\(n(left + 36))\" y=\"\(n(y))\">\(escapeXML(line.name))</text>\n"
        }
        s += "</g>\n"
        return s
    }

    /// An axis's domain and ticks. Log axes span whole decades with ticks at 1, 2 and 5 × 10^k; linear axes
    /// start at 0 (for non-negative data, so a flat line looks flat) and step by 1, 2 or 5 × 10^k.
    struct Axis {
        let scale: Scale
        let lo: Double
        let hi: Double
        let ticks: [Double]

        init(values: [Double], scale: Scale) {
            self.scale = scale
            let usable = values.filter { $0.isFinite && (scale == .linear || $0 > 0) }
            switch scale {
            case .log:
                let minimum = usable.min() ?? 1, maximum = usable.max() ?? 10
                var loExp = (log10(minimum)).rounded(.down)
                var hiExp = (log10(maximum)).rounded(.up)
                if hiExp <= loExp {
                    loExp -= 1
                    hiExp += 1
                }
                lo = pow10(loExp)
                hi = pow10(hiExp)
                var t: [Double] = []
                var e = loExp
                // Fewer ticks when the axis spans many decades, so labels don't collide.
                let multipliers: [Double] = hiExp - loExp > 3 ? [1] : [1, 2, 5]
                while e <= hiExp {
                    for m in multipliers where m * pow10(e) <= hi * (1 + 1e-9) { t.append(m * pow10(e)) }
                    e += 1
                }
                ticks = t
            case .linear:
                let minimum = Swift.min(0, usable.min() ?? 0)
                var maximum = usable.max() ?? 1
                if maximum <= minimum { maximum = minimum + 1 }
                let rough = (maximum - minimum) / 5
                let magnitude = pow10((log10(rough)).rounded(.down))
                let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
                lo = (minimum / step).rounded(.down) * step
                hi = (maximum / step).rounded(.up) * step
                var t: [Double] = []
                var v = lo
                while v <= hi + step * 1e-9 {
                    t.append(v)
                    v += step
                }
                ticks = t
            }
        }

        func accepts(_ v: Double) -> Bool { v.isFinite && (scale == .linear || v > 0) }

        /// 0 at `lo`, 1 at `hi`.
        func fraction(_ v: Double) -> Double {
            switch scale {
            case .log: (log10(v) - log10(lo)) / (log10(hi) - log10(lo))
            case .linear: (v - lo) / (hi - lo)
            }
        }
    }
}

/// A self-contained SVG document of `width` × `height` around `body`.
func svgDocument(width: Int, height: Int, title: String, body: String) -> String {
    var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" "
    s += "viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
    s += "<title>\(escapeXML(title))</title>\n"
    return s + body + "</svg>\n"
}

/// Several charts one above the other in one SVG document, each at its own size: for figures whose y units
/// differ (memory in MiB and time in seconds), which cannot share one axis. Deterministic, like `svg()`.
public func stackedSVG(_ charts: [LineChart], title: String) -> String {
    var body = ""
    var top = 0
    for chart in charts {
        body += "<g class=\"panel\" transform=\"translate(0 \(top))\">\n" + chart.body() + "</g>\n"
        top += chart.height
    }
    return svgDocument(width: charts.map(\.width).max() ?? 0, height: top, title: title, body: body)
}

/// A compact tick label: 100, 2k, 10k, 0.5, 2.5.
func tickLabel(_ v: Double) -> String {
    if v >= 1000, (v / 1000).rounded() == v / 1000 { return "\(Int(v / 1000))k" }
    if v.rounded() == v { return "\(Int(v))" }
    var digits = 1
    while digits < 6, (v * pow10(Double(digits))).rounded() != v * pow10(Double(digits)) { digits += 1 }
    return fixed(v, digits)
}

/// Text for XML character data and attribute values.
public func escapeXML(_ text: String) -> String {
    var out = ""
    for c in text {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(c)
        }
    }
    return out
}

func pow10(_ e: Double) -> Double { pow(10, e) }
