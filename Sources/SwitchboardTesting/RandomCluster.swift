import NetworkTypes
import SwitchboardCore

private func v4(_ a: Int, _ b: Int, _ c: Int, _ d: Int) -> IPAddress {
    IPAddress(family: .v4, bytes: [a, b, c, d].map { UInt8($0) })
}

/// `prefix` (up to 12 bytes, zero-padded) followed by a 32-bit `low` part.
private func v6(_ prefix: [UInt8], _ low: Int) -> IPAddress {
    let head = prefix + [UInt8](repeating: 0, count: 12 - prefix.count)
    return IPAddress(family: .v6, bytes: head + [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: low >> $0) })
}

private let clusterV6Prefix: [UInt8] = [0xfd, 0x00, 0x00, 0x10, 0x00, 0x96]  // fd00:10:96::/108
private let podV6Prefix: [UInt8] = [0xfd, 0x00, 0x00, 0x10, 0x02, 0x44]  // fd00:10:244::/64
private let testNodeName = "n1"

extension NodeContext {
    /// A random node configuration: cluster CIDRs of either or both families, sometimes node-port addresses
    /// (adjacent and nested prefixes too), sometimes masquerade-all.
    public static func random(_ rng: inout SplitMix64) -> NodeContext {
        let cidrs = rng.pick([[], ["10.244.0.0/16"], ["10.244.0.0/16", "fd00:10:244::/56"],
                              ["10.244.0.0/16", "10.245.0.0/16", "fd00:10:244::/56"]])
        // Adjacent and nested prefixes too: an operator may well write them, and the kernel merges or
        // refuses overlapping intervals.
        let nodePortAddresses = rng.chance(0.25)
            ? rng.pick([["10.200.0.0/24"], ["10.200.0.0/24", "fd00:200::/64"], ["10.200.0.0/24", "10.200.1.0/24"],
                        ["10.200.0.0/16", "10.200.0.0/24", "fd00:200::/64", "fd00:200::/56"]])
            : []
        return NodeContext(
            nodeName: testNodeName, clusterCIDRs: cidrs.map { CIDR($0)! },
            nodePortAddresses: nodePortAddresses.map { CIDR($0)! }, masqueradeAll: rng.chance(0.15))
    }
}

extension RandomCluster {
    /// The ways one cluster is derived from another.
    public enum Mutation: String, CaseIterable, Sendable {
        case addService, removeService, addEndpoints, removeEndpoints, flipReadiness, changePorts
        case changeSlicePortNumbers, changeType, scaleAcrossRungs, changeClusterIPs, changeExternalAddresses
        case changeNode, reslice, orphanSlice, removeEverything
    }
}

/// A random cluster for property tests, as plain objects that are easy to mutate: Services of every type,
/// single- and dual-stack, 1–3 ports, EndpointSlices with per-slice port numbers and mixed readiness, a Node.
/// `state` turns it into a `ClusterState`. Every choice comes from the `SplitMix64` passed in, so a seed
/// names one cluster and one sequence of mutations for good: changing what a seed produces changes which
/// cases the property tests explore.
///
/// (The bench's `SyntheticCluster` is the other generator, on purpose: a homogeneous cluster of a given size,
/// for timing, where this one seeks variety, for correctness.)
public struct RandomCluster: Sendable {
    /// 63 characters, the longest DNS label (namespace, Service name): the generator uses it at times.
    public static let longestName = "a-name-as-long-as-kubernetes-allows-for-a-dns-label-which-is-63"

    public var services: [ObjectRef: Service] = [:]
    public var slices: [ObjectRef: EndpointSlice] = [:]
    public var node: Node?
    /// Makes object names unique.
    var serial = 0

    public var objects: [KubeObject] {
        services.keys.sorted().map { .service(services[$0]!) }
            + slices.keys.sorted().map { .endpointSlice(slices[$0]!) }
            + (node.map { [.node($0)] } ?? [])
    }

    public var state: ClusterState { ClusterState(objects) }

    func sliceRefs(of service: ObjectRef) -> [ObjectRef] {
        slices.values.filter { $0.serviceRef == service }.map(\.ref).sorted()
    }

    public static func random(_ rng: inout SplitMix64) -> RandomCluster {
        var world = RandomCluster()
        world.node = randomNode(&rng)
        for _ in 0..<rng.int(1...15) { world.addService(&rng) }
        return world
    }

