import Prometheus
import RegistryCore
import Synchronization

/// How many of one kind of long-lived request (long-polls, watches) each caller holds open, bounded per subject.
///
/// A waiting request costs a connection and a task for up to `maxEventWaitSeconds`; without a bound one token could
/// hold thousands and crowd out every other caller. Requests that do not wait never take a slot.
final class CallerSlots: Sendable {
    /// What a slot is, for the error message ("long-polls", "resolve watches").
    let kind: String
    /// Most slots one subject holds at once.
    let limit: Int
    /// What `Retry-After` suggests to a caller that was refused.
    let retryAfterSeconds: Int
    /// Slots held by all callers together, when someone watches that number.
    private let open: Gauge?
    private let held = Mutex<[String: Int]>([:])

    init(kind: String, limit: Int, retryAfterSeconds: Int = 1, open: Gauge? = nil) {
        self.kind = kind
        self.limit = max(1, limit)
        self.retryAfterSeconds = retryAfterSeconds
        self.open = open
    }

    /// Runs `body` holding one of `subject`'s slots; throws 429 `TOO_MANY_REQUESTS` (with `retryAfterSeconds`) when
    /// `subject` already holds `limit`, without running `body`.
    func holding<T>(_ subject: String, _ body: () async throws -> T) async throws -> T {
        try acquire(subject)
        defer { release(subject) }
        return try await body()
    }

    /// The slots `subject` holds right now.
    func count(of subject: String) -> Int { held.withLock { $0[subject] ?? 0 } }

    /// Takes one of `subject`'s slots; throws 429 `TOO_MANY_REQUESTS` when it holds `limit` already. Every slot
    /// taken is given back with `release`.
    func acquire(_ subject: String) throws {
        let taken = held.withLock { held -> Bool in
            let count = held[subject] ?? 0
            guard count < limit else { return false }
            held[subject] = count + 1
            return true
        }
        if taken { open?.increment() }
        guard taken else {
            throw RegistryError(
                .tooManyRequests, "This caller already holds \(limit) open \(kind); close one or retry later.",
                details: [
                    "limit": .number(Double(limit)), "kind": .string(kind),
                    "retryAfterSeconds": .number(Double(retryAfterSeconds)),
                ])
        }
    }

    /// Gives back a slot that `acquire` took.
    func release(_ subject: String) {
        held.withLock { held in
            let count = (held[subject] ?? 1) - 1
            held[subject] = count > 0 ? count : nil
        }
        open?.decrement()
    }
}
