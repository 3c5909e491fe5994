import Foundation

/// The control plane's strongly consistent store. Every mutation is one transaction that writes the change, its
/// audit entry and its events together, using the rules in `Transitions`, so that all backends behave alike.
/// Implementations: `InMemoryMetadataStore`, `SQLiteMetadataStore`; each passes `MetadataStoreConformance`.
public protocol MetadataStore: ModelStore, VersionStore, StageStore, RolloutStore, TokenStore, AuditStore, EventStore,
    UploadStore
{
    /// Throws when the store cannot serve requests (for readiness probes).
    func ping() async throws
}

/// Models and their access lists.
public protocol ModelStore: Sendable {
    /// Creates `model` (revision 1) with its grants. Throws `MODEL_EXISTS` when the name is taken.
    func createModel(_ model: Model, context: MutationContext) async throws -> Model

    func model(named name: String) async throws -> Model?

    /// Models in name order, filtered by `query`.
    func models(_ query: ModelQuery) async throws -> Page<Model>

    /// Applies `change` to the model if it is at `expectedRevision`, then bumps the revision.
    ///
    /// Throws `MODEL_NOT_FOUND`, or `REVISION_MISMATCH` with the current model in `details.current`; errors
    /// thrown by `change` abort the transaction and nothing is written.
    func updateModel(
        named name: String, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout Model) throws -> Transitions.ModelChange
    ) async throws -> Model
}

/// Versions, their reviews and the artifacts they reference.
public protocol VersionStore: Sendable {
    /// Creates a version numbered one past the model's highest, race-free, with `status: pending`.
    /// `draft.version` is ignored. Records that the model references `artifacts`. Throws `MODEL_NOT_FOUND`.
    func createVersion(_ draft: ModelVersion, artifacts: [Digest], context: MutationContext) async throws
        -> ModelVersion

    func version(model: String, number: Int) async throws -> ModelVersion?

    /// Versions of one model, newest first, filtered by `query`.
    func versions(_ query: VersionQuery) async throws -> Page<ModelVersion>

    /// Applies `change` to the version if it is at `expectedRevision`, then bumps the revision. `change` sees the
    /// model and the names of the stages that point at the version.
    ///
    /// Throws `MODEL_NOT_FOUND`, `VERSION_NOT_FOUND`, or `REVISION_MISMATCH` with the current version.
    func updateVersion(
        model: String, number: Int, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout ModelVersion, VersionChangeContext) throws -> Transitions.VersionChange
    ) async throws -> ModelVersion

    /// Names of the models whose versions reference `digest` (a manifest or a chunk).
    func models(referencing digest: Digest) async throws -> [String]

    /// Every digest (manifest or chunk) that any version references; what garbage collection must keep.
    func referencedDigests() async throws -> Set<Digest>
}

/// What a version change may consult besides the version itself.
public struct VersionChangeContext: Sendable {
    public var model: Model
    public var stagesPointingAtVersion: [String]

    public init(model: Model, stagesPointingAtVersion: [String]) {
        self.model = model
        self.stagesPointingAtVersion = stagesPointingAtVersion
    }
}

/// Stages: named pointers to approved versions, with their history.
public protocol StageStore: Sendable {
    func stage(model: String, name: String) async throws -> Stage?

    /// Every stage of a model, in name order.
    func stages(model: String) async throws -> [Stage]

    /// A stage's moves, oldest first, starting after sequence `after`.
    func history(model: String, stage: String, after: Int?, limit: Int) async throws -> Page<StageHistoryEntry>

    /// Points `stage` at `version` (which must be approved) under `precondition`, appending to its history.
    ///
    /// Throws `MODEL_NOT_FOUND`, `VERSION_NOT_FOUND`, `STAGE_NOT_FOUND` (If-Match on a missing stage),
    /// `REVISION_MISMATCH` with the current stage, or `VERSION_NOT_APPROVED`.
    func promote(
        model: String, stage: String, precondition: Transitions.StagePrecondition, version: Int, reason: String?,
        context: MutationContext
    ) async throws -> Stage

    /// Points `stage` back at version `target`, which the caller found with `rollbackTarget` at `expectedRevision`
    /// (the history cannot change without the revision, so the revision check makes that answer current); with a
    /// rollout in progress it aborts the rollout instead, which returns all traffic to the stage's version.
    ///
    /// Throws `STAGE_NOT_FOUND`, `REVISION_MISMATCH` with the current stage, or `VERSION_NOT_FOUND`; a stage at
    /// `expectedRevision` without a rollout and a nil `target` is refused as changed (`REVISION_MISMATCH`).
    func rollback(
        model: String, stage: String, expectedRevision: Int, target: Int?, reason: String?, context: MutationContext
    ) async throws -> Stage
}

