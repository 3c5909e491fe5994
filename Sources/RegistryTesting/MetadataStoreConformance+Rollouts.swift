import Foundation
import RegistryCore
import Testing

extension MetadataStoreConformance {
    /// A rollout of version 2 of `fraud` on `production` (at version 1), started by dave.
    static func startedRollout(
        _ store: any MetadataStore, policy: RolloutPolicy = RolloutPolicy(minInstances: 1)
    ) async throws -> Rollout {
        try await createModel(store, model("fraud"))
        try await approvedVersion(store, "fraud")
        try await approvedVersion(store, "fraud")
        let stage = try await promote(store, "fraud", "production", to: 1, .absent)
        let draft = Rollout(
            id: Rollout.newId(), model: "fraud", stage: "production", version: 2, previousVersion: 0,
            steps: RolloutRules.defaultSteps, policy: policy, createdBy: "ignored", createdAt: Timestamp.now())
        return try await store.startRollout(draft, expectedStageRevision: stage.revision, context: context("dave"))
    }

    static func advance(_ store: any MetadataStore, _ rollout: Rollout, by actor: String = "dave") async throws
        -> Rollout
    {
        try await store.updateRollout(id: rollout.id, expectedRevision: rollout.revision, context: context(actor)) {
            try RolloutRules.advance(&$0, now: Timestamp.now())
        }
    }

