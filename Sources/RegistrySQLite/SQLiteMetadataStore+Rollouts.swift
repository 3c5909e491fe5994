import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    public func startRollout(_ draft: Rollout, expectedStageRevision: Int, context: MutationContext) async throws
        -> Rollout
    {
        try await write(context) { db in
            guard try Self.modelExists(db, draft.model) else { throw RegistryError.modelNotFound(draft.model) }
            let current = try Self.loadStage(db, draft.model, draft.stage)
            try Transitions.check(
                .revision(expectedStageRevision), current: current, model: draft.model, stage: draft.stage)
            guard let candidate = try Self.loadVersion(db, draft.model, draft.version) else {
                throw RegistryError.versionNotFound(draft.model, draft.version)
            }
            let (rollout, stage, entry, audit, events) = try Transitions.startRollout(
                draft, stage: current, expectedRevision: expectedStageRevision, candidate: candidate,
                lastSequence: try Self.lastHistorySequence(db, draft.model, draft.stage), context: context)
            try db.cachedStatement(
                sql: "INSERT INTO rollouts (id, model, stage, state, body, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                rollout.id, rollout.model, rollout.stage, rollout.state.rawValue, try Rows.json(rollout),
                Rows.time(rollout.createdAt),
            ])
            try Self.save(db, stage: stage, entry: entry)
            return (rollout, audit, events)
        }
    }

    public func rollout(id: String) async throws -> Rollout? {
        try await read { db in try Self.loadRollout(db, id) }
    }

    public func activeRollouts() async throws -> [Rollout] {
        try await read { db in
            try String.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT body FROM rollouts WHERE state IN ('warming', 'progressing', 'paused')
                        ORDER BY created_at, id
                        """)
            ).map { try Rows.decode(Rollout.self, $0) }
        }
    }

    public func updateRollout(
        id: String, expectedRevision: Int?, context: MutationContext,
        _ change: @escaping @Sendable (inout Rollout) throws -> RolloutRules.Change
    ) async throws -> Rollout {
        try await write(context) { db in
            guard let current = try Self.loadRollout(db, id) else { throw RegistryError.rolloutNotFound(id) }
            if let expectedRevision, current.revision != expectedRevision {
                throw RegistryError.revisionMismatch(
                    expected: expectedRevision, current: current, revision: current.revision)
            }
            let (rollout, _, audit, events) = try Self.applyRollout(db, current, context: context, change)
            return (rollout, audit, events)
        }
    }

    /// Applies `change` to `rollout` and its stage inside a write transaction.
    static func applyRollout(
        _ db: Database, _ rollout: Rollout, context: MutationContext,
        _ change: (inout Rollout) throws -> RolloutRules.Change
    ) throws -> (Rollout, Stage, AuditDraft, [EventDraft]) {
        guard let stage = try loadStage(db, rollout.model, rollout.stage) else {
            throw RegistryError.stageNotFound(rollout.model, rollout.stage)
        }
        let (next, newStage, entry, audit, events) = try Transitions.changeRollout(
            rollout, stage: stage, lastSequence: try lastHistorySequence(db, rollout.model, rollout.stage),
            context: context, change)
        try db.cachedStatement(sql: "UPDATE rollouts SET state = ?, body = ? WHERE id = ?").execute(arguments: [
            next.state.rawValue, try Rows.json(next), next.id,
        ])
        if let newStage {
            try save(db, stage: newStage, entry: entry)
        } else if let entry {
            try append(db, entry)
        }
        return (next, newStage ?? stage, audit, events)
    }

    static func loadRollout(_ db: Database, _ id: String) throws -> Rollout? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT body FROM rollouts WHERE id = ?"), arguments: [id])
            .map { try Rows.decode(Rollout.self, $0) }
    }
}
