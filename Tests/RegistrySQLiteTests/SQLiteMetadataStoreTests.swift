import Foundation
import GRDB
import RegistryCore
import RegistryTesting
import Testing

@testable import RegistrySQLite

/// A temporary directory removed when the test ends.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sqlite-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// A database path in a nested directory the store must create.
    var databasePath: String { path + "/nested/dir/registry.sqlite" }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite(.timeLimit(.minutes(10))) struct SQLiteMetadataStoreConformanceTests {
    @Test(arguments: MetadataStoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await conformanceCase.run(store)
        try store.close()
    }
}

@Suite(.timeLimit(.minutes(10))) struct SQLiteMetadataStoreTests {
    let context = MutationContext(actor: "alice", requestId: "req-1")

    @Test func theDatabaseAndItsWALAreReadableByTheOwnerOnly() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await populate(store)
        for file in [directory.databasePath, directory.databasePath + "-wal"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: file)
            #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o777 } == 0o600, "\(file)")
        }
        try store.close()
        // A database created by an older version (0644) is narrowed when it is opened.
        chmod(directory.databasePath, 0o644)
        let reopened = try SQLiteMetadataStore(path: directory.databasePath)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.databasePath)
        #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o777 } == 0o600)
        try reopened.close()
    }

    /// Fills a store with a model, two versions (one approved and promoted) and a token.
    func populate(_ store: SQLiteMetadataStore) async throws {
        let model = Model(
            name: "fraud", tags: ["team": "risk"], createdBy: "alice",
            grants: [Grant(subject: "alice", role: .owner), Grant(subject: "bob", role: .approver)],
            createdAt: context.time)
        _ = try await store.createModel(model, context: context)
        for seed in ["one", "two"] {
            let draft = ModelVersion(
                model: "fraud", version: 0, manifestDigest: Digest(of: Array(seed.utf8)), size: 3,
                metadata: ["seed": .string(seed)], tags: ["seed": seed], createdBy: "alice", createdAt: context.time)
            _ = try await store.createVersion(draft, artifacts: [Digest(of: Array(seed.utf8))], context: context)
        }
        let reviewer = MutationContext(actor: "bob", requestId: "req-2")
        _ = try await store.updateVersion(model: "fraud", number: 1, expectedRevision: 1, context: reviewer) { v, c in
            try Transitions.decide(
                &v, decision: .approve, comment: nil, by: "bob", policy: c.model.approvalPolicy, context: reviewer)
        }
        _ = try await store.promote(
            model: "fraud", stage: "production", precondition: .absent, version: 1, reason: "launch", context: context)
        let (token, _) = AdminBootstrap.newToken(subject: "bob", admin: false, createdBy: "alice", time: context.time)
        try await store.createToken(token, context: context)
    }

    @Test func reopeningTheFileSeesEverythingCommitted() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await populate(store)
        let model = try await store.model(named: "fraud")
        let versions = try await store.versions(VersionQuery(model: "fraud"))
        let stage = try await store.stage(model: "fraud", name: "production")
        let history = try await store.history(model: "fraud", stage: "production", after: nil, limit: 10)
        let tokens = try await store.tokens()
        let audit = try await store.auditEntries(AuditQuery(limit: 100))
        let events = try await store.events(after: 0, limit: 100)
        let head = try #require(try await store.auditHead())
        try store.close()

        let reopened = try SQLiteMetadataStore(path: directory.databasePath)
        #expect(try await reopened.model(named: "fraud") == model)
        #expect(try await reopened.versions(VersionQuery(model: "fraud")).items == versions.items)
        #expect(try await reopened.stage(model: "fraud", name: "production") == stage)
        #expect(
            try await reopened.history(model: "fraud", stage: "production", after: nil, limit: 10).items
                == history.items)
        #expect(try await reopened.tokens() == tokens)
        #expect(try await reopened.auditEntries(AuditQuery(limit: 100)).items == audit.items)
        #expect(try await reopened.events(after: 0, limit: 100) == events)
        #expect(try await reopened.auditHead()?.hash == head.hash)
        #expect(try await reopened.models(referencing: Digest(of: Array("two".utf8))) == ["fraud"])
        #expect(try await reopened.verifyAudit().ok)

        // Numbering, event ids and the audit chain continue where they left off.
        let next = try await reopened.createVersion(
            ModelVersion(
                model: "fraud", version: 0, manifestDigest: Digest(of: Array("three".utf8)), size: 1, createdBy: "x",
                createdAt: context.time),
            artifacts: [], context: context)
        #expect(next.version == 3)
        let newEvents = try await reopened.events(after: events.last?.id ?? 0, limit: 10)
        #expect(newEvents.map(\.type) == [EventType.versionCreated])
        #expect(
            try await reopened.verifyAudit()
                == AuditChain.Verification(
                    ok: true, entries: head.sequence + 1, headHash: try #require(try await reopened.auditHead()).hash))
        try reopened.close()
    }

    @Test func waitingAfterReopenStartsFromTheLastStoredEvent() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await populate(store)
        let last = try #require(try await store.events(after: 0, limit: 100).last?.id)
        try store.close()
        let reopened = try SQLiteMetadataStore(path: directory.databasePath)
        let clock = ContinuousClock()
        let start = clock.now
        // The earlier events are already committed, so this wait returns at once rather than at its timeout
        // (which is far longer than any scheduling delay on a loaded machine).
        try await reopened.waitForEvents(after: last - 1, timeout: .seconds(300))
        #expect(clock.now - start < .seconds(300))
        try reopened.close()
    }

    @Test(arguments: ["after", "actor", "before", "time"])
    func alteringAnAuditRowIsDetectedAtThatRow(column: String) async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await populate(store)
        let entries = try await store.auditEntries(AuditQuery(limit: 100)).items
        #expect(entries.count == 6)
        #expect(try await store.verifyAudit().ok)
        try store.close()

        let tampered: Int64 = 3
        let queue = try DatabaseQueue(path: directory.databasePath)
        let value: DatabaseValue = column == "time" ? Int64(1).databaseValue : #"{"forged":true}"#.databaseValue
        try await queue.write { db in
            try db.execute(sql: "UPDATE audit SET \(column) = ? WHERE sequence = ?", arguments: [value, tampered])
            #expect(db.changesCount == 1)
        }
        try queue.close()

        let reopened = try SQLiteMetadataStore(path: directory.databasePath)
        let verification = try await reopened.verifyAudit()
        #expect(!verification.ok)
        #expect(verification.firstBadSequence == tampered)
        try reopened.close()
    }

    @Test func deletingAMiddleAuditRowIsDetectedAtThatSequence() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await populate(store)
        try store.close()

        let queue = try DatabaseQueue(path: directory.databasePath)
        try await queue.write { db in try db.execute(sql: "DELETE FROM audit WHERE sequence = 4") }
        try queue.close()

        let reopened = try SQLiteMetadataStore(path: directory.databasePath)
        let verification = try await reopened.verifyAudit()
        #expect(!verification.ok)
        #expect(verification.firstBadSequence == 4)
        try reopened.close()
    }

    @Test func truncatingTheAuditTailIsDetectedThroughTheRecordedHead() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await populate(store)
        try store.close()

        let queue = try DatabaseQueue(path: directory.databasePath)
        try await queue.write { db in try db.execute(sql: "DELETE FROM audit WHERE sequence >= 5") }
        try queue.close()

        let reopened = try SQLiteMetadataStore(path: directory.databasePath)
        let verification = try await reopened.verifyAudit()
        #expect(!verification.ok)
        #expect(verification.firstBadSequence == 5)
        try reopened.close()
    }

    @Test func theDatabaseRunsInWALModeWithFullSynchronousCommitsAndMigrations() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await store.ping()
        // 2 is FULL; it matters on the writer connection, where commits happen.
        #expect(try await store.pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        #expect(try await store.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA foreign_keys") } == 1)
        try store.close()
        let queue = try DatabaseQueue(path: directory.databasePath)
        let mode = try await queue.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        let migrations = try await queue.read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        }
        #expect(migrations == ["v1", "v2", "v3", "v4", "v5"])
        try queue.close()
    }

    @Test func aVersionOneDatabaseMigratesAndItsModelsGetTheEmptyTrustPolicy() async throws {
        let directory = try TemporaryDirectory()
        try FileManager.default.createDirectory(
            atPath: (directory.databasePath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: directory.databasePath)
        try SQLiteMetadataStore.migrator.migrate(queue, upTo: "v1")
        try await queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO models (name, description, tags, created_by, approval_policy, revision, created_at,
                        updated_at)
                    VALUES ('legacy', '', '{}', 'alice', '{}', 3, 0, 0)
                    """)
        }
        try queue.close()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        let legacy = try #require(try await store.model(named: "legacy"))
        #expect(legacy.trustPolicy == TrustPolicy())
        #expect(legacy.revision == 3)
        let key = SigningKey.generate(.ed25519).publicKey
        let updated = try await store.updateModel(named: "legacy", expectedRevision: 3, context: context) { model in
            model.trustPolicy = TrustPolicy(requireSignature: true, trustedKeys: [key])
            return .update
        }
        #expect(try await store.model(named: "legacy") == updated)
        try store.close()
    }

    @Test func openingAPathThatCannotBeCreatedFailsWithARegistryError() throws {
        let directory = try TemporaryDirectory()
        let blocker = directory.path + "/file"
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        #expect(throws: RegistryError.self) { _ = try SQLiteMetadataStore(path: blocker + "/db.sqlite") }
    }
}
