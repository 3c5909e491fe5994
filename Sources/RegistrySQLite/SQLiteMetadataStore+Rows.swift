import Foundation
import GRDB
import RegistryCore

/// Conversions between domain values and rows: times as Int64 milliseconds, structured fields as JSON text.
enum Rows {
    static func time(_ date: Date) -> Int64 { Timestamp.milliseconds(date) }

    static func date(_ row: Row, _ column: String) -> Date { Timestamp.fromMilliseconds(row[column]) }

    static func optionalDate(_ row: Row, _ column: String) -> Date? {
        (row[column] as Int64?).map(Timestamp.fromMilliseconds)
    }

    static let modelColumns =
        "name, description, tags, created_by, approval_policy, trust_policy, revision, created_at, updated_at"

    /// A model from its row; its grants are loaded separately and passed in.
    static func model(_ row: Row, grants: [Grant]) throws -> Model {
        Model(
            name: row["name"], description: row["description"],
            tags: try JSONCoding.decodeStored([String: String].self, row["tags"]),
            createdBy: row["created_by"],
            approvalPolicy: try JSONCoding.decodeStored(ApprovalPolicy.self, row["approval_policy"]),
            trustPolicy: try JSONCoding.decodeStored(TrustPolicy.self, row["trust_policy"]), grants: grants,
            revision: row["revision"],
            createdAt: date(row, "created_at"), updatedAt: date(row, "updated_at"))
    }

    static let versionColumns = """
        model, version, status, manifest_digest, size, signature, metadata, tags, source, created_by, created_at, \
        updated_at, approvals, revision
        """

    static func version(_ row: Row) throws -> ModelVersion {
        let statusText: String = row["status"]
        guard let status = VersionStatus(rawValue: statusText) else {
            throw RegistryError(.internalError, "A stored version has the unknown status '\(statusText)'.")
        }
        return ModelVersion(
            model: row["model"], version: row["version"], status: status,
            manifestDigest: try Digest(parsing: row["manifest_digest"] as String), size: row["size"],
            signature: row["signature"], metadata: try JSONCoding.decodeStored(JSONValue.self, row["metadata"]),
            tags: try JSONCoding.decodeStored([String: String].self, row["tags"]),
            source: try JSONCoding.decodeStored(VersionSource.self, row["source"]),
            createdBy: row["created_by"], createdAt: date(row, "created_at"), updatedAt: date(row, "updated_at"),
            approvals: try JSONCoding.decodeStored([Approval].self, row["approvals"]), revision: row["revision"])
    }

    static let stageColumns = "model, stage, version, revision, updated_by, updated_at, rollout_id"

    static func stage(_ row: Row) -> Stage {
        Stage(
            model: row["model"], stage: row["stage"], version: row["version"], revision: row["revision"],
            updatedBy: row["updated_by"], updatedAt: date(row, "updated_at"), rolloutId: row["rollout_id"])
    }

    static let historyColumns =
        "model, stage, sequence, action, from_version, to_version, revision, actor, reason, time, rollout_id, weight"

    static func historyEntry(_ row: Row) throws -> StageHistoryEntry {
        let actionText: String = row["action"]
        guard let action = StageHistoryEntry.Action(rawValue: actionText) else {
            throw RegistryError(.internalError, "A stored stage move has the unknown action '\(actionText)'.")
        }
        var entry = StageHistoryEntry(
            sequence: row["sequence"], model: row["model"], stage: row["stage"], action: action,
            fromVersion: row["from_version"], toVersion: row["to_version"], revision: row["revision"],
            actor: row["actor"], reason: row["reason"], time: date(row, "time"))
        entry.rolloutId = row["rollout_id"]
        entry.weight = row["weight"]
        return entry
    }

    static let tokenColumns =
        "id, subject, admin, token_hash, created_by, created_at, can_create_models, expires_at, bootstrap, revoked_at"

    static func token(_ row: Row) -> AccessToken {
        AccessToken(
            id: row["id"], subject: row["subject"], admin: row["admin"], canCreateModels: row["can_create_models"],
            expiresAt: optionalDate(row, "expires_at"), bootstrap: row["bootstrap"],
            revokedAt: optionalDate(row, "revoked_at"), tokenHash: row["token_hash"], createdBy: row["created_by"],
            createdAt: date(row, "created_at"))
    }

    static let auditColumns =
        "sequence, time, actor, action, target, model, before, after, request_id, previous_hash, hash"

    static func auditEntry(_ row: Row) -> AuditEntry {
        AuditEntry(
            sequence: row["sequence"], time: date(row, "time"), actor: row["actor"], action: row["action"],
            target: row["target"], model: row["model"], before: row["before"], after: row["after"],
            requestId: row["request_id"], previousHash: row["previous_hash"], hash: row["hash"])
    }

    static func event(_ row: Row) throws -> Event {
        Event(
            id: row["id"], type: row["type"], time: date(row, "time"), model: row["model"],
            data: try JSONCoding.decodeStored(JSONValue.self, row["data"]))
    }
}
