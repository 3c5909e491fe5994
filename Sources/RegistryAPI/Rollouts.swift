import RegistryCore

/// `POST /v1/models/{model}/stages/{stage}/rollouts`: what a rollout is started with; nil fields take the
/// registry's defaults.
public struct StartRolloutRequest: Sendable, Equatable, Codable {
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

    public static let schema = Schema.object(
        [
            "version": Schema.positive, "steps": ["type": "array", "items": Schema.number],
            "bakeSeconds": ["type": "integer", "minimum": 0, "maximum": 86_400], "autoAdvance": Schema.boolean,
            "minInstances": ["type": "integer", "minimum": 0, "maximum": 100_000],
            "quorum": ["type": "number", "exclusiveMinimum": 0, "maximum": 1],
            "instanceWindowSeconds": ["type": "integer", "minimum": 1, "maximum": 86_400],
            "maxErrorRateIncrease": ["type": "number", "minimum": 0, "maximum": 1],
            "minRequests": ["type": "integer", "minimum": 0],
        ], required: ["version"])
}

/// `POST …/rollouts/{rollout}/reports`: a serving instance's state for the candidate and its cumulative counts.
/// Counts left out of the JSON are 0.
public struct InstanceReportRequest: Sendable, Equatable, Codable {
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

    enum CodingKeys: String, CodingKey {
        case instance, region, state, requests, errors, stableRequests, stableErrors
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        instance = try container.decode(String.self, forKey: .instance)
        region = try container.decodeIfPresent(String.self, forKey: .region)
        state = try container.decode(InstanceReport.State.self, forKey: .state)
        requests = try container.decodeIfPresent(Int.self, forKey: .requests) ?? 0
        errors = try container.decodeIfPresent(Int.self, forKey: .errors) ?? 0
        stableRequests = try container.decodeIfPresent(Int.self, forKey: .stableRequests) ?? 0
        stableErrors = try container.decodeIfPresent(Int.self, forKey: .stableErrors) ?? 0
    }

    public static let schema = Schema.object(
        [
            "instance": Schema.string, "region": Schema.string, "state": Schema.instanceState,
            "requests": Schema.count, "errors": Schema.count, "stableRequests": Schema.count,
            "stableErrors": Schema.count,
        ], required: ["instance", "state"])
}
