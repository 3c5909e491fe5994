import RegistryCore

extension RegistryService {
    /// What a stage resolves to at one moment: the stable version, and the candidate of a rollout in progress.
    public struct Resolution: Sendable, Equatable {
        public struct Candidate: Sendable, Equatable {
            public var version: ModelVersion
            /// Percent of traffic (0 while the fleet warms up).
            public var weight: Double
            public var state: Rollout.State
            public var rolloutId: String
        }

        public var stage: Stage
        public var stable: ModelVersion
        public var candidate: Candidate?
        /// Changes with every change of answer: a promotion, a rollback, a rollout's start, step or end.
        public var entityTag: String
    }

    /// What `stage` of `model` resolves to now; `STAGE_NOT_FOUND` or `VERSION_NOT_FOUND` when it resolves to
    /// nothing. The caller holds `read` on `model`.
    public func resolve(model: String, stage name: String) async throws -> Resolution {
        guard let stage = try await metadata.stage(model: model, name: name) else {
            throw RegistryError.stageNotFound(model, name)
        }
        guard let stable = try await metadata.version(model: model, number: stage.version) else {
            throw RegistryError.versionNotFound(model, stage.version)
        }
        var candidate: Resolution.Candidate?
        var etag = "\"r\(stage.revision)-v\(stage.version)"
        if let id = stage.rolloutId, let rollout = try await metadata.rollout(id: id), rollout.state.isActive,
            let target = try await metadata.version(model: model, number: rollout.version)
        {
            candidate = .init(
                version: target, weight: rollout.state == .warming ? 0 : rollout.weight, state: rollout.state,
                rolloutId: id)
            etag += "-c\(rollout.version)-o\(rollout.revision)"
        }
        etag += "\""
        return Resolution(stage: stage, stable: stable, candidate: candidate, entityTag: etag)
    }
}
