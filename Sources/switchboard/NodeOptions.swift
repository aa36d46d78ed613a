import ArgumentParser
import Foundation
import NetworkTypes
import NFTModel
import SwitchboardCore

/// Flags shared by every command that compiles, named as kube-proxy names them, and `--config`,
/// kube-proxy's config file. A flag given on the command line wins over the file (kube-proxy's
/// precedence), so every flag is optional here and its default applies only when neither gives it.
struct NodeOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "A KubeProxyConfiguration file (YAML or JSON); flags given here override it.")
    var config: String?

    @Option(name: .customLong("hostname-override"), help: "The Node in the input that is \"this node\" (default: the host name).")
    var hostnameOverride: String?

    @Option(name: .customLong("cluster-cidr"), help: "Pod CIDR(s), comma-separated; traffic to a cluster IP from outside them is masqueraded.")
    var clusterCIDR: String?

    @Option(name: .customLong("nodeport-addresses"), help: "CIDRs, comma-separated, of the local addresses NodePorts answer on (default: the node's InternalIPs).")
    var nodePortAddresses: String?

    @Flag(name: .customLong("masquerade-all"), inversion: .prefixedNo, help: "Masquerade all traffic sent to service IPs (default: no).")
    var masqueradeAll: Bool?

    @Option(name: .customLong("detect-local-mode"), help: "How pod traffic is recognised: ClusterCIDR (default), NodeCIDR, InterfaceNamePrefix, BridgeInterface.")
    var detectLocalMode: String?

    @Option(name: .customLong("pod-interface-name-prefix"), help: "With --detect-local-mode InterfaceNamePrefix: the pods' interface name prefix.")
    var podInterfaceNamePrefix: String?

    @Option(name: .customLong("pod-bridge-interface"), help: "With --detect-local-mode BridgeInterface: the pods' bridge.")
    var podBridgeInterface: String?

    func validate() throws {
        _ = try flagSettings()
        if let name = hostnameOverride, name.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--hostname-override must not be empty")
        }
    }

    /// The settings given as flags (nil where a flag was not given).
    func flagSettings() throws -> ProxySettings {
        var s = ProxySettings(hostnameOverride: hostnameOverride, masqueradeAll: masqueradeAll)
        if let clusterCIDR { s.clusterCIDRs = try cidrs(clusterCIDR, flag: "--cluster-cidr") }
        if let nodePortAddresses {
            switch ProxySettings.parseNodePortAddresses(nodePortAddresses.split(separator: ",").map(String.init)) {
            case .success(let cidrs): s.nodePortAddresses = cidrs
            case .failure(let error): throw ValidationError("--nodeport-addresses: invalid CIDR \"\(error.entry)\"")
            }
        }
        if let detectLocalMode {
            guard let mode = DetectLocalMode(rawValue: detectLocalMode) else {
                let valid = DetectLocalMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw ValidationError("--detect-local-mode \(detectLocalMode): valid modes are \(valid)")
            }
            s.detectLocalMode = mode
        }
        s.podInterfaceNamePrefix = podInterfaceNamePrefix
        s.podBridgeInterface = podBridgeInterface
        return s
    }

    /// The config file's settings (empty without --config); its warnings go to stderr, one line each.
    /// Called from `run()`, not `validate()`, so that warnings print once; its errors exit 2 all the same.
    func fileSettings() throws -> ProxySettings {
        guard let config else { return ProxySettings() }
        guard let data = FileManager.default.contents(atPath: config) else { throw CLIError("--config: cannot read \(config)") }
        let file: ProxyConfigFile
        do {
            file = try ProxyConfigFile.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw CLIError("--config \(config): \(error)")
        }
        for warning in file.warnings {
            FileHandle.standardError.write(Data("switchboard: warning: \(config): \(warning)\n".utf8))
        }
        return file.settings
    }

    /// Flags over the file, with `extra` (the command's own flags, e.g. `run`'s) on top; mode, detect-local
    /// and tuning settings checked.
    func settings(extra: ProxySettings = ProxySettings()) throws -> ProxySettings {
        let settings = extra.overriding(try flagSettings()).overriding(try fileSettings())
        do {
            try settings.checkMode()
            _ = try settings.localDetection()
            try settings.checkTuning()
        } catch {
            throw CLIError("\(error)")
        }
        return settings
    }

    func nodeContext(_ settings: ProxySettings) throws -> NodeContext {
        do {
            return try settings.nodeContext(hostname: ProcessInfo.processInfo.hostName)
        } catch {
            throw CLIError("\(error)")
        }
    }

    private func cidrs(_ text: String, flag: String) throws -> [CIDR] {
        switch ProxySettings.parseCIDRs(text.split(separator: ",").map(String.init)) {
        case .success(let cidrs): return cidrs
        case .failure(let error): throw ValidationError("\(flag): invalid CIDR \"\(error.entry)\"")
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
    let context = try node.nodeContext(node.settings())
    let (state, decodeDiagnostics) = try input.load()
    let result = compile(state, for: context)
    printDiagnostics(decodeDiagnostics + result.diagnostics)
    return (result, context)
}
