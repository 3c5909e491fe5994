/// The registry's rules as pure functions: every store applies them inside its transaction, so all backends
/// behave alike. Each returns the audit draft and events that must commit together with the change.
public enum Transitions {
    /// The kinds of change to a model.
    public enum ModelChange: Sendable {
        case update
        case accessList
    }

    /// The kinds of change to a version.
    public enum VersionChange: Sendable, Equatable {
        case decision(Decision)
        case update
        /// The version's metadata changed after approval under a policy that makes that revoke the approval.
        case approvalRevoked
        case archive
    }

    public static func modelCreated(_ model: Model) throws -> (AuditDraft, [EventDraft]) {
        let audit = try AuditDraft(
            action: "model.create", target: target(model: model.name), model: model.name, before: Model?.none,
            after: ModelSnapshot(model))
        let event = EventDraft(
            type: EventType.modelCreated, model: model.name,
            data: ["name": .string(model.name), "revision": .number(Double(model.revision))])
        return (audit, [event])
    }

    public static func modelChanged(before: Model, after: Model, change: ModelChange) throws -> (
        AuditDraft, [EventDraft]
    ) {
        switch change {
        case .update:
            let audit = try AuditDraft(
                action: "model.update", target: target(model: after.name), model: after.name,
                before: ModelSnapshot(before), after: ModelSnapshot(after))
            return (
                audit,
                [
                    EventDraft(
                        type: EventType.modelUpdated, model: after.name,
                        data: ["revision": .number(Double(after.revision))])
                ]
            )
        case .accessList:
            let audit = try AuditDraft(
                action: "model.acl.update", target: target(model: after.name) + "/acl", model: after.name,
                before: AccessListSnapshot(before), after: AccessListSnapshot(after))
            return (
                audit,
                [
                    EventDraft(
                        type: EventType.aclChanged, model: after.name,
                        data: ["revision": .number(Double(after.revision))])
                ]
            )
        }
    }

    public static func versionCreated(_ version: ModelVersion) throws -> (AuditDraft, [EventDraft]) {
        let audit = try AuditDraft(
            action: "version.create", target: target(model: version.model, version: version.version),
            model: version.model, before: ModelVersion?.none, after: version)
        return (audit, [EventDraft(type: EventType.versionCreated, model: version.model, data: versionData(version))])
    }

    public static func versionChanged(
        before: ModelVersion, after: ModelVersion, change: VersionChange
    ) throws -> (AuditDraft, [EventDraft]) {
        let action: String
        var events: [EventDraft] = []
        switch change {
        case .decision(let decision):
            action = decision == .approve ? "version.approve" : "version.reject"
            var data = versionData(after)
            if let last = after.approvals.last {
                data = merge(data, ["decision": .string(last.decision.rawValue), "subject": .string(last.subject)])
            }
            events.append(EventDraft(type: EventType.versionApprovalRecorded, model: after.model, data: data))
            if before.status != after.status {
                let type = after.status == .approved ? EventType.versionApproved : EventType.versionRejected
                events.append(EventDraft(type: type, model: after.model, data: versionData(after)))
            }
        case .update:
            action = "version.update"
            events.append(EventDraft(type: EventType.versionUpdated, model: after.model, data: versionData(after)))
        case .approvalRevoked:
            action = "version.approval-revoke"
            events.append(EventDraft(type: EventType.versionUpdated, model: after.model, data: versionData(after)))
            events.append(
                EventDraft(type: EventType.versionApprovalRevoked, model: after.model, data: versionData(after)))
        case .archive:
            action = "version.archive"
            events.append(EventDraft(type: EventType.versionArchived, model: after.model, data: versionData(after)))
        }
        let audit = try AuditDraft(
            action: action, target: target(model: after.model, version: after.version), model: after.model,
            before: before, after: after)
        return (audit, events)
    }

    /// Records `decision` by `subject` on `version` under `policy`.
    ///
    /// Throws `INVALID_TRANSITION` unless the version is pending, `SELF_APPROVAL_FORBIDDEN` when the creator decides
    /// on their own version against the policy, and `ALREADY_DECIDED` on a second decision by the same subject.
    /// A rejection rejects the version; it becomes approved once the policy's number of approvals is met.
    public static func decide(
        _ version: inout ModelVersion, decision: Decision, comment: String?, by subject: String,
        policy: ApprovalPolicy, context: MutationContext
    ) throws -> VersionChange {
        guard version.status == .pending else {
            throw RegistryError(
                .invalidTransition,
                "Version \(version.version) of '\(version.model)' is \(version.status.rawValue); only pending versions can be approved or rejected.",
                details: ["status": .string(version.status.rawValue)])
        }
        if subject == version.createdBy && !policy.allowSelfApproval {
            throw RegistryError(
                .selfApprovalForbidden,
                "'\(subject)' created version \(version.version) and may not review it; another approver must.")
        }
        if version.approvals.contains(where: { $0.subject == subject }) {
            throw RegistryError(.alreadyDecided, "'\(subject)' has already reviewed version \(version.version).")
        }
        version.approvals.append(Approval(subject: subject, decision: decision, comment: comment, time: context.time))
        switch decision {
        case .reject:
            version.status = .rejected
        case .approve:
            let approvers = Set(version.approvals.filter { $0.decision == .approve }.map(\.subject))
            if approvers.count >= policy.requiredApprovals {
                version.status = .approved
            }
        }
        return .decision(decision)
    }

