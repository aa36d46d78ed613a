import BenchKit
import Foundation
import SwitchboardTesting

// switchboard-bench: rule-sync latency harness. See bench/README.md.

func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

func firstLine(_ arguments: [String]) async -> String {
    guard let r = try? await Shell.run(arguments), r.succeeded else { return "unknown" }
    return r.stdout.split(separator: "\n").first.map(String.init) ?? "unknown"
}

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    progress("\(error)")
    exit(2)
}
if let reason = ScratchNamespace.unavailableReason {
    progress("switchboard-bench needs scratch network namespaces: \(reason)")
    exit(1)
}

#if DEBUG
let buildKind = "debug"
#else
let buildKind = "release"
#endif

var results = BenchResults(
    machine: .init(
        kernel: await firstLine(["uname", "-r"]),
        cpus: ProcessInfo.processInfo.activeProcessorCount,
        nftVersion: await firstLine(["nft", "--version"]),
        libnftables: await firstLine(["pkg-config", "--modversion", "libnftables"]),
        date: await firstLine(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        build: buildKind
    ),
    parameters: .init(
        sizes: options.sizes, endpointsPerService: options.endpointsPerService, changes: options.changes,
        quick: options.quick, seed: options.seed, coldBatchesAbove: options.coldBatchesAbove
    )
)
if buildKind == "debug" { progress("note: debug build; compile and plan times are not representative") }

let bench = Bench(options: options, log: progress)
let dataPlane = DataPlaneBench(options: options, log: progress)
let runStart = ContinuousClock.now
do {
    switch options.mode {
    case .scale:
        results.scale = try await interruptible(log: progress) {  // ChurnMain.swift
            try await ScaleRun(options: options, log: progress).run()
        }
    case .churnAndPeer:
        (results.churn, results.peer) = try await runChurnAndPeer(options, log: progress)  // ChurnMain.swift
    case .sizes:
        for (i, size) in options.sizes.enumerated() {
            let elapsed = durationText((ContinuousClock.now - runStart).milliseconds / 1000)
            progress("size \(size) Services x \(options.endpointsPerService) endpoints "
                + "(\(i + 1)/\(options.sizes.count), run \(elapsed) so far)")
            let (cold, single, cost) = try await bench.run(size: size)
            results.coldSync.append(cold)
            results.singleChange.append(single)
            results.costs.append(cost)
            if options.connects > 0 {
                results.dataPlane.append(try await dataPlane.run(size: size))
            }
        }
        results.dataPlane = BenchResults.DataPlane.relatingToSmallest(results.dataPlane)
        progress("maglev build times")
        results.maglev = bench.maglev()
    }

    let directory = URL(fileURLWithPath: options.outputDirectory, isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let json = directory.appendingPathComponent("\(options.resultBaseName).json")
    let md = directory.appendingPathComponent("\(options.resultBaseName).md")
    try (encoder.encode(results) + Data("\n".utf8)).write(to: json)
    var written = [json.path, md.path]
    let markdown: String
    switch options.mode {
    case .scale:
        markdown = results.scaleMarkdown
        let svg = directory.appendingPathComponent("\(options.resultBaseName).svg")
        let chart = stackedSVG(results.scaleCharts(), title: "switchboard-bench: scale through the API server")
        try Data(chart.utf8).write(to: svg)
        written.append(svg.path)
    case .churnAndPeer:
        markdown = results.churnMarkdown
    case .sizes:
        markdown = results.markdown
        // Charts are over cluster size; a churn or peer run has one size and no chart.
        let svg = directory.appendingPathComponent("\(options.resultBaseName).svg")
        try Data(results.syncLatencyChart().svg().utf8).write(to: svg)
        written.append(svg.path)
        if !results.dataPlane.isEmpty {
            let dataPlaneSVG = directory.appendingPathComponent("\(options.resultBaseName).dataplane.svg")
            try Data(results.dataPlaneChart().svg().utf8).write(to: dataPlaneSVG)
            written.append(dataPlaneSVG.path)
        }
    }
    try Data(markdown.utf8).write(to: md)
    let total = durationText((ContinuousClock.now - runStart).milliseconds / 1000)
    progress("wrote \(written.joined(separator: ", ")) (run \(total))")
    print(markdown)
} catch {
    progress("switchboard-bench failed: \(error)")
    exit(1)
}
