import Foundation

extension Transitions {
    /// Starts `rollout` on `stage`, which must be at `expectedRevision` with no active rollout, towards an approved
    /// `candidate` other than the stage's version. Returns the rollout, the stage (now naming it), its history entry
    /// and the audit entry and events.
    ///
    /// Throws `STAGE_NOT_FOUND`, `REVISION_MISMATCH` with the current stage, `VERSION_NOT_FOUND` (no `candidate`),
    /// `ROLLOUT_IN_PROGRESS`, `VERSION_NOT_APPROVED` or `INVALID_ARGUMENT` (the candidate is what the stage already
    /// serves), in that order.
    public static func startRollout(
        _ draft: Rollout, stage current: Stage?, expectedRevision: Int, candidate: ModelVersion?, lastSequence: Int,
        context: MutationContext
    ) throws -> (Rollout, Stage, StageHistoryEntry, AuditDraft, [EventDraft]) {
        try check(.revision(expectedRevision), current: current, model: draft.model, stage: draft.stage)
        guard var stage = current else { throw RegistryError.stageNotFound(draft.model, draft.stage) }
        guard let candidate else { throw RegistryError.versionNotFound(draft.model, draft.version) }
        if let active = stage.rolloutId { throw RegistryError.rolloutInProgress(stage: stage, rolloutId: active) }
        guard candidate.status == .approved else {
            throw RegistryError(
                .versionNotApproved,
                "Version \(candidate.version) of '\(draft.model)' is \(candidate.status.rawValue); only approved "
                    + "versions can be rolled out.",
                details: ["status": .string(candidate.status.rawValue), "version": .number(Double(candidate.version))])
        }
        guard candidate.version != stage.version else {
            throw RegistryError.invalidArgument(
                "Stage '\(stage.stage)' already serves version \(stage.version).", field: "version")
        }
        var rollout = draft
        rollout.previousVersion = stage.version
        rollout.createdBy = context.actor
        rollout.createdAt = context.time
        rollout.updatedAt = context.time
        let before = stage
        stage.rolloutId = rollout.id
        stage.revision += 1
        stage.updatedBy = context.actor
        stage.updatedAt = context.time
        let entry = historyEntry(
            .rolloutStart, stage: stage, rollout: rollout, from: before.version, to: rollout.version,
            lastSequence: lastSequence, reason: nil, context: context)
        let audit = try AuditDraft(
            action: "rollout.start", target: target(rollout), model: rollout.model, before: before, after: rollout)
        return (rollout, stage, entry, audit, [event(EventType.rolloutStarted, rollout)])
    }

    /// Runs `change` on `rollout` (bumping its revision unless it only recorded a report) and works out what that
    /// does to `stage`; see `applyRollout`. Stores call this inside their write transaction.
    public static func changeRollout(
        _ rollout: Rollout, stage: Stage, lastSequence: Int, context: MutationContext,
        _ change: (inout Rollout) throws -> RolloutRules.Change
    ) throws -> (rollout: Rollout, stage: Stage?, entry: StageHistoryEntry?, audit: AuditDraft, events: [EventDraft]) {
        var next = rollout
        let kind = try change(&next)
        if kind != .report {
            next.revision = rollout.revision + 1
            next.updatedAt = context.time
        }
        let (newStage, entry, audit, events) = try applyRollout(
            kind, before: rollout, after: next, stage: stage, lastSequence: lastSequence, context: context)
        return (next, newStage, entry, audit, events)
    }

    /// What one instance's `report` does to `rollout`, given `summary`, the summary of its reports with this one
    /// included: the rollout after the decision it takes, and the change. A completion is not taken here: it
    /// promotes the candidate, which must first be checked against the trust policy outside the transaction, so the
    /// rollout is left as it was, the change is `.report`, and `completionPending` tells the caller to decide it.
    /// Throws `INVALID_TRANSITION` when the rollout no longer takes reports.
    public static func recordReport(
        _ report: InstanceReport, in rollout: Rollout, summary: ReportSummary, now: Date
    ) throws -> (rollout: Rollout, change: RolloutRules.Change, completionPending: Bool) {
        try RolloutRules.requireActive(rollout)
        var next = rollout
        let change = RolloutRules.evaluate(&next, summary: summary, now: now)
        if change == .complete { return (rollout, .report, true) }
        return (next, change, false)
    }

    /// The audit entry of a report that decided nothing: the report alone, so that a report costs the same however
    /// many instances report to the rollout.
    public static func reportRecorded(_ report: InstanceReport, rollout: Rollout) throws -> AuditDraft {
        try AuditDraft(
            action: "rollout.report", target: target(rollout) + "/reports/\(report.instance)", model: rollout.model,
            before: InstanceReport?.none, after: report)
    }

