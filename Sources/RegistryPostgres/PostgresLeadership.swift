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
        do {
            while !Task.isCancelled {
                if isLeader {
                    try await connection.query("SELECT 1", logger: logger)
                } else {
                    let rows = try await connection.query(
                        "SELECT pg_try_advisory_lock(\(key))", logger: logger
                    ).collect()
                    if try rows.first?.decode(Bool.self) == true {
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
        leading.store(false, ordering: .releasing)
        try? await connection.close()
    }
}
