import Foundation
import Synchronization

/// A `MetadataStore` that serves the hot point reads (a model, a version, a stage) from memory and passes every
/// write through to `base`, dropping the entries the write touched once it has committed.
///
/// Coherent when every write to `base` goes through this wrapper (one process owns the store, as on the embedded
/// default). With several writers (several registry instances on one database) the store must report the other
/// instances' changes to `invalidate(model:)` (PostgreSQL's `LISTEN`), or the cache needs a `ttl` that bounds how
/// long another instance's change can go unseen. Preconditions (`If-Match`) are always checked by `base` inside its
/// transaction, never against the cache, so a stale read can never let a stale write through.
public final class CachedMetadataStore<Base: MetadataStore>: MetadataStore {
    public let base: Base
    /// Distinct version-list queries remembered per model.
    static var pagesPerModel: Int { 32 }
    private let ttl: Duration?
    private let capacity: Int
    private let state = Mutex(CacheState())
    private let writes = Mutex<(next: Int64, inFlight: Set<Int64>)>((0, []))
    /// The last write ticket at or below which every write has dropped its stale entries; `waitForEvents` waits on
    /// it instead of polling.
    let settled = ChangeSignal()

    /// Wraps `base`; entries expire after `ttl` (never when nil) and the cache is emptied past `capacity` entries.
    public init(_ base: Base, ttl: Duration? = nil, capacity: Int = 200_000) {
        self.base = base
        self.ttl = ttl
        self.capacity = capacity
    }

    public func ping() async throws { try await base.ping() }

    // MARK: Cached reads

    public func model(named name: String) async throws -> Model? {
        try await cached(read: { $0.models[name] }, write: { $0.models[name] = $1 }) {
            try await self.base.model(named: name)
        }
    }

    public func version(model: String, number: Int) async throws -> ModelVersion? {
        let key = VersionKey(model: model, number: number)
        return try await cached(read: { $0.versions[key] }, write: { $0.versions[key] = $1 }) {
            try await self.base.version(model: model, number: number)
        }
    }

    public func stage(model: String, name: String) async throws -> Stage? {
        let key = StageKey(model: model, stage: name)
        return try await cached(read: { $0.stages[key] }, write: { $0.stages[key] = $1 }) {
            try await self.base.stage(model: model, name: name)
        }
    }

    /// Pages of a model's versions, kept until a version of that model is created or changed.
    public func versions(_ query: VersionQuery) async throws -> Page<ModelVersion> {
        let page = try await cached(
            read: { $0.versionPages[query.model]?[query] },
            write: { state, entry in
                // Each model keeps a few query shapes; an unusual caller cycling through many cannot grow it.
                if state.versionPages[query.model]?.count ?? 0 >= Self.pagesPerModel {
                    state.versionPages[query.model] = nil
                }
                state.versionPages[query.model, default: [:]][query] = entry
            }
        ) { try await self.base.versions(query) }
        // `base` never answers nil for a page; an empty one is still a page.
        return page ?? Page(items: [], nextPageToken: nil)
    }

