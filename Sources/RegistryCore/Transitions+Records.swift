extension Transitions {
    // The one place where a model or version record is normalised on creation and changed under its revision: the
    // stores load the current record, call one of these inside their transaction, and save what it returns.

    /// A new model as stored: its first revision, with what creating it records.
    public static func createModel(_ draft: Model) throws -> (Model, AuditDraft, [EventDraft]) {
        var created = draft
        created.revision = 1
        let (audit, events) = try modelCreated(created)
        return (created, audit, events)
    }

    /// `current` after `change`, which it must allow at `expectedRevision` (`REVISION_MISMATCH` otherwise): the
    /// change cannot rename the model or rewrite who created it and when, and the revision moves on by one.
    public static func updateModel(
        _ current: Model, expectedRevision: Int, context: MutationContext, _ change: (inout Model) throws -> ModelChange
    ) throws -> (Model, AuditDraft, [EventDraft]) {
        try require(current, at: current.revision, expected: expectedRevision)
        var updated = current
        let kind = try change(&updated)
        updated.name = current.name
        updated.createdAt = current.createdAt
        updated.createdBy = current.createdBy
        updated.revision = current.revision + 1
        updated.updatedAt = context.time
        let (audit, events) = try modelChanged(before: current, after: updated, change: kind)
        return (updated, audit, events)
    }

    /// `draft` as version `number` of its model: pending review, at its first revision, created by the caller now.
    public static func createVersion(
        _ draft: ModelVersion, number: Int, context: MutationContext
    ) throws -> (ModelVersion, AuditDraft, [EventDraft]) {
        var version = draft
        version.version = number
        version.status = .pending
        version.revision = 1
        version.approvals = []
        version.createdBy = context.actor
        version.createdAt = context.time
        version.updatedAt = context.time
        let (audit, events) = try versionCreated(version)
        return (version, audit, events)
    }

    /// `current` after `change`, which it must allow at `expectedRevision` (`REVISION_MISMATCH` otherwise): the
    /// change cannot move the version to another model, number or manifest, or rewrite who created it and when,
    /// and the revision moves on by one.
    public static func updateVersion(
        _ current: ModelVersion, expectedRevision: Int, in change: VersionChangeContext, context: MutationContext,
        _ apply: (inout ModelVersion, VersionChangeContext) throws -> VersionChange
    ) throws -> (ModelVersion, AuditDraft, [EventDraft]) {
        try require(current, at: current.revision, expected: expectedRevision)
        var updated = current
        let kind = try apply(&updated, change)
        updated.model = current.model
        updated.version = current.version
        updated.manifestDigest = current.manifestDigest
        updated.createdBy = current.createdBy
        updated.createdAt = current.createdAt
        updated.revision = current.revision + 1
        updated.updatedAt = context.time
        let (audit, events) = try versionChanged(before: current, after: updated, change: kind)
        return (updated, audit, events)
    }
}
