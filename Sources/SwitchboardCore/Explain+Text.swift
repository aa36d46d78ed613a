import NetworkTypes

extension Explanation {
    /// The explanation as lines a person reads: a label column, then what was decided and why.
    public var text: String {
        var lines: [String] = []
        func line(_ label: String, _ text: String) {
            lines.append(label.padding(13) + text)
        }
        let src = endpointText(flow.source, flow.sourcePort)
        let dst = endpointText(flow.destination, flow.destinationPort)
        line("flow", "\(src) -> \(dst)/\(flow.protocol) (\(flow.family))")
        line("source", "\(source.kind.rawValue): \(source.reason)")
        if let entry {
            line("entry", "\(entry.kind.text) of \(entry.servicePort) (\(entry.port)/\(entry.protocol))")
            for other in entry.ignoredClaims { line("", "also claimed by Service \(other): ignored") }
        }
        if let sourceRange { line("source range", sourceRange.reason) }
        if let masquerade { line("masquerade", "\(masquerade.applies ? "yes" : "no"): \(masquerade.reason)") }
        if let endpoints {
            line("policy", "\(endpoints.policy): \(endpoints.reason)")
            line("endpoints", endpoints.endpoints.isEmpty ? "none" : endpoints.endpoints.joined(separator: ", "))
            for left in endpoints.leftOut { line("left out", "\(left.endpoint): \(left.reason)") }
        }
        if let affinity {
            line("affinity", "ClientIP, timeout \(affinity.timeoutSeconds)s: a client with a live entry in the affinity map returns to its endpoint; otherwise Maglev picks")
            if let live = affinity.live {
                if let endpoint = live.endpoint {
                    line("", "kernel: \(live.element) -> \(endpoint)\(live.expires.map { ", expires in \($0)" } ?? "")")
                } else {
                    line("", "kernel: no entry for \(live.element)")
                }
            }
        }
        if let maglev {
            if let slot = maglev.slot, let endpoint = maglev.endpoint {
                line("maglev", "M=\(maglev.tableSize), slot \(slot) (\(maglev.hash)) -> \(endpoint)")
                if let element = maglev.element { line("", "element \(maglev.map) { \(element) }") }
                if let compiled = maglev.compiled, let element = maglev.element, !element.hasSuffix(": \(compiled)") {
                    line("", "WARNING: the compiled ruleset has \(compiled) in that slot")
                }
            } else {
                line("maglev", "M=\(maglev.tableSize) (\(maglev.hash)): the slot depends on the source port")
            }
        }
        var verdictText = verdict.kind.rawValue
        if let endpoint = verdict.endpoint { verdictText += " to \(endpoint)" }
        line("verdict", "\(verdictText): \(verdict.reason)")
        if let live {
            let kernel = live.kernel.map { "\(live.map) { \(live.element) : \($0) }" } ?? "no element \(live.map) { \(live.element) }"
            line("live", "\(live.agrees ? "the kernel agrees" : "DRIFT: the kernel differs"): \(kernel) in \(live.table)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func endpointText(_ address: String, _ port: Int?) -> String {
        guard let port else { return address }
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
