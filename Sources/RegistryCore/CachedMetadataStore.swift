import Synchronization

/// A `MetadataStore` that serves the hot point reads (a model, a version, a stage) from memory and passes every
/// write through to `base`, dropping the entries the write touched once it has committed.
///
/// Coherent when every write to `base` goes through this wrapper (one process owns the store, as on the embedded
/// default); with several writers (several registry instances on one database) give it a `ttl` that bounds how long
/// another instance's change can go unseen. Preconditions (`If-Match`) are always checked by `base` inside its
/// transaction, never against the cache, so a stale read can never let a stale write through.
public final class CachedMetadataStore<Base: MetadataStore>: MetadataStore {
    private struct VersionKey: Hashable, Sendable {
        let model: String
        let number: Int
    }

    private struct StageKey: Hashable, Sendable {
        let model: String
        let stage: String
    }

    private struct Entry<Value: Sendable>: Sendable {
        let value: Value
        let expires: ContinuousClock.Instant?
    }

    private struct State {
        /// Bumped by every invalidation; a read that started before a bump must not fill the cache.
        var generation: UInt64 = 0
        var models: [String: Entry<Model>] = [:]
        var versions: [VersionKey: Entry<ModelVersion>] = [:]
        var stages: [StageKey: Entry<Stage>] = [:]
        var count: Int { models.count + versions.count + stages.count }
    }

    public let base: Base
    private let ttl: Duration?
    private let capacity: Int
    private let state = Mutex(State())

    /// Wraps `base`; entries expire after `ttl` (never when nil) and the cache is emptied past `capacity` entries.
    public init(_ base: Base, ttl: Duration? = nil, capacity: Int = 200_000) {
        self.base = base
        self.ttl = ttl
        self.capacity = capacity
    }

    public func ping() async throws { try await base.ping() }

    // MARK: Cached reads

    public func model(named name: String) async throws -> Model? {
        try await cached(\.models, name) { try await self.base.model(named: name) }
    }

    public func version(model: String, number: Int) async throws -> ModelVersion? {
        try await cached(\.versions, VersionKey(model: model, number: number)) {
            try await self.base.version(model: model, number: number)
        }
    }

    public func stage(model: String, name: String) async throws -> Stage? {
        try await cached(\.stages, StageKey(model: model, stage: name)) {
            try await self.base.stage(model: model, name: name)
        }
    }

    private func cached<Key: Hashable & Sendable, Value: Sendable>(
        _ table: any WritableKeyPath<State, [Key: Entry<Value>]> & Sendable, _ key: Key,
        load: () async throws -> Value?
    ) async throws -> Value? {
        let now = ContinuousClock.now
        let (hit, generation) = state.withLock { state -> (Value?, UInt64) in
            if let entry = state[keyPath: table][key], entry.expires.map({ $0 > now }) ?? true {
                return (entry.value, state.generation)
            }
            return (nil, state.generation)
        }
        if let hit { return hit }
        guard let value = try await load() else { return nil }
        let expires = ttl.map { now.advanced(by: $0) }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.count >= capacity {
                state.models.removeAll()
                state.versions.removeAll()
                state.stages.removeAll()
            }
            state[keyPath: table][key] = Entry(value: value, expires: expires)
        }
        return value
    }

    private func invalidate(_ body: (inout State) -> Void) {
        state.withLock { state in
            state.generation &+= 1
            body(&state)
        }
    }

    // MARK: Writes pass through, then invalidate

    public func createModel(_ model: Model, context: MutationContext) async throws -> Model {
        defer { invalidate { $0.models[model.name] = nil } }
        return try await base.createModel(model, context: context)
    }

    public func updateModel(
        named name: String, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout Model) throws -> Transitions.ModelChange
    ) async throws -> Model {
        defer { invalidate { $0.models[name] = nil } }
        return try await base.updateModel(named: name, expectedRevision: expectedRevision, context: context, change)
    }

    public func createVersion(_ draft: ModelVersion, artifacts: [Digest], context: MutationContext) async throws
        -> ModelVersion
    {
        try await base.createVersion(draft, artifacts: artifacts, context: context)
    }

    public func updateVersion(
        model: String, number: Int, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout ModelVersion, VersionChangeContext) throws -> Transitions.VersionChange
    ) async throws -> ModelVersion {
        defer { invalidate { $0.versions[VersionKey(model: model, number: number)] = nil } }
        return try await base.updateVersion(
            model: model, number: number, expectedRevision: expectedRevision, context: context, change)
    }

    public func promote(
        model: String, stage: String, precondition: Transitions.StagePrecondition, version: Int, reason: String?,
        context: MutationContext
    ) async throws -> Stage {
        defer { invalidate { $0.stages[StageKey(model: model, stage: stage)] = nil } }
        return try await base.promote(
            model: model, stage: stage, precondition: precondition, version: version, reason: reason, context: context)
    }

    public func rollback(
        model: String, stage: String, expectedRevision: Int, reason: String?, context: MutationContext
    ) async throws -> Stage {
        defer { invalidate { $0.stages[StageKey(model: model, stage: stage)] = nil } }
        return try await base.rollback(
            model: model, stage: stage, expectedRevision: expectedRevision, reason: reason, context: context)
    }

    // MARK: Everything else goes straight to the base store

    public func models(_ query: ModelQuery) async throws -> Page<Model> { try await base.models(query) }

    public func versions(_ query: VersionQuery) async throws -> Page<ModelVersion> { try await base.versions(query) }

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

    public func auditEntries(_ query: AuditQuery) async throws -> Page<AuditEntry> {
        try await base.auditEntries(query)
    }

    public func auditHead() async throws -> (sequence: Int64, hash: String)? { try await base.auditHead() }

    public func events(after: Int64, limit: Int) async throws -> [Event] {
        try await base.events(after: after, limit: limit)
    }

    public func waitForEvents(after: Int64, timeout: Duration) async throws {
        try await base.waitForEvents(after: after, timeout: timeout)
    }
}
