import NetworkTypes

extension ManifestDecoder {
    /// The label that ties a slice to its Service.
    static let serviceNameLabel = "kubernetes.io/service-name"

    /// A `discovery.k8s.io/v1` or `v1beta1` EndpointSlice.
    ///
    /// What a bad field costs: a problem in the slice's identity, `addressType` or `ports` skips the whole slice
    /// (the ports apply to every endpoint, so no endpoint could be resolved safely). A problem inside one
    /// `endpoints[i]` (a bad or wrong-family address, an empty address list, a condition or topology field of
    /// the wrong type) skips only that endpoint, with a warning: endpoints are independent backends, so
    /// dropping one only removes capacity and never sends traffic anywhere it was not meant to go, whereas
    /// dropping the slice would take every healthy backend in it out of service.
    ///
    /// Versions: v1 carries `nodeName`, `zone` and `hints`; v1beta1 carries `topology`, whose
    /// `kubernetes.io/hostname` and `topology.kubernetes.io/zone` keys supply the node and zone. v1beta1 gained
    /// `nodeName` (1.20) and `hints` (1.21) as well; both are read when present, and `nodeName` wins over the
    /// topology key. Slices of `addressType: FQDN` decode with no endpoints: their addresses are host names,
    /// which `Endpoint` cannot hold (kube-proxy ignores such slices altogether).
    static func endpointSlice(_ object: Field, apiVersion: String,
                              _ context: inout ObjectContext) throws(FieldError) -> EndpointSlice {
        let ref = try namespacedRef(object, subject: Diagnostic.Subject.endpointSlice, nameIsLabel: false, &context)
        let metadata = try object.child("metadata")
        let labels = try metadata.child("labels").stringMap()
        let annotations = try metadata.child("annotations").stringMap()
        var serviceName: String?
        if let name = labels[serviceNameLabel], !name.isEmpty {
            guard NameRules.isDNS1123Label(name) else {
                throw try metadata.child("labels", serviceNameLabel)
                    .fail("Service name \(Field.quote(name)) is not \(NameRules.labelRule)")
            }
            serviceName = name
        }

        let typeField = try object.child("addressType")
        guard !typeField.isAbsent else { throw typeField.fail("missing addressType") }
        let addressType = try typeField.enumValue(EndpointAddressType.ipv4, [.ipv4, .ipv6, .fqdn])
        let ports = try endpointPorts(object.child("ports"))

        var endpoints: [Endpoint] = []
        if addressType != .fqdn {
            let family: IPFamily = addressType == .ipv4 ? .v4 : .v6
            let isV1beta1 = apiVersion == "discovery.k8s.io/v1beta1"
            for item in try object.child("endpoints").items() {
                do throws(FieldError) {
                    endpoints.append(try endpoint(item, family: family, isV1beta1: isV1beta1))
                } catch {
                    context.warnings.append(FieldError(path: error.path, message: "\(error.message); endpoint skipped"))
                }
            }
        }
        return EndpointSlice(ref: ref, serviceName: serviceName, addressType: addressType, ports: ports,
                             endpoints: endpoints, labels: labels, annotations: annotations)
    }

    private static func endpointPorts(_ list: Field) throws(FieldError) -> [EndpointPort] {
        var out: [EndpointPort] = []
        var names: Set<String> = []
        for item in try list.items() {
            let nameField = try item.child("name")
            let name = try nameField.string() ?? ""
            if !name.isEmpty && !NameRules.isDNS1123Label(name) {
                throw nameField.fail("port name \(Field.quote(name)) is not \(NameRules.labelRule)")
            }
            guard names.insert(name).inserted else { throw nameField.fail("duplicate port name \(Field.quote(name))") }
            let proto = try item.child("protocol").l4Protocol()
            // An absent port is legal: "all ports"; it resolves nothing.
            let port = try item.child("port").port()
            out.append(EndpointPort(name: name, protocol: proto, port: port))
        }
        return out
    }

    private static func endpoint(_ item: Field, family: IPFamily, isV1beta1: Bool) throws(FieldError) -> Endpoint {
        let addressField = try item.child("addresses")
        var addresses: [IPAddress] = []
        for (text, field) in try addressField.strings() {
            guard let ip = IPAddress(text) else { throw field.fail("invalid IP address \(Field.quote(text))") }
            guard ip.family == family else {
                throw field.fail("\(ip.family.rawValue) address \(ip) in a slice of addressType \(family.rawValue)")
            }
            addresses.append(ip)
        }
        guard !addresses.isEmpty else { throw addressField.fail("an endpoint needs at least one address") }

        let conditions = try item.child("conditions")
        let ready = try conditions.child("ready").bool()
        let serving = try conditions.child("serving").bool()
        let terminating = try conditions.child("terminating").bool()

        var nodeName = try item.child("nodeName").nonEmptyString()
        var zone: String?
        if isV1beta1 {
            let topology = try item.child("topology").stringMap()
            nodeName = nodeName ?? topology["kubernetes.io/hostname"].flatMap { $0.isEmpty ? nil : $0 }
            zone = topology["topology.kubernetes.io/zone"].flatMap { $0.isEmpty ? nil : $0 }
        } else {
            zone = try item.child("zone").nonEmptyString()
        }

        var zoneHints: [String]?
        var nodeHints: [String]?
        let hints = try item.child("hints")
        if !hints.isAbsent {
            func names(_ field: String, _ what: String) throws(FieldError) -> [String] {
                var names: [String] = []
                for hint in try hints.child(field).items() {
                    let nameField = try hint.child("name")
                    guard let name = try nameField.nonEmptyString() else { throw nameField.fail("missing \(what) name") }
                    names.append(name)
                }
                return names
            }
            zoneHints = try names("forZones", "zone")
            if !(try hints.child("forNodes")).isAbsent { nodeHints = try names("forNodes", "node") }
        }
        return Endpoint(addresses: addresses, ready: ready, serving: serving, terminating: terminating,
                        nodeName: nodeName, zone: zone, zoneHints: zoneHints, nodeHints: nodeHints)
    }
}
