import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    public func stage(model: String, name: String) async throws -> Stage? {
        try await read { db in try Self.loadStage(db, model, name) }
    }

    public func stages(model: String) async throws -> [Stage] {
        try await read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT \(Rows.stageColumns) FROM stages WHERE model = ? ORDER BY stage"),
                arguments: [model]
            ).map(Rows.stage)
        }
    }

    public func history(model: String, stage: String, after: Int?, limit: Int) async throws -> Page<StageHistoryEntry> {
        try await read { db in
            let limit = max(limit, 0)
            let entries = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT \(Rows.historyColumns) FROM stage_history
                        WHERE model = ? AND stage = ? AND sequence > ? ORDER BY sequence LIMIT ?
                        """),
                arguments: [model, stage, after ?? 0, limit + 1]
            ).map(Rows.historyEntry)
            return Page(fetched: entries, limit: limit) { String($0.sequence) }
        }
    }

    public func promote(
        model: String, stage: String, precondition: Transitions.StagePrecondition, version: Int, reason: String?,
        context: MutationContext
    ) async throws -> Stage {
        try await write(context) { db in
            guard try Self.modelExists(db, model) else { throw RegistryError.modelNotFound(model) }
            let current = try Self.loadStage(db, model, stage)
            try Transitions.check(precondition, current: current, model: model, stage: stage)
            guard let target = try Self.loadVersion(db, model, version) else {
                throw RegistryError.versionNotFound(model, version)
            }
            let (next, entry, audit, events) = try Transitions.promote(
                current: current, model: model, stage: stage, target: target, reason: reason,
                lastSequence: try Self.lastHistorySequence(db, model, stage), context: context)
            try Self.save(db, stage: next, entry: entry)
            return (next, audit, events)
        }
    }

    public func rollback(
        model: String, stage: String, expectedRevision: Int, target: Int?, reason: String?, context: MutationContext
    ) async throws -> Stage {
        try await write(context) { db in
            guard try Self.modelExists(db, model) else { throw RegistryError.modelNotFound(model) }
            let current = try Self.loadStage(db, model, stage)
            try Transitions.check(.revision(expectedRevision), current: current, model: model, stage: stage)
            if let current, let rolloutId = current.rolloutId, let rollout = try Self.loadRollout(db, rolloutId) {
                // Rolling back during a rollout aborts it: all traffic returns to the stage's version at once.
                let (_, stage, audit, events) = try Self.applyRollout(db, rollout, context: context) { rollout in
                    try RolloutRules.abort(&rollout, reason: reason ?? "rolled back")
                }
                return (stage, audit, events)
            }
            guard let current, let target else {
                throw Transitions.changedDuringRollback(expectedRevision: expectedRevision)
            }
            guard let version = try Self.loadVersion(db, model, target) else {
                throw RegistryError.versionNotFound(model, target)
            }
            let (next, entry, audit, events) = try Transitions.rollback(
                current: current, to: version, reason: reason,
                lastSequence: try Self.lastHistorySequence(db, model, stage), context: context)
            try Self.save(db, stage: next, entry: entry)
            return (next, audit, events)
        }
    }

    // MARK: Rows

    static func loadStage(_ db: Database, _ model: String, _ name: String) throws -> Stage? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(Rows.stageColumns) FROM stages WHERE model = ? AND stage = ?"),
            arguments: [model, name]
        ).map(Rows.stage)
    }

    static func lastHistorySequence(_ db: Database, _ model: String, _ stage: String) throws -> Int {
        try Int.fetchOne(
            db.cachedStatement(sql: "SELECT MAX(sequence) FROM stage_history WHERE model = ? AND stage = ?"),
            arguments: [model, stage]) ?? 0
    }

    static func save(_ db: Database, stage: Stage, entry: StageHistoryEntry?) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO stages (\(Rows.stageColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (model, stage) DO UPDATE SET version = excluded.version, revision = excluded.revision,
                    updated_by = excluded.updated_by, updated_at = excluded.updated_at, rollout_id = excluded.rollout_id
                """
        ).execute(arguments: [
            stage.model, stage.stage, stage.version, stage.revision, stage.updatedBy, Rows.time(stage.updatedAt),
            stage.rolloutId,
        ])
        if let entry { try append(db, entry) }
    }

    static func append(_ db: Database, _ entry: StageHistoryEntry) throws {
        try db.cachedStatement(
            sql: "INSERT INTO stage_history (\(Rows.historyColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [
            entry.model, entry.stage, entry.sequence, entry.action.rawValue, entry.fromVersion, entry.toVersion,
            entry.revision, entry.actor, entry.reason, Rows.time(entry.time), entry.rolloutId, entry.weight,
        ])
    }
}
