import Foundation
import NetworkTypes
import NFTModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Something in a topology that owns a network namespace and one address per family.
public protocol NetworkHost: Sendable {
    /// The name given to the builder (`"n1"`, `"b1"`, `"c1"`).
    var name: String { get }
    /// The network namespace, `sbt-<id>-<name>`; pass it to `Shell.run(_:in:)`.
    var namespace: String { get }
    var ipv4: String { get }
    var ipv6: String { get }
}

extension NetworkHost {
    /// This host's address in the given family.
    public func address(_ family: IPFamily) -> String { family == .v4 ? ipv4 : ipv6 }
}

/// A test network of network namespaces, shaped like a small Kubernetes cluster.
///
/// ```
///             sbt-<id>-lan: bridge br0 (the node network, 10.200.0.0/24, fd00:200::/64)
///        ┌───────────────┬────────────────┬───────────────┐
///   eth0 10.200.0.1   eth0 10.200.0.2   eth0 10.200.0.101  ...
///   node n1           node n2           client c1 (default via its node)
///   ext0 ◀ default    ext0 ◀ default
///   p-b1 ─ eth0 10.244.1.2/32 pod b1 (default via 10.244.1.1 onlink)
///   p-b2 ─ eth0 10.244.1.3/32 pod b2
/// ```
///
/// - A **node** is the Kubernetes node and the router: IP forwarding on (v4 and v6), its InternalIP on
///   `eth0` (the shared node network), a route to every other node's pod CIDR via that node, and a
///   default route (v4 and v6) into `ext0`, a NOARP veth whose peer drops everything: traffic to an
///   address nobody owns (a service VIP without rules) is routed, passes the forward and postrouting
///   hooks, and then vanishes silently, as on a real node whose uplink leads nowhere useful.
/// - A **backend** is a pod on a node: its own point-to-point veth (`eth0` in the pod, `p-<name>` in the
///   node), a /32 and /128 address from the node's pod CIDR (`10.244.<n>.0/24`, `fd00:10:244:<n>::/64`),
///   a default route via the node's pod gateway (`.1` on every pod veth, as Calico/Cilium do). Every
///   packet between pods, even on the same node, is routed through the node namespace, so it always meets
///   the node's nftables rules (no bridge bypass, no `br_netfilter`); a pod that reaches itself through a
///   service needs hairpin masquerade, as in a real cluster.
/// - A **client** is an external host on the node network (or another machine in the LAN): default route
///   via the node it is attached to; other nodes' InternalIPs are directly reachable on the LAN.
///
/// Addresses depend only on the order of the builder calls, so two topologies built from equal builders have
/// the same addresses but separate namespaces: independent "clusters" in which the same 5-tuple can be
/// sent to two nodes.
///
/// Nothing here touches the host namespace: interfaces are created inside the test namespaces
/// (`ip -n NODE link add ... peer name eth0 netns POD`).
public final class Topology: @unchecked Sendable {
    /// A Kubernetes node and router. Its number `n` picks its InternalIP and pod CIDR.
    public struct Node: NetworkHost, Hashable {
        public let name: String
        /// 1-based, in builder order.
        public let number: Int
        public let namespace: String
        /// The InternalIP, on `eth0` in the node network (`10.200.0.<n>`).
        public let ipv4: String
        /// The InternalIP, on `eth0` in the node network (`fd00:200::<n>`).
        public let ipv6: String
        /// `10.244.<n>.0/24`
        public let podCIDRv4: String
        /// `fd00:10:244:<n>::/64`
        public let podCIDRv6: String
        /// The pods' default gateway (`10.244.<n>.1`), configured on every pod veth of the node; also the
        /// source address the node uses (and masquerades to) towards its own pods.
        public let podGatewayIPv4: String
        /// The pods' default gateway (`fd00:10:244:<n>::1`), configured on every pod veth of the node.
        public let podGatewayIPv6: String
        /// The node-network interface inside the node namespace.
        public let lanInterface = "eth0"
        /// The default-route sink inside the node namespace.
        public let externalInterface = "ext0"

        public func podCIDR(_ family: IPFamily) -> String { family == .v4 ? podCIDRv4 : podCIDRv6 }
        public func podGateway(_ family: IPFamily) -> String { family == .v4 ? podGatewayIPv4 : podGatewayIPv6 }
    }

