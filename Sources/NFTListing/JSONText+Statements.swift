// A rule's statements, each rendered as `nft list` prints it (values and expressions: JSONText.swift).
extension JSONText {
    /// One rule: its statements separated by blanks, then its comment.
    mutating func rule(expr: Int, comment: Int?) throws(Failure) {
        guard v.kind(expr) == .array, v.count(expr) > 0 else { throw Failure() }
        var first = true
        for s in v.elements(expr) {
            if !first { out.append(" ") }
            first = false
            try statement(s)
        }
        if let comment {
            out.append(" comment ")
            try appendQuoted(comment)
        }
    }

    mutating func statement(_ i: Int) throws(Failure) {
        // libnftables writes a statement that has no JSON form as its text (e.g. `add @m { k : v }`).
        if isString(i) {
            try appendString(i)
            return
        }
        guard let (k, body) = single(i) else { throw Failure() }
        if v.equals(k, "match") {
            try match(body)
        } else if try verdict(key: k, body: body) {
            return
        } else if v.equals(k, "vmap") {
            guard let key = v.member(body, "key"), let data = v.member(body, "data") else { throw Failure() }
            try require(body, members: 2)
            try value(key, .plain)
            out.append(" vmap ")
            if let (dk, dbody) = single(data), v.equals(dk, "set") {
                try anonymousSet(dbody, keyFormat: format(of: key), dataFormat: .plain)
            } else {
                guard v.hasPrefix(data, UInt8(ascii: "@")) else { throw Failure() }
                try appendString(data)
            }
        } else if v.equals(k, "mangle") {
            guard let key = v.member(body, "key"), let val = v.member(body, "value") else { throw Failure() }
            try require(body, members: 2)
            try value(key, .plain)
            out.append(" set ")
            try value(val, format(of: key))
        } else if v.equals(k, "counter") {
            // Counters change all the time; the canonical form is the one a fresh rule lists with.
            if isString(body) {
                out.append("counter name ")
                try appendQuoted(body)
            } else {
                guard v.member(body, "packets") != nil, v.member(body, "bytes") != nil else { throw Failure() }
                try require(body, members: 2)
                out.append("counter packets 0 bytes 0")
            }
        } else if v.equals(k, "reject") {
            try reject(body)
        } else if v.equals(k, "dnat") || v.equals(k, "snat") || v.equals(k, "masquerade") || v.equals(k, "redirect") {
            try nat(key: k, body: body)
        } else if v.equals(k, "log") {
            try log(body)
        } else if v.equals(k, "limit") {
            try limit(body)
        } else if v.equals(k, "notrack") {
            guard v.kind(body) == .null else { throw Failure() }
            out.append("notrack")
        } else if v.equals(k, "set") {
            // Dynamic set updates from the packet path: `update @s { ip saddr }`.
            guard let op = v.member(body, "op"), let elem = v.member(body, "elem"), let set = v.member(body, "set"),
                v.hasPrefix(set, UInt8(ascii: "@"))
            else { throw Failure() }
            try require(body, members: 3)
            try appendString(op)
            out.append(" ")
            try appendString(set)
            out.append(" { ")
            try value(elem, format(of: elem))
            out.append(" }")
        } else if v.equals(k, "ct count") {
            guard let val = v.member(body, "val") else { throw Failure() }
            var found = 1
            out.append("ct count ")
            if let inv = v.member(body, "inv") {
                found += 1
                if v.kind(inv) == .true { out.append("over ") }
            }
            try require(body, members: found)
            try appendNumber(val)
        } else if v.equals(k, "quota") {
            guard let val = v.member(body, "val"), let unit = v.member(body, "val_unit") else { throw Failure() }
            var found = 2
            out.append("quota ")
            if let inv = v.member(body, "inv") {
                found += 1
                if v.kind(inv) == .true { out.append("over ") }
            }
            try require(body, members: found)  // a quota that has been used changes; not modelled
            try appendNumber(val)
            out.append(" ")
            try appendString(unit)
        } else {
            throw Failure()
        }
    }

    /// `left [op] right`, printing `==` only where nft does (after a binary operation, or before a
    /// single flag of a bitmask type) and flag tests with a mask as `flags value / mask`.
    mutating func match(_ body: Int) throws(Failure) {
        guard let op = v.member(body, "op"), let left = v.member(body, "left"), let right = v.member(body, "right")
        else { throw Failure() }
        try require(body, members: 3)
        let isEq = v.equals(op, "==")
        let isNeq = v.equals(op, "!=")
        if isEq || isNeq, let (lk, lbody) = single(left), v.equals(lk, "&"), v.kind(lbody) == .array,
            v.count(lbody) == 2, format(of: lbody + 1) == .bitmask, v.kind(v.next(lbody + 1)) == .array
        {
            let mask = v.next(lbody + 1)
            try value(lbody + 1, .plain)
            out.append(isNeq ? " != " : " ")
            try value(right, .bitmask)
            out.append(" / ")
            try value(mask, .bitmask)
            return
        }
        let f = format(of: left)
        try value(left, .plain)
        if v.equals(op, "in") {
            out.append(" ")
        } else if isEq {
            let leftIsBinop = single(left).map { isBinop($0.key) } ?? false
            let rightIsFlag =
                f == .bitmask
                && ((isString(right) && !v.hasPrefix(right, UInt8(ascii: "@"))) || v.kind(right) == .number)
            out.append(leftIsBinop || rightIsFlag ? " == " : " ")
        } else {
            out.append(" ")
            try appendString(op)
            out.append(" ")
        }
        try value(right, f)
    }

