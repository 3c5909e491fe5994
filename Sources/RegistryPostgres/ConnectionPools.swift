import Logging
import PostgresNIO
import RegistryCore
import Synchronization

/// The store's connection pool, bounded in how long a caller waits for a connection and replaceable after the
/// database has been away.
///
/// PostgresNIO's pool waits for a connection without limit while the database cannot be reached, and after it has
/// been away a while it retries with a back-off of up to a minute: on its own, a registry would hang its callers
/// during an outage and stay unavailable for up to a minute after the database is back. So:
/// - while the listener cannot reach the database (`unreachable`: its connection broke, or a heartbeat went
///   unanswered), a caller that has no connection within a quarter of a second gets `STORE_UNAVAILABLE` (503 with
///   `Retry-After`); otherwise it waits up to `leaseTimeout` (a busy pool queues callers, it does not shed them);
/// - when the listener, which reconnects every half second on a connection of its own, finds the database back
///   after losing it, `replace()` starts a fresh pool for new callers and retires the old one once its callers
///   are done.
final class ConnectionPools: Sendable {
    /// One pool and its callers in flight.
    final class Pool: Sendable {
        let client: PostgresClient
        let inFlight = Atomic<Int>(0)
        /// Set as its `run()` begins: callers are sent to a pool only once it runs.
        let running = Atomic<Bool>(false)
        private let retirement = Mutex<CheckedContinuation<Void, Never>?>(nil)
        private let retired = Atomic<Bool>(false)

        init(_ configuration: PostgresClient.Configuration, logger: Logger) {
            client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        }

        /// Runs the pool until it is retired (once its callers are done, or after `grace`) or the task is cancelled.
        func run(grace: Duration) async {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    self.running.store(true, ordering: .releasing)
                    await self.client.run()
                }
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = retirement.withLock { stored in
                            if retired.load(ordering: .acquiring) { return true }
                            stored = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    retire()
                }
                // Retired: let callers already holding connections finish.
                let deadline = ContinuousClock.now + grace
                while inFlight.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline, !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(50))
                }
                group.cancelAll()
            }
        }

        func retire() {
            retired.store(true, ordering: .releasing)
            retirement.withLock { stored in
                stored?.resume()
                stored = nil
            }
        }
    }

    private let configuration: PostgresClient.Configuration
    private let logger: Logger
    private let leaseTimeout: Duration
    private let current: Mutex<Pool>
    /// Set by the listener while it cannot reach the database: callers then wait briefly for a connection.
    let unreachable = Unreachable()
    /// Pools to run: the first, then each replacement.
    let started: AsyncStream<Pool>
    private let startedContinuation: AsyncStream<Pool>.Continuation

    init(_ configuration: PostgresClient.Configuration, leaseTimeout: Duration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.leaseTimeout = leaseTimeout
        let first = Pool(configuration, logger: logger)
        current = Mutex(first)
        (started, startedContinuation) = AsyncStream.makeStream(of: Pool.self)
        startedContinuation.yield(first)
    }

    /// Returns once the current pool runs (a lease before that is served, with a warning, once it does).
    func untilRunning() async {
        let pool = current.withLock { $0 }
        while !pool.running.load(ordering: .acquiring), !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Starts a fresh pool, sends new callers to it once it runs, and retires the current one once its callers are
    /// done.
    func replace() async {
        let fresh = Pool(configuration, logger: logger)
        startedContinuation.yield(fresh)
        while !fresh.running.load(ordering: .acquiring), !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(2))
        }
        let old = current.withLock { current in
            defer { current = fresh }
            return current
        }
        old.retire()
    }

    /// Runs `body` with a connection of the current pool; `STORE_UNAVAILABLE` when none is free within
    /// `leaseTimeout`. A body that has started always runs to its end: only the wait for a connection times out.
    func withConnection<T: Sendable>(
        _ body: @Sendable @escaping (PostgresConnection) async throws -> T
    ) async throws -> T {
        let pool = current.withLock { $0 }
        pool.inFlight.add(1, ordering: .relaxed)
        defer { pool.inFlight.subtract(1, ordering: .relaxed) }
        let lease = Lease()
        let leaseTimeout = self.leaseTimeout
        let unreachable = self.unreachable
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await pool.client.withConnection { connection in
                    guard lease.claim(.leased) else { throw CancellationError() }
                    return try await body(connection)
                }
            }
            group.addTask {
                // Checked every quarter of a second: the wait ends as soon as the database is found unreachable.
                let started = ContinuousClock.now
                var waited = Duration.zero
                repeat {
                    guard (try? await Task.sleep(for: .milliseconds(250))) != nil else { return nil }
                    waited = ContinuousClock.now - started
                } while !unreachable.isSet && waited < leaseTimeout
                if lease.claim(.timedOut) {
                    throw PostgresMetadataStore.unavailable(
                        waited < leaseTimeout
                            ? "The metadata database cannot be reached; retry shortly."
                            : "No connection to the metadata database within \(leaseTimeout); retry shortly.")
                }
                return nil
            }
            while let next = try await group.next() {
                if let value = next {
                    group.cancelAll()
                    return value
                }
            }
            throw CancellationError()
        }
    }

    /// Whether the database was last found unreachable.
    final class Unreachable: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .acquiring) }
        func set(_ new: Bool) { value.store(new, ordering: .releasing) }
    }

    /// Who decided a lease first: the connection arriving, or the timeout.
    final class Lease: Sendable {
        enum Outcome: Int { case waiting, leased, timedOut }
        private let state = Atomic<Int>(Outcome.waiting.rawValue)

        /// Whether `outcome` is the first decided.
        func claim(_ outcome: Outcome) -> Bool {
            state.compareExchange(
                expected: Outcome.waiting.rawValue, desired: outcome.rawValue, ordering: .acquiringAndReleasing
            ).exchanged
        }
    }
}