    static func randomNode(_ rng: inout SplitMix64) -> Node {
        var addresses = [NodeAddress(type: "InternalIP", address: "10.200.0.\(rng.int(1...9))")]
        if rng.chance(0.3) {
            // Another address, possibly adjacent to the first (no duplicates: see the report on
            // duplicate InternalIPs).
            let other = rng.pick((1...9).map { "10.200.0.\($0)" }.filter { $0 != addresses[0].address })
            addresses.append(NodeAddress(type: "InternalIP", address: other))
        }
        if rng.chance(0.5) { addresses.append(NodeAddress(type: "InternalIP", address: "fd00:200::\(rng.int(1...9))")) }
        addresses.append(NodeAddress(type: "ExternalIP", address: "192.0.2.\(rng.int(1...9))"))
        addresses.append(NodeAddress(type: "Hostname", address: testNodeName))
        return Node(name: testNodeName, addresses: addresses)
    }

    // MARK: Services

    mutating func addService(_ rng: inout SplitMix64) {
        serial += 1
        // Now and then names as long as Kubernetes allows (63 characters): kernel names and comments
        // have limits of their own.
        let suffix = "-\(serial)"
        let base = rng.chance(0.1) ? String(Self.longestName.prefix(63 - suffix.count))
            : rng.pick(["web", "dns", "api", "db", "cache", "metrics"])
        let namespace = rng.pick(["default", "kube-system", "team-a", Self.longestName])
        let ref = ObjectRef(namespace: namespace, name: base + suffix)
        var service = Service(ref: ref)
        service.type = rng.weighted([(.clusterIP, 5), (.nodePort, 3), (.loadBalancer, 3), (.externalName, 0.2)])
        let families: [IPFamily] = rng.weighted([([.v4], 6), ([.v6], 2), ([.v4, .v6], 2), ([.v6, .v4], 1)])
        if rng.chance(0.05) {
            service.isHeadless = true
        } else {
            for family in families { service.clusterIPs.append(freshClusterIP(family, &rng)) }
        }
        service.ports = randomPorts(rng.int(1...3), &rng)
        assignNodePorts(&service, &rng)
        if rng.chance(0.2) { service.externalIPs = randomExternalIPs(&rng) }
        if service.type == .loadBalancer { service.loadBalancerIngress = randomIngress(&rng) }
        if rng.chance(0.03) { service.labels["service.kubernetes.io/service-proxy-name"] = "another-proxy" }
        services[ref] = service
        makeSlices(for: service, &rng)
    }

    func freshClusterIP(_ family: IPFamily, _ rng: inout SplitMix64) -> IPAddress {
        let used = Set(services.values.flatMap(\.clusterIPs))
        while true {
            let ip = family == .v4
                ? v4(10, 96, rng.int(0...255), rng.int(1...254)) : v6(clusterV6Prefix, rng.int(1...0xfffff))
            if !used.contains(ip) { return ip }
        }
    }

    func freshNodePort(_ rng: inout SplitMix64, avoiding extra: Set<Int> = []) -> Int {
        let used = Set(services.values.flatMap { $0.ports.compactMap(\.nodePort) }).union(extra)
        while true {
            let port = rng.int(30000...32767)
            if !used.contains(port) { return port }
        }
    }

    func randomPorts(_ count: Int, _ rng: inout SplitMix64) -> [ServicePort] {
        var names = ["http", "https", "dns", "grpc", "metrics", "admin", "http-metrics-tl"].shuffled(using: &rng)
        var taken = Set<String>()
        var out: [ServicePort] = []
        while out.count < count {
            let proto: L4Protocol = rng.weighted([(.tcp, 5), (.udp, 3), (.sctp, 1)])
            let number = rng.chance(0.6) ? rng.pick([53, 80, 443, 8080, 8443, 9090]) : rng.int(1...65535)
            guard taken.insert("\(proto)/\(number)").inserted else { continue }
            let name = count == 1 && rng.chance(0.5) ? "" : names.removeFirst()
            let target: TargetPort = !name.isEmpty && rng.chance(0.5) ? .name(name) : .number(rng.int(1024...9999))
            out.append(ServicePort(name: name, protocol: proto, port: number, targetPort: target))
        }
        return out
    }

    /// NodePort and LoadBalancer Services get a unique node port per port; others none.
    func assignNodePorts(_ service: inout Service, _ rng: inout SplitMix64) {
        var mine = Set<Int>()
        for i in service.ports.indices {
            if service.type == .nodePort || service.type == .loadBalancer {
                let port = service.ports[i].nodePort ?? freshNodePort(&rng, avoiding: mine)
                service.ports[i].nodePort = port
                mine.insert(port)
            } else {
                service.ports[i].nodePort = nil
            }
        }
    }

