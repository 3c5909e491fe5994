import RegistryCore

extension RegistryService {
    /// Points `stage` of `model` at `version` under `precondition`, after checking that the version meets the
    /// model's trust policy as it is now (`TrustConflict` otherwise). The caller holds `deploy` on `model`.
    public func promote(
        _ model: Model, stage: String, precondition: Transitions.StagePrecondition, version: Int, reason: String?,
        caller: Caller
    ) async throws -> Stage {
        try await guardedByTrustPolicy(model, .deploy, caller) { model, mutation in
            try await requireTrusted(model: model, number: version)
            return try await metadata.promote(
                model: model.name, stage: stage, precondition: precondition, version: version, reason: reason,
                context: mutation)
        }
    }

    /// Points `stage` of `model` back at its previous version, which must meet the model's trust policy as it is
    /// now (`TrustConflict` otherwise), or aborts the stage's rollout in progress. The caller holds `deploy`.
    ///
    /// The target is found once, outside the transaction, at `expectedRevision`: the store refuses the move when the
    /// stage is no longer at that revision, and the history cannot change without it.
    public func rollback(
        _ model: Model, stage: String, expectedRevision: Int, reason: String?, caller: Caller
    ) async throws -> Stage {
        try await guardedByTrustPolicy(model, .deploy, caller) { model, mutation in
            let target = try await metadata.rollbackTarget(model: model.name, stage: stage, revision: expectedRevision)
            if let target { try await requireTrusted(model: model, number: target) }
            return try await metadata.rollback(
                model: model.name, stage: stage, expectedRevision: expectedRevision, target: target, reason: reason,
                context: mutation)
        }
    }

    /// A stage with its active rollout loaded (nil without one).
    public func stageWithRollout(_ stage: Stage) async throws -> (Stage, Rollout?) {
        guard let id = stage.rolloutId else { return (stage, nil) }
        return (stage, try await metadata.rollout(id: id))
    }
}