    static let rolloutCases: [ConformanceCase] = [
        ConformanceCase("startingARolloutNamesItOnTheStageWithoutMovingTraffic") { store in
            let rollout = try await startedRollout(store)
            #expect(rollout.state == .warming)
            #expect(rollout.weight == 0)
            #expect(rollout.previousVersion == 1)
            #expect(rollout.createdBy == "dave")
            #expect(try await store.rollout(id: rollout.id) == rollout)
            #expect(try await store.activeRollouts().map(\.id) == [rollout.id])
            let stage = try #require(try await store.stage(model: "fraud", name: "production"))
            #expect(stage.version == 1, "the stage still serves the stable version")
            #expect(stage.rolloutId == rollout.id)
            #expect(stage.revision == 2)
            let history = try await store.history(model: "fraud", stage: "production", after: nil, limit: 10).items
            #expect(history.map(\.action) == [.promote, .rolloutStart])
            #expect(history.last?.rolloutId == rollout.id)
            #expect(try await allAudit(store).last?.action == "rollout.start")
            #expect(try await allEvents(store).last?.type == EventType.rolloutStarted)
        },
        ConformanceCase("aSecondRolloutOrAPromotionDuringARolloutIsRefused") { store in
            let rollout = try await startedRollout(store)
            let stage = try #require(try await store.stage(model: "fraud", name: "production"))
            try await approvedVersion(store, "fraud")
            let second = Rollout(
                id: Rollout.newId(), model: "fraud", stage: "production", version: 3, previousVersion: 0,
                steps: RolloutRules.defaultSteps, policy: RolloutPolicy(), createdBy: "x", createdAt: Timestamp.now())
            try await expectFailureWritesNothing(store, .rolloutInProgress) {
                _ = try await store.startRollout(
                    second, expectedStageRevision: stage.revision, context: context("dave"))
            }
            try await expectFailureWritesNothing(store, .revisionMismatch) {
                _ = try await store.startRollout(second, expectedStageRevision: 1, context: context("dave"))
            }
            try await expectFailureWritesNothing(store, .rolloutInProgress) {
                try await promote(store, "fraud", "production", to: 3, .revision(stage.revision))
            }
            #expect(try await store.rollout(id: rollout.id)?.state == .warming)
        },
        ConformanceCase("stepsMoveTheWeightAndTheLastOneMovesTheStage") { store in
            var rollout = try await startedRollout(store)
            for expected in [5.0, 25, 50] {
                rollout = try await advance(store, rollout)
                #expect(rollout.weight == expected)
                #expect(rollout.state == .progressing)
            }
            let stale = rollout.revision - 1
            try await expectFailureWritesNothing(store, .revisionMismatch) {
                _ = try await store.updateRollout(id: rollout.id, expectedRevision: stale, context: context()) {
                    try RolloutRules.advance(&$0, now: Timestamp.now())
                }
            }
            rollout = try await advance(store, rollout)
            #expect(rollout.state == .completed)
            #expect(rollout.weight == 100)
            let stage = try #require(try await store.stage(model: "fraud", name: "production"))
            #expect(stage.version == 2)
            #expect(stage.rolloutId == nil)
            #expect(try await store.activeRollouts().isEmpty)
            let history = try await store.history(model: "fraud", stage: "production", after: nil, limit: 10).items
            #expect(
                history.map(\.action) == [.promote, .rolloutStart, .rolloutStep, .rolloutStep, .rolloutStep, .promote])
            #expect(history.compactMap(\.weight) == [0, 5, 25, 50, 100])
            // The completed rollout is an ordinary promotion for rollback: back to version 1.
            let back = try await store.rollback(
                model: "fraud", stage: "production", expectedRevision: stage.revision, reason: nil, context: context())
            #expect(back.version == 1)
            let types = try await allEvents(store).map(\.type)
            #expect(
                types.suffix(3) == [EventType.rolloutCompleted, EventType.stagePromoted, EventType.stageRolledBack])
        },
        ConformanceCase("abortAndRollbackReturnAllTrafficToTheStableVersion") { store in
            var rollout = try await startedRollout(store)
            rollout = try await advance(store, rollout)
            rollout = try await store.updateRollout(
                id: rollout.id, expectedRevision: rollout.revision, context: context()
            ) {
                try RolloutRules.abort(&$0, reason: "bad latency")
            }
            #expect(rollout.state == .aborted)
            #expect(rollout.weight == 0)
            #expect(rollout.reason == "bad latency")
            var stage = try #require(try await store.stage(model: "fraud", name: "production"))
            #expect(stage.version == 1)
            #expect(stage.rolloutId == nil)
            await expectError(.invalidTransition) { _ = try await advance(store, rollout) }

            // A stage rollback while a rollout runs aborts it.
            let next = Rollout(
                id: Rollout.newId(), model: "fraud", stage: "production", version: 2, previousVersion: 0,
                steps: [50, 100], policy: RolloutPolicy(), createdBy: "x", createdAt: Timestamp.now())
            let again = try await store.startRollout(next, expectedStageRevision: stage.revision, context: context())
            stage = try #require(try await store.stage(model: "fraud", name: "production"))
            let rolledBack = try await store.rollback(
                model: "fraud", stage: "production", expectedRevision: stage.revision, reason: "pager",
                context: context())
            #expect(rolledBack.version == 1)
            #expect(rolledBack.rolloutId == nil)
            #expect(try await store.rollout(id: again.id)?.state == .aborted)
            #expect(try await store.rollout(id: again.id)?.reason == "pager")
            let history = try await store.history(model: "fraud", stage: "production", after: nil, limit: 20).items
            #expect(history.filter { $0.action == .rolloutAbort }.count == 2)
            #expect(try await allEvents(store).filter { $0.type == EventType.rolloutAborted }.count == 2)
        },
        ConformanceCase("reportsAreKeptWithoutBumpingTheRevisionUntilTheyDecide") { store in
            let rollout = try await startedRollout(store, policy: RolloutPolicy(minInstances: 2))
            let now = Timestamp.now()
            let first = try await store.updateRollout(id: rollout.id, expectedRevision: nil, context: context("fleet"))
            {
                try RolloutRules.record(InstanceReport(instance: "a", state: .loaded, time: now), in: &$0, now: now)
            }
            #expect(first.revision == rollout.revision)
            #expect(first.state == .warming)
            #expect(first.reports["a"]?.state == .loaded)
            let second = try await store.updateRollout(id: rollout.id, expectedRevision: nil, context: context("fleet"))
            {
                try RolloutRules.record(InstanceReport(instance: "b", state: .serving, time: now), in: &$0, now: now)
            }
            #expect(second.state == .progressing, "two warm instances meet the quorum")
            #expect(second.weight == 5)
            #expect(second.revision == rollout.revision + 1)
            #expect(try await store.rollout(id: rollout.id) == second)
        },
        ConformanceCase("aRecordedReportIsKeptApartAndDecidesFromTheSummary") {
            (store: any MetadataStore) async throws in
            let rollout = try await startedRollout(store, policy: RolloutPolicy(minInstances: 2))
            func report(_ instance: String, _ state: InstanceReport.State, requests: Int = 0) -> InstanceReport {
                InstanceReport(instance: instance, state: state, requests: requests, time: Timestamp.now())
            }
            let first = try await store.recordReport(
                report("a", .loaded), rollout: rollout.id, model: "fraud", stage: "production", maxInstances: 2,
                context: context("fleet"))
            #expect(first.change == .report && !first.completionPending)
            #expect(first.rollout.revision == rollout.revision && first.rollout.state == .warming)
            #expect(Array(first.rollout.reports.keys) == ["a"])
            // The audit entry of a report holds the report, not the rollout with every instance's report.
            let entry = try #require(try await allAudit(store).last)
            #expect(entry.action == "rollout.report")
            #expect(entry.target.hasSuffix("/reports/a"))
            let second = try await store.recordReport(
                report("b", .serving), rollout: rollout.id, model: "fraud", stage: "production", maxInstances: 2,
                context: context("fleet"))
            #expect(second.change == .step)
            #expect(second.rollout.state == .progressing && second.rollout.weight == 5)
            #expect(second.rollout.revision == rollout.revision + 1)
            #expect(try await store.stage(model: "fraud", name: "production")?.revision ?? 0 > 0)
            let stored = try #require(try await store.rollout(id: rollout.id))
            #expect(Set(stored.reports.keys) == ["a", "b"])
            let summary = try await store.reportSummary(rollout: rollout.id, now: Timestamp.now())
            #expect(summary.present == 2 && summary.warm == 2 && summary.failedInstance == nil)
            let later = Timestamp.now().addingTimeInterval(TimeInterval(rollout.policy.instanceWindowSeconds + 1))
            #expect(try await store.reportSummary(rollout: rollout.id, now: later).present == 0)
            #expect(stored.reports["b"]?.state == .serving)
            // One instance more than the limit is refused; a known instance may report again.
            await expectError(.tooManyInstances) {
                _ = try await store.recordReport(
                    report("c", .loaded), rollout: rollout.id, model: "fraud", stage: "production", maxInstances: 2,
                    context: context("fleet"))
            }
            let again = try await store.recordReport(
                report("a", .serving, requests: 7), rollout: rollout.id, model: "fraud", stage: "production",
                maxInstances: 2, context: context("fleet"))
            #expect(again.rollout.reports["a"]?.requests == 7)
            #expect(try await store.rollout(id: rollout.id)?.reports["a"]?.requests == 7)
            // A rollout of another stage or model is not found through this one.
            await expectError(.rolloutNotFound) {
                _ = try await store.recordReport(
                    report("a", .loaded), rollout: rollout.id, model: "fraud", stage: "staging", maxInstances: 2,
                    context: context("fleet"))
            }
            // A failed load aborts at once.
            let aborted = try await store.recordReport(
                report("b", .failed), rollout: rollout.id, model: "fraud", stage: "production", maxInstances: 2,
                context: context("fleet"))
            #expect(aborted.change == .abort && aborted.rollout.state == .aborted)
            await expectError(.invalidTransition) {
                _ = try await store.recordReport(
                    report("a", .loaded), rollout: rollout.id, model: "fraud", stage: "production", maxInstances: 2,
                    context: context("fleet"))
            }
        },
        ConformanceCase("aReportThatWouldCompleteLeavesTheDecisionToTheCaller") {
            (store: any MetadataStore) async throws in
            let rollout = try await startedRollout(store, policy: RolloutPolicy(bakeSeconds: 0, minInstances: 1))
            let now = Timestamp.now()
            let exposed = try await store.recordReport(
                InstanceReport(instance: "a", state: .loaded, time: now), rollout: rollout.id, model: "fraud",
                stage: "production", maxInstances: 10, context: context("fleet"))
            #expect(exposed.change == .step)
            var current = exposed.rollout
            // With no bake, every report now calls for the next step until the last, which is the completion.
            while current.state == .progressing && current.stepIndex < current.steps.count - 2 {
                current = try await store.recordReport(
                    InstanceReport(instance: "a", state: .serving, time: Timestamp.now()), rollout: rollout.id,
                    model: "fraud", stage: "production", maxInstances: 10, context: context("fleet")
                ).rollout
            }
            let last = try await store.recordReport(
                InstanceReport(instance: "a", state: .serving, time: Timestamp.now()), rollout: rollout.id,
                model: "fraud", stage: "production", maxInstances: 10, context: context("fleet"))
            #expect(last.completionPending)
            #expect(last.change == .report)
            #expect(try await store.rollout(id: rollout.id)?.state == .progressing)
            #expect(try await store.stage(model: "fraud", name: "production")?.version == 1)
        },
    ]
}