    /// From a small pool, so that Services sometimes share an address (and, on the same port, conflict).
    func randomExternalIPs(_ rng: inout SplitMix64) -> [IPAddress] {
        (0..<rng.int(1...2)).map { _ in
            rng.chance(0.7) ? v4(203, 0, 113, rng.int(1...6)) : IPAddress("2001:db8::\(rng.int(1...6))")!
        }
    }

    func randomIngress(_ rng: inout SplitMix64) -> [LoadBalancerIngress] {
        (0..<rng.int(0...2)).map { _ in
            if rng.chance(0.1) { return LoadBalancerIngress(hostname: "lb.example.com") }
            let ip = rng.chance(0.7) ? v4(198, 51, 100, rng.int(1...6)) : IPAddress("2001:db8:1::\(rng.int(1...6))")!
            return LoadBalancerIngress(ip: ip, ipMode: rng.weighted([(nil, 6), (.vip, 2), (.proxy, 1)]))
        }
    }

    // MARK: Slices

    /// Replaces the Service's slices: one or two per family of its cluster IPs (sometimes the other family
    /// too), `endpointCount` endpoints per family (random 0–12 if nil), each slice with its own port numbers.
    mutating func makeSlices(
        for service: Service, endpointCount: Int? = nil, allReady: Bool = false, _ rng: inout SplitMix64
    ) {
        for ref in sliceRefs(of: service.ref) { slices[ref] = nil }
        var families = Set(service.clusterIPs.map(\.family))
        if families.isEmpty || rng.chance(0.15) { families.insert(rng.pick([.v4, .v6])) }
        for family in families.sorted() {
            let total = endpointCount ?? rng.int(0...12)
            let sliceCount = total > 1 && rng.chance(0.25) ? 2 : 1
            var addresses = Set<IPAddress>()
            while addresses.count < total { addresses.insert(randomPodIP(family, &rng)) }
            var pending = addresses.sorted().shuffled(using: &rng)
            for k in 0..<sliceCount {
                let n = k == sliceCount - 1 ? pending.count : rng.int(0...pending.count)
                let endpoints = pending.prefix(n).map { randomEndpoint($0, allReady: allReady, &rng) }
                pending.removeFirst(n)
                addSlice(for: service, family: family, endpoints: endpoints, &rng)
            }
        }
    }

    mutating func addSlice(
        for service: Service, family: IPFamily, endpoints: [Endpoint], ports: [EndpointPort]? = nil,
        _ rng: inout SplitMix64
    ) {
        serial += 1
        let ref = ObjectRef(namespace: service.ref.namespace, name: "\(service.ref.name)-\(serial)")
        let ports = ports ?? service.ports.compactMap { p -> EndpointPort? in
            if rng.chance(0.05) { return nil }  // a slice without this port resolves nothing for it
            return EndpointPort(name: p.name, protocol: p.protocol, port: rng.chance(0.03) ? nil : rng.int(1024...9999))
        }
        slices[ref] = EndpointSlice(
            ref: ref, serviceName: service.ref.name, addressType: family == .v4 ? .ipv4 : .ipv6, ports: ports,
            endpoints: endpoints)
    }

    func randomPodIP(_ family: IPFamily, _ rng: inout SplitMix64) -> IPAddress {
        family == .v4 ? v4(10, 244, rng.int(0...3), rng.int(1...254)) : v6(podV6Prefix, rng.int(1...0xffff))
    }

    func randomEndpoint(_ address: IPAddress, allReady: Bool = false, _ rng: inout SplitMix64) -> Endpoint {
        Endpoint(
            addresses: [address], ready: allReady ? true : rng.pick([true, true, true, false, nil]),
            serving: rng.pick([true, false, nil]), terminating: rng.pick([false, true, nil]),
            nodeName: rng.pick(["n1", "n2", "n3"]))
    }

    // MARK: Mutations