    /// Serves from the cache entry `read` finds, or loads, stores through `write` and returns the value.
    ///
    /// Closures rather than key paths: a key path into the state of a generic class is instantiated at run time on
    /// every call, which cost more than the lookup it guards.
    private func cached<Value: Sendable>(
        read: (CacheState) -> CacheEntry<Value>?, write: (inout CacheState, CacheEntry<Value>) -> Void,
        load: () async throws -> Value?
    ) async throws -> Value? {
        let now = ContinuousClock.now
        let (hit, generation) = state.withLock { state -> (Value?, UInt64) in
            if let entry = read(state), entry.expires.map({ $0 > now }) ?? true {
                return (entry.value, state.generation)
            }
            return (nil, state.generation)
        }
        if let hit { return hit }
        guard let value = try await load() else { return nil }
        let expires = ttl.map { now.advanced(by: $0) }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.count >= capacity { state.removeAll() }
            write(&state, CacheEntry(value: value, expires: expires))
        }
        return value
    }

    /// Marks a write as in flight: `waitForEvents` does not return while a write that may have committed the
    /// awaited event has yet to drop its stale entries, so a watcher woken by an event never reads what it replaced.
    func beginWrite() -> Int64 {
        writes.withLock { writes in
            writes.next += 1
            writes.inFlight.insert(writes.next)
            return writes.next
        }
    }

    /// Drops the entries the write touched, then ends it.
    private func finishWrite(_ ticket: Int64, _ body: (inout CacheState) -> Void) {
        invalidate(body)
        endWrite(ticket)
    }

    /// Ends a write whose entries are dropped and wakes the watchers that waited for it.
    func endWrite(_ ticket: Int64) {
        let settledUpTo = writes.withLock { writes -> Int64 in
            writes.inFlight.remove(ticket)
            return (writes.inFlight.min() ?? writes.next + 1) - 1
        }
        settled.advance(to: settledUpTo)
    }

    /// Drops everything cached of `model` (everything when nil): for a change this cache did not see, made by
    /// another instance on a shared database. Call it before waking those who wait for that change's events.
    public func invalidate(model: String?) {
        invalidate { state in
            guard let model else {
                state.removeAll()
                return
            }
            state.models[model] = nil
            state.versions = state.versions.filter { $0.key.model != model }
            state.stages = state.stages.filter { $0.key.model != model }
            state.versionPages[model] = nil
        }
    }

    private func invalidate(_ body: (inout CacheState) -> Void) {
        state.withLock { state in
            state.generation &+= 1
            body(&state)
        }
    }

    // MARK: Writes pass through, then invalidate

    /// Drops the model whose trust policy a guarded write checked: the store may have refused the write because the
    /// policy changed (`TRUST_POLICY_CHANGED`), and the caller's retry must then see the new one.
    private static func dropCheckedModel(_ state: inout CacheState, _ context: MutationContext) {
        if let checked = context.checkedTrustPolicy { state.models[checked.model] = nil }
    }

    public func createModel(_ model: Model, context: MutationContext) async throws -> Model {
        let ticket = beginWrite()
        defer { finishWrite(ticket) { $0.models[model.name] = nil } }
        return try await base.createModel(model, context: context)
    }

    public func updateModel(
        named name: String, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout Model) throws -> Transitions.ModelChange
    ) async throws -> Model {
        let ticket = beginWrite()
        defer {
            finishWrite(ticket) {
                $0.models[name] = nil
                $0.versionPages[name] = nil
            }
        }
        return try await base.updateModel(named: name, expectedRevision: expectedRevision, context: context, change)
    }

    public func createVersion(_ draft: ModelVersion, artifacts: [Digest], context: MutationContext) async throws
        -> ModelVersion
    {
        let ticket = beginWrite()
        defer { finishWrite(ticket) { $0.versionPages[draft.model] = nil } }
        return try await base.createVersion(draft, artifacts: artifacts, context: context)
    }

    public func updateVersion(
        model: String, number: Int, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout ModelVersion, VersionChangeContext) throws -> Transitions.VersionChange
    ) async throws -> ModelVersion {
        let ticket = beginWrite()
        defer {
            finishWrite(ticket) {
                $0.versions[VersionKey(model: model, number: number)] = nil
                $0.versionPages[model] = nil
            }
        }
        return try await base.updateVersion(
            model: model, number: number, expectedRevision: expectedRevision, context: context, change)
    }

    public func promote(
        model: String, stage: String, precondition: Transitions.StagePrecondition, version: Int, reason: String?,
        context: MutationContext
    ) async throws -> Stage {
        let ticket = beginWrite()
        defer {
            finishWrite(ticket) {
                Self.dropCheckedModel(&$0, context)
                $0.stages[StageKey(model: model, stage: stage)] = nil
            }
        }
        return try await base.promote(
            model: model, stage: stage, precondition: precondition, version: version, reason: reason, context: context)
    }

    public func rollback(
        model: String, stage: String, expectedRevision: Int, target: Int?, reason: String?, context: MutationContext
    ) async throws -> Stage {
        let ticket = beginWrite()
        defer {
            finishWrite(ticket) {
                Self.dropCheckedModel(&$0, context)
                $0.stages[StageKey(model: model, stage: stage)] = nil
            }
        }
        return try await base.rollback(
            model: model, stage: stage, expectedRevision: expectedRevision, target: target, reason: reason,
            context: context)
    }

    public func startRollout(_ draft: Rollout, expectedStageRevision: Int, context: MutationContext) async throws
        -> Rollout
    {
        let ticket = beginWrite()
        defer {
            finishWrite(ticket) {
                Self.dropCheckedModel(&$0, context)
                $0.stages[StageKey(model: draft.model, stage: draft.stage)] = nil
            }
        }
        return try await base.startRollout(draft, expectedStageRevision: expectedStageRevision, context: context)
    }

    public func updateRollout(
        id: String, expectedRevision: Int?, context: MutationContext,
        _ change: @escaping @Sendable (inout Rollout) throws -> RolloutRules.Change
    ) async throws -> Rollout {
        // An update may move the rollout's stage (a step, a completion, an abort); the result names that stage, and
        // a failed update changed nothing.
        let ticket = beginWrite()
        do {
            let updated = try await base.updateRollout(
                id: id, expectedRevision: expectedRevision, context: context, change)
            finishWrite(ticket) { $0.stages[StageKey(model: updated.model, stage: updated.stage)] = nil }
            return updated
        } catch {
            finishWrite(ticket) { _ in }
            throw error
        }
    }

    public func recordReport(
        _ report: InstanceReport, rollout id: String, model: String, stage: String, maxInstances: Int,
        context: MutationContext
    ) async throws -> ReportOutcome {
        // A report may move the stage (exposure beginning, an abort); one that only records changes no cached entry.
        let ticket = beginWrite()
        do {
            let outcome = try await base.recordReport(
                report, rollout: id, model: model, stage: stage, maxInstances: maxInstances, context: context)
            finishWrite(ticket) { entries in
                if outcome.change != .report { entries.stages[StageKey(model: model, stage: stage)] = nil }
            }
            return outcome
        } catch {
            finishWrite(ticket) { _ in }
            throw error
        }
    }

    // MARK: Everything else goes straight to the base store

    public func rollout(id: String) async throws -> Rollout? { try await base.rollout(id: id) }

    public func activeRollouts() async throws -> [Rollout] { try await base.activeRollouts() }

    public func reportSummary(rollout id: String, now: Date) async throws -> ReportSummary {
        try await base.reportSummary(rollout: id, now: now)
    }

    public func models(_ query: ModelQuery) async throws -> Page<Model> { try await base.models(query) }

    public func models(referencing digest: Digest) async throws -> [String] {
        try await base.models(referencing: digest)
    }

    public func stages(model: String) async throws -> [Stage] { try await base.stages(model: model) }

    public func history(model: String, stage: String, after: Int?, limit: Int) async throws -> Page<StageHistoryEntry> {
        try await base.history(model: model, stage: stage, after: after, limit: limit)
    }

    public func createToken(_ token: AccessToken, context: MutationContext) async throws {
        try await base.createToken(token, context: context)
    }

    public func token(hash: String) async throws -> AccessToken? { try await base.token(hash: hash) }

    public func tokens() async throws -> [AccessToken] { try await base.tokens() }

    public func revokeToken(id: String, context: MutationContext) async throws {
        try await base.revokeToken(id: id, context: context)
    }

    public func recordAudit(_ draft: AuditDraft, context: MutationContext) async throws {
        try await base.recordAudit(draft, context: context)
    }

    public func recordAudits(_ entries: [(draft: AuditDraft, context: MutationContext)]) async throws {
        try await base.recordAudits(entries)
    }

    public func auditEntries(_ query: AuditQuery) async throws -> Page<AuditEntry> {
        try await base.auditEntries(query)
    }

    public func auditHead() async throws -> (sequence: Int64, hash: String)? { try await base.auditHead() }

    public func events(after: Int64, limit: Int) async throws -> [Event] {
        try await base.events(after: after, limit: limit)
    }

    public func waitForEvents(after: Int64, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        try await base.waitForEvents(after: after, timeout: timeout)
        // The event may come from a write through this cache that has not dropped its stale entries yet: wait until
        // every write begun by now has (they finish within a transaction's time; a stuck one holds the caller no
        // longer than the timeout it gave).
        let horizon = writes.withLock { $0.next }
        let remaining = deadline - ContinuousClock.now
        if remaining > .zero { await settled.wait(after: horizon - 1, timeout: remaining) }
    }

    public func lastEventId() async throws -> Int64 { try await base.lastEventId() }
}

private struct VersionKey: Hashable, Sendable {
    let model: String
    let number: Int
}

private struct StageKey: Hashable, Sendable {
    let model: String
    let stage: String
}

private struct CacheEntry<Value: Sendable>: Sendable {
    let value: Value
    let expires: ContinuousClock.Instant?
}

private struct CacheState {
    /// Bumped by every invalidation; a read that started before a bump must not fill the cache.
    var generation: UInt64 = 0
    var models: [String: CacheEntry<Model>] = [:]
    var versions: [VersionKey: CacheEntry<ModelVersion>] = [:]
    var stages: [StageKey: CacheEntry<Stage>] = [:]
    /// Pages of version lists, by model and then by query.
    var versionPages: [String: [VersionQuery: CacheEntry<Page<ModelVersion>>]] = [:]
    var count: Int { models.count + versions.count + stages.count + versionPages.count }

    mutating func removeAll() {
        models.removeAll()
        versions.removeAll()
        stages.removeAll()
        versionPages.removeAll()
    }
}
