import Logging
import PostgresNIO
import RegistryCore
import ServiceLifecycle
import Synchronization

/// Elects one instance among those sharing a database to run what must run once (the rollout supervisor), with a
/// PostgreSQL session-level advisory lock held on a connection of its own.
///
/// Every instance tries the lock every `interval`; the one that gets it leads until its connection ends. When a
/// leader dies (even by `kill -9`), its operating system closes the connection, the server releases the lock, and
/// another instance takes it at its next try. A leader checks its connection every `interval` and stops leading as
/// soon as a check fails, so it never acts on a lock it may have lost for longer than that; decisions are also
/// updates at a revision, so one taken twice in that window is refused the second time.
public final class PostgresLeadership: Leadership, Service {
    private let configuration: PostgresMetadataStore.Configuration
    private let key: Int64
    private let interval: Duration
    private let logger: Logger
    private let leading = Atomic<Bool>(false)

    /// The advisory lock of the rollout supervisor's role.
    public static let supervisorKey: Int64 = 0x7265_6769_7374_7281

    public init(
        configuration: PostgresMetadataStore.Configuration, key: Int64 = PostgresLeadership.supervisorKey,
        interval: Duration = .seconds(1), logger: Logger = Logger(label: "registry.leadership")
    ) {
        self.configuration = configuration
        self.key = key
        self.interval = interval
        self.logger = logger
    }

    public var isLeader: Bool { leading.load(ordering: .acquiring) }

    /// Campaigns until the task is cancelled or a graceful shutdown begins, then closes the connection, which
    /// hands the role to another instance at once.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var connectionID = 0
            while !Task.isCancelled {
                connectionID += 1
                do {
                    try await self.campaign(connectionID: connectionID)
                } catch {
                    if self.leading.exchange(false, ordering: .acquiringAndReleasing) {
                        self.logger.warning("Stopped leading: lost the database", metadata: ["error": "\(error)"])
                    }
                }
                try? await Task.sleep(for: self.interval)
            }
        }
        if leading.exchange(false, ordering: .acquiringAndReleasing) { logger.info("Stopped leading: shutting down") }
    }

    private func campaign(connectionID: Int) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: try configuration.connection(), id: connectionID, logger: logger)
        let logger = self.logger
        let key = self.key
        // A check answers within the interval or the connection is closed: a leader cut off from the database (its
        // server gone without closing the socket, a query stuck) stops leading instead of waiting on it.
        try await withTaskCancellationHandler {
            do {
                while !Task.isCancelled {
                    if isLeader {
                        try await connection.answered(within: interval, logger: logger) {
                            _ = try await connection.query("SELECT 1", logger: logger)
                        }
                    } else {
                        let taken = try await connection.answered(within: interval, logger: logger) {
                            try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: logger)
                                .collect().first?.decode(Bool.self)
                        }
                        if taken == true {
                            leading.store(true, ordering: .releasing)
                            logger.info("Leading: this instance runs the rollout supervisor")
                        }
                    }
                    try await Task.sleep(for: interval)
                }
            } catch {
                try? await connection.close()
                throw error
            }
        } onCancel: {
            _ = connection.close() as EventLoopFuture<Void>
        }
        leading.store(false, ordering: .releasing)
        try? await connection.close()
    }
}

extension PostgresConnection {
    /// Runs `body` (queries on this connection) and returns its answer, or throws `STORE_UNAVAILABLE` when it has
    /// none within `limit`; then, and when the task is cancelled, the connection is closed.
    ///
    /// The wait is not structured on purpose: PostgresNIO writes a query to its channel without a promise, so a query
    /// on a connection that has just closed is never answered, and waiting for it would hang the caller for good (a
    /// leader that never steps down, a shutdown that never ends). Such a query is abandoned, not awaited.
    @discardableResult
    func answered<T: Sendable>(
        within limit: Duration, logger: Logger, _ body: @Sendable @escaping () async throws -> T
    ) async throws -> T {
        guard !isClosed else {
            throw PostgresMetadataStore.unavailable("The connection to the metadata database is closed.")
        }
        let answer = PendingAnswer<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                answer.wait(continuation)
                let query = Task {
                    let result = await Result(catching: { try await body() })
                    answer.finish(result)
                }
                let timer = Task {
                    guard (try? await Task.sleep(for: limit)) != nil else { return }
                    let timedOut = PostgresMetadataStore.unavailable(
                        "The metadata database did not answer within \(limit).")
                    if answer.finish(.failure(timedOut)) { _ = self.close() as EventLoopFuture<Void> }
                }
                answer.track(query: query, timer: timer)
            }
        } onCancel: {
            if answer.finish(.failure(CancellationError())) { _ = self.close() as EventLoopFuture<Void> }
        }
    }
}

/// The one answer of `answered(within:)`: the first of the query, its timer and cancellation to finish resumes
/// the caller and cancels the others.
private final class PendingAnswer<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        /// The result, when it came before the caller began to wait (a task cancelled before it started).
        var early: Result<T, any Error>?
        var finished = false
        var tasks: [Task<Void, Never>] = []
    }
    private let state = Mutex(State())

    func wait(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func track(query: Task<Void, Never>, timer: Task<Void, Never>) {
        let finished = state.withLock { state in
            state.tasks = [query, timer]
            return state.finished
        }
        if finished {
            query.cancel()
            timer.cancel()
        }
    }

    /// Resumes the caller with `result` unless it was resumed already; true for the call that did.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (first, continuation, tasks) = state.withLock {
            state -> (Bool, CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !state.finished else { return (false, nil, []) }
            state.finished = true
            if state.continuation == nil { state.early = result }
            defer { state.continuation = nil }
            return (true, state.continuation, state.tasks)
        }
        for task in tasks { task.cancel() }
        continuation?.resume(with: result)
        return first
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
