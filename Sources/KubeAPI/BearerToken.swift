import Foundation
import Synchronization

/// When to re-read a rotating token file: at most every `refreshInterval`, and at once after the server
/// refused the token (a 401 means the kubelet has probably rotated it already).
///
/// A pure state machine over instants, so its timing is tested without sleeping.
struct TokenRefreshSchedule<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// client-go re-reads token files every minute; rotation happens long before expiry, so that is plenty.
    var refreshInterval: Duration = .seconds(60)
    private(set) var token: String?
    private var readAt: Instant?

    init(refreshInterval: Duration = .seconds(60)) {
        self.refreshInterval = refreshInterval
    }

    /// The cached token if it is still fresh at `now`; nil means read the file and call `stored`.
    func cached(at now: Instant) -> String? {
        guard let token, let readAt, readAt.duration(to: now) < refreshInterval else { return nil }
        return token
    }

    mutating func stored(_ token: String, at now: Instant) {
        self.token = token
        readAt = now
    }

    /// The server refused the token: the next request reads the file again.
    mutating func refused() {
        readAt = nil
    }
}

/// The bearer token for requests: fixed, or read from a rotating file on the schedule above.
final class BearerTokenSource: Sendable {
    private enum Origin: Sendable {
        case fixed(String)
        case file(String, source: String)
    }

    private let origin: Origin
    private let schedule: Mutex<TokenRefreshSchedule<ContinuousClock.Instant>>

    init?(_ credentials: KubeConfig.Credentials, source: String, refreshInterval: Duration = .seconds(60)) {
        switch credentials {
        case .none: return nil
        case .token(let token): origin = .fixed(token)
        case .tokenFile(let path): origin = .file(path, source: source)
        }
        schedule = Mutex(TokenRefreshSchedule(refreshInterval: refreshInterval))
    }

    /// Whether a 401 may go away by re-reading: only a file can change under us.
    var canRefresh: Bool {
        if case .file = origin { return true }
        return false
    }

    /// The token to send at `now`. Reads the file when the cached copy is stale; if the file has become
    /// unreadable, the last good token is still sent (the server will say whether it is still good) and the
    /// read is retried on the next request.
    func token(at now: ContinuousClock.Instant = .now) throws(KubeAPIError) -> String {
        switch origin {
        case .fixed(let token):
            return token
        case .file(let path, let source):
            if let token = schedule.withLock({ $0.cached(at: now) }) { return token }
            // A small file, read at most once a minute: not worth moving off the calling thread.
            do throws(KubeAPIError) {
                let token = try KubeConfig.readToken(path, source: source)
                schedule.withLock { $0.stored(token, at: now) }
                return token
            } catch {
                if let last = schedule.withLock({ $0.token }) { return last }
                throw error
            }
        }
    }

    /// The server answered 401 with this token: read the file again before the next request.
    func refused() {
        schedule.withLock { $0.refused() }
    }
}