extension StageStore {
    /// The version a rollback of `stage` at `revision` returns to (`Transitions.rollbackTarget` over its history),
    /// or nil when the rollback will not move the stage: no such stage, another revision, or a rollout in progress
    /// (which the rollback aborts). Throws `NO_PREVIOUS_VERSION` when the stage has nothing to return to.
    public func rollbackTarget(model: String, stage name: String, revision: Int) async throws -> Int? {
        guard let stage = try await stage(model: model, name: name), stage.revision == revision,
            stage.rolloutId == nil
        else { return nil }
        var history: [StageHistoryEntry] = []
        var after: Int?
        while true {
            let page = try await self.history(model: model, stage: name, after: after, limit: 1000)
            history += page.items
            guard let last = page.items.last, page.nextPageToken != nil else { break }
            after = last.sequence
        }
        // A history read after the stage moved on describes a later revision, which the rollback then refuses.
        return try Transitions.rollbackTarget(history: history, model: model, stage: name)
    }

    /// Points `stage` back at its previous version (`rollbackTarget`), or aborts its rollout in progress.
    ///
    /// Throws `STAGE_NOT_FOUND`, `REVISION_MISMATCH` with the current stage, or `NO_PREVIOUS_VERSION`.
    public func rollback(
        model: String, stage: String, expectedRevision: Int, reason: String?, context: MutationContext
    ) async throws -> Stage {
        let target = try await rollbackTarget(model: model, stage: stage, revision: expectedRevision)
        return try await rollback(
            model: model, stage: stage, expectedRevision: expectedRevision, target: target, reason: reason,
            context: context)
    }
}

/// Progressive rollouts of a candidate version on a stage (`RolloutRules`, `Transitions.startRollout`).
public protocol RolloutStore: Sendable {
    /// Starts `draft` on its stage, which must be at `expectedStageRevision` without an active rollout; the stage
    /// then names the rollout and its history records the start.
    ///
    /// Throws `MODEL_NOT_FOUND`, `STAGE_NOT_FOUND`, `VERSION_NOT_FOUND`, `REVISION_MISMATCH` with the current stage,
    /// `ROLLOUT_IN_PROGRESS`, `VERSION_NOT_APPROVED` or `INVALID_ARGUMENT`.
    func startRollout(_ draft: Rollout, expectedStageRevision: Int, context: MutationContext) async throws -> Rollout

    func rollout(id: String) async throws -> Rollout?

    /// Rollouts in `warming`, `progressing` or `paused`, oldest first. Their `reports` may be left out: what a
    /// decision needs of them is `reportSummary`.
    func activeRollouts() async throws -> [Rollout]

    /// The summary of rollout `id`'s reports within its policy's window at `now` (empty for an unknown rollout).
    func reportSummary(rollout id: String, now: Date) async throws -> ReportSummary

    /// Applies `change` to the rollout (at `expectedRevision` when given) and what it implies for the stage
    /// (`Transitions.applyRollout`), in one transaction with its audit entry and events. A change that returns
    /// `.report` stores the rollout's reports without bumping its revision.
    ///
    /// Throws `ROLLOUT_NOT_FOUND`, `REVISION_MISMATCH` with the current rollout, or what `change` throws.
    func updateRollout(
        id: String, expectedRevision: Int?, context: MutationContext,
        _ change: @escaping @Sendable (inout Rollout) throws -> RolloutRules.Change
    ) async throws -> Rollout

    /// Records one serving instance's `report` on rollout `id` of `model`'s `stage` and applies the decision it
    /// leads to (`Transitions.recordReport`, then as `updateRollout`), in one transaction. Reports are kept one per
    /// instance apart from the rollout, so a report costs the same however many instances report; the returned
    /// rollout's `reports` hold this instance's report only.
    ///
    /// Throws `ROLLOUT_NOT_FOUND` (also for a rollout of another model or stage), `INVALID_TRANSITION` when it no
    /// longer takes reports, `TOO_MANY_INSTANCES` when `report.instance` would be one more than `maxInstances`.
    func recordReport(
        _ report: InstanceReport, rollout id: String, model: String, stage: String, maxInstances: Int,
        context: MutationContext
    ) async throws -> ReportOutcome
}

/// What recording a report did.
public struct ReportOutcome: Sendable {
    /// The rollout after the report (its `reports` hold only this report).
    public var rollout: Rollout
    public var change: RolloutRules.Change
    /// The reports call for completing the rollout, which the caller decides after checking the candidate against
    /// the trust policy (`Transitions.recordReport`).
    public var completionPending: Bool

    public init(rollout: Rollout, change: RolloutRules.Change, completionPending: Bool) {
        self.rollout = rollout
        self.change = change
        self.completionPending = completionPending
    }
}

extension RegistryError {
    /// One instance more than a rollout keeps reports from.
    public static func tooManyInstances(_ rolloutId: String, limit: Int) -> RegistryError {
        RegistryError(
            .tooManyInstances,
            "Rollout \(rolloutId) already has reports from \(limit) instances, the most this registry keeps per rollout.",
            details: ["limit": .number(Double(limit))])
    }
}

