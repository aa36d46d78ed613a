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
        date: await firstLine(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        build: buildKind
    ),
    parameters: .init(
        sizes: options.sizes, endpointsPerService: options.endpointsPerService, changes: options.changes,
        quick: options.quick, seed: options.seed
    )
)
if buildKind == "debug" { progress("note: debug build; compile and plan times are not representative") }

let bench = Bench(options: options, log: progress)
do {
    if options.churn.selected {
        (results.churn, results.peer) = try await runChurnAndPeer(options, log: progress)  // ChurnMain.swift
    } else {
        for size in options.sizes {
            progress("size \(size) Services x \(options.endpointsPerService) endpoints")
            let (cold, single) = try await bench.run(size: size)
            results.coldSync.append(cold)
            results.singleChange.append(single)
        }
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
    let markdown = options.churn.selected ? results.churnMarkdown : results.markdown
    try Data(markdown.utf8).write(to: md)
    progress("wrote \(json.path) and \(md.path)")
    print(markdown)
} catch {
    progress("switchboard-bench failed: \(error)")
    exit(1)
}
