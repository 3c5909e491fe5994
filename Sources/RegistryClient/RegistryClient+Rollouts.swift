import RegistryAPI
import RegistryCore

extension RegistryClient {
    /// What a rollout is started with; nil fields take the registry's defaults.
    public typealias RolloutOptions = StartRolloutRequest

    /// A serving instance's report to a rollout.
    public typealias RolloutReport = InstanceReportRequest

    /// What a person can do to a rollout by hand.
    public typealias RolloutAction = Rollout.Action

    /// Starts a rollout on `stage`, which must be at `stageRevision`; throws `ROLLOUT_IN_PROGRESS`,
    /// `REVISION_MISMATCH`, `VERSION_NOT_APPROVED`.
    public func startRollout(model: String, stage: String, stageRevision: Int, _ options: RolloutOptions)
        async throws -> Rollout
    {
        var call = Call(.POST, rolloutsPath(model, stage))
        call.ifMatch(stageRevision)
        try call.json(options)
        return try await request(call)
    }

    public func rollout(model: String, stage: String, id: String) async throws -> Rollout {
        try await request(Call(.GET, rolloutsPath(model, stage) + "/\(Self.escape(id))"))
    }

    /// Moves a rollout by hand; `revision` is the rollout's (`If-Match`).
    public func moveRollout(
        model: String, stage: String, id: String, _ action: RolloutAction, revision: Int, reason: String? = nil
    ) async throws -> Rollout {
        var call = Call(.POST, rolloutsPath(model, stage) + "/\(Self.escape(id))/\(action.rawValue)")
        call.ifMatch(revision)
        try call.json(ReasonRequest(reason: reason))
        return try await request(call)
    }

    /// Reports a serving instance's state to a rollout and returns the rollout as it is after the report.
    public func report(model: String, stage: String, rolloutId: String, _ report: RolloutReport) async throws
        -> Rollout
    {
        var call = Call(.POST, rolloutsPath(model, stage) + "/\(Self.escape(rolloutId))/reports")
        try call.json(report)
        return try await request(call)
    }

    private func rolloutsPath(_ model: String, _ stage: String) -> String {
        "/v1/models/\(Self.escape(model))/stages/\(Self.escape(stage))/rollouts"
    }
}
