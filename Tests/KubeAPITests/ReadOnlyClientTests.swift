import Foundation
import Testing

/// Issue 11, "it never writes to the API", on the client's side: `KubeClient` builds requests in exactly one
/// place and that place sends GET, so no code path of the agent, `diff` or the informers can write. (The
/// server's side is `AgentTests`' RBAC test: deploy/'s ClusterRole has no write verb and the agent works.)
@Suite struct ReadOnlyClientTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/KubeAPI")

    @Test func theClientBuildsRequestsInOnePlaceAndOnlySendsGET() throws {
        var requests: [String] = []
        var methods: [String] = []
        var executes: [String] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.sources.path).sorted()
        where file.hasSuffix(".swift") {
            let text = try String(contentsOf: Self.sources.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) })
            where !line.hasPrefix("//") {
                if line.contains("HTTPClientRequest(") || line.contains("HTTPClient.Request(") {
                    requests.append(file)
                }
                if line.contains(".method = ") || line.contains("method:") { methods.append(line) }
                if line.contains("http.execute(") || line.contains("http.post(") || line.contains("http.put(")
                    || line.contains("http.delete(") || line.contains("http.patch(")
                {
                    executes.append("\(file): \(line)")
                }
            }
        }
        #expect(requests == ["KubeClient.swift"], "request construction sites: \(requests)")
        #expect(methods == ["request.method = .GET"], "\(methods)")
        #expect(executes.count == 1 && executes[0].hasPrefix("KubeClient.swift: "), "\(executes)")
    }
}