    /// A pod on a node.
    public struct Backend: NetworkHost, Hashable {
        public let name: String
        /// The node it runs on.
        public let node: String
        public let namespace: String
        public let ipv4: String
        public let ipv6: String
        /// Its interface inside its own namespace.
        public let interface = "eth0"
        /// The node side of its veth, inside the node namespace (`p-<name>`).
        public let hostInterface: String
    }

    /// An external host on the node network, routed through one node.
    public struct Client: NetworkHost, Hashable {
        public let name: String
        /// The node that is its default gateway.
        public let node: String
        public let namespace: String
        public let ipv4: String
        public let ipv6: String
        public let interface = "eth0"
    }

    /// Describes a topology; each call returns a new builder, so `Builder().node("n1").client("c1", attachedTo: "n1")`.
    public struct Builder: Sendable, Hashable {
        enum Member: Sendable, Hashable {
            case node(String)
            case client(String, node: String)
            case backend(String, node: String)

            var name: String {
                switch self {
                case .node(let name), .client(let name, _), .backend(let name, _): name
                }
            }
        }

        var members: [Member] = []

        public init() {}

        /// Adds a node; nodes are numbered 1, 2, ... in the order they are added.
        public func node(_ name: String) -> Builder { adding(.node(name)) }

        /// Adds an external client on the node network whose default gateway is `node`.
        public func client(_ name: String, attachedTo node: String) -> Builder { adding(.client(name, node: node)) }

        /// Adds a backend pod on `node`; a node's pods get `.2`, `.3`, ... of its pod CIDR in the order added.
        public func backend(_ name: String, on node: String) -> Builder { adding(.backend(name, node: node)) }

        /// Creates the namespaces and links. On failure, whatever was created is removed again.
        public func build() async throws -> Topology {
            try await Topology.create(self)
        }

        private func adding(_ member: Member) -> Builder {
            var copy = self
            copy.members.append(member)
            return copy
        }
    }

    /// Random and short (`[a-z0-9]{4}`), unique among existing namespaces when built.
    public let id: String
    public let nodes: [Node]
    public let clients: [Client]
    public let backends: [Backend]
    /// The namespace holding the node network's bridge.
    public let lanNamespace: String

    /// The node network's prefixes.
    public static let lanIPv4CIDR = "10.200.0.0/24"
    public static let lanIPv6CIDR = "fd00:200::/64"
    /// Kubernetes' default service ranges; nothing in the topology owns them (they route into `ext0`).
    public static let serviceIPv4CIDR = "10.96.0.0/16"
    public static let serviceIPv6CIDR = "fd00:10:96::/108"

    // `@unchecked Sendable`: everything above is immutable; these two are guarded by `lock`.
    private let lock = NSLock()
    private var processes: [BackgroundProcess] = []
    private var tornDown = false

    private init(id: String, nodes: [Node], clients: [Client], backends: [Backend]) {
        self.id = id
        self.nodes = nodes
        self.clients = clients
        self.backends = backends
        lanNamespace = "sbt-\(id)-lan"
    }

    /// Every namespace of this topology, the LAN's first.
    public var namespaces: [String] {
        [lanNamespace] + nodes.map(\.namespace) + clients.map(\.namespace) + backends.map(\.namespace)
    }

    public func node(_ name: String) -> Node {
        guard let node = nodes.first(where: { $0.name == name }) else { preconditionFailure("no node \(name)") }
        return node
    }

    public func client(_ name: String) -> Client {
        guard let client = clients.first(where: { $0.name == name }) else { preconditionFailure("no client \(name)") }
        return client
    }

    public func backend(_ name: String) -> Backend {
        guard let backend = backends.first(where: { $0.name == name }) else {
            preconditionFailure("no backend \(name)")
        }
        return backend
    }

    /// The node, client or backend with this name.
    public func host(_ name: String) -> any NetworkHost {
        if let node = nodes.first(where: { $0.name == name }) { return node }
        if let client = clients.first(where: { $0.name == name }) { return client }
        return backend(name)
    }

    /// The pods on one node.
    public func backends(on node: String) -> [Backend] { backends.filter { $0.node == node } }

