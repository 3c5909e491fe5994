import Logging
import PostgresNIO
import RegistryCore

extension PostgresMetadataStore {
    public func stage(model: String, name: String) async throws -> Stage? {
        let logger = self.logger
        return try await read { connection in try await Self.loadStage(connection, model, name, logger) }
    }

    public func stages(model: String) async throws -> [Stage] {
        let logger = self.logger
        return try await read(replica: true) { connection in
            try await connection.rows(
                "SELECT \(unescaped: Rows.stageColumns) FROM stages WHERE model = \(model) ORDER BY stage", logger
            ).map(Rows.stage)
        }
    }

    public func history(model: String, stage: String, after: Int?, limit: Int) async throws -> Page<StageHistoryEntry> {
        let logger = self.logger
        let limit = max(limit, 0)
        let entries = try await read(replica: true) { connection in
            try await connection.rows(
                """
                SELECT \(unescaped: Rows.historyColumns) FROM stage_history
                WHERE model = \(model) AND stage = \(stage) AND sequence > \(after ?? 0) ORDER BY sequence
                LIMIT \(limit + 1)
                """, logger
            ).map(Rows.historyEntry)
        }
        return Page(fetched: entries, limit: limit) { String($0.sequence) }
    }

    public func promote(
        model: String, stage: String, precondition: Transitions.StagePrecondition, version: Int, reason: String?,
        context: MutationContext
    ) async throws -> Stage {
        let logger = self.logger
        return try await write(context) { connection in
            guard try await Self.modelExists(connection, model, logger) else {
                throw RegistryError.modelNotFound(model)
            }
            let current = try await Self.loadStage(connection, model, stage, logger)
            try Transitions.check(precondition, current: current, model: model, stage: stage)
            guard let target = try await Self.loadVersion(connection, model, version, logger) else {
                throw RegistryError.versionNotFound(model, version)
            }
            let (next, entry, audit, events) = try Transitions.promote(
                current: current, model: model, stage: stage, target: target, reason: reason,
                lastSequence: try await Self.lastHistorySequence(connection, model, stage, logger), context: context)
            try await Self.save(connection, stage: next, entry: entry, logger)
            return (next, audit, events)
        }
    }

    public func rollback(
        model: String, stage: String, expectedRevision: Int, target: Int?, reason: String?, context: MutationContext
    ) async throws -> Stage {
        let logger = self.logger
        return try await write(context) { connection in
            guard try await Self.modelExists(connection, model, logger) else {
                throw RegistryError.modelNotFound(model)
            }
            let current = try await Self.loadStage(connection, model, stage, logger)
            try Transitions.check(.revision(expectedRevision), current: current, model: model, stage: stage)
            if let current, let rolloutId = current.rolloutId,
                let rollout = try await Self.loadRollout(connection, rolloutId, logger)
            {
                // Rolling back during a rollout aborts it: all traffic returns to the stage's version at once.
                let (_, stage, audit, events) = try await Self.applyRollout(
                    connection, rollout, context: context, logger
                ) { rollout in
                    try RolloutRules.abort(&rollout, reason: reason ?? "rolled back")
                }
                return (stage, audit, events)
            }
            guard let current, let target else {
                throw Transitions.changedDuringRollback(expectedRevision: expectedRevision)
            }
            guard let version = try await Self.loadVersion(connection, model, target, logger) else {
                throw RegistryError.versionNotFound(model, target)
            }
            let (next, entry, audit, events) = try Transitions.rollback(
                current: current, to: version, reason: reason,
                lastSequence: try await Self.lastHistorySequence(connection, model, stage, logger), context: context)
            try await Self.save(connection, stage: next, entry: entry, logger)
            return (next, audit, events)
        }
    }

    // MARK: Rows

    static func loadStage(
        _ connection: PostgresConnection, _ model: String, _ name: String, _ logger: Logger
    ) async throws -> Stage? {
        try await connection.first(
            "SELECT \(unescaped: Rows.stageColumns) FROM stages WHERE model = \(model) AND stage = \(name)", logger,
            Rows.stage)
    }

    static func lastHistorySequence(
        _ connection: PostgresConnection, _ model: String, _ stage: String, _ logger: Logger
    ) async throws -> Int {
        let last = try await connection.first(
            "SELECT MAX(sequence) FROM stage_history WHERE model = \(model) AND stage = \(stage)", logger
        ) { try $0.decode(Int?.self) }
        return last.flatMap { $0 } ?? 0
    }

    static func save(
        _ connection: PostgresConnection, stage: Stage, entry: StageHistoryEntry?, _ logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO stages (\(unescaped: Rows.stageColumns))
            VALUES (\(stage.model), \(stage.stage), \(stage.version), \(stage.revision), \(stage.updatedBy),
                \(Rows.time(stage.updatedAt)), \(stage.rolloutId))
            ON CONFLICT (model, stage) DO UPDATE SET version = excluded.version, revision = excluded.revision,
                updated_by = excluded.updated_by, updated_at = excluded.updated_at, rollout_id = excluded.rollout_id
            """, logger: logger)
        if let entry { try await append(connection, entry, logger) }
    }

    static func append(_ connection: PostgresConnection, _ entry: StageHistoryEntry, _ logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO stage_history (\(unescaped: Rows.historyColumns))
            VALUES (\(entry.model), \(entry.stage), \(entry.sequence), \(entry.action.rawValue), \(entry.fromVersion),
                \(entry.toVersion), \(entry.revision), \(entry.actor), \(entry.reason), \(Rows.time(entry.time)),
                \(entry.rolloutId), \(entry.weight))
            """, logger: logger)
    }
}
