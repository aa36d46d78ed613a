import NetworkTypes

extension ManifestDecoder {
    /// A `v1 Node`.
    ///
    /// A bad pod CIDR skips the Node (masquerade decisions depend on it). A bad entry of `status.addresses`
    /// (wrong JSON type, or an `InternalIP`/`ExternalIP` that is not an IP address) is dropped with a warning
    /// and the rest of the Node kept: an address the agent cannot use is no worse than an absent one, and the
    /// Node is the one object the agent cannot run without.
    static func node(_ object: Field, _ context: inout ObjectContext) throws(FieldError) -> Node {
        let metadata = try object.child("metadata")
        let name = try objectName(metadata, isLabel: false)
        context.label = "Node \(name)"
        let labels = try metadata.child("labels").stringMap()

        var addresses: [NodeAddress] = []
        for item in try object.child("status", "addresses").items() {
            do throws(FieldError) {
                let typeField = try item.child("type")
                let addressField = try item.child("address")
                guard let type = try typeField.nonEmptyString() else { throw typeField.fail("missing address type") }
                guard let address = try addressField.nonEmptyString() else {
                    throw addressField.fail("missing address")
                }
                if type == "InternalIP" || type == "ExternalIP", IPAddress(address) == nil {
                    throw addressField.fail("invalid IP address \(Field.quote(address))")
                }
                addresses.append(NodeAddress(type: type, address: address))
            } catch {
                context.warnings.append(FieldError(path: error.path, message: "\(error.message); address skipped"))
            }
        }

        let spec = try object.child("spec")
        var podCIDRs = try spec.child("podCIDRs").cidrs()
        if podCIDRs.isEmpty {
            let single = try spec.child("podCIDR")
            if let text = try single.nonEmptyString() {
                guard let cidr = CIDR(text) else { throw single.fail("invalid CIDR \(Field.quote(text))") }
                podCIDRs = [cidr]
            }
        }
        return Node(name: name, addresses: addresses, labels: labels, podCIDRs: podCIDRs)
    }
}