    /// Hands a process to the topology: `teardown()` stops it (SIGTERM, then SIGKILL) before deleting
    /// namespaces. Servers started through `Topology.startServer` are adopted automatically.
    public func adopt(_ process: BackgroundProcess) {
        let late = lock.withLock { () -> Bool in
            if !tornDown { processes.append(process) }
            return tornDown
        }
        // Adopted after teardown: nothing else would stop it.
        if late { process.stopBlocking(grace: .milliseconds(200)) }
    }

    /// Processes adopted so far (servers, agents), including stopped ones.
    public var adoptedProcesses: [BackgroundProcess] { lock.withLock { processes } }

    /// Routes a client's traffic (default route, v4 and v6) through another node, e.g. to send the same
    /// flow to two nodes of one cluster.
    public func setGateway(of client: String, to node: String) async throws {
        let client = self.client(client)
        let node = self.node(node)
        let script = """
            route replace default via \(node.ipv4) dev eth0
            route replace ::/0 via \(node.ipv6) dev eth0

            """
        try await Shell.run(["ip", "-n", client.namespace, "-batch", "-"], input: script).checked()
    }

    /// Stops adopted processes, kills anything else left inside the namespaces, deletes the namespaces
    /// (which destroys their links) and the ownership marker. Idempotent; never throws.
    public func teardown() async {
        await Shell.offload { self.teardownBlocking() }
    }

    /// `teardown`, blocking the calling thread: usable from `defer`.
    public func teardownBlocking() {
        let (owned, first) = lock.withLock { () -> ([BackgroundProcess], Bool) in
            defer { tornDown = true }
            return (processes, !tornDown)
        }
        guard first else { return }
        // SIGTERM to all first, so their exits overlap.
        for process in owned { process.signal(SIGTERM) }
        for process in owned { process.stopBlocking(grace: .seconds(1)) }
        Self.deleteNamespaces(namespaces)
        Marker.remove(id: id)
    }

    /// Where each live topology records its owner (pid and start time) and namespaces, as `<id>.json`.
    public static let ownershipDirectory = "/run/switchboard-testing"

    /// Deletes the namespaces of topologies whose creating process is gone (a crashed or killed test run)
    /// and returns their names. Namespaces of live processes, and any namespace no `Topology` recorded
    /// (other tools' `sbt-` namespaces included), are left alone. `build()` runs this once per process.
    @discardableResult
    public static func removeLeftovers() async -> [String] {
        await Shell.offload { Marker.removeLeftovers() }
    }

    // MARK: - Building

    static func create(_ builder: Builder) async throws -> Topology {
        let plan = try plan(builder)
        await Shell.offload { Marker.cleanLeftoversOnce() }
        let id = try await Shell.offload { Result { try Marker.claimID(namespaces: plan.namespaceSuffixes) } }.get()
        let topology = plan.topology(id: id)
        do {
            try await topology.configure()
        } catch {
            await topology.teardown()
            throw error
        }
        return topology
    }

    /// Validated builder input, before an id exists.
    struct Plan {
        var nodes: [(name: String, number: Int)] = []
        var clients: [(name: String, node: String, number: Int)] = []
        var backends: [(name: String, node: String, nodeNumber: Int, number: Int)] = []

        var namespaceSuffixes: [String] {
            ["lan"] + nodes.map(\.name) + clients.map(\.name) + backends.map(\.name)
        }

        func topology(id: String) -> Topology {
            let ns = { (name: String) in "sbt-\(id)-\(name)" }
            return Topology(
                id: id,
                nodes: nodes.map { node in
                    let n = node.number
                    return Node(
                        name: node.name,
                        number: n,
                        namespace: ns(node.name),
                        ipv4: "10.200.0.\(n)",
                        ipv6: "fd00:200::\(n)",
                        podCIDRv4: "10.244.\(n).0/24",
                        podCIDRv6: "fd00:10:244:\(n)::/64",
                        podGatewayIPv4: "10.244.\(n).1",
                        podGatewayIPv6: "fd00:10:244:\(n)::1"
                    )
                },
                clients: clients.map { client in
                    Client(
                        name: client.name,
                        node: client.node,
                        namespace: ns(client.name),
                        ipv4: "10.200.0.\(100 + client.number)",
                        ipv6: "fd00:200::\(100 + client.number)"
                    )
                },
                backends: backends.map { pod in
                    Backend(
                        name: pod.name,
                        node: pod.node,
                        namespace: ns(pod.name),
                        ipv4: "10.244.\(pod.nodeNumber).\(1 + pod.number)",
                        ipv6: "fd00:10:244:\(pod.nodeNumber)::\(1 + pod.number)",
                        hostInterface: "p-\(pod.name)"
                    )
                }
            )
        }
    }