    /// What a rollout change does to its stage: the new stage (nil when it does not change), the history entry
    /// (nil when none), and the audit entry and events. `before` and `after` are the rollout around the change.
    public static func applyRollout(
        _ change: RolloutRules.Change, before: Rollout, after: Rollout, stage current: Stage, lastSequence: Int,
        context: MutationContext
    ) throws -> (Stage?, StageHistoryEntry?, AuditDraft, [EventDraft]) {
        var stage = current
        var entry: StageHistoryEntry?
        var events: [EventDraft] = []
        func bump() {
            stage.revision += 1
            stage.updatedBy = context.actor
            stage.updatedAt = context.time
        }
        switch change {
        case .report:
            break
        case .step:
            bump()
            entry = historyEntry(
                .rolloutStep, stage: stage, rollout: after, from: after.previousVersion, to: after.version,
                lastSequence: lastSequence, reason: nil, context: context)
            events.append(event(EventType.rolloutAdvanced, after))
        case .pause:
            events.append(event(EventType.rolloutPaused, after))
        case .resume:
            events.append(event(EventType.rolloutResumed, after))
        case .complete:
            bump()
            stage.version = after.version
            stage.rolloutId = nil
            entry = historyEntry(
                .promote, stage: stage, rollout: after, from: after.previousVersion, to: after.version,
                lastSequence: lastSequence, reason: "rollout \(after.id) completed", context: context)
            events.append(event(EventType.rolloutCompleted, after))
            events.append(
                EventDraft(
                    type: EventType.stagePromoted, model: after.model,
                    data: [
                        "stage": .string(after.stage), "version": .number(Double(after.version)),
                        "fromVersion": .number(Double(after.previousVersion)),
                        "revision": .number(Double(stage.revision)), "rolloutId": .string(after.id),
                    ]))
        case .abort:
            bump()
            stage.rolloutId = nil
            entry = historyEntry(
                .rolloutAbort, stage: stage, rollout: after, from: after.version, to: after.previousVersion,
                lastSequence: lastSequence, reason: after.reason, context: context)
            events.append(event(EventType.rolloutAborted, after))
        }
        // The reports stay out of the audit entry (each report is audited on its own), so that the entry of a step
        // or an abort does not grow with the fleet.
        var (auditBefore, auditAfter) = (before, after)
        auditBefore.reports = [:]
        auditAfter.reports = [:]
        let audit = try AuditDraft(
            action: "rollout.\(change)", target: target(before), model: before.model, before: auditBefore,
            after: auditAfter)
        return (stage == current ? nil : stage, entry, audit, events)
    }

    public static func target(_ rollout: Rollout) -> String {
        target(model: rollout.model) + "/stages/\(rollout.stage)/rollouts/\(rollout.id)"
    }

    private static func historyEntry(
        _ action: StageHistoryEntry.Action, stage: Stage, rollout: Rollout, from: Int, to: Int, lastSequence: Int,
        reason: String?, context: MutationContext
    ) -> StageHistoryEntry {
        var entry = StageHistoryEntry(
            sequence: lastSequence + 1, model: stage.model, stage: stage.stage, action: action, fromVersion: from,
            toVersion: to, revision: stage.revision, actor: context.actor, reason: reason, time: context.time)
        entry.rolloutId = rollout.id
        entry.weight = rollout.weight
        return entry
    }

    private static func event(_ type: String, _ rollout: Rollout) -> EventDraft {
        var data: [String: JSONValue] = [
            "stage": .string(rollout.stage), "rolloutId": .string(rollout.id),
            "version": .number(Double(rollout.version)), "previousVersion": .number(Double(rollout.previousVersion)),
            "state": .string(rollout.state.rawValue), "weight": .number(rollout.weight),
            "revision": .number(Double(rollout.revision)),
        ]
        if let reason = rollout.reason { data["reason"] = .string(reason) }
        return EventDraft(type: type, model: rollout.model, data: .object(data))
    }
}

extension EventType {
    public static let rolloutStarted = "rollout.started"
    public static let rolloutAdvanced = "rollout.advanced"
    public static let rolloutPaused = "rollout.paused"
    public static let rolloutResumed = "rollout.resumed"
    public static let rolloutCompleted = "rollout.completed"
    public static let rolloutAborted = "rollout.aborted"
}

extension RegistryError {
    public static func rolloutNotFound(_ id: String) -> RegistryError {
        RegistryError(
            .rolloutNotFound, "No rollout \(id.prefix(64)) exists.",
            details: ["rolloutId": .string(String(id.prefix(64)))])
    }

    public static func rolloutInProgress(stage: Stage, rolloutId: String) -> RegistryError {
        RegistryError(
            .rolloutInProgress,
            "Stage '\(stage.stage)' of '\(stage.model)' has rollout \(rolloutId) in progress; abort or finish it first.",
            details: ["rolloutId": .string(rolloutId)])
    }
}
