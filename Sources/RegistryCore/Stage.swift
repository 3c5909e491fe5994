import Foundation

/// A named pointer (`staging`, `production`, …) from a model to one of its versions.
public struct Stage: Sendable, Equatable, Codable {
    public var model: String
    public var stage: String
    public var version: Int
    public var revision: Int
    public var updatedBy: String
    public var updatedAt: Date
    /// The rollout in progress on this stage, if any.
    public var rolloutId: String?

    public init(
        model: String, stage: String, version: Int, revision: Int, updatedBy: String, updatedAt: Date,
        rolloutId: String? = nil
    ) {
        self.model = model
        self.stage = stage
        self.version = version
        self.revision = revision
        self.updatedBy = updatedBy
        self.updatedAt = updatedAt
        self.rolloutId = rolloutId
    }
}

/// One move of a stage: a promotion or a rollback.
public struct StageHistoryEntry: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable {
        case promote, rollback
        /// A rollout began (no traffic moved yet), exposed a step, or was aborted (traffic back on `toVersion`).
        case rolloutStart = "rollout-start"
        case rolloutStep = "rollout-step"
        case rolloutAbort = "rollout-abort"
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
    /// The rollout this move belongs to, and the candidate's weight after it, if any.
    public var rolloutId: String?
    public var weight: Double?

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
