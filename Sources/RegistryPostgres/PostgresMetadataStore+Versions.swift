import Logging
import PostgresNIO
import RegistryCore

extension PostgresMetadataStore {
    public func createVersion(_ draft: ModelVersion, artifacts: [Digest], context: MutationContext) async throws
        -> ModelVersion
    {
        let logger = self.logger
        return try await write(context) { connection in
            guard try await Self.modelExists(connection, draft.model, logger) else {
                throw RegistryError.modelNotFound(draft.model)
            }
            // Writes hold the write lock, so MAX + 1 cannot race; the primary key backs that up.
            let highest = try await connection.first(
                "SELECT MAX(version) FROM versions WHERE model = \(draft.model)", logger
            ) { try $0.decode(Int?.self) }
            let (version, audit, events) = try Transitions.createVersion(
                draft, number: (highest.flatMap { $0 } ?? 0) + 1, context: context)
            let metadata = try JSONCoding.text(version.metadata)
            let tags = try JSONCoding.text(version.tags)
            let source = try JSONCoding.text(version.source)
            let approvals = try JSONCoding.text(version.approvals)
            try await connection.query(
                """
                INSERT INTO versions (\(unescaped: Rows.versionColumns))
                VALUES (\(version.model), \(version.version), \(version.status.rawValue),
                    \(version.manifestDigest.description), \(version.size), \(version.signature), \(metadata), \(tags),
                    \(source), \(version.createdBy), \(Rows.time(version.createdAt)), \(Rows.time(version.updatedAt)),
                    \(approvals), \(version.revision))
                """, logger: logger)
            try await Self.writeTags(connection, version: version, replacing: false, logger)
            if !artifacts.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO artifact_references (digest, model)
                    SELECT unnest(\(artifacts.map(\.description))::text[]), \(version.model)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            return (version, audit, events)
        }
    }

    public func version(model: String, number: Int) async throws -> ModelVersion? {
        let logger = self.logger
        return try await read { connection in try await Self.loadVersion(connection, model, number, logger) }
    }

    public func versions(_ query: VersionQuery) async throws -> Page<ModelVersion> {
        let logger = self.logger
        let limit = max(query.limit, 0)
        var sql = QueryBuilder("SELECT \(Rows.versionColumns) FROM versions WHERE ")
        sql.add("model = ?", query.model)
        if let status = query.status { sql.add(" AND status = ?", status.rawValue) }
        if let tag = query.tag {
            sql.add(
                " AND version IN (SELECT version FROM version_tags WHERE model = ? AND key = ? AND value = ?)",
                query.model, tag.key, tag.value)
        }
        if let before = query.before { sql.add(" AND version < ?", before) }
        sql.add(" ORDER BY version DESC LIMIT ?", limit + 1)
        let statement = sql.query
        let versions = try await read { connection in
            try await connection.rows(statement, logger).map(Rows.version)
        }
        return Page(fetched: versions, limit: limit) { String($0.version) }
    }

    public func updateVersion(
        model: String, number: Int, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout ModelVersion, VersionChangeContext) throws -> Transitions.VersionChange
    ) async throws -> ModelVersion {
        let logger = self.logger
        return try await write(context) { connection in
            guard let owner = try await Self.loadModel(connection, model, logger) else {
                throw RegistryError.modelNotFound(model)
            }
            guard let current = try await Self.loadVersion(connection, model, number, logger) else {
                throw RegistryError.versionNotFound(model, number)
            }
            let pointing = try await connection.rows(
                "SELECT stage FROM stages WHERE model = \(model) AND version = \(number) ORDER BY stage", logger
            ).map { try $0.decode(String.self) }
            let (updated, audit, events) = try Transitions.updateVersion(
                current, expectedRevision: expectedRevision,
                in: VersionChangeContext(model: owner, stagesPointingAtVersion: pointing), context: context, change)
            let metadata = try JSONCoding.text(updated.metadata)
            let tags = try JSONCoding.text(updated.tags)
            let source = try JSONCoding.text(updated.source)
            let approvals = try JSONCoding.text(updated.approvals)
            try await connection.query(
                """
                UPDATE versions SET status = \(updated.status.rawValue), size = \(updated.size),
                    signature = \(updated.signature), metadata = \(metadata), tags = \(tags), source = \(source),
                    updated_at = \(Rows.time(updated.updatedAt)), approvals = \(approvals),
                    revision = \(updated.revision)
                WHERE model = \(model) AND version = \(number)
                """, logger: logger)
            if updated.tags != current.tags {
                try await Self.writeTags(connection, version: updated, replacing: true, logger)
            }
            return (updated, audit, events)
        }
    }

    public func models(referencing digest: Digest) async throws -> [String] {
        let logger = self.logger
        return try await read { connection in
            try await connection.rows(
                """
                SELECT model FROM artifact_references WHERE digest = \(digest.description) ORDER BY model COLLATE "C"
                """, logger
            ).map { try $0.decode(String.self) }
        }
    }

    public func referencedDigests() async throws -> Set<Digest> {
        let logger = self.logger
        let texts = try await read { connection in
            try await connection.rows("SELECT DISTINCT digest FROM artifact_references", logger).map {
                try $0.decode(String.self)
            }
        }
        return Set(try texts.map { try Digest(parsing: $0) })
    }

    // MARK: Rows

    static func loadVersion(
        _ connection: PostgresConnection, _ model: String, _ number: Int, _ logger: Logger
    ) async throws -> ModelVersion? {
        try await connection.first(
            "SELECT \(unescaped: Rows.versionColumns) FROM versions WHERE model = \(model) AND version = \(number)",
            logger, Rows.version)
    }

    private static func writeTags(
        _ connection: PostgresConnection, version: ModelVersion, replacing: Bool, _ logger: Logger
    ) async throws {
        if replacing {
            try await connection.query(
                "DELETE FROM version_tags WHERE model = \(version.model) AND version = \(version.version)",
                logger: logger)
        }
        let keys = Array(version.tags.keys)
        guard !keys.isEmpty else { return }
        let values = keys.map { version.tags[$0] ?? "" }
        try await connection.query(
            """
            INSERT INTO version_tags (model, version, key, value)
            SELECT \(version.model), \(version.version), key, value
            FROM unnest(\(keys)::text[], \(values)::text[]) AS t(key, value)
            """, logger: logger)
    }
}
