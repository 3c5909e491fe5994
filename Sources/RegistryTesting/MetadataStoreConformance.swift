import Foundation
import RegistryCore
import Testing

/// The behaviour every `MetadataStore` backend must show; a backend runs every case on a fresh, empty store:
///
/// ```swift
/// @Test(arguments: MetadataStoreConformance.cases)
/// func conformance(_ c: ConformanceCase) async throws { try await c.run(makeFreshStore()) }
/// ```
public enum MetadataStoreConformance {
    public static let cases: [ConformanceCase] =
        modelCases + versionCases + stageCases + rolloutCases + tokenCases + auditCases + eventCases + concurrencyCases
        + collectionCases
}

/// One named behaviour of the conformance suite, run against a fresh store.
public struct ConformanceCase: Sendable, CustomTestStringConvertible {
    public let name: String
    public let run: @Sendable (any MetadataStore) async throws -> Void

    public init(_ name: String, _ run: @escaping @Sendable (any MetadataStore) async throws -> Void) {
        self.name = name
        self.run = run
    }

    public var testDescription: String { name }
}

// MARK: Fixtures shared by the cases

extension MetadataStoreConformance {
    public static func context(_ actor: String = "alice", time: Date = Timestamp.now()) -> MutationContext {
        MutationContext(actor: actor, requestId: "req-\(UUID().uuidString.prefix(8))", time: time)
    }

    public static func model(
        _ name: String, createdBy: String = "alice", tags: [String: String] = [:], grants: [Grant]? = nil,
        policy: ApprovalPolicy = .init()
    ) -> Model {
        Model(
            name: name, description: "The \(name) model", tags: tags, createdBy: createdBy, approvalPolicy: policy,
            grants: grants ?? [Grant(subject: createdBy, role: .owner)], revision: 1, createdAt: Timestamp.now())
    }

    static func digest(_ seed: String) -> Digest {
        Digest(of: Array(seed.utf8))
    }

    public static func draft(_ model: String, tags: [String: String] = [:], seed: String = UUID().uuidString)
        -> ModelVersion
    {
        ModelVersion(
            model: model, version: 0, manifestDigest: digest(seed), size: 42, tags: tags, createdBy: "ignored",
            createdAt: Timestamp.now())
    }

    @discardableResult
    public static func createModel(_ store: any MetadataStore, _ model: Model) async throws -> Model {
        try await store.createModel(model, context: context(model.createdBy))
    }

    @discardableResult
    public static func createVersion(
        _ store: any MetadataStore, _ model: String, tags: [String: String] = [:], artifacts: [Digest] = [],
        by actor: String = "alice"
    ) async throws -> ModelVersion {
        try await store.createVersion(draft(model, tags: tags), artifacts: artifacts, context: context(actor))
    }

    /// Records `decision` by `subject` under the model's policy, as the server does.
    @discardableResult
    public static func decide(
        _ store: any MetadataStore, _ model: String, _ number: Int, _ decision: Decision = .approve,
        by subject: String = "bob"
    ) async throws -> ModelVersion {
        let current = try #require(try await store.version(model: model, number: number))
        let context = context(subject)
        return try await store.updateVersion(
            model: model, number: number, expectedRevision: current.revision, context: context
        ) { version, change in
            try Transitions.decide(
                &version, decision: decision, comment: "looks \(decision.rawValue)", by: subject,
                policy: change.model.approvalPolicy, context: context)
        }
    }

    /// Creates a version and approves it with the default policy.
    @discardableResult
    public static func approvedVersion(_ store: any MetadataStore, _ model: String) async throws -> ModelVersion {
        let version = try await createVersion(store, model)
        return try await decide(store, model, version.version)
    }

    @discardableResult
    public static func promote(
        _ store: any MetadataStore, _ model: String, _ stage: String, to version: Int,
        _ precondition: Transitions.StagePrecondition? = nil, reason: String? = nil, by actor: String = "dave"
    ) async throws -> Stage {
        let resolved: Transitions.StagePrecondition
        if let precondition {
            resolved = precondition
        } else if let current = try await store.stage(model: model, name: stage) {
            resolved = .revision(current.revision)
        } else {
            resolved = .absent
        }
        return try await store.promote(
            model: model, stage: stage, precondition: resolved, version: version, reason: reason,
            context: context(actor))
    }

    /// Runs `body`, expecting it to throw a `RegistryError` with `code`; returns that error.
    @discardableResult
    static func expectError(
        _ code: RegistryError.Code, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> Void
    ) async -> RegistryError? {
        do {
            try await body()
            Issue.record("Expected \(code) but the call succeeded.", sourceLocation: sourceLocation)
        } catch let error as RegistryError {
            #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
            return error
        } catch {
            Issue.record("Expected \(code) but got \(error).", sourceLocation: sourceLocation)
        }
        return nil
    }

    /// How far the audit and event logs have grown.
    struct LogPosition: Equatable {
        var auditSequence: Int64
        var lastEventId: Int64
    }

    static func logPosition(_ store: any MetadataStore) async throws -> LogPosition {
        let audit = try await store.auditHead()?.sequence ?? 0
        let events = try await allEvents(store)
        return LogPosition(auditSequence: audit, lastEventId: events.last?.id ?? 0)
    }

    public static func allEvents(_ store: any MetadataStore, after: Int64 = 0) async throws -> [Event] {
        var result: [Event] = []
        var cursor = after
        while true {
            let page = try await store.events(after: cursor, limit: 500)
            result += page
            guard let last = page.last, page.count == 500 else { return result }
            cursor = last.id
        }
    }

    public static func allAudit(_ store: any MetadataStore, model: String? = nil) async throws -> [AuditEntry] {
        var result: [AuditEntry] = []
        var after: Int64 = 0
        while true {
            let page = try await store.auditEntries(AuditQuery(model: model, after: after, limit: 500))
            result += page.items
            guard let last = page.items.last, page.nextPageToken != nil else { return result }
            after = last.sequence
        }
    }

    /// Expects `body` to fail with `code` and to leave the audit and event logs untouched.
    @discardableResult
    static func expectFailureWritesNothing(
        _ store: any MetadataStore, _ code: RegistryError.Code, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> Void
    ) async throws -> RegistryError? {
        let before = try await logPosition(store)
        let error = await expectError(code, sourceLocation: sourceLocation, body)
        let after = try await logPosition(store)
        #expect(
            before == after, "a failed mutation must append no audit entry and no event", sourceLocation: sourceLocation
        )
        return error
    }

    /// The `revision` in a `REVISION_MISMATCH` error's `details.current`.
    static func currentRevision(_ error: RegistryError?) -> Int? {
        guard case .number(let value)? = error?.details["current"]?["revision"] else { return nil }
        return Int(value)
    }
}
