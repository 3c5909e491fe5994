import Foundation
import Logging
import PostgresNIO
import RegistryCore
import ServiceLifecycle
import Synchronization

/// A `MetadataStore` on PostgreSQL, which several stateless registry instances can share.
///
/// Every mutation is one transaction that first takes one transaction-scoped advisory lock (`writeLock`), then loads
/// what it needs, applies the rules in `Transitions`, and writes the change, its hash-chained audit entry and its
/// events together. Every mutation appends to the one audit chain, so mutations are serialised anyway; taking the
/// lock first makes that explicit and buys the rest:
/// - version numbers (`MAX + 1`), revisions and the audit head are read and written by one writer at a time;
/// - event ids are taken from their sequence while the lock is held, and the lock is released only after the commit
///   is visible, so ids become visible in id order: a reader of `events(after:)` never skips an event that commits
///   later with a smaller id (the classic trap of sequence ids across concurrent transactions).
///
/// Reads run on the pool without the lock, at READ COMMITTED, one statement each where a consistent answer needs it.
/// The store is a `Service`: `run()` runs the connection pool and a `LISTEN` connection that hears commits of
/// other instances (each writing transaction sends `NOTIFY` with its last event id), so `waitForEvents` wakes on a
/// write made anywhere. Call `prepare()` once before use: it migrates the schema under a lock.
public final class PostgresMetadataStore: MetadataStore, Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        /// Whether to use TLS (`sslmode=require` or `verify-full`), and whether to check the server's certificate.
        public var tls: TLSMode
        /// The most connections this instance opens.
        public var poolSize: Int
        /// How long a call waits for a connection before it fails with `STORE_UNAVAILABLE`, while the database is
        /// believed up (a busy pool); while it cannot be reached, a call fails within a quarter of a second.
        public var leaseTimeout: Duration = .seconds(30)

        public init(
            host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
            tls: TLSMode = .disable, poolSize: Int = 16
        ) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.tls = tls
            self.poolSize = poolSize
        }

        /// Parses `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require|verify-full]`.
        /// `password` (from the environment or a file) overrides one in the URL. Without `sslmode` TLS is
        /// required: a production database is reached over TLS unless the operator says otherwise.
        public init(url text: String, password: String? = nil, poolSize: Int = 16) throws {
            guard let components = URLComponents(string: text),
                components.scheme == "postgres" || components.scheme == "postgresql",
                let host = components.host, !host.isEmpty
            else {
                throw RegistryError.invalidArgument(
                    "A database URL reads postgres://user@host:port/database; got something else.", field: "database")
            }
            let database = String(components.path.drop(while: { $0 == "/" }))
            guard !database.isEmpty else {
                throw RegistryError.invalidArgument("The database URL names no database.", field: "database")
            }
            let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "require"
            let tls: TLSMode
            switch mode {
            case "disable": tls = .disable
            case "prefer", "allow":
                var configuration = TLSConfiguration.makeClientConfiguration()
                configuration.certificateVerification = .none
                tls = .prefer(configuration)
            case "require":
                // libpq's `require`: encrypted, the certificate not checked.
                var configuration = TLSConfiguration.makeClientConfiguration()
                configuration.certificateVerification = .none
                tls = .require(configuration)
            case "verify-ca", "verify-full":
                tls = .require(TLSConfiguration.makeClientConfiguration())
            default:
                throw RegistryError.invalidArgument(
                    "sslmode must be disable, prefer, require, verify-ca or verify-full; got '\(mode)'.",
                    field: "database")
            }
            self.init(
                host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                password: password ?? components.password, database: database, tls: tls, poolSize: poolSize)
        }

        var client: PostgresClient.Configuration {
            let clientTLS: PostgresClient.Configuration.TLS =
                switch tls {
                case .disable: .disable
                case .prefer(let configuration): .prefer(configuration)
                case .require(let configuration): .require(configuration)
                }
            var configuration = PostgresClient.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: clientTLS)
            configuration.options.maximumConnections = max(poolSize, 2)
            configuration.options.minimumConnections = 0
            return configuration
        }

        /// For a connection of its own, outside the pool (a session lock must stay on one connection).
        func connection() throws -> PostgresConnection.Configuration {
            let connectionTLS: PostgresConnection.Configuration.TLS =
                switch tls {
                case .disable: .disable
                case .prefer(let configuration): .prefer(try NIOSSLContext(configuration: configuration))
                case .require(let configuration): .require(try NIOSSLContext(configuration: configuration))
                }
            return PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database,
                tls: connectionTLS)
        }
    }

    /// TLS to the database, as `sslmode` chooses it.
    public enum TLSMode: Sendable {
        case disable
        /// TLS when the server offers it.
        case prefer(TLSConfiguration)
        case require(TLSConfiguration)
    }

    /// The advisory lock every mutation holds until it commits (an arbitrary constant: "registry" in ASCII).
    static let writeLock: Int64 = 0x7265_6769_7374_7279
    /// The advisory lock migrations run under, so instances starting together migrate once.
    static let migrationLock: Int64 = 0x7265_6769_7374_7280
    /// The channel commits are announced on, with the last event id as payload.
    static let eventChannel = "registry_events"

    let pools: ConnectionPools
    let replicas: ReadReplicas
    private let listenerConfiguration: Configuration
    let signal = ChangeSignal()
    let logger: Logger
    /// Tells this instance's own notifications from other instances'.
    let instance = UUID().uuidString
    private let remoteChangeHandler = Mutex<(@Sendable (String?) -> Void)?>(nil)
    /// Set once `prepare()` has migrated the schema: the listener reads the events table only after that.
    private let prepared = Atomic<Bool>(false)

    /// A store on the primary `configuration`; lists, searches, histories and audit queries of requests that only
    /// read may be served by `replicas` (streaming replicas of that primary) that have replayed what the request
    /// must see, as `ReadConsistency` tells.
    public init(
        configuration: Configuration, replicas: [Configuration] = [],
        logger: Logger = Logger(label: "registry.postgres")
    ) {
        self.logger = logger
        self.replicas = ReadReplicas(replicas, logger: logger)
        pools = ConnectionPools(configuration.client, leaseTimeout: configuration.leaseTimeout, logger: logger)
        listenerConfiguration = configuration
    }

    /// Runs the connection pool (and each replacement of it) and the listener for other instances' commits until
    /// the task is cancelled or a graceful shutdown begins.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.listen() }
                group.addTask { await self.replicas.run(primary: self.pools) }
                for await pool in self.pools.started {
                    group.addTask { await pool.run(grace: .seconds(30)) }
                }
                group.cancelAll()
            }
        }
    }

    /// Runs `body` with `store` running: for tests and one-shot commands.
    public static func with<T: Sendable>(
        _ configuration: Configuration, replicas: [Configuration] = [],
        logger: Logger = Logger(label: "registry.postgres"),
        _ body: @Sendable (PostgresMetadataStore) async throws -> T
    ) async throws -> T {
        let store = PostgresMetadataStore(configuration: configuration, replicas: replicas, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.prepare()
            return try await body(store)
        }
    }

    /// Migrates the schema (under an advisory lock, so instances starting together do not race) and reads the last
    /// event id. Call once the store runs, before serving.
    public func prepare() async throws {
        let logger = self.logger
        await pools.untilRunning()
        do {
            try await pools.withConnection { connection in
                try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
                do {
                    try await Self.migrate(connection, logger: logger)
                    try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                } catch {
                    _ = try? await connection.query(
                        "SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                    throw error
                }
            }
            signal.advance(to: try await lastEventId())
            prepared.store(true, ordering: .releasing)
        } catch {
            throw Self.translate(error)
        }
    }

    /// Reads of requests that only read, by where they were served: for `/metrics`.
    public var readsServed: (primary: Int, replica: Int) {
        (replicas.servedByPrimary.load(ordering: .relaxed), replicas.servedByReplica.load(ordering: .relaxed))
    }

    public func ping() async throws {
        _ = try await read { connection in try await connection.query("SELECT 1", logger: self.logger).collect() }
    }

    // MARK: Cross-instance wake-ups

    /// Sets what to call with each model another instance changed (nil: anything may have changed, after the
    /// listener lost its connection), before those waiting for the change's events are woken: a cache drops what
    /// the change made stale (`CachedMetadataStore.invalidate(model:)`).
    public func onRemoteChange(_ handler: @escaping @Sendable (String?) -> Void) {
        remoteChangeHandler.withLock { $0 = handler }
    }

    /// Applies one announcement (`<last event id or 0> <instance> <model,model,...>`, sent by `append`): another
    /// instance's models are dropped from the cache first, then waiters woken.
    private func heard(_ payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, let id = Int64(parts[0]) else { return }
        if parts[1] != instance, let handler = remoteChangeHandler.withLock({ $0 }) {
            let models = parts.count > 2 ? parts[2].split(separator: ",") : []
            for model in models { handler(String(model)) }
        }
        if id > 0 { signal.advance(to: id) }
    }

    /// Listens for commits of any instance on a connection of its own, which doubles as the probe of the
    /// database's health. After a lost connection it retries every half second; once back it drops the whole cache
    /// (changes announced meanwhile are gone), replaces the connection pool (whose own retries back off for up to a
    /// minute) and reads the last event id.
    private func listen() async {
        while !Task.isCancelled, !prepared.load(ordering: .acquiring) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        var attempt = 0
        var lost = false
        while !Task.isCancelled {
            attempt += 1
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try listenerConfiguration.connection(), id: attempt, logger: logger)
                try await withTaskCancellationHandler {
                    do {
                        try await connection.listen(on: Self.eventChannel) { notifications in
                            if lost {
                                await self.pools.replace()
                                self.pools.unreachable.set(false)
                                self.logger.info("The metadata database is back; reconnected")
                                lost = false
                            }
                            // Anything committed before the LISTEN took effect is caught here.
                            self.remoteChangeHandler.withLock { $0 }?(nil)
                            self.signal.advance(to: try await self.lastEventId())
                            try await withThrowingTaskGroup(of: Void.self) { group in
                                group.addTask {
                                    for try await notification in notifications { self.heard(notification.payload) }
                                }
                                // A server that vanished without closing the socket is noticed within seconds.
                                group.addTask { try await self.heartbeat(connection) }
                                defer { group.cancelAll() }
                                try await group.next()
                            }
                        }
                        try? await connection.close()
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                } onCancel: {
                    _ = connection.close() as EventLoopFuture<Void>
                }
            } catch {
                if Task.isCancelled { return }
                // A server that answers with a refusal (too many connections, a bad password) is up: the pool is not
                // at fault and callers may still get connections from it.
                let refused = (error as? PSQLError)?.serverInfo?[.sqlState].map(Self.refusals.contains) ?? false
                if !lost {
                    logger.warning(
                        "Lost the metadata database's event listener; reconnecting",
                        metadata: ["error": "\(Self.describe(error))"])
                }
                if !refused {
                    lost = true
                    pools.unreachable.set(true)
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// A driver error for the log: its kind and the server's SQLSTATE and message, never the query or its values.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        let state = error.serverInfo?[.sqlState].map { " \($0)" } ?? ""
        let message = error.serverInfo?[.message].map { ": \($0)" } ?? ""
        return "\(error.code)\(state)\(message)"
    }

    /// SQLSTATEs of a server that is up but refused the connection: too many connections, authentication, no such
    /// database.
    static let refusals: Set<String> = ["53300", "28000", "28P01", "3D000"]

    /// Asks the listener's connection for an answer every second; throws when one does not come within two.
    private func heartbeat(_ connection: PostgresConnection) async throws {
        while true {
            try await Task.sleep(for: .seconds(1))
            try await connection.answered(within: .seconds(2), logger: logger) {
                _ = try await connection.query("SELECT 1", logger: self.logger)
            }
        }
    }

    // MARK: Transactions

    /// Runs `body` in a write transaction under `writeLock`, then appends the audit draft and events it returns,
    /// announces the last event id and the models it changed (none for an audit-only write: `changesState` false),
    /// and commits.
    func write<T: Sendable>(
        _ context: MutationContext, changesState: Bool = true,
        _ body: @Sendable @escaping (PostgresConnection) async throws -> (T, AuditDraft, [EventDraft])
    ) async throws -> T {
        let logger = self.logger
        let instance = self.instance
        let (result, lastEvent) = try await transaction(locked: true) { connection in
            if let checked = context.checkedTrustPolicy {
                try checked.verify(current: try await Self.loadModel(connection, checked.model, logger)?.trustPolicy)
            }
            let (result, audit, events) = try await body(connection)
            // Sent on commit, in commit order: other instances drop what this made stale, then wake their waiters.
            let models = changesState ? Set(([audit.model] + events.map(\.model)).compactMap { $0 }) : []
            let lastEvent = try await Self.append(
                audit: audit, events: events, context: context, announcing: (instance, models), connection, logger)
            return (result, lastEvent)
        }
        if let lastEvent { signal.advance(to: lastEvent) }
        return result
    }

    /// Runs `body` in a transaction (under `writeLock` when `locked`); a throw rolls it back.
    @discardableResult
    func transaction<T: Sendable>(
        locked: Bool, _ body: @Sendable @escaping (PostgresConnection) async throws -> T
    ) async throws -> T {
        let logger = self.logger
        let reportsPosition = !replicas.isEmpty
        do {
            return try await pools.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                let result: T
                do {
                    if locked {
                        try await connection.query("SELECT pg_advisory_xact_lock(\(Self.writeLock))", logger: logger)
                    }
                    result = try await body(connection)
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
                try await connection.query("COMMIT", logger: logger)
                if locked, reportsPosition, let commits = ReadConsistency.commits {
                    // The insert position is at or past this commit's record: a replica that has replayed it has
                    // the commit.
                    let position = try await connection.query(
                        "SELECT pg_current_wal_insert_lsn()::text", logger: logger
                    ).collect().first?.decode(String.self)
                    if let position { commits.record(position) }
                }
                return result
            }
        } catch {
            throw Self.translate(error)
        }
    }

    /// Runs `body` on the primary, or, when `replica` is allowed and the request only reads
    /// (`ReadConsistency.replicaRead`), on a replica that has replayed what it must see. A replica that fails is
    /// left for the primary.
    func read<T: Sendable>(
        replica allowed: Bool = false, _ body: @Sendable @escaping (PostgresConnection) async throws -> T
    ) async throws -> T {
        if allowed, !replicas.isEmpty, let request = ReadConsistency.replicaRead {
            // A position that does not parse is not one this store made: the primary answers it.
            let minimum = request.minimumPosition.map { WALPosition($0) ?? WALPosition(.max) }
            if let replica = replicas.replica(forMinimum: minimum) {
                do {
                    let result = try await replica.pools.withConnection { connection in try await body(connection) }
                    replicas.servedByReplica.add(1, ordering: .relaxed)
                    return result
                } catch let error as PSQLError {
                    logger.debug(
                        "A replica read failed; reading the primary",
                        metadata: ["replica": "\(replica.name)", "error": "\(Self.describe(error))"])
                } catch let error as RegistryError where error.code == .storeUnavailable {
                    logger.debug("A replica read failed; reading the primary", metadata: ["replica": "\(replica.name)"])
                }
            }
            replicas.servedByPrimary.add(1, ordering: .relaxed)
        }
        do {
            return try await pools.withConnection { connection in try await body(connection) }
        } catch {
            throw Self.translate(error)
        }
    }

    /// Appends the sealed audit entry, moves the recorded head, inserts the events and, with `announcing`, sends
    /// the announcement of the last event id and the changed models (when there is either); returns the last event
    /// id. Two round trips whatever the number of events: the head is read, then everything else is one statement
    /// of data-modifying CTEs (every mutation holds the write lock meanwhile, so each round trip saved is throughput).
    static func append(
        audit draft: AuditDraft, events: [EventDraft], context: MutationContext,
        announcing announcement: (instance: String, models: Set<String>)? = nil, _ connection: PostgresConnection,
        _ logger: Logger
    ) async throws -> Int64? {
        let head = try await connection.query(
            "SELECT sequence, hash FROM audit_head WHERE id = 1", logger: logger
        ).collect().first.map { try $0.decode((Int64, String).self) }
        let sequence = (head?.0 ?? 0) + 1
        let previousHash = head?.1 ?? AuditChain.genesis
        let entry = AuditChain.seal(draft, sequence: sequence, previousHash: previousHash, context: context)
        let types = events.map(\.type)
        // Event models are names or absent; names are never empty, so '' stands for absent in the array.
        let models = events.map { $0.model ?? "" }
        let data = try events.map { try JSONCoding.text($0.data) }
        let eventTime = Rows.time(context.time)
        // The announcement: `<last event id or 0> <instance> <models>`, sent only when there is something to say.
        let announce = announcement.map { !events.isEmpty || !$0.models.isEmpty } ?? false
        let suffix = announcement.map { " \($0.instance) \($0.models.sorted().joined(separator: ","))" } ?? ""
        let rows = try await connection.query(
            """
            WITH audit_row AS (
                INSERT INTO audit (sequence, time, actor, action, target, model, before, after, request_id,
                    previous_hash, hash)
                VALUES (\(entry.sequence), \(Rows.time(entry.time)), \(entry.actor), \(entry.action), \(entry.target),
                    \(entry.model), \(entry.before), \(entry.after), \(entry.requestId), \(entry.previousHash),
                    \(entry.hash))
            ), head AS (
                INSERT INTO audit_head (id, sequence, hash) VALUES (1, \(entry.sequence), \(entry.hash))
                ON CONFLICT (id) DO UPDATE SET sequence = excluded.sequence, hash = excluded.hash
            ), inserted AS (
                INSERT INTO events (type, time, model, data)
                SELECT e.type, \(eventTime), NULLIF(e.model, ''), e.data
                FROM unnest(\(types)::text[], \(models)::text[], \(data)::text[]) WITH ORDINALITY
                    AS e(type, model, data, position)
                ORDER BY e.position
                RETURNING id
            )
            SELECT last, CASE WHEN \(announce)
                THEN pg_notify(\(Self.eventChannel), COALESCE(last, 0)::text || \(suffix))::text END
            FROM (SELECT max(id) AS last FROM inserted) AS summary
            """, logger: logger
        ).collect()
        return try rows.first?.decode((Int64?, String?).self).0
    }

    /// `STORE_UNAVAILABLE` (503) with a hint to retry in a couple of seconds (`Retry-After`).
    static func unavailable(_ message: String) -> RegistryError {
        RegistryError(.storeUnavailable, message, details: ["retryAfterSeconds": .number(2)])
    }

    /// Maps driver errors to registry errors at the boundary; registry errors and cancellation pass through.
    static func translate(_ error: any Error) -> any Error {
        if error is RegistryError || error is CancellationError { return error }
        guard let error = error as? PSQLError else {
            return unavailable("The metadata database could not be reached: \(error)")
        }
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? "failed"
            switch state {
            case "23505", "23503", "23514":
                return RegistryError(.invalidArgument, "The change conflicts with stored data: \(message).")
            case "53100":
                return RegistryError(.storageFull, "The metadata database's disk is full.")
            case "40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300":
                return unavailable("The metadata database is busy or restarting; retry shortly.")
            default:
                if state.hasPrefix("08") {
                    return unavailable("The metadata database could not be reached; retry shortly.")
                }
                return RegistryError(.internalError, "The metadata database failed: \(state) \(message).")
            }
        case .queryCancelled:
            return CancellationError()
        default:
            return unavailable("The metadata database could not be reached (\(error.code)); retry shortly.")
        }
    }
}
