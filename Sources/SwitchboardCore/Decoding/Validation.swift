import NetworkTypes

/// Kubernetes' syntax rules for the names Switchboard reads, as `k8s.io/apimachinery/pkg/util/validation`
/// states them. Every name that can reach a rule comment or a log passes one of these first.
enum NameRules {
    /// RFC 1123 label: 1-63 of `[a-z0-9-]`, alphanumeric at both ends. Namespaces, Service names, port names.
    static func isDNS1123Label(_ s: String) -> Bool {
        s.utf8.count <= 63 && isLabelSyntax(Substring(s))
    }

    /// RFC 1123 subdomain: at most 253 characters, labels of `[a-z0-9-]` (alphanumeric at both ends)
    /// joined by dots. EndpointSlice and Node names.
    static func isDNS1123Subdomain(_ s: String) -> Bool {
        s.utf8.count <= 253 && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy(isLabelSyntax)
    }

    /// IANA service name (RFC 6335), the rule for a named `targetPort`: 1-15 of `[a-z0-9-]`, at least one
    /// letter, no hyphen at either end and no two hyphens in a row.
    static func isIANASvcName(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= 15 && u.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
            && u.contains { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }
            && u.first != UInt8(ascii: "-") && u.last != UInt8(ascii: "-") && !s.contains("--")
    }

    private static func isLabelSyntax(_ s: Substring) -> Bool {
        let u = s.utf8
        guard let first = u.first, let last = u.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
        return u.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }

    static let labelRule = "a DNS-1123 label (at most 63 characters of a-z, 0-9 and '-', starting and ending "
        + "with a letter or digit)"
    static let subdomainRule = "a DNS-1123 subdomain (at most 253 characters of a-z, 0-9, '-' and '.', each "
        + "dot-separated part starting and ending with a letter or digit)"
    static let ianaRule = "an IANA service name (1-15 characters of a-z, 0-9 and '-', at least one letter, "
        + "no leading, trailing or double '-')"
}

/// Typed readers for the value kinds that recur across Service, EndpointSlice and Node.
extension Field {
    /// A TCP/UDP port number, 1-65535; nil when absent.
    func port() throws(FieldError) -> Int? {
        guard let p = try int() else { return nil }
        guard (1...65535).contains(p) else { throw fail("port \(p) is out of range 1-65535") }
        return p
    }

    /// Like `port()`, but 0 means unset, as Kubernetes treats `nodePort`, `targetPort` and `healthCheckNodePort`
    /// (Go's zero value; the API server allocates or defaults it).
    func portOrZero() throws(FieldError) -> Int? {
        if case .int(0) = value { return nil }
        return try port()
    }

    /// `TCP`, `UDP` or `SCTP`; TCP when absent.
    func l4Protocol() throws(FieldError) -> L4Protocol {
        guard let s = try nonEmptyString() else { return .tcp }
        guard let p = L4Protocol(rawValue: s) else {
            throw fail("unknown protocol \(Field.quote(s)) (expected TCP, UDP or SCTP)")
        }
        return p
    }

    /// An IP address, strictly parsed (no leading zeros in IPv4, no zone).
    func ipAddress() throws(FieldError) -> IPAddress? {
        guard let s = try string() else { return nil }
        guard let ip = IPAddress(s) else { throw fail("invalid IP address \(Field.quote(s))") }
        return ip
    }

    /// An array of IP addresses; empty when absent.
    func ipAddresses() throws(FieldError) -> [IPAddress] {
        var out: [IPAddress] = []
        for (s, f) in try strings() {
            guard let ip = IPAddress(s) else { throw f.fail("invalid IP address \(Field.quote(s))") }
            out.append(ip)
        }
        return out
    }

    /// An array of CIDRs; empty when absent. Surrounding spaces are trimmed, as kube-proxy does for
    /// `loadBalancerSourceRanges`.
    func cidrs() throws(FieldError) -> [CIDR] {
        var out: [CIDR] = []
        for (s, f) in try strings() {
            var trimmed = Substring(s)
            while trimmed.first == " " { trimmed.removeFirst() }
            while trimmed.last == " " { trimmed.removeLast() }  // not `dropLast()`: see `GoDuration`
            guard let c = CIDR(String(trimmed)) else { throw f.fail("invalid CIDR \(Field.quote(s))") }
            out.append(c)
        }
        return out
    }

    /// A string that must be one of `T`'s raw values; `default` when absent or empty.
    func enumValue<T: RawRepresentable>(_ default: T, _ allowed: [T]) throws(FieldError) -> T
    where T.RawValue == String {
        guard let s = try nonEmptyString() else { return `default` }
        guard let v = T(rawValue: s) else {
            let names = allowed.map(\.rawValue).joined(separator: ", ")
            throw fail("unknown value \(Field.quote(s)) (expected one of \(names))")
        }
        return v
    }
}
