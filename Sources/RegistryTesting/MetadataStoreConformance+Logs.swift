import Foundation
import RegistryCore
import Testing

extension MetadataStoreConformance {
    static func token(_ subject: String, admin: Bool = false) -> AccessToken {
        AdminBootstrap.newToken(subject: subject, admin: admin, createdBy: "admin", time: Timestamp.now()).0
    }

    static let tokenCases: [ConformanceCase] = [
        ConformanceCase("tokensAreCreatedFoundListedAndRevoked") { store in
            let first = token("alice", admin: true)
            let second = token("bob")
            try await store.createToken(first, context: context("admin"))
            try await store.createToken(second, context: context("admin"))
            #expect(try await store.token(hash: first.tokenHash) == first)
            #expect(try await store.token(hash: second.tokenHash) == second)
            #expect(try await store.token(hash: TokenSecret.hash("unknown")) == nil)
            #expect(try await store.tokens() == [first, second])
            var sameId = token("carol")
            sameId.id = first.id
            try await expectFailureWritesNothing(store, .invalidArgument) {
                try await store.createToken(sameId, context: context("admin"))
            }
            var sameHash = token("carol")
            sameHash.tokenHash = second.tokenHash
            try await expectFailureWritesNothing(store, .invalidArgument) {
                try await store.createToken(sameHash, context: context("admin"))
            }
            try await store.revokeToken(id: first.id, context: context("admin"))
            let revoked = try #require(try await store.token(hash: first.tokenHash))
            #expect(revoked.revokedAt != nil)
            #expect(!revoked.isActive(at: Timestamp.now()))
            #expect(try await store.tokens() == [second])
            try await expectFailureWritesNothing(store, .notFound) {
                try await store.revokeToken(id: first.id, context: context("admin"))
            }
            let actions = try await allAudit(store).map(\.action)
            #expect(actions == ["token.create", "token.create", "token.revoke"])
            let types = try await allEvents(store).map(\.type)
            #expect(types == [EventType.tokenCreated, EventType.tokenCreated, "token.revoked"])
        },
        ConformanceCase("adminBootstrapCreatesOneAdminToken") { store in
            let secret = try #require(try await AdminBootstrap.ensureAdminToken(in: store, configuredSecret: nil))
            #expect(try await store.token(hash: TokenSecret.hash(secret))?.admin == true)
            #expect(try await AdminBootstrap.ensureAdminToken(in: store, configuredSecret: nil) == nil)
            #expect(try await store.tokens().count == 1)
        },
        ConformanceCase("tokensKeepTheirGlobalPermissionAndExpiry") { (store: any MetadataStore) async throws in
            let expiry = Timestamp.fromMilliseconds(Timestamp.milliseconds(Timestamp.now()) + 3_600_000)
            let creator = AdminBootstrap.newToken(
                subject: "ci", admin: false, canCreateModels: true, expiresAt: expiry, createdBy: "admin",
                time: Timestamp.now()
            ).0
            try await store.createToken(creator, context: context("admin"))
            let stored = try #require(try await store.token(hash: creator.tokenHash))
            #expect(stored.canCreateModels && stored.expiresAt == expiry && !stored.bootstrap)
            #expect(stored.isActive(at: Timestamp.now()))
            #expect(!stored.isActive(at: expiry))
        },
        ConformanceCase("changingTheConfiguredAdminSecretRevokesTheOldOne") { (store: any MetadataStore) async throws in
            let old = String(repeating: "a", count: 40)
            let new = String(repeating: "b", count: 40)
            #expect(try await AdminBootstrap.ensureAdminToken(in: store, configuredSecret: old) == nil)
            #expect(try await AdminBootstrap.ensureAdminToken(in: store, configuredSecret: new) == nil)
            #expect(try await store.token(hash: TokenSecret.hash(old))?.revokedAt != nil)
            let current = try #require(try await store.token(hash: TokenSecret.hash(new)))
            #expect(current.admin && current.bootstrap && current.revokedAt == nil)
            #expect(try await store.tokens().map(\.tokenHash) == [TokenSecret.hash(new)])
        },
        ConformanceCase("aRevokedAdminSecretIsNotRecreatedAtStart") { (store: any MetadataStore) async throws in
            let secret = String(repeating: "c", count: 40)
            _ = try await AdminBootstrap.ensureAdminToken(in: store, configuredSecret: secret)
            let token = try #require(try await store.token(hash: TokenSecret.hash(secret)))
            try await store.revokeToken(id: token.id, context: context("admin"))
            await expectError(.permissionDenied) {
                _ = try await AdminBootstrap.ensureAdminToken(in: store, configuredSecret: secret)
            }
            #expect(try await store.token(hash: TokenSecret.hash(secret))?.revokedAt != nil)
            #expect(try await store.tokens().isEmpty)
        },
        ConformanceCase("aShortAdminSecretIsRefused") { (store: any MetadataStore) async throws in
            await expectError(.invalidArgument) {
                _ = try await AdminBootstrap.ensureAdminToken(in: store, configuredSecret: "short-secret")
            }
            #expect(try await store.tokens().isEmpty)
        },
    ]

