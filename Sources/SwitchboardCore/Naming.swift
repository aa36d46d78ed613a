import NFTModel

/// Kernel object names. Stable across processes and releases: chain and map names are kernel state
/// that a new version must recognise after an upgrade, and that every node derives identically.
/// Each name is `<kind>-<hash8>-<readable part>`: the hash (of the full identity) makes the name
/// unique even where the readable part is truncated or sanitised.
enum Naming {
    /// The readable identity of a service port: `ns/name/proto/port-name-or-number`.
    static func servicePortKey(_ service: ObjectRef, _ port: ServicePort) -> String {
        let portPart = port.name.isEmpty ? String(port.port) : port.name
        return "\(service.namespace)/\(service.name)/\(port.protocol.nftName)/\(portPart)"
    }

    static func serviceChain(_ key: String) -> String { "svc-\(stableHash8("svc " + key))-\(nftIdentifierPart(key))" }

    static func externalChain(_ key: String) -> String { "ext-\(stableHash8("ext " + key))-\(nftIdentifierPart(key))" }

    /// The Maglev map's name includes M in its hash: a table of another size is another map, so a
    /// size change is "add new map, repoint rule, delete old map" instead of an in-place redeclaration.
    static func maglevMap(_ key: String, size: Int) -> String {
        "mg-\(stableHash8("mg \(size) " + key))-\(nftIdentifierPart(key))"
    }

    static func endpointChain(_ key: String, endpoint: String) -> String {
        "ep-\(stableHash8("ep " + key + " " + endpoint))-\(nftIdentifierPart(key))__\(nftIdentifierPart(endpoint, limit: 60))"
    }
}
