import Foundation
import GRDB
import RegistryCore
import Synchronization

/// A `MetadataStore` in one SQLite file (WAL, `synchronous = FULL`): the registry's embedded default.
///
/// Every mutation is one write transaction that loads what it needs, applies the rules in `Transitions`, and writes
/// the change, its hash-chained audit entry and its events together. Writes are serialized by GRDB's writer, so
/// version numbers (`MAX + 1`) and revisions are race-free; reads run concurrently on WAL snapshots.
public final class SQLiteMetadataStore: MetadataStore {
    let pool: DatabasePool
    let signal: ChangeSignal
    private let pendingWrites = Mutex(WriteQueue())
    private let afterStateChange: AfterStateChange?

    /// Opens (creating it and its parent directories if needed) and migrates the database at `path`.
    public convenience init(path: String) throws {
        try self.init(path: path, afterStateChange: nil)
    }

    /// Opens the database at `path` with a test hook: see `AfterStateChange`.
    package init(path: String, afterStateChange: AfterStateChange?) throws {
        self.afterStateChange = afterStateChange
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Self.restrictPermissions(path)
            var configuration = Configuration()
            configuration.foreignKeysEnabled = true
            configuration.busyMode = .timeout(10)
            configuration.label = "registry.metadata"
            pool = try DatabasePool(path: path, configuration: configuration)
            // Durable commits: a commit has reached the disk before the call returns. GRDB sets NORMAL when it
            // enables WAL, so this goes on the one writer connection after the pool has opened it.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            try Self.migrator.migrate(pool)
            let lastEvent = try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM events") } ?? 0
            signal = ChangeSignal(position: lastEvent)
        } catch {
            throw Self.translate(error)
        }
    }

    /// Creates the database file readable by its owner only (0600), and narrows an existing one and its WAL files:
    /// the tokens' hashes and the audit log are no one else's business. SQLite gives the `-wal` and `-shm` files
    /// the permissions of the database file.
    static func restrictPermissions(_ path: String) throws {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path),
            !manager.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        {
            throw RegistryError(.internalError, "Cannot create the metadata database at \(path).")
        }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            guard chmod(file, 0o600) == 0 else {
                throw RegistryError(.internalError, "Cannot restrict the permissions of \(file) (errno \(errno)).")
            }
        }
    }

    public func ping() async throws {
        try await read { db in try db.execute(sql: "SELECT 1") }
    }

    /// Closes the database; the store must not be used afterwards.
    public func close() throws {
        do { try pool.close() } catch { throw Self.translate(error) }
    }

    // MARK: Transactions

    /// Runs `body` in a write transaction, then seals and appends the audit draft and events it returns.
    ///
    /// Group commit: mutations that arrive while a commit is in flight are run together in the next transaction,
    /// each inside its own savepoint, so one fsync makes a whole batch durable. A mutation that throws rolls back
    /// its savepoint only; every caller is answered after the batch has committed (or failed as a whole).
    func write<T: Sendable>(
        _ context: MutationContext, _ body: @Sendable @escaping (Database) throws -> (T, AuditDraft, [EventDraft])
    ) async throws -> T {
        let afterStateChange = self.afterStateChange
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = WriteJob(
                run: { db in
                    if let checked = context.checkedTrustPolicy {
                        try checked.verify(current: try Self.loadModel(db, checked.model)?.trustPolicy)
                    }
                    let (result, audit, events) = try body(db)
                    try afterStateChange?(audit.action, context)
                    let lastEvent = try Self.append(audit: audit, events: events, context: context, db)
                    return (lastEvent, { continuation.resume(returning: result) })
                },
                fail: { error in continuation.resume(throwing: Self.translate(error)) })
            enqueue(job)
        }
    }

    /// Runs `body` in the next group-committed write transaction without an audit entry or events: for bookkeeping
    /// that is not a change of the registry's state (open uploads).
    func writeUnaudited(_ body: @Sendable @escaping (Database) throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enqueue(
                WriteJob(
                    run: { db in
                        try body(db)
                        return (nil, { continuation.resume() })
                    },
                    fail: { error in continuation.resume(throwing: Self.translate(error)) }))
        }
    }

    /// Queues `job`; the first job of an idle store starts a drain on the writer connection.
    private func enqueue(_ job: WriteJob) {
        let startDrain = pendingWrites.withLock { queue -> Bool in
            queue.jobs.append(job)
            guard !queue.draining else { return false }
            queue.draining = true
            return true
        }
        guard startDrain else { return }
        pool.asyncWriteWithoutTransaction { [self] db in drain(db) }
    }

    /// Commits queued jobs in batches until the queue is empty.
    private func drain(_ db: Database) {
        while true {
            let jobs = pendingWrites.withLock { queue -> [WriteJob] in
                let jobs = queue.jobs
                queue.jobs.removeAll(keepingCapacity: true)
                if jobs.isEmpty { queue.draining = false }
                return jobs
            }
            guard !jobs.isEmpty else { return }
            var outcomes: [(lastEvent: Int64?, resume: @Sendable () -> Void)?] = []
            var failures: [(WriteJob, any Error)] = []
            do {
                try db.inTransaction(.immediate) {
                    for job in jobs {
                        do {
                            var outcome: (Int64?, @Sendable () -> Void)?
                            try db.inSavepoint {
                                outcome = try job.run(db)
                                return .commit
                            }
                            outcomes.append(outcome)
                        } catch {
                            outcomes.append(nil)
                            failures.append((job, error))
                        }
                    }
                    return .commit
                }
            } catch {
                // The batch did not commit: nothing of it happened, so every caller gets the error.
                for job in jobs { job.fail(error) }
                continue
            }
            let lastEvent = outcomes.compactMap { $0?.lastEvent }.max()
            if let lastEvent { signal.advance(to: lastEvent) }
            for outcome in outcomes { outcome?.resume() }
            for (job, error) in failures { job.fail(error) }
        }
    }

    // MARK: Test hook

    /// Runs on the writer between a mutation's state change and its audit entry and events, with the audit action
    /// and the mutation's context; what it throws fails that mutation there, half-written. Tests use it to prove
    /// that the savepoint leaves nothing of a half-done change while its batch commits, and may block in it to hold
    /// the writer while a batch queues. Only the `package` initialiser sets it; production stores carry nil.
    package typealias AfterStateChange = @Sendable (_ action: String, _ context: MutationContext) throws -> Void

    /// Mutations queued for the next group commit: what a test waits on to know a batch has formed.
    package var queuedWrites: Int { pendingWrites.withLock { $0.jobs.count } }

    func read<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw Self.translate(error)
        }
    }

    /// Appends the sealed audit entry, moves the recorded head, and inserts the events; returns the last event id.
    static func append(
        audit draft: AuditDraft, events: [EventDraft], context: MutationContext, _ db: Database
    ) throws -> Int64? {
        let head = try Row.fetchOne(db.cachedStatement(sql: "SELECT sequence, hash FROM audit_head WHERE id = 1"))
        let sequence = (head?["sequence"] as Int64? ?? 0) + 1
        let previousHash = head?["hash"] as String? ?? AuditChain.genesis
        let entry = AuditChain.seal(draft, sequence: sequence, previousHash: previousHash, context: context)
        try db.cachedStatement(
            sql: """
                INSERT INTO audit (sequence, time, actor, action, target, model, before, after, request_id,
                    previous_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            entry.sequence, Rows.time(entry.time), entry.actor, entry.action, entry.target, entry.model, entry.before,
            entry.after, entry.requestId, entry.previousHash, entry.hash,
        ])
        try db.cachedStatement(
            sql: """
                INSERT INTO audit_head (id, sequence, hash) VALUES (1, ?, ?)
                ON CONFLICT (id) DO UPDATE SET sequence = excluded.sequence, hash = excluded.hash
                """
        ).execute(arguments: [entry.sequence, entry.hash])
        var lastEvent: Int64?
        let insertEvent = try db.cachedStatement(
            sql: "INSERT INTO events (type, time, model, data) VALUES (?, ?, ?, ?)")
        for event in events {
            try insertEvent.execute(arguments: [
                event.type, Rows.time(context.time), event.model, try JSONCoding.text(event.data),
            ])
            lastEvent = db.lastInsertedRowID
        }
        return lastEvent
    }

    /// Maps driver errors to registry errors at the boundary; registry errors and cancellation pass through.
    static func translate(_ error: any Error) -> any Error {
        if error is RegistryError || error is CancellationError { return error }
        guard let error = error as? DatabaseError else {
            return RegistryError(.internalError, "The metadata database failed: \(error)")
        }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return RegistryError(.unavailable, "The metadata database is busy; retry shortly.")
        case .SQLITE_FULL:
            return RegistryError(.storageFull, "The metadata database's disk is full.")
        case .SQLITE_CONSTRAINT:
            return RegistryError(
                .invalidArgument, "The change conflicts with stored data: \(error.message ?? "constraint failed").")
        default:
            return RegistryError(
                .internalError, "The metadata database failed: \(error.message ?? error.resultCode.description).")
        }
    }
}

/// One mutation waiting for the writer: `run` applies it inside a savepoint and returns its last event id and how
/// to answer its caller once the batch has committed; `fail` answers the caller with an error.
struct WriteJob: Sendable {
    let run: @Sendable (Database) throws -> (Int64?, @Sendable () -> Void)
    let fail: @Sendable (any Error) -> Void
}

struct WriteQueue: Sendable {
    var jobs: [WriteJob] = []
    var draining = false
}