    static let auditCases: [ConformanceCase] = [
        ConformanceCase("anEmptyLogVerifies") { store in
            #expect(try await store.auditHead() == nil)
            let verification = try await store.verifyAudit()
            #expect(verification == AuditChain.Verification(ok: true, entries: 0, headHash: AuditChain.genesis))
        },
        ConformanceCase("everyMutationAppendsExactlyOneChainedAuditEntry") { store in
            var expectedActions: [String] = []
            func step(_ action: String, _ body: () async throws -> Void) async throws {
                let before = try await store.auditHead()?.sequence ?? 0
                try await body()
                expectedActions.append(action)
                let head = try #require(try await store.auditHead())
                #expect(head.sequence == before + 1, "\(action) must append exactly one audit entry")
            }
            let ctx = context("alice")
            try await step("model.create") { _ = try await store.createModel(model("fraud"), context: ctx) }
            try await step("model.update") {
                _ = try await store.updateModel(named: "fraud", expectedRevision: 1, context: ctx) { _ in .update }
            }
            try await step("model.acl.update") {
                _ = try await store.updateModel(named: "fraud", expectedRevision: 2, context: ctx) { model in
                    model.grants.append(Grant(subject: "bob", role: .approver))
                    return .accessList
                }
            }
            try await step("version.create") { try await createVersion(store, "fraud") }
            try await step("version.create") { try await createVersion(store, "fraud") }
            try await step("version.approve") { try await decide(store, "fraud", 1) }
            try await step("version.approve") { try await decide(store, "fraud", 2) }
            try await step("stage.promote") { try await promote(store, "fraud", "production", to: 1) }
            try await step("stage.promote") { try await promote(store, "fraud", "production", to: 2) }
            try await step("stage.rollback") {
                _ = try await store.rollback(
                    model: "fraud", stage: "production", expectedRevision: 2, reason: nil, context: ctx)
            }
            try await step("version.update") {
                _ = try await store.updateVersion(model: "fraud", number: 2, expectedRevision: 2, context: ctx) {
                    _, _ in
                    .update
                }
            }
            try await step("version.archive") {
                _ = try await store.updateVersion(model: "fraud", number: 2, expectedRevision: 3, context: ctx) {
                    v, c in
                    try Transitions.archive(&v, stagesPointingAtIt: c.stagesPointingAtVersion)
                }
            }
            let token = token("bob")
            try await step("token.create") { try await store.createToken(token, context: ctx) }
            try await step("token.revoke") { try await store.revokeToken(id: token.id, context: ctx) }
            try await step("model.update.denied") {
                try await store.recordAudit(
                    AuditDraft(action: "model.update.denied", target: "models/fraud", model: "fraud"), context: ctx)
            }
            let entries = try await allAudit(store)
            #expect(entries.map(\.action) == expectedActions)
            #expect(entries.map(\.sequence) == Array(1...Int64(expectedActions.count)))
            for (previous, entry) in zip(entries, entries.dropFirst()) {
                #expect(entry.previousHash == previous.hash)
            }
            #expect(entries.first?.previousHash == AuditChain.genesis)
            for entry in entries { #expect(AuditChain.hash(of: entry) == entry.hash) }
            let head = try #require(try await store.auditHead())
            #expect(head.sequence == entries.last?.sequence)
            #expect(head.hash == entries.last?.hash)
            let verification = try await store.verifyAudit()
            #expect(verification.ok)
            #expect(verification.entries == Int64(expectedActions.count))
            #expect(verification.headHash == head.hash)
        },
        ConformanceCase("auditEntriesRecordWhoDidWhatWithSnapshots") { store in
            let ctx = context("alice")
            let created = try await store.createModel(model("fraud"), context: ctx)
            let entry = try #require(try await allAudit(store).first)
            #expect(entry.actor == "alice")
            #expect(entry.requestId == ctx.requestId)
            #expect(entry.time == ctx.time)
            #expect(entry.target == "models/fraud")
            #expect(entry.model == "fraud")
            #expect(entry.before == nil)
            let after = try JSONCoding.decode(Model.self, from: Array(try #require(entry.after).utf8))
            #expect(after.name == created.name)
            #expect(after.revision == 1)
            try await createVersion(store, "fraud")
            try await decide(store, "fraud", 1)
            let decision = try #require(try await allAudit(store).last)
            let before = try JSONCoding.decode(ModelVersion.self, from: Array(try #require(decision.before).utf8))
            let approved = try JSONCoding.decode(ModelVersion.self, from: Array(try #require(decision.after).utf8))
            #expect(before.status == .pending)
            #expect(approved.status == .approved)
            #expect(decision.actor == "bob")
        },
        ConformanceCase("deniedRequestsAreRecordedWithoutEvents") { store in
            let ctx = context("mallory")
            let draft = AuditDraft(
                action: "model.acl.update.denied", target: "models/fraud/acl", model: "fraud", before: nil,
                after: #"{"reason":"PERMISSION_DENIED"}"#)
            try await store.recordAudit(draft, context: ctx)
            let entry = try #require(try await allAudit(store).first)
            #expect(entry.sequence == 1)
            #expect(entry.action == draft.action)
            #expect(entry.actor == "mallory")
            #expect(entry.after == draft.after)
            #expect(try await allEvents(store).isEmpty)
            #expect(try await store.verifyAudit().ok)
        },
        ConformanceCase("auditEntriesFilterByModelAndPage") { store in
            try await createModel(store, model("a"))
            try await createModel(store, model("b"))
            for _ in 0..<3 {
                try await createVersion(store, "a")
                try await createVersion(store, "b")
            }
            try await store.createToken(token("carol"), context: context())
            let all = try await allAudit(store)
            #expect(all.count == 9)
            let onlyA = try await allAudit(store, model: "a")
            #expect(onlyA.map(\.sequence) == [1, 3, 5, 7])
            #expect(onlyA.allSatisfy { $0.model == "a" })
            let first = try await store.auditEntries(AuditQuery(model: "a", limit: 2))
            #expect(first.items.map(\.sequence) == [1, 3])
            #expect(try PageToken.parse(first.nextPageToken) == "3")
            let second = try await store.auditEntries(AuditQuery(model: "a", after: 3, limit: 2))
            #expect(second.items.map(\.sequence) == [5, 7])
            #expect(second.nextPageToken == nil)
            let tail = try await store.auditEntries(AuditQuery(after: 7, limit: 10))
            #expect(tail.items.map(\.sequence) == [8, 9])
            #expect(tail.items.last?.model == nil)
            #expect(tail.items.last?.action == "token.create")
        },
        ConformanceCase("failedMutationsAppendNothingAnywhere") { store in
            try await createModel(store, model("fraud"))
            try await createVersion(store, "fraud")
            let before = try await logPosition(store)
            let auditBefore = try await allAudit(store)
            let ctx = context()
            await expectError(.modelExists) { _ = try await store.createModel(model("fraud"), context: ctx) }
            await expectError(.revisionMismatch) {
                _ = try await store.updateModel(named: "fraud", expectedRevision: 9, context: ctx) { _ in .update }
            }
            await expectError(.modelNotFound) {
                _ = try await store.createVersion(draft("nope"), artifacts: [], context: ctx)
            }
            await expectError(.selfApprovalForbidden) { try await decide(store, "fraud", 1, by: "alice") }
            await expectError(.versionNotApproved) { try await promote(store, "fraud", "production", to: 1, .absent) }
            await expectError(.stageNotFound) {
                _ = try await store.rollback(
                    model: "fraud", stage: "production", expectedRevision: 1, reason: nil, context: ctx)
            }
            await expectError(.notFound) { try await store.revokeToken(id: "nope", context: ctx) }
            #expect(try await logPosition(store) == before)
            #expect(try await allAudit(store) == auditBefore)
            #expect(try await store.verifyAudit().ok)
        },
    ]
}
