import Foundation
import Synchronization

/// A `MetadataStore` held in memory: for tests and as the reference the conformance suite is written against.
/// Each mutation works on a copy of the state and publishes it only when everything succeeded.
public final class InMemoryMetadataStore: MetadataStore {
    struct State {
        var models: [String: Model] = [:]
        var versions: [String: [Int: ModelVersion]] = [:]
        var references: [Digest: Set<String>] = [:]
        var stages: [String: [String: Stage]] = [:]
        var history: [String: [String: [StageHistoryEntry]]] = [:]
        var rollouts: [String: Rollout] = [:]
        var rolloutOrder: [String] = []
        var tokens: [AccessToken] = []
        var uploads: [UploadKey: Date] = [:]
        var audit: [AuditEntry] = []
        var events: [Event] = []
    }

    struct UploadKey: Hashable {
        var subject: String
        var digest: Digest
    }

    private let state = Mutex(State())
    private let signal = ChangeSignal()

    public init() {}

    public func ping() async throws {}

    /// Runs `body` on a copy of the state, then commits the copy; the audit drafts and events it returns are
    /// appended in the same step.
    private func write<T>(
        _ context: MutationContext, _ body: (inout State) throws -> (T, AuditDraft, [EventDraft])
    ) throws -> T {
        let (result, lastEvent) = try state.withLock { committed -> (T, Int64) in
            if let checked = context.checkedTrustPolicy {
                try checked.verify(current: committed.models[checked.model]?.trustPolicy)
            }
            var copy = committed
            let (result, audit, events) = try body(&copy)
            Self.append(audit: audit, events: events, to: &copy, context: context)
            committed = copy
            return (result, copy.events.last?.id ?? 0)
        }
        signal.advance(to: lastEvent)
        return result
    }

    private static func append(audit: AuditDraft, events: [EventDraft], to state: inout State, context: MutationContext)
    {
        let previous = state.audit.last
        state.audit.append(
            AuditChain.seal(
                audit, sequence: (previous?.sequence ?? 0) + 1, previousHash: previous?.hash ?? AuditChain.genesis,
                context: context))
        for draft in events {
            let id = (state.events.last?.id ?? 0) + 1
            state.events.append(
                Event(id: id, type: draft.type, time: context.time, model: draft.model, data: draft.data))
        }
    }

    // MARK: Models

    public func createModel(_ model: Model, context: MutationContext) async throws -> Model {
        try write(context) { state in
            guard state.models[model.name] == nil else {
                throw RegistryError(
                    .modelExists, "Model '\(model.name)' already exists.", details: ["model": .string(model.name)])
            }
            let (created, audit, events) = try Transitions.createModel(model)
            state.models[model.name] = created
            return (created, audit, events)
        }
    }

    public func model(named name: String) async throws -> Model? {
        state.withLock { $0.models[name] }
    }

    public func models(_ query: ModelQuery) async throws -> Page<Model> {
        let all = state.withLock { Array($0.models.values) }
        let matching = all.filter { model in
            if let prefix = query.prefix, !model.name.hasPrefix(prefix) { return false }
            if let tag = query.tag, model.tags[tag.key] != tag.value { return false }
            if let subject = query.visibleTo, !model.grants.contains(where: { $0.subject == subject }) { return false }
            if let after = query.after, model.name <= after { return false }
            return true
        }.sorted { $0.name < $1.name }
        let items = Array(matching.prefix(query.limit))
        let next = matching.count > query.limit ? items.last.map { PageToken.make($0.name) } : nil
        return Page(items: items, nextPageToken: next)
    }

