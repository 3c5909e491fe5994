import Foundation
import RegistryCore
import Synchronization

/// Counts failed authentications per client address and slows a guesser down: past `limit` failures within one
/// fixed window, requests from that address are refused with 429 until the window ends.
///
/// Only requests that presented a token count (a missing header costs no lookup). The table is bounded: when it is
/// full, windows that have ended are dropped first, then everything (a flood from many addresses forgets, never
/// grows).
final class AuthFailureLimiter: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var failures: Int
    }

    private let limit: Int
    private let window: Duration
    private let maxAddresses = 10_000
    private let windows = Mutex<[String: Window]>([:])

    init(limit: Int, window: Duration = .seconds(60)) {
        self.limit = limit
        self.window = window
    }

    /// Throws `TOO_MANY_REQUESTS` when `address` has used up its failures in the current window.
    func check(_ address: String?) throws {
        guard let address, limit > 0 else { return }
        let now = ContinuousClock.now
        let retryAfter: Duration? = windows.withLock { windows in
            guard let entry = windows[address], entry.failures >= limit else { return nil }
            let end = entry.start.advanced(by: window)
            return end > now ? end - now : nil
        }
        if let retryAfter {
            let seconds = max(1, Double(retryAfter.components.seconds) + 1)
            throw RegistryError(
                .tooManyRequests, "Too many requests with an invalid token from this address; retry later.",
                details: ["retryAfterSeconds": .number(seconds)])
        }
    }

    /// Records one failed authentication from `address`.
    func recordFailure(_ address: String?) {
        guard let address, limit > 0 else { return }
        let now = ContinuousClock.now
        windows.withLock { windows in
            if var entry = windows[address], now - entry.start < window {
                entry.failures += 1
                windows[address] = entry
                return
            }
            if windows.count >= maxAddresses {
                windows = windows.filter { now - $0.value.start < window }
                if windows.count >= maxAddresses { windows.removeAll(keepingCapacity: true) }
            }
            windows[address] = Window(start: now, failures: 1)
        }
    }
}
