import Foundation
import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    public func startRollout(_ draft: Rollout, expectedStageRevision: Int, context: MutationContext) async throws
        -> Rollout
    {
        try await write(context) { db in
            guard try Self.modelExists(db, draft.model) else { throw RegistryError.modelNotFound(draft.model) }
            let (rollout, stage, entry, audit, events) = try Transitions.startRollout(
                draft, stage: try Self.loadStage(db, draft.model, draft.stage), expectedRevision: expectedStageRevision,
                candidate: try Self.loadVersion(db, draft.model, draft.version),
                lastSequence: try Self.lastHistorySequence(db, draft.model, draft.stage), context: context)
            try db.cachedStatement(
                sql: "INSERT INTO rollouts (id, model, stage, state, body, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                rollout.id, rollout.model, rollout.stage, rollout.state.rawValue, try Self.body(rollout),
                Rows.time(rollout.createdAt),
            ])
            try Self.saveReports(db, rollout, changedFrom: nil)
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
                        SELECT id FROM rollouts WHERE state IN ('warming', 'progressing', 'paused')
                        ORDER BY created_at, id
                        """)
            ).compactMap { try Self.loadRollout(db, $0, withReports: false) }
        }
    }

    public func reportSummary(rollout id: String, now: Date) async throws -> ReportSummary {
        try await read { db in
            guard let rollout = try Self.loadRollout(db, id, withReports: false) else { return ReportSummary() }
            return try Self.reportSummary(db, rollout, now: now)
        }
    }

    public func updateRollout(
        id: String, expectedRevision: Int?, context: MutationContext,
        _ change: @escaping @Sendable (inout Rollout) throws -> RolloutRules.Change
    ) async throws -> Rollout {
        try await write(context) { db in
            guard let current = try Self.loadRollout(db, id) else { throw RegistryError.rolloutNotFound(id) }
            try Transitions.require(current, at: current.revision, expected: expectedRevision)
            let (rollout, _, audit, events) = try Self.applyRollout(db, current, context: context, change)
            try Self.saveReports(db, rollout, changedFrom: current)
            return (rollout, audit, events)
        }
    }

    public func recordReport(
        _ report: InstanceReport, rollout id: String, model: String, stage: String, maxInstances: Int,
        context: MutationContext
    ) async throws -> ReportOutcome {
        try await write(context) { db in
            // The rollout's document without its reports: what a report reads and writes does not grow with the
            // fleet (the summary is one aggregate over an index).
            guard var current = try Self.loadRollout(db, id, withReports: false), current.model == model,
                current.stage == stage
            else { throw RegistryError.rolloutNotFound(id) }
            try RolloutRules.requireActive(current)
            let known =
                try Bool.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT EXISTS (SELECT 1 FROM rollout_reports WHERE rollout_id = ? AND instance = ?)"),
                    arguments: [id, report.instance]) ?? false
            if !known {
                let count =
                    try Int.fetchOne(
                        db.cachedStatement(sql: "SELECT COUNT(*) FROM rollout_reports WHERE rollout_id = ?"),
                        arguments: [id]) ?? 0
                guard count < maxInstances else { throw RegistryError.tooManyInstances(id, limit: maxInstances) }
            }
            current.reports = [report.instance: report]
            try Self.saveReports(db, current, changedFrom: nil)
            let summary = try Self.reportSummary(db, current, now: context.time)
            let decided = try Transitions.recordReport(report, in: current, summary: summary, now: context.time)
            guard decided.change != .report else {
                let audit = try Transitions.reportRecorded(report, rollout: current)
                let outcome = ReportOutcome(
                    rollout: current, change: .report, completionPending: decided.completionPending)
                return (outcome, audit, [])
            }
            let (rollout, _, audit, events) = try Self.applyRollout(db, current, context: context) { rollout in
                rollout = decided.rollout
                return decided.change
            }
            return (ReportOutcome(rollout: rollout, change: decided.change, completionPending: false), audit, events)
        }
    }

    /// Applies `change` to `rollout` and its stage inside a write transaction (the reports are saved by the caller).
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
            next.state.rawValue, try body(next), next.id,
        ])
        if let newStage {
            try save(db, stage: newStage, entry: entry)
        } else if let entry {
            try append(db, entry)
        }
        return (next, newStage ?? stage, audit, events)
    }

    static func loadRollout(_ db: Database, _ id: String, withReports: Bool = true) throws -> Rollout? {
        guard
            var rollout = try String.fetchOne(
                db.cachedStatement(sql: "SELECT body FROM rollouts WHERE id = ?"), arguments: [id]
            ).map({ try JSONCoding.decodeStored(Rollout.self, $0) })
        else { return nil }
        if withReports {
            let rows = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT \(reportColumns) FROM rollout_reports WHERE rollout_id = ?"),
                arguments: [id])
            rollout.reports = Dictionary(
                uniqueKeysWithValues: rows.map { row in
                    let report = Self.report(row)
                    return (report.instance, report)
                })
        }
        return rollout
    }

    /// The stored document of a rollout: everything but its reports, which live in `rollout_reports`.
    static func body(_ rollout: Rollout) throws -> String {
        var document = rollout
        document.reports = [:]
        return try JSONCoding.text(document)
    }

    /// Writes the reports of `rollout` that are new or changed since `previous`.
    static func saveReports(_ db: Database, _ rollout: Rollout, changedFrom previous: Rollout?) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO rollout_reports (rollout_id, \(reportColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (rollout_id, instance) DO UPDATE SET region = excluded.region, state = excluded.state,
                    requests = excluded.requests, errors = excluded.errors,
                    stable_requests = excluded.stable_requests, stable_errors = excluded.stable_errors,
                    time = excluded.time
                """)
        for report in rollout.reports.values where previous?.reports[report.instance] != report {
            try statement.execute(arguments: [
                rollout.id, report.instance, report.region, report.state.rawValue, report.requests, report.errors,
                report.stableRequests, report.stableErrors, Rows.time(report.time),
            ])
        }
    }

    /// `ReportSummary` of `rollout`'s stored reports at `now`: one pass of SQLite over the rollout's rows, which are
    /// contiguous in the table (its key starts with the rollout id), so no row is looked up twice.
    static func reportSummary(_ db: Database, _ rollout: Rollout, now: Date) throws -> ReportSummary {
        let since = ReportSummary.windowStart(policy: rollout.policy, now: now)
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT COUNT(*) AS present, COALESCE(SUM(state IN ('loaded', 'serving')), 0) AS warm,
                            MIN(CASE WHEN state = 'failed' THEN instance END) AS failed,
                            TOTAL(requests) AS requests, TOTAL(errors) AS errors,
                            TOTAL(stable_requests) AS stable_requests, TOTAL(stable_errors) AS stable_errors
                        FROM rollout_reports WHERE rollout_id = ? AND time >= ?
                        """),
                arguments: [rollout.id, Rows.time(since)])
        else { return ReportSummary() }
        return ReportSummary(
            present: row["present"], warm: row["warm"], failedInstance: row["failed"], requests: row["requests"],
            errors: row["errors"], stableRequests: row["stable_requests"], stableErrors: row["stable_errors"])
    }

    static let reportColumns = "instance, region, state, requests, errors, stable_requests, stable_errors, time"

    static func report(_ row: Row) -> InstanceReport {
        InstanceReport(
            instance: row["instance"], region: row["region"],
            state: InstanceReport.State(rawValue: row["state"]) ?? .failed, requests: row["requests"],
            errors: row["errors"], stableRequests: row["stable_requests"], stableErrors: row["stable_errors"],
            time: Rows.date(row, "time"))
    }
}
