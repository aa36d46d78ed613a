import NetworkTypes

extension ManifestDecoder {
    /// A `v1 Service`. Any malformed field skips the whole Service: a Service decoded without one of its ports
    /// or addresses would silently serve something other than what was asked for.
    static func service(_ object: Field, _ context: inout ObjectContext) throws(FieldError) -> Service {
        // Service names are DNS-1035 labels in the API; the slightly wider DNS-1123 label rule is what newer
        // releases accept and equally safe.
        let ref = try namespacedRef(object, subject: Diagnostic.Subject.service, nameIsLabel: true, &context)
        let labels = try object.child("metadata", "labels").stringMap()
        let spec = try object.child("spec")

        let type = try spec.child("type").enumValue(ServiceType.clusterIP,
                                                   [.clusterIP, .nodePort, .loadBalancer, .externalName])
        let (clusterIPs, isHeadless) = try clusterIPs(spec)
        let ports = try servicePorts(spec.child("ports"))
        let externalIPs = try spec.child("externalIPs").ipAddresses()
        let ingress = try loadBalancerIngress(object.child("status", "loadBalancer", "ingress"))
        let sourceRanges = try spec.child("loadBalancerSourceRanges").cidrs()
        let external = try spec.child("externalTrafficPolicy").enumValue(TrafficPolicy.cluster, [.cluster, .local])
        let `internal` = try spec.child("internalTrafficPolicy").enumValue(TrafficPolicy.cluster, [.cluster, .local])
        let healthCheckNodePort = try spec.child("healthCheckNodePort").portOrZero()
        let affinity = try sessionAffinity(spec)

        return Service(
            ref: ref, type: type, clusterIPs: clusterIPs, isHeadless: isHeadless, ports: ports,
            externalIPs: externalIPs, loadBalancerIngress: ingress, loadBalancerSourceRanges: sourceRanges,
            externalTrafficPolicy: external, internalTrafficPolicy: `internal`,
            healthCheckNodePort: healthCheckNodePort, sessionAffinity: affinity, labels: labels)
    }

    /// `spec.clusterIPs`, or `spec.clusterIP` where the list is absent (objects from before dual-stack).
    /// `None` marks a headless Service; it must stand alone.
    private static func clusterIPs(_ spec: Field) throws(FieldError) -> ([IPAddress], Bool) {
        let listField = try spec.child("clusterIPs")
        let singleField = try spec.child("clusterIP")
        let listed = try listField.strings()
        let single = try singleField.nonEmptyString()
        if let single, let first = listed.first, first.0 != single {
            throw singleField.fail("\(Field.quote(single)) differs from spec.clusterIPs[0] \(Field.quote(first.0))")
        }
        let entries = listed.isEmpty ? (single.map { [($0, singleField)] } ?? []) : listed
        if let none = entries.first(where: { $0.0 == "None" }) {
            guard entries.count == 1 else { throw none.1.fail("\"None\" (headless) must be the only cluster IP") }
            return ([], true)
        }
        var ips: [IPAddress] = []
        for (text, field) in entries {
            guard let ip = IPAddress(text) else { throw field.fail("invalid IP address \(Field.quote(text))") }
            ips.append(ip)
        }
        if ips.count > 2 || (ips.count == 2 && ips[0].family == ips[1].family) {
            throw listField.fail("at most one cluster IP per IP family")
        }
        return (ips, false)
    }

    private static func servicePorts(_ list: Field) throws(FieldError) -> [ServicePort] {
        let items = try list.items()
        var ports: [ServicePort] = []
        var names: Set<String> = []
        var numbers: Set<String> = []
        for item in items {
            let nameField = try item.child("name")
            let name = try nameField.string() ?? ""
            if name.isEmpty {
                // Endpoint ports are matched to Service ports by name; two unnamed ports could not be told apart.
                if items.count > 1 { throw nameField.fail("a port name is required when a Service has several ports") }
            } else if !NameRules.isDNS1123Label(name) {
                throw nameField.fail("port name \(Field.quote(name)) is not \(NameRules.labelRule)")
            }
            guard names.insert(name).inserted else { throw nameField.fail("duplicate port name \(Field.quote(name))") }
            let proto = try item.child("protocol").l4Protocol()
            let portField = try item.child("port")
            guard let port = try portField.port() else { throw portField.fail("missing port") }
            guard numbers.insert("\(port)/\(proto.rawValue)").inserted else {
                throw portField.fail("duplicate port \(port)/\(proto.rawValue)")
            }
            let target = try targetPort(item.child("targetPort"), default: port)
            let nodePort = try item.child("nodePort").portOrZero()
            ports.append(ServicePort(name: name, protocol: proto, port: port, targetPort: target, nodePort: nodePort))
        }
        return ports
    }

    /// Kubernetes' IntOrString: a JSON number is a port, a JSON string is a port name (even if it is all
    /// digits, which is therefore an error). 0, `""` and absent default to the Service port.
    private static func targetPort(_ field: Field, default port: Int) throws(FieldError) -> TargetPort {
        switch field.value {
        case .null:
            return .number(port)
        case .int:
            return .number(try field.portOrZero() ?? port)
        case .string(let s):
            if s.isEmpty { return .number(port) }
            if NameRules.isIANASvcName(s) { return .name(s) }
            if s.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
                throw field.fail("targetPort \(Field.quote(s)) is a string, so it names a port, but a port name "
                    + "needs a letter; write a number without quotes")
            }
            throw field.fail("targetPort name \(Field.quote(s)) is not \(NameRules.ianaRule)")
        default:
            throw field.typeError("an integer or a string")
        }
    }

    private static func loadBalancerIngress(_ list: Field) throws(FieldError) -> [LoadBalancerIngress] {
        var out: [LoadBalancerIngress] = []
        for item in try list.items() {
            let ip = try item.child("ip").ipAddress()
            let hostname = try item.child("hostname").nonEmptyString()
            let modeField = try item.child("ipMode")
            var mode: LoadBalancerIngress.IPMode?
            if let text = try modeField.nonEmptyString() {
                guard let m = LoadBalancerIngress.IPMode(rawValue: text) else {
                    throw modeField.fail("unknown value \(Field.quote(text)) (expected one of VIP, Proxy)")
                }
                mode = m
            }
            out.append(LoadBalancerIngress(ip: ip, hostname: hostname, ipMode: mode))
        }
        return out
    }

    /// `sessionAffinity` with `sessionAffinityConfig.clientIP.timeoutSeconds` (default 10800, API range 1-86400).
    private static func sessionAffinity(_ spec: Field) throws(FieldError) -> SessionAffinity {
        let field = try spec.child("sessionAffinity")
        switch try field.nonEmptyString() {
        case nil, "None":
            return .none
        case "ClientIP":
            let timeoutField = try spec.child("sessionAffinityConfig", "clientIP", "timeoutSeconds")
            let timeout = try timeoutField.int() ?? 10800
            guard (1...86400).contains(timeout) else {
                throw timeoutField.fail("timeout \(timeout) is out of range 1-86400 seconds")
            }
            return .clientIP(timeoutSeconds: timeout)
        case let other?:
            throw field.fail("unknown value \(Field.quote(other)) (expected one of None, ClientIP)")
        }
    }
}
