import Foundation
import RegistryCore

/// `PUT /v1/models/{model}/stages/{stage}`: points the stage at an approved version.
public struct PromotionRequest: Sendable, Equatable, Codable {
    public var version: Int
    public var reason: String?

    public init(version: Int, reason: String? = nil) {
        self.version = version
        self.reason = reason
    }

    public static let schema = Schema.object(
        ["version": Schema.positive, "reason": Schema.string], required: ["version"])
}

/// A body that only gives a reason: a stage rollback, and moving a rollout by hand (advance, pause, resume, abort).
public struct ReasonRequest: Sendable, Equatable, Codable {
    public var reason: String?

    public init(reason: String? = nil) {
        self.reason = reason
    }

    public static let schema = Schema.object(["reason": Schema.string])
}

/// A stage as the API shows it: the stage's fields, and its rollout in progress (`rolloutId` and `rollout` are
/// explicit nulls without one).
public struct StageResponse: Sendable, Equatable, Codable {
    public var stage: Stage
    public var rollout: Rollout?

    public init(_ stage: Stage, rollout: Rollout? = nil) {
        self.stage = stage
        self.rollout = rollout
    }

    enum CodingKeys: String, CodingKey {
        case model, stage, version, revision, updatedBy, updatedAt, rolloutId, rollout
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        stage = Stage(
            model: try container.decode(String.self, forKey: .model),
            stage: try container.decode(String.self, forKey: .stage),
            version: try container.decode(Int.self, forKey: .version),
            revision: try container.decode(Int.self, forKey: .revision),
            updatedBy: try container.decode(String.self, forKey: .updatedBy),
            updatedAt: try container.decode(Date.self, forKey: .updatedAt),
            rolloutId: try container.decodeIfPresent(String.self, forKey: .rolloutId))
        rollout = try container.decodeIfPresent(Rollout.self, forKey: .rollout)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(stage.model, forKey: .model)
        try container.encode(stage.stage, forKey: .stage)
        try container.encode(stage.version, forKey: .version)
        try container.encode(stage.revision, forKey: .revision)
        try container.encode(stage.updatedBy, forKey: .updatedBy)
        try container.encode(stage.updatedAt, forKey: .updatedAt)
        try container.encode(stage.rolloutId, forKey: .rolloutId)
        try container.encode(rollout, forKey: .rollout)
    }

    public static let schema = Schema.record([
        "model": Schema.string, "stage": Schema.string, "version": Schema.integer, "revision": Schema.integer,
        "updatedBy": Schema.string, "updatedAt": Schema.time, "rolloutId": ["type": .array(["string", "null"])],
        "rollout": Schema.nullable(Schema.ref("Rollout")),
    ])

    /// `GET /v1/models/{model}/stages`: an `ItemList` of stages.
    public static let listSchema = Schema.object(
        ["items": ["type": "array", "items": Schema.ref("Stage")]], required: ["items"])
}

/// A whole list in one response (`{"items": […]}`), for lists that are not paged.
public struct ItemList<Item: Sendable>: Sendable {
    public var items: [Item]

    public init(items: [Item]) {
        self.items = items
    }
}

extension ItemList: Equatable where Item: Equatable {}
extension ItemList: Encodable where Item: Encodable {}
extension ItemList: Decodable where Item: Decodable {}
