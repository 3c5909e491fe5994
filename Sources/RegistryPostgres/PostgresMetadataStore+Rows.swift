import Foundation
import PostgresNIO
import RegistryCore

/// Conversions between domain values and rows: times as BIGINT milliseconds, structured fields as JSON text (kept
/// byte for byte, as the audit chain hashes what it records).
enum Rows {
    static func time(_ date: Date) -> Int64 { Timestamp.milliseconds(date) }

    static let modelColumns =
        "name, description, tags, created_by, approval_policy, trust_policy, grants, revision, created_at, updated_at"

    static func model(_ row: PostgresRow) throws -> Model {
        let row = Columns(row)
        return Model(
            name: try row("name"), description: try row("description"),
            tags: try JSONCoding.decodeStored([String: String].self, row("tags")), createdBy: try row("created_by"),
            approvalPolicy: try JSONCoding.decodeStored(ApprovalPolicy.self, row("approval_policy")),
            trustPolicy: try JSONCoding.decodeStored(TrustPolicy.self, row("trust_policy")),
            grants: try JSONCoding.decodeStored([Grant].self, row("grants")), revision: try row("revision"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }

    static let versionColumns = """
        model, version, status, manifest_digest, size, signature, metadata, tags, source, created_by, created_at, \
        updated_at, approvals, revision
        """

    static func version(_ row: PostgresRow) throws -> ModelVersion {
        let row = Columns(row)
        let statusText: String = try row("status")
        guard let status = VersionStatus(rawValue: statusText) else {
            throw RegistryError(.internalError, "A stored version has the unknown status '\(statusText)'.")
        }
        return ModelVersion(
            model: try row("model"), version: try row("version"), status: status,
            manifestDigest: try Digest(parsing: row("manifest_digest") as String), size: try row("size"),
            signature: try row("signature"), metadata: try JSONCoding.decodeStored(JSONValue.self, row("metadata")),
            tags: try JSONCoding.decodeStored([String: String].self, row("tags")),
            source: try JSONCoding.decodeStored(VersionSource.self, row("source")),
            createdBy: try row("created_by"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"),
            approvals: try JSONCoding.decodeStored([Approval].self, row("approvals")),
            revision: try row("revision"))
    }

    static let stageColumns = "model, stage, version, revision, updated_by, updated_at, rollout_id"

    static func stage(_ row: PostgresRow) throws -> Stage {
        let row = Columns(row)
        return Stage(
            model: try row("model"), stage: try row("stage"), version: try row("version"),
            revision: try row("revision"), updatedBy: try row("updated_by"), updatedAt: try row.date("updated_at"),
            rolloutId: try row("rollout_id"))
    }

    static let historyColumns =
        "model, stage, sequence, action, from_version, to_version, revision, actor, reason, time, rollout_id, weight"

    static func historyEntry(_ row: PostgresRow) throws -> StageHistoryEntry {
        let row = Columns(row)
        let actionText: String = try row("action")
        guard let action = StageHistoryEntry.Action(rawValue: actionText) else {
            throw RegistryError(.internalError, "A stored stage move has the unknown action '\(actionText)'.")
        }
        var entry = StageHistoryEntry(
            sequence: try row("sequence"), model: try row("model"), stage: try row("stage"), action: action,
            fromVersion: try row("from_version"), toVersion: try row("to_version"), revision: try row("revision"),
            actor: try row("actor"), reason: try row("reason"), time: try row.date("time"))
        entry.rolloutId = try row("rollout_id")
        entry.weight = try row("weight")
        return entry
    }

    static let tokenColumns =
        "id, subject, admin, token_hash, created_by, created_at, can_create_models, expires_at, bootstrap, revoked_at"

    static func token(_ row: PostgresRow) throws -> AccessToken {
        let row = Columns(row)
        return AccessToken(
            id: try row("id"), subject: try row("subject"), admin: try row("admin"),
            canCreateModels: try row("can_create_models"), expiresAt: try row.optionalDate("expires_at"),
            bootstrap: try row("bootstrap"), revokedAt: try row.optionalDate("revoked_at"),
            tokenHash: try row("token_hash"), createdBy: try row("created_by"), createdAt: try row.date("created_at"))
    }

    static let auditColumns =
        "sequence, time, actor, action, target, model, before, after, request_id, previous_hash, hash"

    static func auditEntry(_ row: PostgresRow) throws -> AuditEntry {
        let row = Columns(row)
        return AuditEntry(
            sequence: try row("sequence"), time: try row.date("time"), actor: try row("actor"),
            action: try row("action"), target: try row("target"), model: try row("model"), before: try row("before"),
            after: try row("after"), requestId: try row("request_id"), previousHash: try row("previous_hash"),
            hash: try row("hash"))
    }

    static func event(_ row: PostgresRow) throws -> Event {
        let row = Columns(row)
        return Event(
            id: try row("id"), type: try row("type"), time: try row.date("time"), model: try row("model"),
            data: try JSONCoding.decodeStored(JSONValue.self, row("data")))
    }

    static let reportColumns = "instance, region, state, requests, errors, stable_requests, stable_errors, time"

    static func report(_ row: PostgresRow) throws -> InstanceReport {
        let row = Columns(row)
        return InstanceReport(
            instance: try row("instance"), region: try row("region"),
            state: InstanceReport.State(rawValue: try row("state")) ?? .failed, requests: try row("requests"),
            errors: try row("errors"), stableRequests: try row("stable_requests"),
            stableErrors: try row("stable_errors"), time: try row.date("time"))
    }
}

/// A row's columns by name.
struct Columns {
    let row: PostgresRandomAccessRow

    init(_ row: PostgresRow) { self.row = row.makeRandomAccess() }

    func callAsFunction<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try row[column].decode(T.self)
    }

    func date(_ column: String) throws -> Date { Timestamp.fromMilliseconds(try self(column, as: Int64.self)) }

    func optionalDate(_ column: String) throws -> Date? {
        try self(column, as: Int64?.self).map(Timestamp.fromMilliseconds)
    }
}

extension PostgresConnection {
    /// Runs `query` and returns its rows.
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRow] {
        try await self.query(query, logger: logger).collect()
    }

    /// Runs `query` and decodes its first row with `transform`, or nil when it returns none.
    func first<T>(_ query: PostgresQuery, _ logger: Logger, _ transform: (PostgresRow) throws -> T) async throws -> T? {
        try await rows(query, logger).first.map(transform)
    }
}

/// A query assembled from optional parts: each `?` of a fragment becomes the next bind.
struct QueryBuilder {
    private var sql: String
    private var binds = PostgresBindings()

    init(_ sql: String) { self.sql = sql }

    mutating func add(_ fragment: String, _ values: any PostgresDynamicTypeEncodable...) {
        var values = values[...]
        for character in fragment {
            if character == "?", let value = values.popFirst() {
                binds.append(value)
                sql += "$\(binds.count)"
            } else {
                sql.append(character)
            }
        }
    }

    var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}
