// libFuzzer entry point for `JSONParser` (see scripts/libfuzzer.sh); compiled into the module's sources.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    _ = try? JSONValue(jsonBytes: bytes)
    _ = try? JSONValue.streamObject(bytes, arrayMember: "items") { _ in }
    return 0
}