    /// Replaces `version`'s metadata. An approval was given to the version as it was described: when the model's
    /// policy says so (`revokeApprovalOnMetadataChange`), changing an approved version's metadata sends it back to
    /// pending with no approvals, so it must be reviewed again before it can be promoted. Returns `.update`
    /// otherwise (the change is audited with its before and after either way).
    public static func changeMetadata(
        _ version: inout ModelVersion, to metadata: JSONValue, policy: ApprovalPolicy
    ) -> VersionChange {
        let changed = version.metadata != metadata
        version.metadata = metadata
        guard changed, version.status == .approved, policy.revokeApprovalOnMetadataChange else { return .update }
        version.status = .pending
        version.approvals = []
        return .approvalRevoked
    }

    /// Archives `version`; a version that a stage points at cannot be archived.
    public static func archive(_ version: inout ModelVersion, stagesPointingAtIt: [String]) throws -> VersionChange {
        guard stagesPointingAtIt.isEmpty else {
            throw RegistryError(
                .versionInUse,
                "Version \(version.version) is the target of stage(s) \(stagesPointingAtIt.joined(separator: ", ")); move them first.",
                details: ["stages": .array(stagesPointingAtIt.map(JSONValue.string))])
        }
        guard version.status != .archived else {
            throw RegistryError(.invalidTransition, "Version \(version.version) is already archived.")
        }
        version.status = .archived
        return .archive
    }

    /// What a stage precondition asks for: the stage at a revision (`If-Match`) or no stage yet (`If-None-Match: *`).
    public enum StagePrecondition: Sendable, Equatable {
        case revision(Int)
        case absent
    }

    /// Throws `REVISION_MISMATCH` (with the resource as it is) unless `current` is at `expected`; nil expects any
    /// revision (a decision taken on what was just read, inside the same transaction).
    public static func require(_ current: some Encodable, at revision: Int, expected: Int?) throws {
        if let expected, revision != expected {
            throw RegistryError.revisionMismatch(expected: expected, current: current, revision: revision)
        }
    }

    /// Checks `precondition` against the stage as it is; throws `REVISION_MISMATCH` or `STAGE_NOT_FOUND`.
    public static func check(_ precondition: StagePrecondition, current: Stage?, model: String, stage: String) throws {
        switch (precondition, current) {
        case (.absent, nil):
            return
        case (.absent, let current?):
            throw RegistryError.revisionMismatch(expected: nil, current: current, revision: current.revision)
        case (.revision, nil):
            throw RegistryError.stageNotFound(model, stage)
        case (.revision(let expected), let current?):
            try require(current, at: current.revision, expected: expected)
        }
    }

    /// Points a stage at `target`, which must be approved. Returns the new stage, its history entry and audit/events.
    public static func promote(
        current: Stage?, model: String, stage: String, target: ModelVersion, reason: String?,
        lastSequence: Int, context: MutationContext
    ) throws -> (Stage, StageHistoryEntry, AuditDraft, [EventDraft]) {
        guard target.status == .approved else {
            throw RegistryError(
                .versionNotApproved,
                "Version \(target.version) of '\(model)' is \(target.status.rawValue); only approved versions can be promoted.",
                details: ["status": .string(target.status.rawValue), "version": .number(Double(target.version))])
        }
        if let current, let rolloutId = current.rolloutId {
            throw RegistryError.rolloutInProgress(stage: current, rolloutId: rolloutId)
        }
        return try move(
            current: current, model: model, stage: stage, to: target.version, action: .promote, reason: reason,
            lastSequence: lastSequence, context: context)
    }

    /// The version a rollback returns to: replaying the history as a stack (a promotion pushes, a rollback pops),
    /// the entry below the top. Throws `NO_PREVIOUS_VERSION` when there is none.
    public static func rollbackTarget(history: [StageHistoryEntry], model: String, stage: String) throws -> Int {
        var stack: [Int] = []
        for entry in history.sorted(by: { $0.sequence < $1.sequence }) {
            switch entry.action {
            case .promote:
                if stack.last != entry.toVersion { stack.append(entry.toVersion) }
            case .rollback:
                if stack.count > 1 { stack.removeLast() }
                if stack.last != entry.toVersion { stack.append(entry.toVersion) }
            case .rolloutStart, .rolloutStep, .rolloutAbort:
                // Traffic moved within a rollout; the stage's version did not (a completion is a promotion).
                break
            }
        }
        guard stack.count >= 2 else {
            throw RegistryError(
                .noPreviousVersion, "Stage '\(stage)' of '\(model)' has no earlier version to roll back to.")
        }
        return stack[stack.count - 2]
    }