    public func updateModel(
        named name: String, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout Model) throws -> Transitions.ModelChange
    ) async throws -> Model {
        try write(context) { state in
            guard let current = state.models[name] else { throw RegistryError.modelNotFound(name) }
            let (updated, audit, events) = try Transitions.updateModel(
                current, expectedRevision: expectedRevision, context: context, change)
            state.models[name] = updated
            return (updated, audit, events)
        }
    }

    // MARK: Versions

    public func createVersion(_ draft: ModelVersion, artifacts: [Digest], context: MutationContext) async throws
        -> ModelVersion
    {
        try write(context) { state in
            guard state.models[draft.model] != nil else { throw RegistryError.modelNotFound(draft.model) }
            let (version, audit, events) = try Transitions.createVersion(
                draft, number: (state.versions[draft.model]?.keys.max() ?? 0) + 1, context: context)
            state.versions[draft.model, default: [:]][version.version] = version
            for digest in artifacts { state.references[digest, default: []].insert(draft.model) }
            return (version, audit, events)
        }
    }

    public func version(model: String, number: Int) async throws -> ModelVersion? {
        state.withLock { $0.versions[model]?[number] }
    }

    public func versions(_ query: VersionQuery) async throws -> Page<ModelVersion> {
        let all = state.withLock { Array(($0.versions[query.model] ?? [:]).values) }
        let matching = all.filter { version in
            if let status = query.status, version.status != status { return false }
            if let tag = query.tag, version.tags[tag.key] != tag.value { return false }
            if let before = query.before, version.version >= before { return false }
            return true
        }.sorted { $0.version > $1.version }
        let items = Array(matching.prefix(query.limit))
        let next = matching.count > query.limit ? items.last.map { PageToken.make(String($0.version)) } : nil
        return Page(items: items, nextPageToken: next)
    }

    public func updateVersion(
        model: String, number: Int, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout ModelVersion, VersionChangeContext) throws -> Transitions.VersionChange
    ) async throws -> ModelVersion {
        try write(context) { state in
            guard let owner = state.models[model] else { throw RegistryError.modelNotFound(model) }
            guard let current = state.versions[model]?[number] else {
                throw RegistryError.versionNotFound(model, number)
            }
            let pointing = (state.stages[model] ?? [:]).values.filter { $0.version == number }.map(\.stage).sorted()
            let (updated, audit, events) = try Transitions.updateVersion(
                current, expectedRevision: expectedRevision,
                in: VersionChangeContext(model: owner, stagesPointingAtVersion: pointing), context: context, change)
            state.versions[model]?[number] = updated
            return (updated, audit, events)
        }
    }

    public func models(referencing digest: Digest) async throws -> [String] {
        state.withLock { Array($0.references[digest] ?? []).sorted() }
    }

    public func referencedDigests() async throws -> Set<Digest> {
        state.withLock { Set($0.references.keys) }
    }

    // MARK: Stages

    public func stage(model: String, name: String) async throws -> Stage? {
        state.withLock { $0.stages[model]?[name] }
    }

    public func stages(model: String) async throws -> [Stage] {
        state.withLock { ($0.stages[model] ?? [:]).values.sorted { $0.stage < $1.stage } }
    }

    public func history(model: String, stage: String, after: Int?, limit: Int) async throws -> Page<StageHistoryEntry> {
        let all = state.withLock { $0.history[model]?[stage] ?? [] }
        let matching = all.filter { $0.sequence > (after ?? 0) }
        let items = Array(matching.prefix(limit))
        let next = matching.count > limit ? items.last.map { PageToken.make(String($0.sequence)) } : nil
        return Page(items: items, nextPageToken: next)
    }

    public func promote(
        model: String, stage: String, precondition: Transitions.StagePrecondition, version: Int, reason: String?,
        context: MutationContext
    ) async throws -> Stage {
        try write(context) { state in
            guard state.models[model] != nil else { throw RegistryError.modelNotFound(model) }
            let current = state.stages[model]?[stage]
            try Transitions.check(precondition, current: current, model: model, stage: stage)
            guard let target = state.versions[model]?[version] else {
                throw RegistryError.versionNotFound(model, version)
            }
            let history = state.history[model]?[stage] ?? []
            let (next, entry, audit, events) = try Transitions.promote(
                current: current, model: model, stage: stage, target: target, reason: reason,
                lastSequence: history.last?.sequence ?? 0, context: context)
            state.stages[model, default: [:]][stage] = next
            state.history[model, default: [:]][stage, default: []].append(entry)
            return (next, audit, events)
        }
    }

    public func rollback(
        model: String, stage: String, expectedRevision: Int, target: Int?, reason: String?, context: MutationContext
    ) async throws -> Stage {
        try write(context) { state in
            guard state.models[model] != nil else { throw RegistryError.modelNotFound(model) }
            let current = state.stages[model]?[stage]
            try Transitions.check(.revision(expectedRevision), current: current, model: model, stage: stage)
            if let current, let rolloutId = current.rolloutId, let rollout = state.rollouts[rolloutId] {
                // Rolling back during a rollout aborts it: all traffic returns to the stage's version at once.
                let (_, outcome) = try Self.applyRollout(rollout, in: &state, context: context) { rollout in
                    try RolloutRules.abort(&rollout, reason: reason ?? "rolled back")
                }
                return (outcome.stage, outcome.audit, outcome.events)
            }
            guard let current, let target else {
                throw Transitions.changedDuringRollback(expectedRevision: expectedRevision)
            }
            guard let version = state.versions[model]?[target] else {
                throw RegistryError.versionNotFound(model, target)
            }
            let (next, entry, audit, events) = try Transitions.rollback(
                current: current, to: version, reason: reason,
                lastSequence: state.history[model]?[stage]?.last?.sequence ?? 0, context: context)
            state.stages[model]?[stage] = next
            state.history[model]?[stage]?.append(entry)
            return (next, audit, events)
        }
    }

    // MARK: Rollouts

    public func startRollout(_ draft: Rollout, expectedStageRevision: Int, context: MutationContext) async throws
        -> Rollout
    {
        try write(context) { state in
            guard state.models[draft.model] != nil else { throw RegistryError.modelNotFound(draft.model) }
            let (rollout, stage, entry, audit, events) = try Transitions.startRollout(
                draft, stage: state.stages[draft.model]?[draft.stage], expectedRevision: expectedStageRevision,
                candidate: state.versions[draft.model]?[draft.version],
                lastSequence: state.history[draft.model]?[draft.stage]?.last?.sequence ?? 0, context: context)
            guard state.rollouts[rollout.id] == nil else {
                throw RegistryError.invalidArgument("A rollout with id \(rollout.id) already exists.")
            }
            state.rollouts[rollout.id] = rollout
            state.rolloutOrder.append(rollout.id)
            state.stages[draft.model]?[draft.stage] = stage
            state.history[draft.model]?[draft.stage]?.append(entry)
            return (rollout, audit, events)
        }
    }

    public func rollout(id: String) async throws -> Rollout? {
        state.withLock { $0.rollouts[id] }
    }

    public func reportSummary(rollout id: String, now: Date) async throws -> ReportSummary {
        state.withLock { state in
            guard let rollout = state.rollouts[id] else { return ReportSummary() }
            return ReportSummary(rollout.reports.values, policy: rollout.policy, now: now)
        }
    }

    public func activeRollouts() async throws -> [Rollout] {
        state.withLock { state in state.rolloutOrder.compactMap { state.rollouts[$0] }.filter(\.state.isActive) }
    }

    public func updateRollout(
        id: String, expectedRevision: Int?, context: MutationContext,
        _ change: @escaping @Sendable (inout Rollout) throws -> RolloutRules.Change
    ) async throws -> Rollout {
        try write(context) { state in
            guard let current = state.rollouts[id] else { throw RegistryError.rolloutNotFound(id) }
            try Transitions.require(current, at: current.revision, expected: expectedRevision)
            let (rollout, outcome) = try Self.applyRollout(current, in: &state, context: context, change: change)
            return (rollout, outcome.audit, outcome.events)
        }
    }

    public func recordReport(
        _ report: InstanceReport, rollout id: String, model: String, stage: String, maxInstances: Int,
        context: MutationContext
    ) async throws -> ReportOutcome {
        try write(context) { state in
            guard var current = state.rollouts[id], current.model == model, current.stage == stage else {
                throw RegistryError.rolloutNotFound(id)
            }
            try RolloutRules.requireActive(current)
            if current.reports[report.instance] == nil, current.reports.count >= maxInstances {
                throw RegistryError.tooManyInstances(id, limit: maxInstances)
            }
            current.reports[report.instance] = report
            let summary = ReportSummary(current.reports.values, policy: current.policy, now: context.time)
            let decided = try Transitions.recordReport(report, in: current, summary: summary, now: context.time)
            var only = current
            only.reports = [report.instance: report]
            guard decided.change != .report else {
                state.rollouts[id] = current
                let outcome = ReportOutcome(
                    rollout: only, change: .report, completionPending: decided.completionPending)
                return (outcome, try Transitions.reportRecorded(report, rollout: current), [])
            }
            var (next, outcome) = try Self.applyRollout(current, in: &state, context: context) { rollout in
                rollout = decided.rollout
                return decided.change
            }
            next.reports = only.reports
            return (
                ReportOutcome(rollout: next, change: decided.change, completionPending: false), outcome.audit,
                outcome.events
            )
        }
    }

    private struct RolloutOutcome {
        var stage: Stage
        var audit: AuditDraft
        var events: [EventDraft]
    }

    /// Applies `change` to `rollout` and its stage inside a write.
    private static func applyRollout(
        _ rollout: Rollout, in state: inout State, context: MutationContext,
        change: (inout Rollout) throws -> RolloutRules.Change
    ) throws -> (Rollout, RolloutOutcome) {
        guard let stage = state.stages[rollout.model]?[rollout.stage] else {
            throw RegistryError.stageNotFound(rollout.model, rollout.stage)
        }
        let (next, newStage, entry, draft, events) = try Transitions.changeRollout(
            rollout, stage: stage, lastSequence: state.history[rollout.model]?[rollout.stage]?.last?.sequence ?? 0,
            context: context, change)
        state.rollouts[rollout.id] = next
        if let newStage { state.stages[rollout.model]?[rollout.stage] = newStage }
        if let entry { state.history[rollout.model]?[rollout.stage]?.append(entry) }
        return (next, RolloutOutcome(stage: newStage ?? stage, audit: draft, events: events))
    }

    // MARK: Uploads

    public func recordUploads(_ digests: [Digest], by subject: String, expiresAt: Date) async throws {
        state.withLock { state in
            for digest in digests {
                let key = UploadKey(subject: subject, digest: digest)
                state.uploads[key] = max(state.uploads[key] ?? expiresAt, expiresAt)
            }
        }
    }

    public func uploadedDigests(_ digests: [Digest], by subject: String, now: Date) async throws -> Set<Digest> {
        state.withLock { state in
            Set(digests.filter { (state.uploads[UploadKey(subject: subject, digest: $0)] ?? now) > now })
        }
    }

    public func pinnedDigests(now: Date) async throws -> Set<Digest> {
        state.withLock { state in
            state.uploads = state.uploads.filter { $0.value > now }
            return Set(state.uploads.keys.map(\.digest))
        }
    }

    // MARK: Tokens

    public func createToken(_ token: AccessToken, context: MutationContext) async throws {
        try write(context) { state in
            guard !state.tokens.contains(where: { $0.id == token.id || $0.tokenHash == token.tokenHash }) else {
                throw RegistryError.invalidArgument("A token with this id or secret already exists.")
            }
            state.tokens.append(token)
            let (audit, events) = try Transitions.tokenCreated(token)
            return ((), audit, events)
        }
    }

    public func token(hash: String) async throws -> AccessToken? {
        state.withLock { state in state.tokens.first { TokenSecret.constantTimeEquals($0.tokenHash, hash) } }
    }

    public func tokens() async throws -> [AccessToken] {
        state.withLock { $0.tokens.filter { $0.revokedAt == nil } }
    }

    public func revokeToken(id: String, context: MutationContext) async throws {
        try write(context) { state in
            guard let index = state.tokens.firstIndex(where: { $0.id == id && $0.revokedAt == nil }) else {
                throw RegistryError(.notFound, "No token has id '\(id)'.")
            }
            let token = state.tokens[index]
            state.tokens[index].revokedAt = context.time
            let (audit, events) = try Transitions.tokenRevoked(token)
            return ((), audit, events)
        }
    }

    // MARK: Audit and events

    public func recordAudit(_ draft: AuditDraft, context: MutationContext) async throws {
        try write(context) { _ in ((), draft, []) }
    }

    public func auditEntries(_ query: AuditQuery) async throws -> Page<AuditEntry> {
        let all = state.withLock { $0.audit }
        let matching = all.filter { $0.sequence > query.after && (query.model == nil || $0.model == query.model) }
        let items = Array(matching.prefix(query.limit))
        let next = matching.count > query.limit ? items.last.map { PageToken.make(String($0.sequence)) } : nil
        return Page(items: items, nextPageToken: next)
    }

    public func auditHead() async throws -> (sequence: Int64, hash: String)? {
        state.withLock { $0.audit.last.map { ($0.sequence, $0.hash) } }
    }

    public func events(after: Int64, limit: Int) async throws -> [Event] {
        state.withLock { Array($0.events.lazy.filter { $0.id > after }.prefix(limit)) }
    }

    public func lastEventId() async throws -> Int64 {
        state.withLock { $0.events.last?.id ?? 0 }
    }

    public func waitForEvents(after: Int64, timeout: Duration) async throws {
        await signal.wait(after: after, timeout: timeout)
    }
}