    /// Applies one mutation of `kind` (or, when it has nothing to act on, adds a Service) and says what it did.
    /// Applies one mutation of `kind`; returns what it did, for failure reports.
    public mutating func mutate(_ kind: Mutation, _ rng: inout SplitMix64) -> String {
        let programmable = services.keys.sorted()
        let withIPs = services.keys.sorted().filter { !services[$0]!.clusterIPs.isEmpty }
        let sliceKeys = slices.keys.sorted()
        let populated = sliceKeys.filter { !slices[$0]!.endpoints.isEmpty }

        switch kind {
        case .addService:
            addService(&rng)
            return "addService"

        case .removeService:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            services[ref] = nil
            let keepSlices = rng.chance(0.3)
            if !keepSlices { for s in sliceRefs(of: ref) { slices[s] = nil } }
            return "removeService \(ref)\(keepSlices ? " (its slices stay)" : "")"

        case .addEndpoints:
            guard let ref = sliceKeys.randomElement(using: &rng) else { break }
            let family: IPFamily = slices[ref]!.addressType == .ipv4 ? .v4 : .v6
            let n = rng.int(1...4)
            for _ in 0..<n { slices[ref]!.endpoints.append(randomEndpoint(randomPodIP(family, &rng), &rng)) }
            return "addEndpoints \(ref) +\(n)"

        case .removeEndpoints:
            guard let ref = populated.randomElement(using: &rng) else { break }
            let n = rng.int(1...slices[ref]!.endpoints.count)
            for _ in 0..<n { slices[ref]!.endpoints.remove(at: rng.int(0...slices[ref]!.endpoints.count - 1)) }
            return "removeEndpoints \(ref) -\(n)"

        case .flipReadiness:
            guard let ref = populated.randomElement(using: &rng) else { break }
            let n = rng.int(1...slices[ref]!.endpoints.count)
            for _ in 0..<n {
                let i = rng.int(0...slices[ref]!.endpoints.count - 1)
                let wasReady = slices[ref]!.endpoints[i].isReady
                slices[ref]!.endpoints[i].ready = wasReady ? false : rng.pick([true, nil])
            }
            return "flipReadiness \(ref) ×\(n)"

        case .changePorts:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            return "changePorts \(ref): " + changePorts(ref, &rng)

        case .changeSlicePortNumbers:
            guard let ref = sliceKeys.randomElement(using: &rng), !slices[ref]!.ports.isEmpty else { break }
            for i in slices[ref]!.ports.indices { slices[ref]!.ports[i].port = rng.int(1024...9999) }
            return "changeSlicePortNumbers \(ref)"

        case .changeType:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            var service = services[ref]!
            let old = service.type
            service.type = rng.pick([ServiceType.clusterIP, .nodePort, .loadBalancer].filter { $0 != old })
            services[ref] = nil  // its own node ports must not count as taken when reassigning
            assignNodePorts(&service, &rng)
            if service.type == .loadBalancer && service.loadBalancerIngress.isEmpty {
                service.loadBalancerIngress = randomIngress(&rng)
            }
            services[ref] = service
            return "changeType \(ref) \(old.rawValue) → \(service.type.rawValue)"

        case .scaleAcrossRungs:
            guard let ref = withIPs.randomElement(using: &rng) else { break }
            let service = services[ref]!
            let before = sliceRefs(of: ref).reduce(0) { $0 + slices[$1]!.endpoints.count }
            let rungs = [1, 2, 3, 5, 7, 13, 26]
            let size = MaglevTable.size(forBackendCount:)
            let target = rng.pick(rungs.filter { size($0) != size(max(before, 1)) })
            makeSlices(for: service, endpointCount: target, allReady: true, &rng)
            return "scaleAcrossRungs \(ref) \(before) → \(target) endpoints per family "
                + "(M \(size(max(before, 1))) → \(size(target)))"

        case .changeClusterIPs:
            guard let ref = withIPs.randomElement(using: &rng) else { break }
            var service = services[ref]!
            let old = service.clusterIPs
            if old.count == 2 {
                service.clusterIPs.remove(at: rng.int(0...1))
            } else if rng.chance(0.5) {
                let other: IPFamily = old[0].family == .v4 ? .v6 : .v4
                service.clusterIPs.append(freshClusterIP(other, &rng))
                if !sliceRefs(of: ref).contains(where: { slices[$0]!.addressType == (other == .v4 ? .ipv4 : .ipv6) }) {
                    let endpoints = (0..<rng.int(0...6)).map { _ in randomEndpoint(randomPodIP(other, &rng), &rng) }
                    addSlice(for: service, family: other, endpoints: endpoints, &rng)
                }
            } else {
                service.clusterIPs[0] = freshClusterIP(old[0].family, &rng)
            }
            services[ref] = service
            return "changeClusterIPs \(ref) \(old) → \(service.clusterIPs)"

        case .changeExternalAddresses:
            guard let ref = programmable.randomElement(using: &rng) else { break }
            services[ref]!.externalIPs = rng.chance(0.3) ? [] : randomExternalIPs(&rng)
            services[ref]!.loadBalancerIngress = randomIngress(&rng)
            return "changeExternalAddresses \(ref)"

        case .changeNode:
            node = rng.chance(0.15) ? nil : Self.randomNode(&rng)
            return "changeNode \(node.map { $0.addresses.map(\.address).joined(separator: ",") } ?? "removed")"

        case .reslice:
            guard let ref = withIPs.randomElement(using: &rng) else { break }
            // The same endpoints of each family, spread over another number of slices: nothing should change.
            for family in [IPFamily.v4, .v6] {
                let mine = sliceRefs(of: ref).filter { slices[$0]!.addressType == (family == .v4 ? .ipv4 : .ipv6) }
                guard let first = mine.first else { continue }
                let ports = slices[first]!.ports
                let endpoints = mine.flatMap { slices[$0]!.endpoints }
                for s in mine { slices[s] = nil }
                let parts = rng.int(1...3)
                for k in 0..<parts {
                    let chunk = endpoints.enumerated().filter { $0.offset % parts == k }.map(\.element)
                    addSlice(for: services[ref]!, family: family, endpoints: chunk, ports: ports, &rng)
                }
            }
            return "reslice \(ref)"

        case .orphanSlice:
            guard let ref = sliceKeys.randomElement(using: &rng) else { break }
            let old = slices[ref]!.serviceName ?? "-"
            let other = services.keys.filter { $0.namespace == ref.namespace }.randomElement(using: &rng)
            slices[ref]!.serviceName = rng.chance(0.5) ? nil : other?.name
            return "orphanSlice \(ref) \(old) → \(slices[ref]!.serviceName ?? "none")"

        case .removeEverything:
            services = [:]
            slices = [:]
            if rng.chance(0.5) { node = nil }
            return "removeEverything\(node == nil ? " (node too)" : "")"
        }
        addService(&rng)
        return "\(kind.rawValue) had nothing to act on: addService"
    }

