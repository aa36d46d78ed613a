/// A `host:port` to listen on, as kube-proxy's `--healthz-bind-address` and `--metrics-bind-address` take it:
/// `0.0.0.0:10256`, `[::]:10256`, or an address alone (then the server's default port).
public struct BindAddress: Hashable, Sendable, CustomStringConvertible {
    /// An IP address (IPv6 without brackets) or a host name.
    public var host: String
    /// 0 asks the kernel for a free port (tests).
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port`, or (with a `defaultPort`) a bare host or IPv6 address.
    public init?(_ text: String, defaultPort: Int? = nil) {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = Substring(text)  // a bare IPv4 address, name, or IPv6 address
        }
        guard !host.isEmpty else { return nil }
        let port: Int
        if let portText {
            guard let value = Int(portText), (0...65_535).contains(value), portText.allSatisfy(\.isASCII) else {
                return nil
            }
            port = value
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// kube-proxy's defaults.
    public static let defaultHealthz = BindAddress(host: "0.0.0.0", port: 10_256)
    public static let defaultMetrics = BindAddress(host: "127.0.0.1", port: 10_249)
}
