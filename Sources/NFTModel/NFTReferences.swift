/// The sets (`@name`) and chains (`jump name`, `goto name`) that a rule or a verdict map element's data
/// refers to, found in its text. Quoted strings (comments) are skipped.
public struct NFTReferences: Equatable, Sendable {
    public var sets: [String] = []
    public var chains: [String] = []

    public init(_ text: String) {
        // Scans bytes, not Characters: every delimiter is ASCII, and a map of 100k elements is scanned
        // once per element.
        var previousWasJump = false
        var inQuotes = false
        var start: String.Index?
        let utf8 = text.utf8

        func token(_ range: Range<String.Index>) {
            let word = text[range]
            if previousWasJump {
                chains.append(String(word))
                previousWasJump = false
            } else if word.utf8.first == UInt8(ascii: "@"), word.utf8.count > 1 {
                sets.append(String(word.dropFirst()))
            } else if word == "jump" || word == "goto" {
                previousWasJump = true
            }
        }

        var i = utf8.startIndex
        while i != utf8.endIndex {
            let byte = utf8[i]
            if inQuotes {
                if byte == UInt8(ascii: "\"") { inQuotes = false }
            } else if byte == UInt8(ascii: "\"") {
                if let s = start { token(s..<i) }
                start = nil
                inQuotes = true
            } else if Self.delimiters.contains(byte) {
                if let s = start { token(s..<i) }
                start = nil
            } else if start == nil {
                start = i
            }
            utf8.formIndex(after: &i)
        }
        if let s = start, !inQuotes { token(s..<utf8.endIndex) }
    }

    private static let delimiters: Set<UInt8> = Set(" \t\n{},:;()".utf8)
}
