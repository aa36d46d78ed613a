/// Cuts a byte stream into its top-level JSON values, as they arrive: a watch response is a stream of JSON
/// objects, and HTTP chunks fall anywhere, so one event may span several chunks and one chunk may hold
/// several events.
///
/// The API server ends each event with a newline, but framing by brackets rather than by newlines also reads
/// pretty-printed or unseparated streams, and finds where an event ends without parsing it: the scan only
/// tracks nesting depth and whether it is inside a string, and resumes where the last chunk stopped, so a huge
/// event arriving in many chunks costs linear time. The only bytes it looks at are ASCII, which never occur
/// inside a multi-byte UTF-8 sequence.
struct JSONFrameSplitter: Sendable {
    /// The largest single event accepted. A Node or a slice of 1000 endpoints is well under a megabyte; the
    /// limit only keeps a broken stream from eating memory.
    static let defaultMaximumFrameBytes = 64 << 20

    let maximumFrameBytes: Int
    /// The unfinished frame (or nothing); frames already returned are dropped.
    private var buffer: [UInt8] = []
    /// How far into `buffer` the scan state below applies.
    private var scanned = 0
    private var depth = 0
    private var inString = false
    private var escaped = false

    init(maximumFrameBytes: Int = defaultMaximumFrameBytes) {
        self.maximumFrameBytes = maximumFrameBytes
    }

    /// Whether a frame is partly read (the stream must not end here).
    var isInsideFrame: Bool { depth > 0 }

    /// Adds a chunk and returns the frames it completed, in order.
    mutating func append(_ chunk: some Collection<UInt8>) throws(KubeAPIError) -> [[UInt8]] {
        buffer.append(contentsOf: chunk)
        var frames: [[UInt8]] = []
        var start = 0
        var index = scanned
        while index < buffer.count {
            let byte = buffer[index]
            if depth == 0 {
                switch byte {
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                    start = index + 1
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth = 1
                    start = index
                default:
                    let text = String(decoding: buffer[index...].prefix(60), as: UTF8.self)
                    throw KubeAPIError(
                        kind: .invalidResponse,
                        message: "watch stream holds something other than JSON objects: \(text)")
                }
            } else if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else {
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        frames.append(Array(buffer[start...index]))
                        start = index + 1
                    }
                default: break
                }
            }
            index += 1
        }
        buffer.removeFirst(start)
        scanned = index - start
        if buffer.count > maximumFrameBytes {
            throw KubeAPIError(
                kind: .invalidResponse,
                message: "a watch event is larger than \(maximumFrameBytes) bytes")
        }
        return frames
    }
}
