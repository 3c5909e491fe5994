import Foundation
import Logging
import PostgresNIO
import RegistryCore

extension PostgresMetadataStore {
    public func startRollout(_ draft: Rollout, expectedStageRevision: Int, context: MutationContext) async throws
        -> Rollout
    {
        let logger = self.logger
        return try await write(context) { connection in
            guard try await Self.modelExists(connection, draft.model, logger) else {
                throw RegistryError.modelNotFound(draft.model)
            }
            let (rollout, stage, entry, audit, events) = try Transitions.startRollout(
                draft, stage: try await Self.loadStage(connection, draft.model, draft.stage, logger),
                expectedRevision: expectedStageRevision,
                candidate: try await Self.loadVersion(connection, draft.model, draft.version, logger),
                lastSequence: try await Self.lastHistorySequence(connection, draft.model, draft.stage, logger),
                context: context)
            let body = try Self.body(rollout)
            // The stage first: the rollout row refers to it.
            try await Self.save(connection, stage: stage, entry: nil, logger)
            try await connection.query(
                """
                INSERT INTO rollouts (id, model, stage, state, body, created_at)
                VALUES (\(rollout.id), \(rollout.model), \(rollout.stage), \(rollout.state.rawValue), \(body),
                    \(Rows.time(rollout.createdAt)))
                """, logger: logger)
            try await Self.saveReports(connection, rollout, changedFrom: nil, logger)
            try await Self.append(connection, entry, logger)
            return (rollout, audit, events)
        }
    }

    public func rollout(id: String) async throws -> Rollout? {
        let logger = self.logger
        return try await read { connection in try await Self.loadRollout(connection, id, logger) }
    }

    public func activeRollouts() async throws -> [Rollout] {
        let logger = self.logger
        return try await read { connection in
            try await connection.rows(
                """
                SELECT body FROM rollouts WHERE state IN ('warming', 'progressing', 'paused') ORDER BY created_at, id
                """, logger
            ).map { try JSONCoding.decodeStored(Rollout.self, try $0.decode(String.self)) }
        }
    }

    public func reportSummary(rollout id: String, now: Date) async throws -> ReportSummary {
        let logger = self.logger
        return try await read { connection in
            guard let rollout = try await Self.loadRollout(connection, id, logger, withReports: false) else {
                return ReportSummary()
            }
            return try await Self.reportSummary(connection, rollout, now: now, logger)
        }
    }

    public func updateRollout(
        id: String, expectedRevision: Int?, context: MutationContext,
        _ change: @escaping @Sendable (inout Rollout) throws -> RolloutRules.Change
    ) async throws -> Rollout {
        let logger = self.logger
        return try await write(context) { connection in
            guard let current = try await Self.loadRollout(connection, id, logger) else {
                throw RegistryError.rolloutNotFound(id)
            }
            try Transitions.require(current, at: current.revision, expected: expectedRevision)
            let (rollout, _, audit, events) = try await Self.applyRollout(
                connection, current, context: context, logger, change)
            try await Self.saveReports(connection, rollout, changedFrom: current, logger)
            return (rollout, audit, events)
        }
    }

    public func recordReport(
        _ report: InstanceReport, rollout id: String, model: String, stage: String, maxInstances: Int,
        context: MutationContext
    ) async throws -> ReportOutcome {
        let logger = self.logger
        return try await write(context) { connection in
            // The rollout's document without its reports: what a report reads and writes does not grow with the
            // fleet (the summary is one aggregate over an index).
            guard var current = try await Self.loadRollout(connection, id, logger, withReports: false),
                current.model == model, current.stage == stage
            else { throw RegistryError.rolloutNotFound(id) }
            try RolloutRules.requireActive(current)
            let known =
                try await connection.first(
                    "SELECT 1 FROM rollout_reports WHERE rollout_id = \(id) AND instance = \(report.instance)", logger
                ) { _ in true } ?? false
            if !known {
                let count =
                    try await connection.first(
                        "SELECT COUNT(*) FROM rollout_reports WHERE rollout_id = \(id)", logger
                    ) { try $0.decode(Int.self) } ?? 0
                guard count < maxInstances else { throw RegistryError.tooManyInstances(id, limit: maxInstances) }
            }
            current.reports = [report.instance: report]
            try await Self.saveReports(connection, current, changedFrom: nil, logger)
            let summary = try await Self.reportSummary(connection, current, now: context.time, logger)
            let decided = try Transitions.recordReport(report, in: current, summary: summary, now: context.time)
            guard decided.change != .report else {
                let audit = try Transitions.reportRecorded(report, rollout: current)
                let outcome = ReportOutcome(
                    rollout: current, change: .report, completionPending: decided.completionPending)
                return (outcome, audit, [])
            }
            let (rollout, _, audit, events) = try await Self.applyRollout(
                connection, current, context: context, logger
            ) { rollout in
                rollout = decided.rollout
                return decided.change
            }
            return (ReportOutcome(rollout: rollout, change: decided.change, completionPending: false), audit, events)
        }
    }

