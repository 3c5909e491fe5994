import Foundation
import RegistryCore
import Testing

extension MetadataStoreConformance {
    static let modelCases: [ConformanceCase] = [
        ConformanceCase("createdModelStartsAtRevisionOneAndReadsBack") { store in
            var input = model("fraud", tags: ["team": "risk"], policy: .init(requiredApprovals: 2))
            input.revision = 7
            let created = try await createModel(store, input)
            #expect(created.revision == 1)
            #expect(created.name == "fraud")
            #expect(created.tags == ["team": "risk"])
            #expect(created.approvalPolicy == ApprovalPolicy(requiredApprovals: 2))
            #expect(try await store.model(named: "fraud") == created)
            #expect(try await store.model(named: "missing") == nil)
        },
        ConformanceCase("creatingATakenNameFailsWithModelExists") { store in
            try await createModel(store, model("fraud"))
            try await expectFailureWritesNothing(store, .modelExists) {
                _ = try await store.createModel(model("fraud", createdBy: "bob"), context: context("bob"))
            }
            #expect(try await store.model(named: "fraud")?.createdBy == "alice")
        },
        ConformanceCase("modelsListInNameOrderWithStablePages") { store in
            for name in ["c", "a", "e", "b", "d"] { try await createModel(store, model(name)) }
            let first = try await store.models(ModelQuery(limit: 2))
            #expect(first.items.map(\.name) == ["a", "b"])
            let token = try #require(first.nextPageToken)
            #expect(try PageToken.parse(token) == "b")
            let second = try await store.models(ModelQuery(after: "b", limit: 2))
            #expect(second.items.map(\.name) == ["c", "d"])
            let third = try await store.models(ModelQuery(after: "d", limit: 2))
            #expect(third.items.map(\.name) == ["e"])
            #expect(third.nextPageToken == nil)
            let exact = try await store.models(ModelQuery(limit: 5))
            #expect(exact.items.count == 5)
            #expect(exact.nextPageToken == nil)
            #expect(try await store.models(ModelQuery()).items == exact.items)
        },
        ConformanceCase("modelsFilterByPrefixTagAndVisibility") { store in
            try await createModel(
                store,
                model(
                    "vision-a", tags: ["team": "cv"],
                    grants: [.init(subject: "alice", role: .owner), .init(subject: "bob", role: .reader)]))
            try await createModel(store, model("vision-b", tags: ["team": "nlp"]))
            try await createModel(
                store,
                model(
                    "text-a", tags: ["team": "cv", "tier": "gold"],
                    grants: [
                        .init(subject: "carol", role: .owner), .init(subject: "bob", role: .writer),
                        .init(subject: "bob", role: .approver),
                    ]))
            try await createModel(store, model("x_1"))
            try await createModel(store, model("xy1"))
            func names(_ query: ModelQuery) async throws -> [String] { try await store.models(query).items.map(\.name) }
            #expect(try await names(ModelQuery(prefix: "vision")) == ["vision-a", "vision-b"])
            #expect(try await names(ModelQuery(prefix: "x_")) == ["x_1"])
            #expect(try await names(ModelQuery(prefix: "x%")) == [])
            #expect(try await names(ModelQuery(tag: Tag(key: "team", value: "cv"))) == ["text-a", "vision-a"])
            #expect(try await names(ModelQuery(tag: Tag(key: "tier", value: "cv"))) == [])
            #expect(try await names(ModelQuery(visibleTo: "bob")) == ["text-a", "vision-a"])
            #expect(try await names(ModelQuery(prefix: "vision", visibleTo: "bob")) == ["vision-a"])
            #expect(try await names(ModelQuery(visibleTo: "nobody")) == [])
            let paged = try await store.models(ModelQuery(visibleTo: "bob", limit: 1))
            #expect(paged.items.map(\.name) == ["text-a"])
            #expect(paged.nextPageToken != nil)
            #expect(try await names(ModelQuery(visibleTo: "bob", after: "text-a", limit: 1)) == ["vision-a"])
        },
        ConformanceCase("updatingAModelBumpsItsRevisionAndKeepsItsIdentity") { store in
            let created = try await createModel(store, model("fraud", tags: ["team": "risk"]))
            let context = context("bob")
            let updated = try await store.updateModel(named: "fraud", expectedRevision: 1, context: context) { model in
                model.description = "Detects fraud"
                model.tags = ["team": "payments"]
                model.approvalPolicy = ApprovalPolicy(requiredApprovals: 3, allowSelfApproval: true)
                model.name = "renamed"
                model.createdBy = "mallory"
                return .update
            }
            #expect(updated.revision == 2)
            #expect(updated.name == "fraud")
            #expect(updated.createdBy == "alice")
            #expect(updated.createdAt == created.createdAt)
            #expect(updated.updatedAt == context.time)
            #expect(updated.description == "Detects fraud")
            #expect(updated.approvalPolicy == ApprovalPolicy(requiredApprovals: 3, allowSelfApproval: true))
            #expect(try await store.model(named: "fraud") == updated)
            #expect(try await store.model(named: "renamed") == nil)
            #expect(try await store.models(ModelQuery(tag: Tag(key: "team", value: "risk"))).items.isEmpty)
            #expect(try await store.models(ModelQuery(tag: Tag(key: "team", value: "payments"))).items.count == 1)
            let entry = try #require(try await allAudit(store).last)
            #expect(entry.action == "model.update")
            #expect(entry.actor == "bob")
            #expect(entry.requestId == context.requestId)
            #expect(try await allEvents(store).last?.type == EventType.modelUpdated)
        },
        ConformanceCase("updatingAModelAtAStaleRevisionFailsWithTheCurrentModel") { store in
            try await createModel(store, model("fraud"))
            let second = try await store.updateModel(named: "fraud", expectedRevision: 1, context: context()) { model in
                model.description = "second"
                return .update
            }
            let error = try await expectFailureWritesNothing(store, .revisionMismatch) {
                _ = try await store.updateModel(named: "fraud", expectedRevision: 1, context: context()) { model in
                    model.description = "stale"
                    return .update
                }
            }
            #expect(currentRevision(error) == 2)
            #expect(try await store.model(named: "fraud") == second)
            await expectError(.modelNotFound) {
                _ = try await store.updateModel(named: "missing", expectedRevision: 1, context: context()) { _ in
                    .update
                }
            }
        },
        ConformanceCase("aModelChangeThatThrowsWritesNothing") { store in
            let created = try await createModel(store, model("fraud"))
            try await expectFailureWritesNothing(store, .invalidArgument) {
                _ = try await store.updateModel(named: "fraud", expectedRevision: 1, context: context()) { model in
                    model.description = "half-done"
                    throw RegistryError.invalidArgument("refused")
                }
            }
            #expect(try await store.model(named: "fraud") == created)
        },
        ConformanceCase("accessListsRoundTripAndDriveVisibility") { store in
            try await createModel(store, model("fraud"))
            let grants: [Grant] = [
                .init(subject: "bob", role: .reader), .init(subject: "carol", role: .approver),
                .init(subject: "bob", role: .writer),
            ]
            let updated = try await store.updateModel(named: "fraud", expectedRevision: 1, context: context()) {
                model in
                model.grants = grants
                return .accessList
            }
            #expect(updated.grants == grants)
            #expect(try await store.model(named: "fraud")?.grants == grants)
            #expect(try await store.models(ModelQuery()).items.first?.grants == grants)
            #expect(try await store.models(ModelQuery(visibleTo: "carol")).items.map(\.name) == ["fraud"])
            #expect(try await store.models(ModelQuery(visibleTo: "alice")).items.isEmpty)
            let entry = try #require(try await allAudit(store).last)
            #expect(entry.action == "model.acl.update")
            #expect(try await allEvents(store).last?.type == EventType.aclChanged)
        },
        ConformanceCase("trustPoliciesRoundTripAtCreationAndUpdate") { store in
            #expect(try await createModel(store, model("plain")).trustPolicy == TrustPolicy())
            let first = SigningKey.generate(.ed25519).publicKey
            let second = SigningKey.generate(.p256).publicKey
            var input = model("signed")
            input.trustPolicy = TrustPolicy(requireSignature: true, trustedKeys: [first])
            let created = try await createModel(store, input)
            #expect(created.trustPolicy == input.trustPolicy)
            #expect(try await store.model(named: "signed") == created)
            let rotated = TrustPolicy(requireSignature: false, trustedKeys: [second, first])
            let updated = try await store.updateModel(named: "signed", expectedRevision: 1, context: context()) {
                model in
                model.trustPolicy = rotated
                return .update
            }
            #expect(updated.trustPolicy == rotated)
            #expect(try await store.model(named: "signed")?.trustPolicy == rotated)
            let listed = try await store.models(ModelQuery()).items
            #expect(listed.map(\.trustPolicy) == [TrustPolicy(), rotated])
            #expect(try await store.model(named: "plain")?.trustPolicy == TrustPolicy())
            let entry = try #require(try await allAudit(store).last)
            #expect(entry.action == "model.update")
            #expect(entry.after?.contains(second.description) == true)
        },
    ]
}
