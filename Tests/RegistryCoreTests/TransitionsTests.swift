import Foundation
import RegistryCore
import Testing

@Suite(.timeLimit(.minutes(10))) struct TransitionsTests {
    let context = MutationContext(actor: "bob", requestId: "req")

    func version(createdBy: String = "alice", status: VersionStatus = .pending) -> ModelVersion {
        ModelVersion(
            model: "fraud", version: 1, status: status, manifestDigest: Digest(of: [1]), size: 1, createdBy: createdBy,
            createdAt: context.time)
    }

    func code(_ body: () throws -> Void) -> RegistryError.Code? {
        do {
            try body()
            return nil
        } catch let error as RegistryError {
            return error.code
        } catch {
            return "UNEXPECTED"
        }
    }

    @Test func oneApprovalApprovesUnderTheDefaultPolicy() throws {
        var v = version()
        let change = try Transitions.decide(
            &v, decision: .approve, comment: "ok", by: "bob", policy: .init(), context: context)
        #expect(change == .decision(.approve))
        #expect(v.status == .approved)
        #expect(v.approvals == [Approval(subject: "bob", decision: .approve, comment: "ok", time: context.time)])
    }

    @Test func approvalsAccumulateUntilThePolicyIsMet() throws {
        var v = version()
        let policy = ApprovalPolicy(requiredApprovals: 3)
        _ = try Transitions.decide(&v, decision: .approve, comment: nil, by: "bob", policy: policy, context: context)
        _ = try Transitions.decide(&v, decision: .approve, comment: nil, by: "carol", policy: policy, context: context)
        #expect(v.status == .pending)
        _ = try Transitions.decide(&v, decision: .approve, comment: nil, by: "dave", policy: policy, context: context)
        #expect(v.status == .approved)
        #expect(v.approvals.map(\.subject) == ["bob", "carol", "dave"])
    }

    @Test func theCreatorMayNotReviewUnlessThePolicyAllowsIt() throws {
        var v = version(createdBy: "bob")
        #expect(
            code {
                _ = try Transitions.decide(
                    &v, decision: .approve, comment: nil, by: "bob", policy: .init(), context: context)
            } == .selfApprovalForbidden)
        #expect(v.approvals.isEmpty)
        let lenient = ApprovalPolicy(requiredApprovals: 1, allowSelfApproval: true)
        _ = try Transitions.decide(&v, decision: .approve, comment: nil, by: "bob", policy: lenient, context: context)
        #expect(v.status == .approved)
    }

    @Test func aSubjectDecidesOnlyOnceAndOnlyOnPendingVersions() throws {
        var v = version()
        let policy = ApprovalPolicy(requiredApprovals: 2)
        _ = try Transitions.decide(&v, decision: .approve, comment: nil, by: "bob", policy: policy, context: context)
        #expect(
            code {
                _ = try Transitions.decide(
                    &v, decision: .reject, comment: nil, by: "bob", policy: policy, context: context)
            }
                == .alreadyDecided)
        var approved = version(status: .approved)
        #expect(
            code {
                _ = try Transitions.decide(
                    &approved, decision: .approve, comment: nil, by: "bob", policy: policy, context: context)
            } == .invalidTransition)
    }

    @Test func oneRejectionRejects() throws {
        var v = version()
        let policy = ApprovalPolicy(requiredApprovals: 2)
        _ = try Transitions.decide(&v, decision: .approve, comment: nil, by: "bob", policy: policy, context: context)
        _ = try Transitions.decide(&v, decision: .reject, comment: "no", by: "carol", policy: policy, context: context)
        #expect(v.status == .rejected)
    }

    @Test func decisionsPublishARecordAndTheStatusChange() throws {
        let before = version()
        var after = before
        _ = try Transitions.decide(
            &after, decision: .approve, comment: nil, by: "bob", policy: .init(), context: context)
        let (audit, events) = try Transitions.versionChanged(before: before, after: after, change: .decision(.approve))
        #expect(audit.action == "version.approve")
        #expect(events.map(\.type) == [EventType.versionApprovalRecorded, EventType.versionApproved])
        #expect(events.first?.data["subject"] == "bob")
    }

    @Test func archivingIsRefusedWhileAStagePointsAtTheVersion() throws {
        var v = version(status: .approved)
        #expect(code { _ = try Transitions.archive(&v, stagesPointingAtIt: ["production"]) } == .versionInUse)
        #expect(try Transitions.archive(&v, stagesPointingAtIt: []) == .archive)
        #expect(v.status == .archived)
        #expect(code { _ = try Transitions.archive(&v, stagesPointingAtIt: []) } == .invalidTransition)
    }

    @Test func preconditionsCompareAgainstTheCurrentStage() throws {
        let stage = Stage(model: "m", stage: "s", version: 1, revision: 3, updatedBy: "x", updatedAt: context.time)
        #expect(code { try Transitions.check(.absent, current: nil, model: "m", stage: "s") } == nil)
        #expect(code { try Transitions.check(.absent, current: stage, model: "m", stage: "s") } == .revisionMismatch)
        #expect(code { try Transitions.check(.revision(3), current: nil, model: "m", stage: "s") } == .stageNotFound)
        #expect(
            code { try Transitions.check(.revision(2), current: stage, model: "m", stage: "s") } == .revisionMismatch)
        #expect(code { try Transitions.check(.revision(3), current: stage, model: "m", stage: "s") } == nil)
    }

    @Test func promotionRequiresAnApprovedVersion() throws {
        #expect(
            code {
                _ = try Transitions.promote(
                    current: nil, model: "fraud", stage: "s", target: version(), reason: nil, lastSequence: 0,
                    context: context)
            } == .versionNotApproved)
        let (stage, entry, _, events) = try Transitions.promote(
            current: nil, model: "fraud", stage: "s", target: version(status: .approved), reason: "go", lastSequence: 4,
            context: context)
        #expect(stage.revision == 1)
        #expect(entry.sequence == 5)
        #expect(entry.fromVersion == nil)
        #expect(events.first?.data["reason"] == "go")
    }

    func move(_ sequence: Int, _ action: StageHistoryEntry.Action, _ from: Int?, _ to: Int) -> StageHistoryEntry {
        StageHistoryEntry(
            sequence: sequence, model: "m", stage: "s", action: action, fromVersion: from, toVersion: to,
            revision: sequence, actor: "x", reason: nil, time: context.time)
    }

    @Test func rollbackReturnsToTheVersionBelowTheTopOfTheStack() throws {
        let history = [move(1, .promote, nil, 1), move(2, .promote, 1, 2), move(3, .promote, 2, 3)]
        #expect(try Transitions.rollbackTarget(history: history, model: "m", stage: "s") == 2)
        let once = history + [move(4, .rollback, 3, 2)]
        #expect(try Transitions.rollbackTarget(history: once, model: "m", stage: "s") == 1)
        let twice = once + [move(5, .rollback, 2, 1)]
        #expect(
            code { _ = try Transitions.rollbackTarget(history: twice, model: "m", stage: "s") } == .noPreviousVersion)
    }

    @Test func rollbackIgnoresRepromotionsOfTheSameVersionAndNeedsTwoVersions() throws {
        let same = [move(1, .promote, nil, 1), move(2, .promote, 1, 1)]
        #expect(
            code { _ = try Transitions.rollbackTarget(history: same, model: "m", stage: "s") } == .noPreviousVersion)
        #expect(code { _ = try Transitions.rollbackTarget(history: [], model: "m", stage: "s") } == .noPreviousVersion)
        let shuffled = [move(3, .promote, 2, 3), move(1, .promote, nil, 1), move(2, .promote, 1, 2)]
        #expect(try Transitions.rollbackTarget(history: shuffled, model: "m", stage: "s") == 2)
        let afterRollbackThenPromote = [
            move(1, .promote, nil, 1), move(2, .promote, 1, 2), move(3, .rollback, 2, 1), move(4, .promote, 1, 3),
        ]
        #expect(try Transitions.rollbackTarget(history: afterRollbackThenPromote, model: "m", stage: "s") == 1)
    }
}
