import NetworkTypes

/// One flow as `switchboard explain` takes it: `SRC[:SPORT] DST:DPORT[/tcp|udp|sctp]`. IPv6 addresses with a
/// port are written in brackets (`[fd00::1]:40000`).
public struct Flow: Hashable, Sendable {
    public var source: IPAddress
    /// nil: any source port (the Maglev slot then cannot be named).
    public var sourcePort: Int?
    public var destination: IPAddress
    public var destinationPort: Int
    public var proto: L4Protocol

    public init(source: IPAddress, sourcePort: Int?, destination: IPAddress, destinationPort: Int, proto: L4Protocol) {
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
        self.proto = proto
    }

    /// Why a flow's text is not a flow.
    public struct SyntaxError: Error, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// Parses `SRC[:SPORT]` and `DST:DPORT[/proto]` (protocol TCP when not given).
    public init(source: String, destination: String) throws(SyntaxError) {
        let (src, sport) = try Self.hostPort(source, what: "source")
        var destinationText = Substring(destination)
        var proto = L4Protocol.tcp
        if let slash = destinationText.lastIndex(of: "/") {
            let name = destinationText[destinationText.index(after: slash)...]
            guard let parsed = L4Protocol(rawValue: name.uppercased()) else {
                throw SyntaxError(description: "destination \(destination): protocol \"\(name)\" is not tcp, udp or sctp")
            }
            proto = parsed
            destinationText = destinationText[..<slash]
        }
        let (dst, dport) = try Self.hostPort(String(destinationText), what: "destination")
        guard let dport else { throw SyntaxError(description: "destination \(destination): a port is required (DST:DPORT)") }
        guard src.family == dst.family else {
            throw SyntaxError(description: "\(source) and \(destination) are of different IP families")
        }
        self.init(source: src, sourcePort: sport, destination: dst, destinationPort: dport, proto: proto)
    }

    private static func hostPort(_ text: String, what: String) throws(SyntaxError) -> (IPAddress, Int?) {
        var host = Substring(text)
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else {
                throw SyntaxError(description: "\(what) \(text): no closing ]")
            }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw SyntaxError(description: "\(what) \(text): expected :PORT after ]") }
                port = rest.dropFirst()
            }
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            port = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard let address = IPAddress(String(host)) else {
            throw SyntaxError(description: "\(what) \(text): \"\(host)\" is not an IP address")
        }
        guard let port else { return (address, nil) }
        guard let number = Int(port), (0...65535).contains(number) else {
            throw SyntaxError(description: "\(what) \(text): port \"\(port)\" is not a number from 0 to 65535")
        }
        return (address, number)
    }
}

/// Where a flow's packets come from, as the ruleset tells them apart.
public enum SourceKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// A pod, by `--detect-local-mode`: cluster-IP traffic keeps its address; externalTrafficPolicy Local
    /// entry points give it every endpoint.
    case pod
    /// This node itself (`fib saddr type local`): may always pass loadBalancerSourceRanges; is masqueraded
    /// to externalTrafficPolicy Local entry points, and uses every endpoint there.
    case node
    /// Anything else: another node, or a client outside the cluster.
    case external
}
