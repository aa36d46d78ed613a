import NFTModel
import Testing

/// The byte-level `canonicalOrder` against a plain, obviously right statement of the same order.
@Suite struct CanonicalOrderTests {
    /// Numbers by value, then fewer leading zeros first; everything else by code point.
    private static func reference(_ a: String, _ b: String) -> Bool {
        func tokens(_ s: String) -> [(digits: Bool, text: [Unicode.Scalar])] {
            var out: [(Bool, [Unicode.Scalar])] = []
            for c in s.unicodeScalars {
                let d = ("0"..."9").contains(c)
                if d, let last = out.last, last.0 { out[out.count - 1].1.append(c) } else { out.append((d, [c])) }
            }
            return out
        }
        let x = tokens(a), y = tokens(b)
        for (p, q) in zip(x, y) {
            if p.digits && q.digits {
                let sp = p.text.drop { $0 == "0" }, sq = q.text.drop { $0 == "0" }
                if sp.count != sq.count { return sp.count < sq.count }
                if let (u, v) = zip(sp, sq).first(where: { $0 != $1 }) { return u.value < v.value }
                if p.text.count != q.text.count { return p.text.count < q.text.count }
            } else if p.digits || q.digits {
                return p.text[0].value < q.text[0].value
            } else {
                // Non-digit runs are single scalars here.
                if p.text[0] != q.text[0] { return p.text[0].value < q.text[0].value }
            }
        }
        return x.count < y.count
    }

    @Test func examples() {
        #expect(canonicalOrder("slot 2", "slot 10"))
        #expect(!canonicalOrder("slot 10", "slot 2"))
        #expect(canonicalOrder("10.96.0.9 . tcp . 80 . 12", "10.96.0.10 . tcp . 80 . 3"))
        #expect(canonicalOrder("a007", "a07") == false && canonicalOrder("a07", "a007"))
        #expect(canonicalOrder("a", "ab") && !canonicalOrder("ab", "a") && !canonicalOrder("a", "a"))
        #expect(canonicalOrder("z", "é"))
    }

    @Test func agreesWithTheReference() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["0", "0", "1", "2", "9", ".", " ", "a", "b", "é", "z"]
        func random() -> String { String((0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }) }
        for _ in 0..<20_000 {
            let a = random(), b = random()
            #expect(canonicalOrder(a, b) == Self.reference(a, b), "\(a.debugDescription) vs \(b.debugDescription)")
        }
    }
}
