import ArgumentParser
import Foundation
import NFTModel
import SwitchboardCore

/// Flags shared by every command that compiles, named as kube-proxy names them.
struct NodeOptions: ParsableArguments {
    @Option(name: .customLong("hostname-override"), help: "The Node in the input that is \"this node\" (default: the host name).")
    var hostnameOverride: String?

    @Option(name: .customLong("cluster-cidr"), help: "Pod CIDR(s), comma-separated; traffic to a cluster IP from outside them is masqueraded.")
    var clusterCIDR: String?

    @Option(name: .customLong("nodeport-addresses"), help: "CIDRs, comma-separated, of the local addresses NodePorts answer on (default: the node's InternalIPs).")
    var nodePortAddresses: String?

    @Flag(name: .customLong("masquerade-all"), help: "Masquerade all traffic sent to service IPs.")
    var masqueradeAll = false

    func validate() throws {
        _ = try cidrs(clusterCIDR, flag: "--cluster-cidr")
        _ = try cidrs(nodePortAddresses, flag: "--nodeport-addresses")
        if let name = hostnameOverride, name.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--hostname-override must not be empty")
        }
    }

    func nodeContext() throws -> NodeContext {
        NodeContext(
            nodeName: nodeName,
            clusterCIDRs: try cidrs(clusterCIDR, flag: "--cluster-cidr"),
            nodePortAddresses: try cidrs(nodePortAddresses, flag: "--nodeport-addresses"),
            masqueradeAll: masqueradeAll)
    }

    /// kube-proxy lowercases and trims the host name.
    var nodeName: String {
        if let name = hostnameOverride { return name.trimmingCharacters(in: .whitespaces).lowercased() }
        return ProcessInfo.processInfo.hostName.lowercased()
    }

    private func cidrs(_ text: String?, flag: String) throws -> [CIDR] {
        guard let text, !text.isEmpty else { return [] }
        return try text.split(separator: ",").map { part in
            let s = part.trimmingCharacters(in: .whitespaces)
            // A bare address is accepted as a full-length prefix.
            if let cidr = CIDR(s) ?? IPAddress(s).map({ CIDR(address: $0, prefixLength: $0.bytes.count * 8) }) {
                return cidr
            }
            throw ValidationError("\(flag): invalid CIDR \"\(s)\"")
        }
    }
}

/// `-f FILE...`: manifests on disk (files, directories of .yaml/.yml/.json, or `-` for stdin).
struct InputOptions: ParsableArguments {
    @Option(name: [.customShort("f"), .customLong("filename")], parsing: .singleValue,
            help: "A manifest file, a directory of manifests, or - for standard input (repeatable).")
    var files: [String] = []

    /// Commands that read only files call this from their own `validate()`.
    func requireFiles() throws {
        if files.isEmpty { throw ValidationError("at least one -f FILE is required") }
    }

    /// Reads and decodes every input; unreadable or unparsable files are errors, malformed objects
    /// are diagnostics (printed to stderr by the caller, the object skipped).
    func load() throws -> (ClusterState, [Diagnostic]) {
        var objects: [KubeObject] = []
        var diagnostics: [Diagnostic] = []
        for path in try expand(files) {
            let text: String
            if path == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw CLIError("cannot read \(path)")
                }
                text = String(decoding: data, as: UTF8.self)
            }
            // A file that is not YAML/JSON at all is a bad file (exit 2); a malformed object in a
            // well-formed file is a diagnostic, and only that object is skipped.
            for document in ManifestDecoder.documents(text) {
                if case .failure(let error) = document.content {
                    throw CLIError("\(path): document \(document.number): syntax error at \(error)")
                }
            }
            let result = ManifestDecoder.decode(text, source: path)
            objects += result.objects
            diagnostics += result.diagnostics
        }
        return (ClusterState(objects), diagnostics)
    }

    private func expand(_ paths: [String]) throws -> [String] {
        var out: [String] = []
        for path in paths {
            var isDir: ObjCBool = false
            if path != "-" && FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue {
                let entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
                out += entries.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }
                    .map { (path as NSString).appendingPathComponent($0) }
            } else if path == "-" || FileManager.default.fileExists(atPath: path) {
                out.append(path)
            } else {
                throw CLIError("\(path): no such file or directory")
            }
        }
        return out
    }
}

func printDiagnostics(_ diagnostics: [Diagnostic]) {
    for d in diagnostics { FileHandle.standardError.write(Data("switchboard: \(d)\n".utf8)) }
}

/// Loads the input and compiles it for this node.
func compileInput(_ input: InputOptions, _ node: NodeOptions) throws -> (CompileResult, NodeContext) {
    let (state, decodeDiagnostics) = try input.load()
    let context = try node.nodeContext()
    let result = compile(state, for: context)
    printDiagnostics(decodeDiagnostics + result.diagnostics)
    return (result, context)
}