    /// The refusal of a rollback whose caller found no target although the stage is still at its revision without
    /// a rollout: only a rollout that ended without moving the stage could do that, so the caller reads again.
    public static func changedDuringRollback(expectedRevision revision: Int) -> RegistryError {
        RegistryError(
            .revisionMismatch, "The stage changed while its rollback was prepared; read it again and retry.",
            details: ["expectedRevision": .number(Double(revision))])
    }

    /// Moves a stage back to `target` (from `rollbackTarget`).
    public static func rollback(
        current: Stage, to target: ModelVersion, reason: String?, lastSequence: Int, context: MutationContext
    ) throws -> (Stage, StageHistoryEntry, AuditDraft, [EventDraft]) {
        try move(
            current: current, model: current.model, stage: current.stage, to: target.version, action: .rollback,
            reason: reason, lastSequence: lastSequence, context: context)
    }

    private static func move(
        current: Stage?, model: String, stage: String, to version: Int, action: StageHistoryEntry.Action,
        reason: String?, lastSequence: Int, context: MutationContext
    ) throws -> (Stage, StageHistoryEntry, AuditDraft, [EventDraft]) {
        let next = Stage(
            model: model, stage: stage, version: version, revision: (current?.revision ?? 0) + 1,
            updatedBy: context.actor, updatedAt: context.time)
        let entry = StageHistoryEntry(
            sequence: lastSequence + 1, model: model, stage: stage, action: action, fromVersion: current?.version,
            toVersion: version, revision: next.revision, actor: context.actor, reason: reason, time: context.time)
        let audit = try AuditDraft(
            action: action == .promote ? "stage.promote" : "stage.rollback",
            target: target(model: model) + "/stages/\(stage)", model: model, before: current, after: next)
        var data: [String: JSONValue] = [
            "stage": .string(stage), "version": .number(Double(version)), "revision": .number(Double(next.revision)),
        ]
        if let from = current?.version { data["fromVersion"] = .number(Double(from)) }
        if let reason { data["reason"] = .string(reason) }
        let event = EventDraft(
            type: action == .promote ? EventType.stagePromoted : EventType.stageRolledBack, model: model,
            data: .object(data))
        return (next, entry, audit, [event])
    }

    public static func tokenCreated(_ token: AccessToken) throws -> (AuditDraft, [EventDraft]) {
        let audit = try AuditDraft(
            action: "token.create", target: "tokens/\(token.id)", model: nil, before: AccessToken?.none, after: token)
        let event = EventDraft(
            type: EventType.tokenCreated, model: nil,
            data: ["id": .string(token.id), "subject": .string(token.subject), "admin": .bool(token.admin)])
        return (audit, [event])
    }

    public static func tokenRevoked(_ token: AccessToken) throws -> (AuditDraft, [EventDraft]) {
        let audit = try AuditDraft(
            action: "token.revoke", target: "tokens/\(token.id)", model: nil, before: token, after: AccessToken?.none)
        let event = EventDraft(
            type: "token.revoked", model: nil, data: ["id": .string(token.id), "subject": .string(token.subject)])
        return (audit, [event])
    }

    public static func target(model: String) -> String { "models/\(model)" }

    public static func target(model: String, version: Int) -> String { "models/\(model)/versions/\(version)" }

    private static func versionData(_ version: ModelVersion) -> JSONValue {
        [
            "version": .number(Double(version.version)), "status": .string(version.status.rawValue),
            "manifestDigest": .string(version.manifestDigest.description),
            "revision": .number(Double(version.revision)),
        ]
    }

    private static func merge(_ lhs: JSONValue, _ rhs: [String: JSONValue]) -> JSONValue {
        guard case .object(var object) = lhs else { return lhs }
        object.merge(rhs) { _, new in new }
        return .object(object)
    }
}

/// What the audit log records of a model (its access list is recorded separately).
struct ModelSnapshot: Encodable {
    let model: Model
    init(_ model: Model) { self.model = model }
    func encode(to encoder: any Encoder) throws { try model.encode(to: encoder) }
}

/// What the audit log records of an access-list change.
struct AccessListSnapshot: Encodable {
    let revision: Int
    let grants: [Grant]
    init(_ model: Model) {
        revision = model.revision
        grants = model.grants
    }
}

extension JSONValue: ExpressibleByDictionaryLiteral, ExpressibleByStringLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    public init(stringLiteral value: String) {
        self = .string(value)
    }
}

extension JSONValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral
{
    public init(integerLiteral value: Int) {
        self = .number(Double(value))
    }

    public init(floatLiteral value: Double) {
        self = .number(value)
    }

    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }

    public init(arrayLiteral elements: JSONValue...) {
        self = .array(elements)
    }
}
