import Foundation
import RegistryCore
import Synchronization
import Testing

extension MetadataStoreConformance {
    static let versionCases: [ConformanceCase] = [
        ConformanceCase("versionsAreNumberedFromOnePerModel") { store in
            try await createModel(store, model("a"))
            try await createModel(store, model("b"))
            var numbers: [Int] = []
            for _ in 0..<3 { numbers.append(try await createVersion(store, "a").version) }
            #expect(numbers == [1, 2, 3])
            var input = draft("b")
            input.version = 99
            input.status = .approved
            input.revision = 5
            input.approvals = [Approval(subject: "x", decision: .approve, time: Timestamp.now())]
            let context = context("carol")
            let first = try await store.createVersion(input, artifacts: [], context: context)
            #expect(first.version == 1)
            #expect(first.status == .pending)
            #expect(first.revision == 1)
            #expect(first.approvals.isEmpty)
            #expect(first.createdBy == "carol")
            #expect(first.createdAt == context.time)
            #expect(try await store.version(model: "b", number: 1) == first)
            #expect(try await store.version(model: "b", number: 2) == nil)
        },
        ConformanceCase("creatingAVersionOfAMissingModelFails") { store in
            try await expectFailureWritesNothing(store, .modelNotFound) {
                _ = try await store.createVersion(draft("missing"), artifacts: [], context: context())
            }
        },
        ConformanceCase("versionsRoundTripEveryField") { store in
            try await createModel(store, model("fraud"))
            var input = draft("fraud", tags: ["framework": "onnx", "gpu": "a100"])
            input.size = 1_234_567_890_123
            input.signature = "sig-abc"
            input.metadata = [
                "accuracy": .number(0.97), "epochs": .number(12), "nested": ["list": .array([.bool(true), .null])],
                "name": "résumé ✓",
            ]
            input.source = VersionSource(runId: "run-1", dataset: "ds@3", commit: "abc123", repository: "git@x:y")
            let created = try await store.createVersion(input, artifacts: [], context: context())
            #expect(created.size == input.size)
            #expect(created.signature == "sig-abc")
            #expect(created.metadata == input.metadata)
            #expect(created.source == input.source)
            #expect(created.tags == input.tags)
            #expect(created.manifestDigest == input.manifestDigest)
            #expect(try await store.version(model: "fraud", number: created.version) == created)
            let approved = try await decide(store, "fraud", 1)
            #expect(try await store.version(model: "fraud", number: 1) == approved)
        },
        ConformanceCase("versionsListNewestFirstWithFiltersAndPages") { store in
            try await createModel(store, model("fraud"))
            try await createModel(store, model("other"))
            for number in 1...5 {
                try await createVersion(
                    store, "fraud", tags: number.isMultiple(of: 2) ? ["env": "gpu"] : ["env": "cpu"])
            }
            try await createVersion(store, "other")
            try await decide(store, "fraud", 2)
            try await decide(store, "fraud", 4)
            try await decide(store, "fraud", 3, .reject)
            func numbers(_ query: VersionQuery) async throws -> [Int] {
                try await store.versions(query).items.map(\.version)
            }
            #expect(try await numbers(VersionQuery(model: "fraud")) == [5, 4, 3, 2, 1])
            let first = try await store.versions(VersionQuery(model: "fraud", limit: 2))
            #expect(first.items.map(\.version) == [5, 4])
            #expect(try PageToken.parse(first.nextPageToken) == "4")
            let second = try await store.versions(VersionQuery(model: "fraud", before: 4, limit: 2))
            #expect(second.items.map(\.version) == [3, 2])
            let last = try await store.versions(VersionQuery(model: "fraud", before: 2, limit: 2))
            #expect(last.items.map(\.version) == [1])
            #expect(last.nextPageToken == nil)
            #expect(try await numbers(VersionQuery(model: "fraud", status: .approved)) == [4, 2])
            #expect(try await numbers(VersionQuery(model: "fraud", status: .rejected)) == [3])
            #expect(try await numbers(VersionQuery(model: "fraud", status: .pending)) == [5, 1])
            #expect(try await numbers(VersionQuery(model: "fraud", tag: Tag(key: "env", value: "gpu"))) == [4, 2])
            #expect(
                try await numbers(VersionQuery(model: "fraud", status: .pending, tag: Tag(key: "env", value: "cpu")))
                    == [5, 1])
            #expect(try await numbers(VersionQuery(model: "other")) == [1])
            let listed = try await store.versions(VersionQuery(model: "fraud", status: .approved)).items
            #expect(listed.first == (try await store.version(model: "fraud", number: 4)))
        },
        ConformanceCase("approvalsFollowTheModelsPolicy") { store in
            try await createModel(store, model("fraud", policy: .init(requiredApprovals: 2)))
            try await createVersion(store, "fraud", by: "alice")
            let start = try await allEvents(store).last?.id ?? 0
            let once = try await decide(store, "fraud", 1, by: "bob")
            #expect(once.status == .pending)
            #expect(once.revision == 2)
            #expect(once.approvals.map(\.subject) == ["bob"])
            #expect(once.approvals.first?.comment == "looks approve")
            try await expectFailureWritesNothing(store, .alreadyDecided) {
                try await decide(store, "fraud", 1, by: "bob")
            }
            try await expectFailureWritesNothing(store, .selfApprovalForbidden) {
                try await decide(store, "fraud", 1, by: "alice")
            }
            let twice = try await decide(store, "fraud", 1, by: "carol")
            #expect(twice.status == .approved)
            #expect(twice.approvals.map(\.subject) == ["bob", "carol"])
            #expect(try await store.version(model: "fraud", number: 1) == twice)
            let types = try await allEvents(store, after: start).map(\.type)
            #expect(
                types == [
                    EventType.versionApprovalRecorded, EventType.versionApprovalRecorded, EventType.versionApproved,
                ])
            try await expectFailureWritesNothing(store, .invalidTransition) {
                try await decide(store, "fraud", 1, by: "erin")
            }
            let actions = try await allAudit(store).suffix(2).map(\.action)
            #expect(actions == ["version.approve", "version.approve"])
        },
        ConformanceCase("aRejectionRejectsAndSelfApprovalCanBeAllowed") { store in
            try await createModel(store, model("fraud"))
            try await createVersion(store, "fraud")
            let rejected = try await decide(store, "fraud", 1, .reject, by: "bob")
            #expect(rejected.status == .rejected)
            #expect(try await allEvents(store).last?.type == EventType.versionRejected)
            #expect(try await allAudit(store).last?.action == "version.reject")
            try await createModel(store, model("solo", policy: .init(requiredApprovals: 1, allowSelfApproval: true)))
            try await createVersion(store, "solo", by: "alice")
            #expect(try await decide(store, "solo", 1, by: "alice").status == .approved)
        },
        ConformanceCase("versionUpdatesCheckRevisionAndWriteNothingOnFailure") { store in
            try await createModel(store, model("fraud"))
            let created = try await createVersion(store, "fraud")
            let context = context("bob")
            let updated = try await store.updateVersion(
                model: "fraud", number: 1, expectedRevision: 1, context: context
            ) { version, _ in
                version.tags = ["stage": "candidate"]
                version.metadata = ["note": "retrained"]
                version.version = 9
                version.model = "other"
                version.createdBy = "mallory"
                version.manifestDigest = digest("other")
                return .update
            }
            #expect(updated.revision == 2)
            #expect(updated.version == 1)
            #expect(updated.model == "fraud")
            #expect(updated.createdBy == created.createdBy)
            #expect(updated.manifestDigest == created.manifestDigest)
            #expect(updated.updatedAt == context.time)
            #expect(updated.tags == ["stage": "candidate"])
            #expect(try await store.version(model: "fraud", number: 1) == updated)
            let tagged = try await store.versions(
                VersionQuery(model: "fraud", tag: Tag(key: "stage", value: "candidate")))
            #expect(tagged.items.map(\.version) == [1])
            #expect(try await allEvents(store).last?.type == EventType.versionUpdated)
            let error = try await expectFailureWritesNothing(store, .revisionMismatch) {
                _ = try await store.updateVersion(model: "fraud", number: 1, expectedRevision: 1, context: context) {
                    _, _ in
                    .update
                }
            }
            #expect(currentRevision(error) == 2)
            try await expectFailureWritesNothing(store, .versionNotFound) {
                _ = try await store.updateVersion(model: "fraud", number: 7, expectedRevision: 1, context: context) {
                    _, _ in
                    .update
                }
            }
            try await expectFailureWritesNothing(store, .modelNotFound) {
                _ = try await store.updateVersion(model: "nope", number: 1, expectedRevision: 1, context: context) {
                    _, _ in
                    .update
                }
            }
            try await expectFailureWritesNothing(store, .invalidArgument) {
                _ = try await store.updateVersion(model: "fraud", number: 1, expectedRevision: 2, context: context) {
                    version, _ in
                    version.tags = [:]
                    throw RegistryError.invalidArgument("refused")
                }
            }
            #expect(try await store.version(model: "fraud", number: 1) == updated)
        },
        ConformanceCase("archivingIsRefusedWhileAStagePointsAtTheVersion") { store in
            try await createModel(store, model("fraud"))
            try await approvedVersion(store, "fraud")
            try await approvedVersion(store, "fraud")
            try await promote(store, "fraud", "staging", to: 1)
            try await promote(store, "fraud", "production", to: 1)
            func archive(_ number: Int) async throws -> (ModelVersion, [String]) {
                guard let current = try await store.version(model: "fraud", number: number) else {
                    throw RegistryError.versionNotFound("fraud", number)
                }
                let seen = SeenStages()
                let archived = try await store.updateVersion(
                    model: "fraud", number: number, expectedRevision: current.revision, context: context()
                ) { version, change in
                    seen.record(change.stagesPointingAtVersion)
                    #expect(change.model.name == "fraud")
                    return try Transitions.archive(&version, stagesPointingAtIt: change.stagesPointingAtVersion)
                }
                return (archived, seen.value)
            }
            try await expectFailureWritesNothing(store, .versionInUse) { _ = try await archive(1) }
            #expect(try await store.version(model: "fraud", number: 1)?.status == .approved)
            try await promote(store, "fraud", "staging", to: 2)
            try await promote(store, "fraud", "production", to: 2)
            let (archived, seen) = try await archive(1)
            #expect(archived.status == .archived)
            #expect(seen.isEmpty)
            #expect(try await allEvents(store).last?.type == EventType.versionArchived)
            #expect(try await allAudit(store).last?.action == "version.archive")
            let stages = SeenStages()
            await expectError(.versionInUse) {
                let current = try #require(try await store.version(model: "fraud", number: 2))
                _ = try await store.updateVersion(
                    model: "fraud", number: 2, expectedRevision: current.revision, context: context()
                ) { version, change in
                    stages.record(change.stagesPointingAtVersion)
                    return try Transitions.archive(&version, stagesPointingAtIt: change.stagesPointingAtVersion)
                }
            }
            #expect(stages.value == ["production", "staging"])
        },
        ConformanceCase("modelsReferencingADigestAreListedOnceEach") { store in
            try await createModel(store, model("a"))
            try await createModel(store, model("b"))
            let (one, two, three) = (digest("one"), digest("two"), digest("three"))
            try await createVersion(store, "b", artifacts: [two])
            try await createVersion(store, "a", artifacts: [one, two])
            try await createVersion(store, "a", artifacts: [two])
            #expect(try await store.models(referencing: two) == ["a", "b"])
            #expect(try await store.models(referencing: one) == ["a"])
            #expect(try await store.models(referencing: three) == [])
        },
    ]
}

/// Collects what a change closure saw (the closure is `@Sendable`).
final class SeenStages: Sendable {
    private let storage = Mutex<[String]>([])
    func record(_ stages: [String]) { storage.withLock { $0 = stages } }
    var value: [String] { storage.withLock { $0 } }
    var isEmpty: Bool { value.isEmpty }
}
