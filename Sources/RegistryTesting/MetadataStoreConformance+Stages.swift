import Foundation
import RegistryCore
import Testing

extension MetadataStoreConformance {
    static let stageCases: [ConformanceCase] = [
        ConformanceCase("promotingWithAbsentPreconditionCreatesTheStage") { store in
            try await createModel(store, model("fraud"))
            try await approvedVersion(store, "fraud")
            let context = context("dave")
            let created = try await store.promote(
                model: "fraud", stage: "staging", precondition: .absent, version: 1, reason: "first", context: context)
            #expect(
                created
                    == Stage(
                        model: "fraud", stage: "staging", version: 1, revision: 1, updatedBy: "dave",
                        updatedAt: context.time))
            #expect(try await store.stage(model: "fraud", name: "staging") == created)
            #expect(try await store.stage(model: "fraud", name: "production") == nil)
            try await promote(store, "fraud", "production", to: 1, .absent)
            try await promote(store, "fraud", "canary", to: 1, .absent)
            #expect(try await store.stages(model: "fraud").map(\.stage) == ["canary", "production", "staging"])
            let error = try await expectFailureWritesNothing(store, .revisionMismatch) {
                try await promote(store, "fraud", "staging", to: 1, .absent)
            }
            #expect(currentRevision(error) == 1)
            let event = try #require(try await allEvents(store).first { $0.type == EventType.stagePromoted })
            #expect(event.model == "fraud")
            #expect(event.data["stage"] == "staging")
            #expect(event.data["version"] == .number(1))
            #expect(event.data["reason"] == "first")
            #expect(try await allAudit(store).last?.action == "stage.promote")
        },
        ConformanceCase("aChangeGuardedByAStaleTrustPolicyIsRefusedAndWritesNothing") { store in
            // A signature checked against the policy as it was must not carry a promotion, a rollback or a rollout
            // start past a policy change that committed in between.
            let created = try await createModel(store, model("fraud"))
            try await approvedVersion(store, "fraud")
            try await approvedVersion(store, "fraud")
            try await approvedVersion(store, "fraud")
            try await promote(store, "fraud", "production", to: 1, .absent)
            let stage = try await promote(store, "fraud", "production", to: 2, .revision(1))
            let checked = created.trustPolicy
            let changed = try await store.updateModel(
                named: "fraud", expectedRevision: created.revision, context: context()
            ) {
                model in
                model.trustPolicy.requireSignature = true
                return .update
            }
            let stale = context("dave").checking(checked, of: "fraud")
            let error = try await expectFailureWritesNothing(store, .trustPolicyChanged) {
                _ = try await store.promote(
                    model: "fraud", stage: "production", precondition: .revision(stage.revision), version: 3,
                    reason: nil, context: stale)
            }
            #expect(error?.details["model"] == "fraud")
            try await expectFailureWritesNothing(store, .trustPolicyChanged) {
                _ = try await store.rollback(
                    model: "fraud", stage: "production", expectedRevision: stage.revision, reason: nil, context: stale)
            }
            let draft = Rollout(
                id: Rollout.newId(), model: "fraud", stage: "production", version: 3, previousVersion: 0,
                steps: RolloutRules.defaultSteps, policy: RolloutPolicy(minInstances: 1), createdBy: "ignored",
                createdAt: Timestamp.now())
            try await expectFailureWritesNothing(store, .trustPolicyChanged) {
                _ = try await store.startRollout(draft, expectedStageRevision: stage.revision, context: stale)
            }
            #expect(try await store.stage(model: "fraud", name: "production") == stage)
            #expect(try await store.rollout(id: draft.id) == nil)
            // Checked against the policy as it is now, the same change goes through.
            let current = context("dave").checking(changed.trustPolicy, of: "fraud")
            let moved = try await store.promote(
                model: "fraud", stage: "production", precondition: .revision(stage.revision), version: 3, reason: nil,
                context: current)
            #expect(moved.version == 3)
            let back = try await store.rollback(
                model: "fraud", stage: "production", expectedRevision: moved.revision, reason: nil, context: current)
            #expect(back.version == 2)
        },
        ConformanceCase("promotingAtTheCurrentRevisionMovesTheStage") { store in
            try await createModel(store, model("fraud"))
            try await approvedVersion(store, "fraud")
            try await approvedVersion(store, "fraud")
            try await promote(store, "fraud", "staging", to: 1, .absent)
            let moved = try await promote(store, "fraud", "staging", to: 2, .revision(1))
            #expect(moved.version == 2)
            #expect(moved.revision == 2)
            let error = try await expectFailureWritesNothing(store, .revisionMismatch) {
                try await promote(store, "fraud", "staging", to: 1, .revision(1))
            }
            #expect(currentRevision(error) == 2)
            try await expectFailureWritesNothing(store, .stageNotFound) {
                try await promote(store, "fraud", "production", to: 1, .revision(1))
            }
            #expect(try await store.stage(model: "fraud", name: "staging") == moved)
        },
        ConformanceCase("promotingRequiresAnApprovedExistingVersion") { store in
            try await createModel(store, model("fraud"))
            try await createVersion(store, "fraud")
            try await createVersion(store, "fraud")
            try await decide(store, "fraud", 2, .reject)
            let pending = try await expectFailureWritesNothing(store, .versionNotApproved) {
                try await promote(store, "fraud", "staging", to: 1, .absent)
            }
            #expect(pending?.details["status"] == "pending")
            try await expectFailureWritesNothing(store, .versionNotApproved) {
                try await promote(store, "fraud", "staging", to: 2, .absent)
            }
            try await expectFailureWritesNothing(store, .versionNotFound) {
                try await promote(store, "fraud", "staging", to: 3, .absent)
            }
            try await expectFailureWritesNothing(store, .modelNotFound) {
                try await promote(store, "missing", "staging", to: 1, .absent)
            }
            #expect(try await store.stages(model: "fraud").isEmpty)
            #expect(try await store.history(model: "fraud", stage: "staging", after: nil, limit: 10).items.isEmpty)
        },
        ConformanceCase("historyRecordsEveryMoveInOrder") { store in
            try await createModel(store, model("fraud"))
            for _ in 1...3 { try await approvedVersion(store, "fraud") }
            let first = context("dave")
            _ = try await store.promote(
                model: "fraud", stage: "staging", precondition: .absent, version: 1, reason: "initial", context: first)
            try await promote(store, "fraud", "staging", to: 2, reason: nil, by: "erin")
            try await promote(store, "fraud", "production", to: 2)
            try await promote(store, "fraud", "staging", to: 3, reason: "better")
            let page = try await store.history(model: "fraud", stage: "staging", after: nil, limit: 10)
            #expect(page.nextPageToken == nil)
            #expect(page.items.map(\.sequence) == [1, 2, 3])
            #expect(page.items.map(\.fromVersion) == [nil, 1, 2])
            #expect(page.items.map(\.toVersion) == [1, 2, 3])
            #expect(page.items.map(\.revision) == [1, 2, 3])
            #expect(page.items.map(\.actor) == ["dave", "erin", "dave"])
            #expect(page.items.map(\.reason) == ["initial", nil, "better"])
            #expect(page.items.allSatisfy { $0.action == .promote && $0.model == "fraud" && $0.stage == "staging" })
            #expect(page.items.first?.time == first.time)
            let head = try await store.history(model: "fraud", stage: "staging", after: nil, limit: 2)
            #expect(head.items.map(\.sequence) == [1, 2])
            #expect(try PageToken.parse(head.nextPageToken) == "2")
            let tail = try await store.history(model: "fraud", stage: "staging", after: 2, limit: 2)
            #expect(tail.items.map(\.sequence) == [3])
            #expect(tail.nextPageToken == nil)
            let production = try await store.history(model: "fraud", stage: "production", after: nil, limit: 10)
            #expect(production.items.map(\.sequence) == [1])
            #expect(production.items.map(\.toVersion) == [2])
        },
        ConformanceCase("rollbackWalksBackThePromotionStack") { store in
            try await createModel(store, model("fraud"))
            for _ in 1...3 { try await approvedVersion(store, "fraud") }
            for number in 1...3 { try await promote(store, "fraud", "production", to: number) }
            let context = context("dave")
            let back = try await store.rollback(
                model: "fraud", stage: "production", expectedRevision: 3, reason: "regression", context: context)
            #expect(back.version == 2)
            #expect(back.revision == 4)
            #expect(try await allEvents(store).last?.type == EventType.stageRolledBack)
            #expect(try await allAudit(store).last?.action == "stage.rollback")
            let stale = try await expectFailureWritesNothing(store, .revisionMismatch) {
                _ = try await store.rollback(
                    model: "fraud", stage: "production", expectedRevision: 3, reason: nil, context: context)
            }
            #expect(currentRevision(stale) == 4)
            let again = try await store.rollback(
                model: "fraud", stage: "production", expectedRevision: 4, reason: nil, context: context)
            #expect(again.version == 1)
            try await expectFailureWritesNothing(store, .noPreviousVersion) {
                _ = try await store.rollback(
                    model: "fraud", stage: "production", expectedRevision: 5, reason: nil, context: context)
            }
            let history = try await store.history(model: "fraud", stage: "production", after: 3, limit: 10).items
            #expect(history.map(\.action) == [.rollback, .rollback])
            #expect(history.map(\.fromVersion) == [3, 2])
            #expect(history.map(\.toVersion) == [2, 1])
            #expect(history.first?.reason == "regression")
            try await expectFailureWritesNothing(store, .stageNotFound) {
                _ = try await store.rollback(
                    model: "fraud", stage: "canary", expectedRevision: 1, reason: nil, context: context)
            }
            try await promote(store, "fraud", "canary", to: 3)
            try await expectFailureWritesNothing(store, .noPreviousVersion) {
                _ = try await store.rollback(
                    model: "fraud", stage: "canary", expectedRevision: 1, reason: nil, context: context)
            }
        },
    ]
}
