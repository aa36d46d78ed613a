/// The one way a string from outside (a Service's name, namespace, port name) reaches nft text as a
/// quoted string, e.g. in a comment. nft's scanner ends a quoted string at the next `"` and has no
/// escape sequence for it, so quotes and anything but printable ASCII are replaced, and the length is
/// capped at the kernel's comment limit (128 bytes including the terminator).
public func nftQuoted(_ s: String) -> String {
    "\"" + nftCommentText(s) + "\""
}

/// What the kernel keeps of a comment: `s` sanitised as `nftQuoted` does and cut to 127 bytes.
/// Idempotent, so a comment read back from the kernel is unchanged by it; the IR stores comments in
/// this form, or a long one would never compare equal to its read-back.
public func nftCommentText(_ s: String) -> String {
    var out = ""
    for scalar in s.unicodeScalars {
        if out.utf8.count >= 127 { break }
        if scalar.value >= 0x20 && scalar.value < 0x7f && scalar != "\"" && scalar != "\\" {
            out.unicodeScalars.append(scalar)
        } else {
            out.append("_")
        }
    }
    return out
}

/// Whether `name` is an nft identifier that can be written unquoted (all kernel names must be).
public func isValidNFTIdentifier(_ name: String) -> Bool {
    guard let first = name.unicodeScalars.first, name.utf8.count < 256 else { return false }
    guard ("a"..."z").contains(first) || ("A"..."Z").contains(first) || first == "_" else { return false }
    return name.unicodeScalars.allSatisfy { s in
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s)
            || s == "/" || s == "_" || s == "." || s == "-"
    }
}