    static func plan(_ builder: Builder) throws -> Plan {
        var plan = Plan()
        var seen: Set<String> = ["lan"]
        var nodeNumbers: [String: Int] = [:]
        var podsPerNode: [String: Int] = [:]
        for member in builder.members {
            let name = member.name
            // Names end up in namespace names and in `p-<name>` interface names (15 characters at most).
            guard name.count <= 10, !name.isEmpty,
                name.allSatisfy({ ($0.isASCII && $0.isLetter && $0.isLowercase) || ($0.isASCII && $0.isNumber) })
            else { throw TopologyError("name \"\(name)\" must be 1-10 characters of [a-z0-9]") }
            guard seen.insert(name).inserted else {
                throw TopologyError("name \"\(name)\" is used twice (or is reserved)")
            }
            switch member {
            case .node:
                let number = nodeNumbers.count + 1
                guard number <= 99 else { throw TopologyError("at most 99 nodes") }
                nodeNumbers[name] = number
                plan.nodes.append((name, number))
            case .client(_, let node):
                guard nodeNumbers[node] != nil else { throw TopologyError("client \(name): add node \(node) first") }
                guard plan.clients.count < 99 else { throw TopologyError("at most 99 clients") }
                plan.clients.append((name, node, plan.clients.count + 1))
            case .backend(_, let node):
                guard let nodeNumber = nodeNumbers[node] else {
                    throw TopologyError("backend \(name): add node \(node) first")
                }
                let number = podsPerNode[node, default: 0] + 1
                guard number <= 250 else { throw TopologyError("at most 250 backends per node") }
                podsPerNode[node] = number
                plan.backends.append((name, node, nodeNumber, number))
            }
        }
        guard !plan.nodes.isEmpty else { throw TopologyError("a topology needs at least one node") }
        return plan
    }

    /// Namespaces, then per-namespace sysctls (before any link exists, so new interfaces inherit them), then
    /// links created from the namespace that owns the far end, then addresses and routes per namespace.
    private func configure() async throws {
        try await Shell.run(["ip", "-batch", "-"], input: namespaces.map { "netns add \($0)\n" }.joined()).checked()

        // No DAD: addresses are usable at once and a test never races a tentative address.
        // No ICMP rate limits: every REJECT / closed port answers, however fast a test sends.
        // rp_filter off everywhere: a new namespace inherits the host's IPv4 conf, which must not matter.
        let common = [
            "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
            "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0",
            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
        ]
        // Nodes route, including asymmetric paths (a pod on another node answering a LAN client directly).
        let router = [
            "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1",
        ]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for namespace in namespaces {
                let settings = nodes.contains { $0.namespace == namespace } ? common + router : common
                group.addTask {
                    try await Shell.run(["sysctl", "-q", "-w"] + settings, in: namespace).checked()
                }
            }
            // The LAN bridge is a plain switch: with br_netfilter (built into some kernels), bridged frames
            // would otherwise traverse the LAN namespace's IP hooks. Optional keys: `-e` ignores their absence.
            let bridgeSettings = [
                "net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0",
                "net.bridge.bridge-nf-call-arptables=0",
            ]
            group.addTask {
                _ = try await Shell.run(["sysctl", "-q", "-e", "-w"] + bridgeSettings, in: self.lanNamespace)
            }
            try await group.waitForAll()
        }

        // The node network: a bridge in its own namespace, one port per node and client.
        var lan = """
            link set lo up
            link add name br0 type bridge mcast_snooping 0
            link set br0 up

            """
        for (name, namespace) in nodes.map({ ($0.name, $0.namespace) }) + clients.map({ ($0.name, $0.namespace) }) {
            lan += """
                link add name l-\(name) type veth peer name eth0 netns \(namespace)
                link set l-\(name) master br0
                link set l-\(name) up

                """
        }
        try await ipBatch(lanNamespace, lan)

