import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    public func createVersion(_ draft: ModelVersion, artifacts: [Digest], context: MutationContext) async throws
        -> ModelVersion
    {
        try await write(context) { db in
            guard try Self.modelExists(db, draft.model) else { throw RegistryError.modelNotFound(draft.model) }
            // Writes are serialized, so MAX + 1 cannot race; UNIQUE (model, version) backs that up.
            let highest = try Int.fetchOne(
                db.cachedStatement(sql: "SELECT MAX(version) FROM versions WHERE model = ?"), arguments: [draft.model])
            let (version, audit, events) = try Transitions.createVersion(
                draft, number: (highest ?? 0) + 1, context: context)
            try db.cachedStatement(
                sql: "INSERT INTO versions (\(Rows.versionColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                version.model, version.version, version.status.rawValue, version.manifestDigest.description,
                version.size, version.signature, try JSONCoding.text(version.metadata),
                try JSONCoding.text(version.tags),
                try JSONCoding.text(version.source), version.createdBy, Rows.time(version.createdAt),
                Rows.time(version.updatedAt), try JSONCoding.text(version.approvals), version.revision,
            ])
            try Self.writeTags(db, version: version, replacing: false)
            let reference = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO artifact_references (digest, model) VALUES (?, ?)")
            for digest in artifacts { try reference.execute(arguments: [digest.description, version.model]) }
            return (version, audit, events)
        }
    }

    public func version(model: String, number: Int) async throws -> ModelVersion? {
        try await read { db in try Self.loadVersion(db, model, number) }
    }

    public func versions(_ query: VersionQuery) async throws -> Page<ModelVersion> {
        try await read { db in
            var conditions = ["model = ?"]
            var arguments: StatementArguments = [query.model]
            if let status = query.status {
                conditions.append("status = ?")
                arguments += [status.rawValue]
            }
            if let tag = query.tag {
                conditions.append(
                    "version IN (SELECT version FROM version_tags WHERE model = ? AND key = ? AND value = ?)")
                arguments += [query.model, tag.key, tag.value]
            }
            if let before = query.before {
                conditions.append("version < ?")
                arguments += [before]
            }
            let limit = max(query.limit, 0)
            arguments += [limit + 1]
            let sql = """
                SELECT \(Rows.versionColumns) FROM versions WHERE \(conditions.joined(separator: " AND "))
                ORDER BY version DESC LIMIT ?
                """
            let versions = try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map(Rows.version)
            return Page(fetched: versions, limit: limit) { String($0.version) }
        }
    }

    public func updateVersion(
        model: String, number: Int, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout ModelVersion, VersionChangeContext) throws -> Transitions.VersionChange
    ) async throws -> ModelVersion {
        try await write(context) { db in
            guard let owner = try Self.loadModel(db, model) else { throw RegistryError.modelNotFound(model) }
            guard let current = try Self.loadVersion(db, model, number) else {
                throw RegistryError.versionNotFound(model, number)
            }
            let pointing = try String.fetchAll(
                db.cachedStatement(sql: "SELECT stage FROM stages WHERE model = ? AND version = ? ORDER BY stage"),
                arguments: [model, number])
            let (updated, audit, events) = try Transitions.updateVersion(
                current, expectedRevision: expectedRevision,
                in: VersionChangeContext(model: owner, stagesPointingAtVersion: pointing), context: context, change)
            try db.cachedStatement(
                sql: """
                    UPDATE versions SET status = ?, size = ?, signature = ?, metadata = ?, tags = ?, source = ?,
                        updated_at = ?, approvals = ?, revision = ?
                    WHERE model = ? AND version = ?
                    """
            ).execute(arguments: [
                updated.status.rawValue, updated.size, updated.signature, try JSONCoding.text(updated.metadata),
                try JSONCoding.text(updated.tags), try JSONCoding.text(updated.source), Rows.time(updated.updatedAt),
                try JSONCoding.text(updated.approvals), updated.revision, model, number,
            ])
            if updated.tags != current.tags {
                try Self.writeTags(db, version: updated, replacing: true)
            }
            return (updated, audit, events)
        }
    }

    public func models(referencing digest: Digest) async throws -> [String] {
        try await read { db in
            try String.fetchAll(
                db.cachedStatement(sql: "SELECT model FROM artifact_references WHERE digest = ? ORDER BY model"),
                arguments: [digest.description])
        }
    }

    // MARK: Rows

    static func modelExists(_ db: Database, _ name: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM models WHERE name = ?)"), arguments: [name]) ?? false
    }

    static func loadVersion(_ db: Database, _ model: String, _ number: Int) throws -> ModelVersion? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(Rows.versionColumns) FROM versions WHERE model = ? AND version = ?"),
            arguments: [model, number]
        ).map(Rows.version)
    }

    private static func writeTags(_ db: Database, version: ModelVersion, replacing: Bool) throws {
        if replacing {
            try db.cachedStatement(sql: "DELETE FROM version_tags WHERE model = ? AND version = ?")
                .execute(arguments: [version.model, version.version])
        }
        let insert = try db.cachedStatement(
            sql: "INSERT INTO version_tags (model, version, key, value) VALUES (?, ?, ?, ?)")
        for (key, value) in version.tags {
            try insert.execute(arguments: [version.model, version.version, key, value])
        }
    }
}