    /// `reject` prints nothing after it for the family's default (ICMP port unreachable in ip and ip6
    /// tables, ICMPX port unreachable in inet).
    mutating func reject(_ body: Int) throws(Failure) {
        out.append("reject")
        if v.kind(body) == .null { return }
        guard let type = v.member(body, "type") else { throw Failure() }
        if v.equals(type, "tcp reset") {
            try require(body, members: 1)
            out.append(" with tcp reset")
            return
        }
        guard let code = v.member(body, "expr") else { throw Failure() }
        try require(body, members: 2)
        let portUnreachable = v.equals(code, "port-unreachable")
        if v.equals(type, "icmpx") {
            if portUnreachable { return }
        } else if v.equals(type, "icmp") {
            if portUnreachable && family == .ip { return }
        } else if v.equals(type, "icmpv6") {
            if portUnreachable && family == .ip6 { return }
        } else {
            throw Failure()
        }
        out.append(" with ")
        try appendString(type)
        out.append(" ")
        try value(code, .plain)
    }

    /// `dnat [ip|ip6] to addr[:port] [flags]`, `masquerade [to :port] [flags]`, ...
    mutating func nat(key k: Int, body: Int) throws(Failure) {
        try appendString(k)
        if v.kind(body) == .null { return }
        var found = 0
        let addr = v.member(body, "addr")
        let port = v.member(body, "port")
        if addr != nil || port != nil {
            if let family = v.member(body, "family") {
                found += 1
                out.append(" ")
                try appendString(family)
            }
            out.append(" to")
        }
        if let addr {
            found += 1
            out.append(" ")
            // An IPv6 address is bracketed when a port follows.
            if port != nil, isIPv6(addr) {
                out.append("[")
                try value(addr, .plain)
                out.append("]")
            } else if port != nil, let (rk, rbody) = single(addr), v.equals(rk, "range"), v.kind(rbody) == .array,
                v.count(rbody) == 2, isIPv6(rbody + 1)
            {
                out.append("[")
                try value(rbody + 1, .plain)
                out.append("]-[")
                try value(v.next(rbody + 1), .plain)
                out.append("]")
            } else {
                try value(addr, .plain)
            }
        }
        if let port {
            found += 1
            out.append(addr == nil ? " :" : ":")
            try value(port, .plain)
        }
        if let flags = v.member(body, "flags") {
            found += 1
            out.append(" ")
            try appendStringList(flags, separator: ",")
        }
        try require(body, members: found)
    }

    func isIPv6(_ i: Int) -> Bool {
        guard isString(i), !v.hasPrefix(i, UInt8(ascii: "@")) else { return false }
        return v.raw(i).contains(UInt8(ascii: ":"))
    }

    mutating func log(_ body: Int) throws(Failure) {
        out.append("log")
        if v.kind(body) == .null { return }
        var found = 0
        if let prefix = v.member(body, "prefix") {
            found += 1
            out.append(" prefix ")
            try appendQuoted(prefix)
        }
        for name: StaticString in ["group", "snaplen", "queue-threshold"] {
            if let n = v.member(body, name) {
                found += 1
                out.append(" ")
                out.append(name)
                out.append(" ")
                try appendNumber(n)
            }
        }
        if let level = v.member(body, "level") {
            found += 1
            out.append(" level ")
            try appendString(level)
        }
        if let flags = v.member(body, "flags") {
            found += 1
            // nft groups the TCP flags under one `flags tcp`, and prints the others one by one.
            let names = v.kind(flags) == .array ? v.elements(flags) : [flags]
            func has(_ n: StaticString) -> Bool { names.contains { v.equals($0, n) } }
            for n in names {
                guard
                    ["all", "tcp sequence", "tcp options", "ip options", "skuid", "ether"].contains(where: {
                        (s: StaticString) in v.equals(n, s)
                    })
                else { throw Failure() }
            }
            if has("all") {
                out.append(" flags all")
            } else {
                if has("tcp sequence") || has("tcp options") {
                    out.append(" flags tcp")
                    if has("tcp sequence") { out.append(" sequence") }
                    if has("tcp options") { out.append(has("tcp sequence") ? ",options" : " options") }
                }
                if has("ip options") { out.append(" flags ip options") }
                if has("skuid") { out.append(" flags skuid") }
                if has("ether") { out.append(" flags ether") }
            }
        }
        try require(body, members: found)
    }

    mutating func limit(_ body: Int) throws(Failure) {
        guard let rate = v.member(body, "rate"), let per = v.member(body, "per") else { throw Failure() }
        var found = 2
        out.append("limit rate ")
        if let inv = v.member(body, "inv") {
            found += 1
            if v.kind(inv) == .true { out.append("over ") }
        }
        let burst = try v.member(body, "burst").map { (b) throws(Failure) in try int(b) } ?? 0
        if v.member(body, "burst") != nil { found += 1 }
        if let unit = v.member(body, "rate_unit") {
            found += 1
            try appendNumber(rate)
            out.append(" ")
            try appendString(unit)
            out.append("/")
            try appendString(per)
            if let burstUnit = v.member(body, "burst_unit") {
                found += 1
                if burst != 0 {
                    out.append(" burst ")
                    out.appendDecimal(burst)
                    out.append(" ")
                    try appendString(burstUnit)
                }
            }
        } else {
            try appendNumber(rate)
            out.append("/")
            try appendString(per)
            if burst != 0 && burst != 5 {
                out.append(" burst ")
                out.appendDecimal(burst)
                out.append(" packets")
            }
        }
        try require(body, members: found)
    }
}
