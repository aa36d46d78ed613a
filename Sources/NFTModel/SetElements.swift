/// One entry point's Maglev table as the kernel holds it: the elements `<entry> . <slot>` :
/// `targets[slots[slot]]` for every slot `0 ..< slots.count`.
///
/// At 10k Services × 10 endpoints the `backends` map has two million elements; held as one `String`
/// key and one `String` value each they cost ~350 bytes apiece in the agent, held here 4. The element
/// text exists only while a batch is written out.
public struct SlotTable: Hashable, Sendable {
    /// The distinct data of the slots, e.g. `10.0.0.5 . 8080`.
    public var targets: [String]
    /// Per slot, an index into `targets`.
    public var slots: [UInt32]

    /// - Precondition: every slot indexes `targets`.
    public init(targets: [String], slots: [UInt32]) {
        precondition(slots.allSatisfy { Int($0) < targets.count }, "a slot outside the targets")
        self.targets = targets
        self.slots = slots
    }

    public var count: Int { slots.count }

    /// The data of one slot.
    public subscript(slot: Int) -> String { targets[Int(slots[slot])] }

    /// The element key of one slot of the entry `prefix`.
    public static func key(_ prefix: String, slot: Int) -> String { "\(prefix) . \(slot)" }

    /// The slots whose data differ between `old` and this table (a slot beyond the shorter table counts).
    public func changedSlots(from old: SlotTable) -> [Int] {
        var changed: [Int] = []
        let common = min(count, old.count)
        if targets == old.targets {
            for slot in 0..<common where slots[slot] != old.slots[slot] { changed.append(slot) }
        } else {
            for slot in 0..<common where self[slot] != old[slot] { changed.append(slot) }
        }
        changed.append(contentsOf: common..<max(count, old.count))
        return changed
    }
}