        for node in nodes {
            // ext0/ext0p: NOARP, so packets leave at once with ext0's own MAC as destination and ext0p
            // discards them as PACKET_OTHERHOST before any hook (no ARP wait, no ICMP host unreachable).
            var script = """
                link set lo up
                link add name ext0 type veth peer name ext0p
                link set ext0 arp off
                link set ext0p arp off
                link set ext0p addrgenmode none
                link set ext0 up
                link set ext0p up
                link set eth0 up
                addr add \(node.ipv4)/24 dev eth0
                addr add \(node.ipv6)/64 dev eth0 nodad
                route add default dev ext0
                route add ::/0 dev ext0

                """
            for other in nodes where other != node {
                script += """
                    route add \(other.podCIDRv4) via \(other.ipv4) dev eth0
                    route add \(other.podCIDRv6) via \(other.ipv6) dev eth0

                    """
            }
            for pod in backends(on: node.name) {
                script += """
                    link add name \(pod.hostInterface) type veth peer name eth0 netns \(pod.namespace)
                    link set \(pod.hostInterface) up
                    addr add \(node.podGatewayIPv4)/32 dev \(pod.hostInterface)
                    addr add \(node.podGatewayIPv6)/128 dev \(pod.hostInterface) nodad
                    route add \(pod.ipv4)/32 dev \(pod.hostInterface)
                    route add \(pod.ipv6)/128 dev \(pod.hostInterface)

                    """
            }
            try await ipBatch(node.namespace, script)
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients {
                let node = node(client.node)
                let script = """
                    link set lo up
                    link set eth0 up
                    addr add \(client.ipv4)/24 dev eth0
                    addr add \(client.ipv6)/64 dev eth0 nodad
                    route add default via \(node.ipv4) dev eth0
                    route add ::/0 via \(node.ipv6) dev eth0

                    """
                group.addTask { try await self.ipBatch(client.namespace, script) }
            }
            for pod in backends {
                let node = node(pod.node)
                let script = """
                    link set lo up
                    link set eth0 up
                    addr add \(pod.ipv4)/32 dev eth0
                    addr add \(pod.ipv6)/128 dev eth0 nodad
                    route add default via \(node.podGatewayIPv4) dev eth0 onlink
                    route add ::/0 via \(node.podGatewayIPv6) dev eth0 onlink

                    """
                group.addTask { try await self.ipBatch(pod.namespace, script) }
            }
            try await group.waitForAll()
        }
    }

    private func ipBatch(_ namespace: String, _ script: String) async throws {
        try await Shell.run(["ip", "-n", namespace, "-batch", "-"], input: script).checked()
    }

    /// Kills whatever still runs inside the namespaces (only our own processes can be in them), then
    /// deletes them. Deleting a namespace that still has processes would leave it alive, unnamed.
    static func deleteNamespaces(_ names: [String]) {
        let existing = names.filter { FileManager.default.fileExists(atPath: "/run/netns/\($0)") }
        guard !existing.isEmpty else { return }
        var stragglers: [Int32] = []
        for namespace in existing {
            let pids = (try? Shell.runBlocking(["ip", "netns", "pids", namespace], timeout: .seconds(5)))?.stdout ?? ""
            stragglers += pids.split(whereSeparator: \.isNewline).compactMap { Int32($0) }
        }
        for pid in stragglers where pid != getpid() { kill(pid, SIGKILL) }
        // SIGKILL'd processes leave the namespace once the kernel has torn them down; give them a moment.
        let deadline = Date(timeIntervalSinceNow: 2)
        while stragglers.contains(where: { kill($0, 0) == 0 && !isZombie($0) }) && Date() < deadline {
            usleep(10_000)
        }
        let script = existing.map { "netns del \($0)\n" }.joined()
        _ = try? Shell.runBlocking(["ip", "-force", "-batch", "-"], input: script, timeout: .seconds(10))
    }

    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}

/// Invalid builder input (a bad name, an unknown node).
public struct TopologyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "Topology: \(message)" }
}

/// Runs `body` with a freshly built topology and always tears it down, whether `body` returns or throws.
public func withTopology<T>(
    _ builder: Topology.Builder,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (Topology) async throws -> T
) async throws -> T {
    let topology = try await builder.build()
    do {
        let result = try await body(topology)
        await topology.teardown()
        return result
    } catch {
        await topology.teardown()
        throw error
    }
}
