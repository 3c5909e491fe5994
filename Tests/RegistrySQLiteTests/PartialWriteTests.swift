import Dispatch
import Foundation
import GRDB
import RegistryCore
import RegistrySQLite
import RegistryTesting
import Synchronization
import Testing

/// A mutation that fails after its state change and before its audit entry and events, inside a group-commit batch
/// with successful neighbours: its savepoint leaves nothing of it, the neighbours commit, every caller gets its own
/// answer. (The failures elsewhere in the suite fail on a precondition, before any row is written.)
@Suite(.timeLimit(.minutes(10)))
struct PartialWriteTests {
    @Test func aVersionCreationThatFailsHalfWayLeavesNothingWhileItsBatchCommits() async throws {
        let directory = try TemporaryDirectory()
        let gate = WriterGate()
        let store = try SQLiteMetadataStore(path: directory.databasePath, afterStateChange: gate.hook)
        _ = try await store.createModel(model("fraud"), context: context("alice"))

        let actors = (0..<8).map { $0 == 3 ? WriterGate.victim : "writer-\($0)" }
        let outcomes = try await gate.inOneBatch(of: store, count: actors.count) {
            await withTaskGroup(of: (String, Result<ModelVersion, any Error>).self) { group in
                for actor in actors {
                    group.addTask {
                        let draft = ModelVersion(
                            model: "fraud", version: 0, manifestDigest: Digest(of: Array(actor.utf8)), size: 42,
                            tags: ["by": actor], createdBy: "ignored", createdAt: Timestamp.now())
                        let result = await Result {
                            try await store.createVersion(
                                draft, artifacts: [Digest(of: Array(actor.utf8))], context: context(actor))
                        }
                        return (actor, result)
                    }
                }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
        }

        // Every caller has its own answer: the victim the injected error, each neighbour its own version.
        try gate.expectInjectedFailure(outcomes[WriterGate.victim])
        var numbers: [Int] = []
        for actor in actors where actor != WriterGate.victim {
            let version = try #require(try outcomes[actor]?.get(), "\(actor) was answered")
            #expect(version.createdBy == actor)
            #expect(version.tags["by"] == actor)
            numbers.append(version.version)
        }
        // The failed change consumed no number: the neighbours in its batch number densely from 1.
        #expect(numbers.sorted() == Array(1...7))
        let listed = try await store.versions(VersionQuery(model: "fraud", limit: 100)).items
        #expect(listed.map(\.version) == Array((1...7).reversed()))
        #expect(!listed.contains { $0.createdBy == WriterGate.victim })
        #expect(
            try await store.versions(
                VersionQuery(model: "fraud", tag: .init(key: "by", value: WriterGate.victim), limit: 10)
            ).items.isEmpty)

        // Logs: model creations (2) and the seven versions, no trace of the victim; the chain verifies.
        let audit = try await store.auditEntries(AuditQuery(limit: 100)).items
        #expect(audit.map(\.action) == ["model.create", "model.create"] + Array(repeating: "version.create", count: 7))
        #expect(!audit.contains { $0.actor == WriterGate.victim })
        let events = try await store.events(after: 0, limit: 100)
        #expect(events.filter { $0.type == EventType.versionCreated }.count == 7)
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.id + 1 == $1.id }, "no event id was consumed")
        let verification = try await store.verifyAudit()
        #expect(verification.ok)
        #expect(verification.entries == 9)

        // Numbering continues after the neighbours.
        let next = try await store.createVersion(
            ModelVersion(
                model: "fraud", version: 0, manifestDigest: Digest(of: [8]), size: 1, createdBy: "ignored",
                createdAt: Timestamp.now()),
            artifacts: [], context: context("writer-8"))
        #expect(next.version == 8)
        try store.close()

        // And in the rows themselves: no version row, tag row or artifact reference of the victim.
        let database = try DatabaseQueue(path: directory.databasePath)
        let counts = try await database.read { db in
            [
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM versions WHERE created_by = ?", arguments: [WriterGate.victim]),
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM version_tags WHERE value = ?", arguments: [WriterGate.victim]),
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM artifact_references WHERE digest = ?",
                    arguments: [Digest(of: Array(WriterGate.victim.utf8)).description]),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM versions"),
            ]
        }
        #expect(counts == [0, 0, 0, 8], "victim's version, tag and reference rows, then all version rows")
        try database.close()
    }

    @Test func aPromotionThatFailsHalfWayKeepsTheStageWhileItsBatchCommits() async throws {
        let directory = try TemporaryDirectory()
        let gate = WriterGate()
        let store = try SQLiteMetadataStore(path: directory.databasePath, afterStateChange: gate.hook)
        _ = try await store.createModel(model("fraud"), context: context("alice"))
        for _ in 1...2 {
            let created = try await store.createVersion(
                ModelVersion(
                    model: "fraud", version: 0, manifestDigest: Digest(of: Array(UUID().uuidString.utf8)), size: 1,
                    createdBy: "ignored", createdAt: Timestamp.now()),
                artifacts: [], context: context("alice"))
            let approval = context("bob")
            _ = try await store.updateVersion(
                model: "fraud", number: created.version, expectedRevision: created.revision, context: approval
            ) { version, change in
                try Transitions.decide(
                    &version, decision: .approve, comment: nil, by: "bob", policy: change.model.approvalPolicy,
                    context: approval)
            }
        }
        let production = try await store.promote(
            model: "fraud", stage: "production", precondition: .absent, version: 1, reason: nil,
            context: context("dave"))
        let before = try await store.auditHead()?.sequence ?? 0
        let first = try #require(try await store.version(model: "fraud", number: 1))

        // The victim moves production to 2; its neighbours open staging at 2 and add a tag to version 1.
        let outcomes = try await gate.inOneBatch(of: store, count: 3) {
            async let victim = Result {
                try await store.promote(
                    model: "fraud", stage: "production", precondition: .revision(production.revision), version: 2,
                    reason: "half-way", context: context(WriterGate.victim))
            }
            async let staging = Result {
                try await store.promote(
                    model: "fraud", stage: "staging", precondition: .absent, version: 2, reason: nil,
                    context: context("erin"))
            }
            async let tagged = Result {
                try await store.updateVersion(
                    model: "fraud", number: 1, expectedRevision: first.revision, context: context("frank")
                ) { version, _ in
                    version.tags["checked"] = "yes"
                    return .update
                }
            }
            return await (victim, staging, tagged)
        }

        try gate.expectInjectedFailure(outcomes.0.map { _ in "promoted" })
        #expect(try outcomes.1.get().version == 2)
        #expect(try outcomes.2.get().tags["checked"] == "yes")
        let kept = try #require(try await store.stage(model: "fraud", name: "production"))
        #expect(kept.version == 1)
        #expect(kept.revision == production.revision)
        let history = try await store.history(model: "fraud", stage: "production", after: nil, limit: 10).items
        #expect(history.map(\.toVersion) == [1], "no history row for the failed promotion")
        let added = try await store.auditEntries(AuditQuery(after: before, limit: 10)).items
        #expect(Set(added.map(\.actor)) == [WriterGate.holder, "erin", "frank"], "no entry of the victim")
        #expect(try await store.verifyAudit().ok)
        let promotions = try await store.events(after: 0, limit: 100).filter { $0.type == EventType.stagePromoted }
        #expect(promotions.map(\.data["stage"]) == ["production", "staging"])
        // The stage still moves at its old revision: the failure left no revision behind.
        let moved = try await store.promote(
            model: "fraud", stage: "production", precondition: .revision(production.revision), version: 2,
            reason: nil, context: context("dave"))
        #expect(moved.version == 2)
        try store.close()
    }
}