/// The elements of a set or map: `key → data` (`""` for a set), as a dictionary would hold them, with
/// Maglev tables kept compactly as `SlotTable`s (`setSlots`), each standing for the elements
/// `<prefix> . <slot>`. Everything that reads elements (lookups, iteration, equality, sorted output) sees
/// the same elements whichever way they are held; per-key writes into a slot table's key space turn that
/// table into plain elements first, so they stay exact.
///
/// An element held one by one may carry a comment (`comment(_:)`): the Service port an entry point belongs
/// to, e.g. `default/web:http`. It is part of the element (equality compares it; the kernel keeps it as the
/// element's user data) but not of its key or data, which is what iteration and lookups give. Slot tables
/// carry none: a comment per Maglev slot would cost an allocation per element for nothing anyone reads.
public struct SetElements: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// Elements held one by one.
    public private(set) var plain: [String: String]
    /// Maglev tables by entry prefix.
    public private(set) var slotTables: [String: SlotTable]
    /// Comments of elements held one by one, by key (a key here is always in `plain`), as the kernel keeps
    /// them (`nftCommentText`).
    public private(set) var comments: [String: String]
    /// The elements the slot tables stand for.
    private var slotCount = 0

    public init() {
        plain = [:]
        slotTables = [:]
        comments = [:]
    }

    /// - Precondition: every key of `comments` is a key of `elements`.
    public init(_ elements: [String: String], comments: [String: String] = [:]) {
        precondition(comments.keys.allSatisfy { elements[$0] != nil }, "a comment without its element")
        plain = elements
        slotTables = [:]
        self.comments = comments
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(Dictionary(uniqueKeysWithValues: elements))
    }

    public var count: Int { plain.count + slotCount }
    public var isEmpty: Bool { count == 0 }

    public subscript(key: String) -> String? {
        get {
            if let data = plain[key] { return data }
            guard !slotTables.isEmpty, let (prefix, slot) = Self.split(key), let table = slotTables[prefix],
                slot < table.count
            else { return nil }
            return table[slot]
        }
        set { set(key, newValue, comment: nil) }
    }

    /// The comment of the element `key`, if it has one.
    public func comment(_ key: String) -> String? {
        comments.isEmpty ? nil : comments[key]
    }

    /// Sets (or with nil data removes) one element with its comment. The subscript's setter is this without
    /// a comment: an element written by key alone has none.
    public mutating func set(_ key: String, _ data: String?, comment: String?) {
        if !slotTables.isEmpty, let (prefix, slot) = Self.split(key), let table = slotTables[prefix] {
            if slot < table.count || data != nil { explode(prefix) }
        }
        plain[key] = data
        if data != nil, let comment {
            comments[key] = comment
        } else if !comments.isEmpty {
            comments[key] = nil
        }
    }

    @discardableResult
    public mutating func removeValue(forKey key: String) -> String? {
        let old = self[key]
        if old != nil { self[key] = nil }
        return old
    }

    public mutating func reserveCapacity(_ n: Int) { plain.reserveCapacity(n) }

    /// The Maglev table of entry `prefix`, if held as one.
    public func slots(_ prefix: String) -> SlotTable? { slotTables[prefix] }

    /// Sets (or with nil removes) the Maglev table of entry `prefix`: the elements `<prefix> . <slot>`.
    /// Elements of that entry held one by one are dropped first.
    public mutating func setSlots(_ prefix: String, _ table: SlotTable?) {
        if !plain.isEmpty {
            let start = prefix + " . "
            for key in plain.keys where key.hasPrefix(start) && Self.split(key)?.prefix == prefix {
                plain[key] = nil
                comments[key] = nil
            }
        }
        slotCount -= slotTables[prefix]?.count ?? 0
        slotTables[prefix] = table
        slotCount += table?.count ?? 0
    }

    /// Every key (unordered; slot tables' keys are made here).
    public var keys: [String] {
        var out = Array(plain.keys)
        out.reserveCapacity(count)
        for (prefix, table) in slotTables {
            for slot in 0..<table.count { out.append(SlotTable.key(prefix, slot: slot)) }
        }
        return out
    }

    public var values: [String] { map(\.value) }

    /// The elements that pass, as a dictionary (as `Dictionary.filter` returns).
    public func filter(_ isIncluded: ((key: String, value: String)) throws -> Bool) rethrows -> [String: String] {
        var out: [String: String] = [:]
        for element in self where try isIncluded(element) { out[element.key] = element.value }
        return out
    }

    /// A dictionary of every element (made on demand: at scale, prefer iterating).
    public var dictionary: [String: String] {
        guard !slotTables.isEmpty else { return plain }
        var out = plain
        out.reserveCapacity(count)
        for (key, data) in self { out[key] = data }
        return out
    }

    /// Elements sorted by key in `canonicalOrder`. Slot tables are expanded table by table in the order of
    /// their prefixes, which is the order of their keys: the keys of one table share the prefix and differ
    /// in the trailing number, and two prefixes of one set differ before their slot number.
    public func sorted() -> [(key: String, value: String)] {
        var out: [(key: String, value: String)] = []
        out.reserveCapacity(count)
        forEachSorted { out.append(($0, $1)) }
        return out
    }

    /// Calls `body` with each element in `canonicalOrder` of its key, making one key at a time.
    public func forEachSorted(_ body: (String, String) throws -> Void) rethrows {
        let elements = sortedIterator()
        while let (key, data) = elements.next() { try body(key, data) }
    }

    public func makeIterator() -> Iterator { Iterator(self) }

    /// The elements in `canonicalOrder` of their keys, made one at a time (like `forEachSorted`).
    public func sortedIterator() -> AnyIterator<(key: String, value: String)> {
        if !slotTables.isEmpty && !plain.isEmpty {
            let all = dictionary
            var keys = all.keys.sorted(by: canonicalOrder).makeIterator()
            return AnyIterator { keys.next().map { ($0, all[$0]!) } }
        }
        let plain = plain
        var keys = plain.keys.sorted(by: canonicalOrder).makeIterator()
        let tables = slotTables
        var prefixes = tables.keys.sorted(by: canonicalOrder).makeIterator()
        var current: (prefix: String, table: SlotTable)?
        var slot = 0
        return AnyIterator {
            if let key = keys.next() { return (key, plain[key]!) }
            while true {
                if let (prefix, table) = current, slot < table.count {
                    defer { slot += 1 }
                    return (SlotTable.key(prefix, slot: slot), table[slot])
                }
                guard let prefix = prefixes.next() else { return nil }
                current = (prefix, tables[prefix]!)
                slot = 0
            }
        }
    }

    public struct Iterator: IteratorProtocol {
        private var plain: Dictionary<String, String>.Iterator
        private var tables: Dictionary<String, SlotTable>.Iterator
        private var current: (prefix: String, table: SlotTable)?
        private var slot = 0

        init(_ elements: SetElements) {
            plain = elements.plain.makeIterator()
            tables = elements.slotTables.makeIterator()
        }

        public mutating func next() -> (key: String, value: String)? {
            if let element = plain.next() { return element }
            while true {
                if let (prefix, table) = current, slot < table.count {
                    defer { slot += 1 }
                    return (SlotTable.key(prefix, slot: slot), table[slot])
                }
                guard let (prefix, table) = tables.next() else { return nil }
                current = (prefix, table)
                slot = 0
            }
        }
    }

    public var description: String { "\(count) elements" }

    /// `a . b . 17` → (`a . b`, 17): the form of a slot's key.
    static func split(_ key: String) -> (prefix: String, slot: Int)? {
        let utf8 = key.utf8
        var end = utf8.endIndex
        var slot = 0
        var scale = 1
        // Trailing decimal digits, then " . " before them.
        while end > utf8.startIndex {
            let before = utf8.index(before: end)
            let c = utf8[before]
            guard c >= 48 && c <= 57 else { break }
            guard scale <= 1_000_000_000 else { return nil }
            slot += Int(c - 48) * scale
            scale *= 10
            end = before
        }
        guard scale > 1, utf8.distance(from: utf8.startIndex, to: end) > 3 else { return nil }
        let separator = utf8.index(end, offsetBy: -3)
        guard utf8[separator...].starts(with: " . ".utf8) else { return nil }
        return (String(key[..<separator]), slot)
    }

    /// Turns one slot table into plain elements (a per-key write landed in its key space).
    private mutating func explode(_ prefix: String) {
        guard let table = slotTables[prefix] else { return }
        setSlots(prefix, nil)
        for slot in 0..<table.count { plain[SlotTable.key(prefix, slot: slot)] = table[slot] }
    }
}

extension SetElements: Hashable {
    /// The same elements with the same comments, however they are held.
    public static func == (a: SetElements, b: SetElements) -> Bool {
        // Comments are only ever on elements held one by one, so they compare as they are held.
        guard a.count == b.count, a.comments == b.comments else { return false }
        if a.plain == b.plain && a.slotTables == b.slotTables { return true }
        if a.slotTables.isEmpty && b.slotTables.isEmpty { return false }
        // Held differently (e.g. a kernel listing against a compiled ruleset): element by element.
        for (key, data) in a where b[key] != data { return false }
        return true
    }

    /// Consistent with `==` across representations: only the count.
    public func hash(into hasher: inout Hasher) { hasher.combine(count) }
}
