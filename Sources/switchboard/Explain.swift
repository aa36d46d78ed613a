import ArgumentParser
import Foundation
import NetworkTypes
import NFTModel
import Netfilter
import SwitchboardCore

struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Say where a flow goes on this node, by which rule, and why.",
        discussion: """
            SRC[:SPORT] is the client (IPv6 with a port in brackets: [fd00::1]:40000); DST:DPORT[/tcp|udp|sctp]
            the address it connects to (TCP when not given). The input is manifests (-f) or the cluster
            (--kubeconfig), with the node flags and --config as `render` and `diff` take them. Prints the entry
            point matched, the source-range and masquerade decisions, the traffic policy and the endpoints it
            leaves (and why the others are left out), session affinity, the Maglev table size M, the slot the
            kernel's jhash picks for the flow and the endpoint in it, and the verdict: DNAT, REJECT, DROP, or
            UNTOUCHED (not a Service). Without SPORT the slot is not named.

            --live also reads the kernel's element for that slot (one `get element`, never a listing) and,
            for session affinity, the client's entry; it says whether the kernel agrees with the compiled
            state. Exit status: 0, or 1 with --live when the kernel disagrees, 2 on error.

            Example:
              switchboard explain -f manifests/ --hostname-override node-1 --cluster-cidr 10.244.0.0/16 \\
                  10.244.1.7:40000 10.96.0.10:53/udp
            """)

    @OptionGroup var input: InputOptions
    @OptionGroup var node: NodeOptions

    @Option(name: .customLong("kubeconfig"), help: "Read the cluster through this kubeconfig instead of -f files.")
    var kubeconfig: String?

    @Option(name: .customLong("from"), help: "Where the source is: pod, node or external (default: from the address).")
    var from: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "text (default) or json.")
    var output = "text"

    @Flag(name: .customLong("live"), help: "Check the flow's Maglev slot (and affinity entry) in the kernel.")
    var live = false

    @Argument(help: "The client: SRC[:SPORT].")
    var source: String

    @Argument(help: "The destination: DST:DPORT[/tcp|udp|sctp].")
    var destination: String

    func validate() throws {
        if kubeconfig == nil { try input.requireFiles() }
        if kubeconfig != nil && !input.files.isEmpty { throw ValidationError("use either -f or --kubeconfig") }
        if !["text", "json"].contains(output) { throw ValidationError("-o \(output): use text or json") }
        if let from, SourceKind(rawValue: from) == nil { throw ValidationError("--from \(from): use pod, node or external") }
        do {
            _ = try Flow(source: source, destination: destination)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        let flow = try Flow(source: source, destination: destination)
        let context = try node.nodeContext(node.settings())
        let (state, diagnostics): (ClusterState, [Diagnostic])
        if let kubeconfig {
            (state, diagnostics) = try await readCluster(kubeconfig: kubeconfig, nodeName: context.nodeName)
        } else {
            (state, diagnostics) = try input.load()
        }
        printDiagnostics(diagnostics)
        var explanation = Explainer(state: state, node: context).explain(flow, from: from.flatMap(SourceKind.init))
        if live { try await checkLive(&explanation, table: context.tableID(flow.destination.family)) }
        if output == "json" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(explanation), as: UTF8.self))
        } else {
            print(explanation.text, terminator: "")
        }
        if explanation.live?.agrees == false { throw ExitCode(1) }
    }

    /// Reads the flow's slot element, and its affinity entry, from the kernel.
    private func checkLive(_ explanation: inout Explanation, table: TableID) async throws {
        let nft: LibNFTables
        do {
            nft = try LibNFTables()
        } catch {
            throw CLIError("opening libnftables: \(error)")
        }
        if var affinity = explanation.affinity, let entry = explanation.entry {
            let element = "\(explanation.flow.source) . \(explanation.flow.destination) . \(entry.protocol) . \(entry.port)"
            let found = try await getElement(nft, table: table, set: RulesetNames.affinity, key: element)
            affinity.live = .init(
                element: element, endpoint: found.map { Backend(dnatTarget: $0.data)?.identity ?? $0.data }, expires: found?.expires)
            explanation.affinity = affinity
            if let endpoint = affinity.live?.endpoint {
                explanation.verdict = .init(
                    kind: .dnat, endpoint: endpoint,
                    reason: "the client's session-affinity entry\(found?.expires.map { " (expires in \($0))" } ?? "")")
            }
        }
        guard let maglev = explanation.maglev, let element = maglev.element else { return }
        let key = String(element[..<element.range(of: " : ")!.lowerBound])
        let data = String(element[element.range(of: " : ")!.upperBound...])
        let kernel = try await getElement(nft, table: table, set: maglev.map, key: key)?.data
        explanation.live = .init(table: table.description, map: maglev.map, element: key, kernel: kernel, agrees: kernel == data)
    }

    /// One `get element`: the element's data and `expires` text, or nil when the kernel has no such element.
    private func getElement(
        _ nft: LibNFTables, table: TableID, set: String, key: String
    ) async throws -> (data: String, expires: String?)? {
        let text: String
        do {
            text = try await nft.run("get element \(table) \(set) { \(key) }")
        } catch {
            // The kernel answers ENOENT for a missing element (and a missing table or map).
            if "\(error)".contains("No such file or directory") { return nil }
            throw CLIError("reading \(set) { \(key) } in \(table): \(error)")
        }
        guard let start = text.range(of: "elements = { "), let end = text.range(of: " }", range: start.upperBound..<text.endIndex)
        else { return nil }
        let body = text[start.upperBound..<end.lowerBound]
        let parts = body.components(separatedBy: " : ")
        guard parts.count == 2 else { return nil }
        let expires = parts[0].range(of: "expires ").map { range in
            String(parts[0][range.upperBound...].prefix { $0 != " " })
        }
        return (parts[1], expires)
    }
}
