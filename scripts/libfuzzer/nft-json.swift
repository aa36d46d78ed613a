// libFuzzer entry point for the `nft -j` listing decoder (see scripts/libfuzzer.sh); compiled into one module
// with the sources of NFTModel and NFTListing.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let ruleset = try? Ruleset(nftJSON: UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    _ = ruleset.script
    _ = Ruleset().transaction(from: ruleset).description
    _ = ruleset.transaction(from: Ruleset()).description
    return 0
}
