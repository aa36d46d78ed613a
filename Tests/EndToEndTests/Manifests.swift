import Foundation

/// Kubernetes manifests for end-to-end tests, written as the YAML `kubectl get -o yaml` prints, so
/// the binary reads them exactly as it reads an operator's files.
enum Manifest {
    struct Port {
        var name: String = ""
        var proto: String = "TCP"
        var port: Int
        var targetPort: String? = nil
        var nodePort: Int? = nil
    }

    struct EndpointEntry {
        var address: String
        var ready: Bool? = true
        var nodeName: String? = nil
        var serving: Bool? = nil
        var terminating: Bool? = nil
        var zone: String? = nil
        /// `hints.forZones` (v1 only).
        var hints: [String]? = nil
    }

    /// What a Service's spec says beyond type, IPs and ports.
    struct ServiceOptions {
        var externalTrafficPolicy: String? = nil
        var internalTrafficPolicy: String? = nil
        /// `sessionAffinity: ClientIP` with this `timeoutSeconds`.
        var affinityTimeout: Int? = nil
        var loadBalancerSourceRanges: [String] = []
        var healthCheckNodePort: Int? = nil
    }

    static func node(_ name: String, internalIPs: [String], zone: String? = nil, podCIDRs: [String] = []) -> String {
        """
        apiVersion: v1
        kind: Node
        metadata:
          name: \(name)\(zone.map { "\n  labels: {topology.kubernetes.io/zone: \($0)}" } ?? "")
        spec:
          podCIDRs: [\(podCIDRs.map { "\"\($0)\"" }.joined(separator: ", "))]
        status:
          addresses:
        \(internalIPs.map { "  - type: InternalIP\n    address: \"\($0)\"" }.joined(separator: "\n"))
        """
    }

    static func service(
        _ name: String, namespace: String = "default", type: String = "ClusterIP", clusterIPs: [String],
        ports: [Port], externalIPs: [String] = [], loadBalancerIPs: [String] = [], options: ServiceOptions = .init()
    ) -> String {
        var out = """
            apiVersion: v1
            kind: Service
            metadata:
              name: \(name)
              namespace: \(namespace)
            spec:
              type: \(type)
              clusterIP: "\(clusterIPs[0])"
              clusterIPs: [\(clusterIPs.map { "\"\($0)\"" }.joined(separator: ", "))]
              ports:

            """
        for p in ports {
            out += "  - protocol: \(p.proto)\n    port: \(p.port)\n"
            if !p.name.isEmpty { out += "    name: \(p.name)\n" }
            if let t = p.targetPort { out += "    targetPort: \(t)\n" }
            if let n = p.nodePort { out += "    nodePort: \(n)\n" }
        }
        if !externalIPs.isEmpty {
            out += "  externalIPs: [\(externalIPs.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
        }
        if let p = options.externalTrafficPolicy { out += "  externalTrafficPolicy: \(p)\n" }
        if let p = options.internalTrafficPolicy { out += "  internalTrafficPolicy: \(p)\n" }
        if let t = options.affinityTimeout {
            out += "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: \(t)}}\n"
        }
        if !options.loadBalancerSourceRanges.isEmpty {
            out += "  loadBalancerSourceRanges: [\(options.loadBalancerSourceRanges.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
        }
        if let p = options.healthCheckNodePort { out += "  healthCheckNodePort: \(p)\n" }
        if !loadBalancerIPs.isEmpty {
            out += "status:\n  loadBalancer:\n    ingress:\n"
            for ip in loadBalancerIPs { out += "    - ip: \"\(ip)\"\n" }
        }
        return out
    }

    static func slice(
        _ name: String, namespace: String = "default", service: String, addressType: String = "IPv4",
        apiVersion: String = "discovery.k8s.io/v1",
        ports: [(name: String, proto: String, port: Int)], endpoints: [EndpointEntry]
    ) -> String {
        var out = """
            apiVersion: \(apiVersion)
            kind: EndpointSlice
            metadata:
              name: \(name)
              namespace: \(namespace)
              labels:
                kubernetes.io/service-name: \(service)
            addressType: \(addressType)
            ports:

            """
        for p in ports { out += "- name: \"\(p.name)\"\n  protocol: \(p.proto)\n  port: \(p.port)\n" }
        out += "endpoints:\n"
        for e in endpoints {
            out += "- addresses: [\"\(e.address)\"]\n"
            var conditions: [String] = []
            if let ready = e.ready { conditions.append("ready: \(ready)") }
            if let serving = e.serving { conditions.append("serving: \(serving)") }
            if let terminating = e.terminating { conditions.append("terminating: \(terminating)") }
            if !conditions.isEmpty { out += "  conditions: {\(conditions.joined(separator: ", "))}\n" }
            if let zone = e.zone { out += "  zone: \(zone)\n" }
            if let hints = e.hints { out += "  hints: {forZones: [\(hints.map { "{name: \($0)}" }.joined(separator: ", "))]}\n" }
            if let node = e.nodeName {
                out += apiVersion.hasSuffix("v1beta1")
                    ? "  topology: {kubernetes.io/hostname: \(node)}\n" : "  nodeName: \(node)\n"
            }
        }
        if endpoints.isEmpty { out = out.replacingOccurrences(of: "endpoints:\n", with: "endpoints: []\n") }
        return out
    }

    /// Joins documents into one multi-document YAML stream.
    static func stream(_ documents: [String]) -> String {
        documents.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined(separator: "---\n")
    }
}
