import Foundation

/// A named pointer (`staging`, `production`, …) from a model to one of its versions.
public struct Stage: Sendable, Equatable, Codable {
    public var model: String
    public var stage: String
    public var version: Int
    public var revision: Int
    public var updatedBy: String
    public var updatedAt: Date

    public init(model: String, stage: String, version: Int, revision: Int, updatedBy: String, updatedAt: Date) {
        self.model = model
        self.stage = stage
        self.version = version
        self.revision = revision
        self.updatedBy = updatedBy
        self.updatedAt = updatedAt
    }
}

/// One move of a stage: a promotion or a rollback.
public struct StageHistoryEntry: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable {
        case promote, rollback
    }

    /// Position in this stage's history, from 1.
    public var sequence: Int
    public var model: String
    public var stage: String
    public var action: Action
    public var fromVersion: Int?
    public var toVersion: Int
    /// The stage's revision after this move.
    public var revision: Int
    public var actor: String
    public var reason: String?
    public var time: Date

    public init(
        sequence: Int, model: String, stage: String, action: Action, fromVersion: Int?, toVersion: Int, revision: Int,
        actor: String, reason: String?, time: Date
    ) {
        self.sequence = sequence
        self.model = model
        self.stage = stage
        self.action = action
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.revision = revision
        self.actor = actor
        self.reason = reason
        self.time = time
    }
}
