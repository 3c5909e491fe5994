import Logging
import PostgresNIO
import RegistryCore
import Synchronization

/// A position in PostgreSQL's write-ahead log (`pg_lsn`), as a number that orders positions.
struct WALPosition: Comparable, Sendable {
    let value: UInt64

    init(_ value: UInt64) {
        self.value = value
    }

    /// Parses PostgreSQL's text form, `16/B374D848`.
    init?(_ text: String) {
        guard let value = ReadConsistency.order(of: text) else { return nil }
        self.value = value
    }

    static func < (lhs: WALPosition, rhs: WALPosition) -> Bool { lhs.value < rhs.value }
}

/// The streaming replicas reads may be served from, each with how far it has replayed the primary's log.
///
/// A poller per replica asks `pg_last_wal_replay_lsn()` every `pollInterval` on a connection of its own, and the
/// primary's position is sampled as often. A read is sent to a healthy replica whose replayed position is at least
/// - the position the read presented (read-your-writes: `Registry-Position` of an earlier write), or
/// - without one, the primary's position as it was `maxLag` ago (bounded staleness);
///
/// otherwise to the primary. Replayed positions only grow, so a replica found to have replayed a position has it
/// for good: a lagging replica is never used for a read that presented a newer position.
final class ReadReplicas: Sendable {
    final class Replica: Sendable {
        let configuration: PostgresMetadataStore.Configuration
        let pools: ConnectionPools
        let replayed = Atomic<UInt64>(0)
        let healthy = Atomic<Bool>(false)

        init(_ configuration: PostgresMetadataStore.Configuration, logger: Logger) {
            self.configuration = configuration
            pools = ConnectionPools(configuration.client, leaseTimeout: .seconds(2), logger: logger)
        }

        var name: String { "\(configuration.host):\(configuration.port)" }
    }

    let replicas: [Replica]
    let maxLag: Duration
    let pollInterval: Duration
    private let logger: Logger
    /// Samples of the primary's position, oldest first, covering a little more than `maxLag`.
    private let primarySamples = Mutex<[(time: ContinuousClock.Instant, position: UInt64)]>([])
    private let next = Atomic<Int>(0)
    let servedByReplica = Atomic<Int>(0)
    let servedByPrimary = Atomic<Int>(0)

    init(
        _ configurations: [PostgresMetadataStore.Configuration], maxLag: Duration = .seconds(2),
        pollInterval: Duration = .milliseconds(50), logger: Logger
    ) {
        replicas = configurations.map { Replica($0, logger: logger) }
        self.maxLag = maxLag
        self.pollInterval = pollInterval
        self.logger = logger
    }

    var isEmpty: Bool { replicas.isEmpty }

    /// Runs each replica's pool and poller, and the sampler of the primary's position, until cancelled.
    func run(primary: ConnectionPools) async {
        guard !replicas.isEmpty else { return }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.samplePrimary(primary) }
            for replica in replicas {
                group.addTask {
                    await withDiscardingTaskGroup { inner in
                        inner.addTask { await self.poll(replica) }
                        for await pool in replica.pools.started {
                            inner.addTask { await pool.run(grace: .seconds(5)) }
                        }
                        inner.cancelAll()
                    }
                }
            }
        }
    }

    /// The replica to serve a read that must see `minimum` (or, when nil, the primary's position `maxLag` ago), or
    /// nil for the primary.
    func replica(forMinimum minimum: WALPosition?) -> Replica? {
        let required = minimum?.value ?? stalenessFloor()
        let eligible = replicas.filter {
            $0.healthy.load(ordering: .acquiring) && $0.replayed.load(ordering: .acquiring) >= required
        }
        guard !eligible.isEmpty else { return nil }
        return eligible[next.add(1, ordering: .relaxed).newValue % eligible.count]
    }

    /// The primary's position as it was `maxLag` ago: the newest sample at least that old.
    func stalenessFloor() -> UInt64 {
        let horizon = ContinuousClock.now - maxLag
        return primarySamples.withLock { samples in
            samples.last(where: { $0.time <= horizon })?.position ?? samples.first?.position ?? 0
        }
    }

    private func samplePrimary(_ primary: ConnectionPools) async {
        while !Task.isCancelled {
            if let text = try? await primary.withConnection({ connection in
                try await connection.query("SELECT pg_current_wal_lsn()::text", logger: self.logger)
                    .collect().first?.decode(String.self)
            }), let position = WALPosition(text) {
                let now = ContinuousClock.now
                let keep = now - maxLag - .seconds(1)
                primarySamples.withLock { samples in
                    samples.append((now, position.value))
                    if let drop = samples.firstIndex(where: { $0.time >= keep }), drop > 0 {
                        samples.removeFirst(drop - 1)
                    }
                }
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// Follows one replica's replayed position on a connection of its own; unhealthy while that fails.
    private func poll(_ replica: Replica) async {
        var attempt = 0
        var reported = false
        while !Task.isCancelled {
            attempt += 1
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try replica.configuration.connection(), id: attempt, logger: logger)
                do {
                    try await follow(replica, on: connection, reported: &reported)
                    try? await connection.close()
                } catch {
                    try? await connection.close()
                    throw error
                }
            } catch {
                if Task.isCancelled { return }
                replica.healthy.store(false, ordering: .releasing)
                if !reported {
                    logger.warning(
                        "Not reading from the replica until it answers again",
                        metadata: ["replica": "\(replica.name)", "error": "\(PostgresMetadataStore.describe(error))"])
                    reported = true
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Reads the replica's replayed position every `pollInterval` until a check fails or the task is cancelled.
    private func follow(_ replica: Replica, on connection: PostgresConnection, reported: inout Bool) async throws {
        while !Task.isCancelled {
            let text = try await connection.answered(within: .seconds(1), logger: logger) {
                try await connection.query("SELECT pg_last_wal_replay_lsn()::text", logger: self.logger)
                    .collect().first?.decode(String?.self)
            }
            guard let text, let position = WALPosition(text) else {
                // Not in recovery: a primary, or a server that stopped following one. Never read from it.
                throw PostgresMetadataStore.unavailable(
                    "\(replica.name) is not a streaming replica (pg_last_wal_replay_lsn() is null).")
            }
            replica.replayed.store(position.value, ordering: .releasing)
            if !replica.healthy.exchange(true, ordering: .acquiringAndReleasing) {
                logger.info("Reading from the replica", metadata: ["replica": "\(replica.name)"])
                reported = false
            }
            try await Task.sleep(for: pollInterval)
        }
    }
}