/// The test hook of one store: holds the writer inside the mutation of `holder` until a batch has queued behind
/// it, and fails the mutation of `victim` half-way (after its state change, before its audit entry and events).
final class WriterGate: Sendable {
    static let holder = "holder"
    static let victim = "victim"
    static let failure = RegistryError(.unavailable, "Injected after the state change, before the audit entry.")

    private let holding = Mutex(false)
    private let release = DispatchSemaphore(value: 0)

    var hook: SQLiteMetadataStore.AfterStateChange {
        { [self] _, context in
            switch context.actor {
            case Self.holder:
                holding.withLock { $0 = true }
                // Bounded, so that a test that fails before opening the gate cannot wedge the writer for good.
                _ = release.wait(timeout: .now() + .seconds(120))
            case Self.victim:
                throw Self.failure
            default:
                break
            }
        }
    }

    /// Runs `mutations` (which start `count` store writes) as one group-commit batch: a mutation by `holder` holds
    /// the writer while they queue behind it, and the gate opens once all `count` are queued.
    func inOneBatch<T: Sendable>(
        of store: SQLiteMetadataStore, count: Int, _ mutations: @Sendable @escaping () async throws -> T
    ) async throws -> T {
        let held = Task {
            try await store.createModel(model("held-open"), context: context(Self.holder))
        }
        try await waitUntil("the writer is held") { holding.withLock { $0 } }
        let batch = Task { try await mutations() }
        try await waitUntil("\(count) writes are queued") { store.queuedWrites == count }
        release.signal()
        _ = try await held.value
        return try await batch.value
    }

    func expectInjectedFailure<T>(
        _ outcome: Result<T, any Error>?, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        switch outcome {
        case .failure(let error as RegistryError):
            #expect(error == Self.failure, sourceLocation: sourceLocation)
        case let other:
            Issue.record("the victim was answered \(String(describing: other))", sourceLocation: sourceLocation)
        }
    }
}

private func context(_ actor: String) -> MutationContext {
    MutationContext(actor: actor, requestId: "req-\(actor)-\(UUID().uuidString.prefix(8))")
}

private func model(_ name: String) -> Model {
    Model(
        name: name, description: "", createdBy: "alice", grants: [Grant(subject: "alice", role: .owner)],
        createdAt: Timestamp.now())
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