    /// Applies `change` to `rollout` and its stage inside a write transaction (the reports are saved by the caller).
    static func applyRollout(
        _ connection: PostgresConnection, _ rollout: Rollout, context: MutationContext, _ logger: Logger,
        _ change: (inout Rollout) throws -> RolloutRules.Change
    ) async throws -> (Rollout, Stage, AuditDraft, [EventDraft]) {
        guard let stage = try await loadStage(connection, rollout.model, rollout.stage, logger) else {
            throw RegistryError.stageNotFound(rollout.model, rollout.stage)
        }
        let (next, newStage, entry, audit, events) = try Transitions.changeRollout(
            rollout, stage: stage,
            lastSequence: try await lastHistorySequence(connection, rollout.model, rollout.stage, logger),
            context: context, change)
        let body = try body(next)
        try await connection.query(
            "UPDATE rollouts SET state = \(next.state.rawValue), body = \(body) WHERE id = \(next.id)", logger: logger)
        if let newStage {
            try await save(connection, stage: newStage, entry: entry, logger)
        } else if let entry {
            try await append(connection, entry, logger)
        }
        return (next, newStage ?? stage, audit, events)
    }

    static func loadRollout(
        _ connection: PostgresConnection, _ id: String, _ logger: Logger, withReports: Bool = true
    ) async throws -> Rollout? {
        guard
            let text = try await connection.first(
                "SELECT body FROM rollouts WHERE id = \(id)", logger, { try $0.decode(String.self) })
        else { return nil }
        var rollout = try JSONCoding.decodeStored(Rollout.self, text)
        if withReports {
            let reports = try await connection.rows(
                "SELECT \(unescaped: Rows.reportColumns) FROM rollout_reports WHERE rollout_id = \(id)", logger
            ).map(Rows.report)
            rollout.reports = Dictionary(uniqueKeysWithValues: reports.map { ($0.instance, $0) })
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
    static func saveReports(
        _ connection: PostgresConnection, _ rollout: Rollout, changedFrom previous: Rollout?, _ logger: Logger
    ) async throws {
        for report in rollout.reports.values where previous?.reports[report.instance] != report {
            try await connection.query(
                """
                INSERT INTO rollout_reports (rollout_id, \(unescaped: Rows.reportColumns))
                VALUES (\(rollout.id), \(report.instance), \(report.region), \(report.state.rawValue),
                    \(report.requests), \(report.errors), \(report.stableRequests), \(report.stableErrors),
                    \(Rows.time(report.time)))
                ON CONFLICT (rollout_id, instance) DO UPDATE SET region = excluded.region, state = excluded.state,
                    requests = excluded.requests, errors = excluded.errors,
                    stable_requests = excluded.stable_requests, stable_errors = excluded.stable_errors,
                    time = excluded.time
                """, logger: logger)
        }
    }

    /// `ReportSummary` of `rollout`'s stored reports at `now`: one aggregate over the rollout's rows.
    static func reportSummary(
        _ connection: PostgresConnection, _ rollout: Rollout, now: Date, _ logger: Logger
    ) async throws -> ReportSummary {
        let since = ReportSummary.windowStart(policy: rollout.policy, now: now)
        let summary = try await connection.first(
            """
            SELECT COUNT(*) AS present, COUNT(*) FILTER (WHERE state IN ('loaded', 'serving')) AS warm,
                MIN(instance COLLATE "C") FILTER (WHERE state = 'failed') AS failed,
                COALESCE(SUM(requests), 0)::float8 AS requests, COALESCE(SUM(errors), 0)::float8 AS errors,
                COALESCE(SUM(stable_requests), 0)::float8 AS stable_requests,
                COALESCE(SUM(stable_errors), 0)::float8 AS stable_errors
            FROM rollout_reports WHERE rollout_id = \(rollout.id) AND time >= \(Rows.time(since))
            """, logger
        ) { row in
            let row = Columns(row)
            return ReportSummary(
                present: try row("present"), warm: try row("warm"), failedInstance: try row("failed"),
                requests: try row("requests"), errors: try row("errors"), stableRequests: try row("stable_requests"),
                stableErrors: try row("stable_errors"))
        }
        return summary ?? ReportSummary()
    }
}
