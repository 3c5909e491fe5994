import RegistryCore

extension RegistryClient {
    /// What a rollout is started with; nil fields take the registry's defaults.
    public struct RolloutOptions: Sendable, Encodable {
        public var version: Int
        public var steps: [Double]?
        public var bakeSeconds: Int?
        public var autoAdvance: Bool?
        public var minInstances: Int?
        public var quorum: Double?
        public var instanceWindowSeconds: Int?
        public var maxErrorRateIncrease: Double?
        public var minRequests: Int?

        public init(
            version: Int, steps: [Double]? = nil, bakeSeconds: Int? = nil, autoAdvance: Bool? = nil,
            minInstances: Int? = nil, quorum: Double? = nil, instanceWindowSeconds: Int? = nil,
            maxErrorRateIncrease: Double? = nil, minRequests: Int? = nil
        ) {
            self.version = version
            self.steps = steps
            self.bakeSeconds = bakeSeconds
            self.autoAdvance = autoAdvance
            self.minInstances = minInstances
            self.quorum = quorum
            self.instanceWindowSeconds = instanceWindowSeconds
            self.maxErrorRateIncrease = maxErrorRateIncrease
            self.minRequests = minRequests
        }
    }

    /// A serving instance's report to a rollout.
    public struct RolloutReport: Sendable, Encodable {
        public var instance: String
        public var region: String?
        public var state: InstanceReport.State
        public var requests: Int
        public var errors: Int
        public var stableRequests: Int
        public var stableErrors: Int

        public init(
            instance: String, region: String? = nil, state: InstanceReport.State, requests: Int = 0, errors: Int = 0,
            stableRequests: Int = 0, stableErrors: Int = 0
        ) {
            self.instance = instance
            self.region = region
            self.state = state
            self.requests = requests
            self.errors = errors
            self.stableRequests = stableRequests
            self.stableErrors = stableErrors
        }
    }

    public enum RolloutAction: String, Sendable {
        case advance, pause, resume, abort
    }

    private struct ReasonBody: Encodable {
        var reason: String?
    }

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
        try call.json(ReasonBody(reason: reason))
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
