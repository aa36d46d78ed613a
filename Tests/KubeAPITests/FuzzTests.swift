import Foundation
import SwitchboardCore
import SwitchboardTesting
import Testing

@testable import KubeAPI
import SwitchboardTestTraits

/// Hostile input never crashes (issue 11): what the API server and the kubeconfig send, mutated. See
/// `SwitchboardCoreTests/FuzzTests.swift` for the other decoders and README.md ("Fuzzing") for the long run.
@Suite(.serialized, .exclusive) struct FuzzTests {
    @Test("hostile input never crashes the decoder", arguments: Self.targets)
    func neverCrashes(_ target: FuzzTarget) {
        let report = Fuzzer.run(target)
        print(report.summary)
        #expect(report.findingCount == 0, "\(report)")
    }

    static let targets: [FuzzTarget] = [
        FuzzTarget("frame-splitter", seeds: corpus("watch-stream"), iterations: 150) { bytes in
            try checkFrames(bytes)
        },
        FuzzTarget("watch-stream", seeds: corpus("watch-stream"), dictionary: watchWords, iterations: 150) {
            bytes in checkWatch(bytes)
        },
        FuzzTarget("list-page", seeds: corpus("list-page"), dictionary: watchWords, iterations: 150) { bytes in
            checkListPage(bytes)
        },
        FuzzTarget(
            "kubeconfig", seeds: corpus("kubeconfig"),
            dictionary: ["current-context", "contexts", "clusters", "users", "server", "https://", "token",
                         "tokenFile", "certificate-authority-data", "client-key-data", "insecure-skip-tls-verify",
                         "exec", "auth-provider", "username", "proxy-url"],
            iterations: 100
        ) { bytes in
            _ = try? KubeConfig.parse(
                kubeconfig: String(decoding: bytes, as: UTF8.self), directory: "/nonexistent/switchboard-fuzz")
        },
    ]

    static let watchWords = [
        "\"type\":", "\"object\":", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", "Status", "code",
        "resourceVersion", "metadata", "items", "\"kind\":\"Service\"", "continue",
    ]

    static func corpus(_ target: String) -> [[UInt8]] {
        FuzzCorpus.load(Bundle.module.resourceURL!.appendingPathComponent("Fixtures/fuzz/\(target)"))
    }

    // MARK: - Targets

    /// The splitter gives the same frames however the stream is cut into chunks; each frame is a bracketed
    /// slice of the input in order with only blanks between, and what is left is the unfinished frame. With
    /// a small limit, the unfinished frame it holds never exceeds the limit.
    static func checkFrames(_ bytes: [UInt8]) throws {
        var whole = JSONFrameSplitter()
        let wholeFrames = try? whole.append(bytes)

        var cuts = SplitMix64(seed: fnv1a(bytes))
        var chunked = JSONFrameSplitter()
        var chunkedFrames: [[UInt8]]? = []
        var small = JSONFrameSplitter(maximumFrameBytes: 256)
        var smallFailed = false
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 1 + Int(cuts.next() % (cuts.next() % 2 == 0 ? 8 : 512)))
            let chunk = bytes[offset..<end]
            if chunkedFrames != nil {
                do { chunkedFrames! += try chunked.append(chunk) } catch { chunkedFrames = nil }
            }
            if !smallFailed {
                do { _ = try small.append(chunk) } catch { smallFailed = true }
            }
            offset = end
        }
        guard (wholeFrames == nil) == (chunkedFrames == nil) else {
            throw FuzzFailure("one chunk and many disagree on whether the stream is valid")
        }
        guard let frames = wholeFrames, let chunkedFrames else { return }
        guard frames == chunkedFrames else { throw FuzzFailure("chunking changed the frames") }

        func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 }
        var position = 0
        for frame in frames {
            while position < bytes.count, isBlank(bytes[position]) { position += 1 }
            guard let first = frame.first, let last = frame.last, first == 0x7B || first == 0x5B,
                last == 0x7D || last == 0x5D, bytes[position...].starts(with: frame)
            else { throw FuzzFailure("frame \(Fuzzer.escaped(frame)) is not the next bracketed slice") }
            position += frame.count
        }
        while position < bytes.count, isBlank(bytes[position]) { position += 1 }
        let unfinished = bytes.count - position
        guard whole.isInsideFrame == (unfinished > 0) else {
            throw FuzzFailure("\(unfinished) bytes left over, isInsideFrame \(whole.isInsideFrame)")
        }
        if !smallFailed, unfinished > 256 {
            throw FuzzFailure("a splitter limited to 256 bytes holds \(unfinished) without complaint")
        }
    }

    /// A watch response as `WatchEventStream` reads it: frames, then one event per frame.
    static func checkWatch(_ bytes: [UInt8]) {
        var splitter = JSONFrameSplitter()
        guard let frames = try? splitter.append(bytes) else { return }
        for frame in frames {
            _ = try? WatchEvent.parse(frame, resource: .services, source: "fuzz")
        }
    }

    /// A LIST page as `KubeClient.list` reads it, as one of the three resources the agent lists (picked by
    /// the input's hash, so a replay picks the same).
    static func checkListPage(_ bytes: [UInt8]) {
        let resources: [KubeResource] = [.services, .endpointSlices(.v1), .node(named: "node-a")]
        let resource = resources[Int(fnv1a(bytes) % 3)]
        _ = bytes.withUnsafeBytes { raw in
            try? ListResult.decodePage(raw, resource: resource, source: "fuzz", context: "fuzz") { _ in }
        }
    }

    private static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }
}
