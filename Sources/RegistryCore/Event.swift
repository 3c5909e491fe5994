import Foundation

/// One entry of the durable, ordered event log that pipelines consume.
public struct Event: Sendable, Equatable, Codable {
    /// Position in the log; strictly increasing in commit order.
    public var id: Int64
    public var type: String
    public var time: Date
    public var model: String?
    public var data: JSONValue

    public init(id: Int64, type: String, time: Date, model: String?, data: JSONValue) {
        self.id = id
        self.type = type
        self.time = time
        self.model = model
        self.data = data
    }

    enum CodingKeys: String, CodingKey { case id, type, time, model, data }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // Event ids travel as strings: they are cursors, not numbers to compute with.
        try container.encode(String(id), forKey: .id)
        try container.encode(type, forKey: .type)
        try container.encode(time, forKey: .time)
        try container.encode(model, forKey: .model)
        try container.encode(data, forKey: .data)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let text = try container.decode(String.self, forKey: .id)
        guard let id = Int64(text) else {
            throw DecodingError.dataCorruptedError(
                forKey: .id, in: container, debugDescription: "event ids are integers")
        }
        self.id = id
        type = try container.decode(String.self, forKey: .type)
        time = try container.decode(Date.self, forKey: .time)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        data = try container.decode(JSONValue.self, forKey: .data)
    }
}

/// What a mutation asks the event log to publish; the store assigns the id and time.
public struct EventDraft: Sendable, Equatable {
    public var type: String
    public var model: String?
    public var data: JSONValue

    public init(type: String, model: String?, data: JSONValue) {
        self.type = type
        self.model = model
        self.data = data
    }
}

/// The event types the registry publishes.
public enum EventType {
    public static let modelCreated = "model.created"
    public static let modelUpdated = "model.updated"
    public static let aclChanged = "model.acl.changed"
    public static let versionCreated = "version.created"
    public static let versionUpdated = "version.updated"
    public static let versionApprovalRecorded = "version.approval.recorded"
    public static let versionApproved = "version.approved"
    public static let versionApprovalRevoked = "version.approval.revoked"
    public static let versionRejected = "version.rejected"
    public static let versionArchived = "version.archived"
    public static let stagePromoted = "stage.promoted"
    public static let stageRolledBack = "stage.rolledback"
    public static let tokenCreated = "token.created"
}
