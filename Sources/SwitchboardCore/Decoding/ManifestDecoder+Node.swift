import NetworkTypes

extension ManifestDecoder {
    /// A `v1 Node`.
    ///
    /// A bad pod CIDR skips the Node (masquerade decisions depend on it). A bad entry of `status.addresses`
    /// (wrong JSON type, or an `InternalIP`/`ExternalIP` that is not an IP address) is dropped with a warning
    /// and the rest of the Node kept: an address the agent cannot use is no worse than an absent one, and the
    /// Node is the one object the agent cannot run without. A bad entry of `spec.taints` (a key that is not a
    /// non-empty string, a value or effect that is not a string) is dropped the same way.
    static func node(_ object: Field, _ context: inout ObjectContext) throws(FieldError) -> Node {
        let metadata = try object.child("metadata")
        let name = try objectName(metadata, isLabel: false)
        context.subject = .node(name)
        let labels = try metadata.child("labels").stringMap()
        let deletionTimestamp = try metadata.child("deletionTimestamp").nonEmptyString()

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
        var taints: [Taint] = []
        for item in try spec.child("taints").items() {
            do throws(FieldError) {
                let keyField = try item.child("key")
                guard let key = try keyField.nonEmptyString() else { throw keyField.fail("missing taint key") }
                let value = try item.child("value").nonEmptyString()
                let effect = try item.child("effect").string() ?? ""
                taints.append(Taint(key: key, value: value, effect: effect))
            } catch {
                context.warnings.append(FieldError(path: error.path, message: "\(error.message); taint skipped"))
            }
        }
        return Node(
            name: name, addresses: addresses, labels: labels, podCIDRs: podCIDRs, taints: taints,
            deletionTimestamp: deletionTimestamp)
    }
}
