import RegistryCore

extension RegistryService {
    /// Starts `draft` on its stage at `expectedStageRevision`, after checking that the candidate meets the model's
    /// trust policy (`TrustConflict` otherwise), then lets the rollout take its first decision at once (a rollout
    /// that needs no warm instances starts exposing). The caller holds `deploy` on `model`.
    public func startRollout(
        _ model: Model, _ draft: Rollout, expectedStageRevision: Int, caller: Caller
    ) async throws -> Rollout {
        let rollout = try await guardedByTrustPolicy(model, .deploy, caller) { model, mutation in
            try await requireTrusted(model: model, number: draft.version)
            return try await metadata.startRollout(
                draft, expectedStageRevision: expectedStageRevision, context: mutation)
        }
        return try await decide(rollout, actor: caller.principal.subject) ?? rollout
    }

    /// What a person can do to a rollout by hand (one definition with the client's, in RegistryCore).
    public typealias RolloutAction = Rollout.Action

    /// Applies `action` to `rollout` at `expectedRevision`. An advance that completes the rollout promotes the
    /// candidate, so it first checks the candidate against the model's trust policy as it is now (`TrustConflict`
    /// otherwise). The caller holds `deploy` on the rollout's model.
    public func act(
        _ action: RolloutAction, on rollout: Rollout, expectedRevision: Int, reason: String?, caller: Caller
    ) async throws -> Rollout {
        let now = Timestamp.now()
        let reason = reason ?? "\(action.verb) by \(caller.principal.subject)"
        var change = caller.mutation
        var probe = rollout
        let completes = action == .advance && (try? RolloutRules.advance(&probe, now: now)) == .complete
        if completes {
            let (guarded, refusal) = try await completionCheck(rollout, change)
            if let refusal { throw TrustConflict(refusal) }
            change = guarded
        }
        return try await metadata.updateRollout(id: rollout.id, expectedRevision: expectedRevision, context: change) {
            current in
            switch action {
            case .advance:
                var next = current
                let step = try RolloutRules.advance(&next, now: now)
                // Completing was checked against the trust policy above; a rollout that became completable since
                // (another advance raced this one) is refused rather than promoted unchecked.
                guard step != .complete || completes else {
                    throw RegistryError(.revisionMismatch, "The rollout changed while it was advanced; retry.")
                }
                current = next
                return step
            case .pause: return try RolloutRules.pause(&current)
            case .resume: return try RolloutRules.resume(&current, now: now)
            case .abort: return try RolloutRules.abort(&current, reason: reason)
            }
        }
    }

    /// Records a serving instance's report on rollout `id` of `model`'s `stage`: one row and one aggregate, whatever
    /// the fleet's size. A report may decide a step or an abort at once; one that calls for completion is decided
    /// like the supervisor does, after checking the candidate against the trust policy (aborting when it fails).
    /// The caller holds `report` on `model`; the report is timed when the change is made.
    public func report(
        _ report: InstanceReport, rollout id: String, model: Model, stage: String, caller: Caller
    ) async throws -> Rollout {
        // The report's time is the change's, so the store judges its freshness on one clock.
        let mutation = caller.mutation
        var report = report
        report.time = mutation.time
        let outcome = try await metadata.recordReport(
            report, rollout: id, model: model.name, stage: stage, maxInstances: limits.maxInstancesPerRollout,
            context: mutation)
        var rollout = outcome.rollout
        guard outcome.completionPending else { return rollout }
        let full = try await metadata.rollout(id: id) ?? rollout
        if let decided = try await decide(full, actor: caller.principal.subject) {
            rollout = decided
            rollout.reports = outcome.rollout.reports
        }
        return rollout
    }

    /// Takes the decisions of every active rollout that no request triggers (advancing after a bake, aborting on
    /// errors, exposing once warm) as `actor`; returns how many rollouts changed.
    @discardableResult
    public func decideActiveRollouts(actor: String) async throws -> Int {
        var changed = 0
        for rollout in try await metadata.activeRollouts() where try await decide(rollout, actor: actor) != nil {
            changed += 1
        }
        return changed
    }

    /// Applies `rollout`'s own decision at the current time, if it has one (exposure once warm, advancing after a
    /// bake, aborting on errors); returns the updated rollout, or nil when there was nothing to decide (or another
    /// instance decided first). Made by whoever notices first: a report, the start request, or the supervisor.
    ///
    /// A decision to complete first checks the candidate against the model's trust policy as it is now; when a
    /// key was revoked or signatures became required since the rollout started, the rollout is aborted instead,
    /// so traffic returns to the stable version rather than promoting a version nobody vouches for.
    public func decide(_ rollout: Rollout, actor: String) async throws -> Rollout? {
        let now = Timestamp.now()
        var probe = rollout
        // The summary of the reports, not the reports: the periodic check costs the same at any fleet size.
        let summary = try await metadata.reportSummary(rollout: rollout.id, now: now)
        let decision = RolloutRules.evaluate(&probe, summary: summary, now: now)
        guard decision != .report else { return nil }
        var context = MutationContext(actor: actor, requestId: "rollout-\(rollout.id)-r\(rollout.revision)")
        var refusal: RegistryError?
        if decision == .complete { (context, refusal) = try await completionCheck(rollout, context) }
        do {
            return try await metadata.updateRollout(
                id: rollout.id, expectedRevision: rollout.revision, context: context
            ) { [refusal] current in
                if let refusal { return try RolloutRules.abort(&current, reason: Self.untrusted(refusal)) }
                return RolloutRules.evaluate(&current, now: now)
            }
        } catch let error as RegistryError where error.code == .revisionMismatch || error.code == .trustPolicyChanged {
            // Another instance decided first, or the policy changed under the check: the next look decides again.
            return nil
        }
    }

    /// Checks a rollout's candidate against its model's trust policy as it is now: returns `context` guarded by the
    /// policy it checked, and the refusal when the candidate no longer meets it (nil when it does).
    func completionCheck(
        _ rollout: Rollout, _ context: MutationContext
    ) async throws -> (context: MutationContext, refusal: RegistryError?) {
        let model = try await self.model(named: rollout.model)
        let guarded = context.checking(model.trustPolicy, of: model.name)
        do {
            try await requireTrusted(model: model, number: rollout.version)
            return (guarded, nil)
        } catch let conflict as TrustConflict {
            return (guarded, conflict.refusal)
        }
    }

    /// The abort reason of a rollout whose candidate is no longer trusted.
    public static func untrusted(_ refusal: RegistryError) -> String {
        "not completed: \(refusal.message)"
    }

    /// Rollout `id`, which must belong to `model`'s `stage`; `ROLLOUT_NOT_FOUND` otherwise.
    public func rollout(id: String, model: String, stage: String) async throws -> Rollout {
        guard let rollout = try await metadata.rollout(id: id), rollout.model == model, rollout.stage == stage else {
            throw RegistryError.rolloutNotFound(id)
        }
        return rollout
    }
}