/// Bearer tokens, kept as hashes.
public protocol TokenStore: Sendable {
    /// Stores `token`. Throws `INVALID_ARGUMENT` if a token with the same id or hash exists.
    func createToken(_ token: AccessToken, context: MutationContext) async throws

    /// The token whose secret hashes to `hash`, if any; a revoked token is returned with its `revokedAt` (callers
    /// check `isActive(at:)`), so that a revoked secret is recognised as such.
    func token(hash: String) async throws -> AccessToken?

    /// Every token that is not revoked, oldest first.
    func tokens() async throws -> [AccessToken]

    /// Marks the token with `id` revoked (it stays recorded, never authenticates again). Throws `NOT_FOUND` when
    /// there is no such token or it is already revoked.
    func revokeToken(id: String, context: MutationContext) async throws
}

/// The append-only, hash-chained audit log.
public protocol AuditStore: Sendable {
    /// Appends an entry that does not go with a change (a denied request).
    func recordAudit(_ draft: AuditDraft, context: MutationContext) async throws

    /// Appends several such entries in order, in one transaction where the backend has them: all or none.
    func recordAudits(_ entries: [(draft: AuditDraft, context: MutationContext)]) async throws

    /// Entries in sequence order after `query.after`, optionally for one model.
    func auditEntries(_ query: AuditQuery) async throws -> Page<AuditEntry>

    /// The last entry's sequence and hash as recorded beside the log, nil when the log is empty.
    func auditHead() async throws -> (sequence: Int64, hash: String)?
}

/// The durable, ordered event log.
public protocol EventStore: Sendable {
    /// Events with id greater than `after`, in id order, at most `limit`.
    func events(after: Int64, limit: Int) async throws -> [Event]

    /// The id of the last committed event (0 when there is none).
    func lastEventId() async throws -> Int64

    /// Returns once an event with id greater than `after` has committed, or when `timeout` has passed.
    func waitForEvents(after: Int64, timeout: Duration) async throws
}

public struct ModelQuery: Sendable, Equatable {
    public var prefix: String?
    public var tag: Tag?
    /// Only models on which this subject holds a grant; nil for all models (admins).
    public var visibleTo: String?
    /// Name of the last model of the previous page.
    public var after: String?
    public var limit: Int

    public init(
        prefix: String? = nil, tag: Tag? = nil, visibleTo: String? = nil, after: String? = nil, limit: Int = 100
    ) {
        self.prefix = prefix
        self.tag = tag
        self.visibleTo = visibleTo
        self.after = after
        self.limit = limit
    }
}

public struct VersionQuery: Sendable, Hashable {
    public var model: String
    public var status: VersionStatus?
    public var tag: Tag?
    /// Number of the last version of the previous page (pages go newest first).
    public var before: Int?
    public var limit: Int

    public init(model: String, status: VersionStatus? = nil, tag: Tag? = nil, before: Int? = nil, limit: Int = 100) {
        self.model = model
        self.status = status
        self.tag = tag
        self.before = before
        self.limit = limit
    }
}

public struct AuditQuery: Sendable, Equatable {
    public var model: String?
    public var after: Int64
    public var limit: Int

    public init(model: String? = nil, after: Int64 = 0, limit: Int = 100) {
        self.model = model
        self.after = after
        self.limit = limit
    }
}

/// A `key:value` tag filter.
public struct Tag: Sendable, Hashable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// Parses `key:value`; throws `INVALID_ARGUMENT` otherwise.
    public init(parsing text: String) throws {
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else {
            throw RegistryError.invalidArgument("A tag filter is written key:value.", field: "tag")
        }
        key = String(text[..<colon])
        value = String(text[text.index(after: colon)...])
    }
}

extension AuditStore {
    /// One `recordAudit` per entry, for backends without a cheaper way (each entry is still appended whole).
    public func recordAudits(_ entries: [(draft: AuditDraft, context: MutationContext)]) async throws {
        for entry in entries { try await recordAudit(entry.draft, context: entry.context) }
    }

    /// Checks the whole chain in pages of 1000 and reports the first entry that was altered, inserted or removed.
    public func verifyAudit() async throws -> AuditChain.Verification {
        var verifier = AuditChain.Verifier()
        var after: Int64 = 0
        while true {
            let page = try await auditEntries(AuditQuery(after: after, limit: 1000))
            for entry in page.items { verifier.check(entry) }
            guard let last = page.items.last, page.nextPageToken != nil else { break }
            after = last.sequence
        }
        return verifier.result(recordedHead: try await auditHead())
    }
}

/// Whether this instance holds a role that one instance at a time may hold (several instances share a database).
public protocol Leadership: Sendable {
    var isLeader: Bool { get }
}