    /// Changes one thing about a Service's ports and keeps its slices' ports in step.
    mutating func changePorts(_ ref: ObjectRef, _ rng: inout SplitMix64) -> String {
        var service = services[ref]!
        let taken = Set(service.ports.map { "\($0.protocol)/\($0.port)" })
        let i = rng.int(0...service.ports.count - 1)
        var what = ""
        switch rng.int(0...3) {
        case 0:
            var number = rng.int(1...65535)
            while taken.contains("\(service.ports[i].protocol)/\(number)") { number = rng.int(1...65535) }
            what = "port \(service.ports[i].port) → \(number)"
            service.ports[i].port = number
        case 1:
            let old = service.ports[i].protocol
            let candidates = L4Protocol.allCases.filter {
                $0 != old && !taken.contains("\($0)/\(service.ports[i].port)")
            }
            guard let proto = candidates.randomElement(using: &rng) else { return "nothing" }
            service.ports[i].protocol = proto
            let name = service.ports[i].name
            let followSlices = rng.chance(0.8)
            if followSlices {
                for s in sliceRefs(of: ref) {
                    for j in slices[s]!.ports.indices where slices[s]!.ports[j].name == name {
                        slices[s]!.ports[j].protocol = proto
                    }
                }
            }
            what = "protocol of \(name.isEmpty ? "the port" : name) \(old) → \(proto)"
                + (followSlices ? "" : " (slices not)")
        case 2 where service.ports.count < 3:
            if service.ports.count == 1 && service.ports[0].name.isEmpty {
                // A second port needs both named.
                service.ports[0].name = "first"
                for s in sliceRefs(of: ref) {
                    for j in slices[s]!.ports.indices where slices[s]!.ports[j].name.isEmpty {
                        slices[s]!.ports[j].name = "first"
                    }
                }
            }
            var port = randomPorts(1, &rng)[0]
            while taken.contains("\(port.protocol)/\(port.port)") { port = randomPorts(1, &rng)[0] }
            port.name = "extra\(serial)"
            serial += 1
            service.ports.append(port)
            for s in sliceRefs(of: ref) {
                slices[s]!.ports.append(
                    EndpointPort(name: port.name, protocol: port.protocol, port: rng.int(1024...9999)))
            }
            what = "add port \(port.name) \(port.protocol)/\(port.port)"
        case 3 where service.ports.count > 1:
            let gone = service.ports.remove(at: i)
            if rng.chance(0.7) {
                for s in sliceRefs(of: ref) { slices[s]!.ports.removeAll { $0.name == gone.name } }
            }
            what = "remove port \(gone.name)"
        default:
            what = "target port only"
            service.ports[i].targetPort = .number(rng.int(1024...9999))
        }
        services[ref] = nil
        assignNodePorts(&service, &rng)
        services[ref] = service
        return what
    }
}
