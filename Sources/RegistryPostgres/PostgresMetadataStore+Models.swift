import Logging
import PostgresNIO
import RegistryCore

extension PostgresMetadataStore {
    public func createModel(_ model: Model, context: MutationContext) async throws -> Model {
        let logger = self.logger
        return try await write(context) { connection in
            guard try await Self.loadModel(connection, model.name, logger) == nil else {
                throw RegistryError(
                    .modelExists, "Model '\(model.name)' already exists.", details: ["model": .string(model.name)])
            }
            let (created, audit, events) = try Transitions.createModel(model)
            try await connection.query(
                """
                INSERT INTO models (\(unescaped: Rows.modelColumns))
                VALUES (\(created.name), \(created.description), \(try JSONCoding.text(created.tags)), \(created.createdBy),
                    \(try JSONCoding.text(created.approvalPolicy)), \(try JSONCoding.text(created.trustPolicy)),
                    \(try JSONCoding.text(created.grants)), \(created.revision), \(Rows.time(created.createdAt)),
                    \(Rows.time(created.updatedAt)))
                """, logger: logger)
            try await Self.writeIndexes(connection, model: created, replacing: false, logger)
            return (created, audit, events)
        }
    }

    public func model(named name: String) async throws -> Model? {
        let logger = self.logger
        return try await read { connection in try await Self.loadModel(connection, name, logger) }
    }

    public func models(_ query: ModelQuery) async throws -> Page<Model> {
        let logger = self.logger
        let limit = max(query.limit, 0)
        var sql = QueryBuilder("SELECT \(Rows.modelColumns) FROM models WHERE TRUE")
        if let prefix = query.prefix, !prefix.isEmpty {
            // A range keeps the primary key usable; every string that starts with `prefix` sorts inside it.
            sql.add(" AND name >= ? AND name < ?", prefix, prefix + "\u{10FFFF}")
        }
        if let tag = query.tag {
            sql.add(" AND name IN (SELECT model FROM model_tags WHERE key = ? AND value = ?)", tag.key, tag.value)
        }
        if let subject = query.visibleTo {
            sql.add(" AND name IN (SELECT model FROM grants WHERE subject = ?)", subject)
        }
        if let after = query.after { sql.add(" AND name > ?", after) }
        sql.add(" ORDER BY name LIMIT ?", limit + 1)
        let statement = sql.query
        let models = try await read(replica: true) { connection in
            try await connection.rows(statement, logger).map(Rows.model)
        }
        return Page(fetched: models, limit: limit) { $0.name }
    }

    public func updateModel(
        named name: String, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout Model) throws -> Transitions.ModelChange
    ) async throws -> Model {
        let logger = self.logger
        return try await write(context) { connection in
            guard let current = try await Self.loadModel(connection, name, logger) else {
                throw RegistryError.modelNotFound(name)
            }
            let (updated, audit, events) = try Transitions.updateModel(
                current, expectedRevision: expectedRevision, context: context, change)
            try await connection.query(
                """
                UPDATE models SET description = \(updated.description), tags = \(try JSONCoding.text(updated.tags)),
                    approval_policy = \(try JSONCoding.text(updated.approvalPolicy)),
                    trust_policy = \(try JSONCoding.text(updated.trustPolicy)), grants = \(try JSONCoding.text(updated.grants)),
                    revision = \(updated.revision), updated_at = \(Rows.time(updated.updatedAt))
                WHERE name = \(name)
                """, logger: logger)
            if updated.tags != current.tags || updated.grants != current.grants {
                try await Self.writeIndexes(connection, model: updated, replacing: true, logger)
            }
            return (updated, audit, events)
        }
    }

    // MARK: Rows

    static func loadModel(_ connection: PostgresConnection, _ name: String, _ logger: Logger) async throws -> Model? {
        try await connection.first(
            "SELECT \(unescaped: Rows.modelColumns) FROM models WHERE name = \(name)", logger, Rows.model)
    }

    static func modelExists(_ connection: PostgresConnection, _ name: String, _ logger: Logger) async throws -> Bool {
        try await connection.first("SELECT 1 FROM models WHERE name = \(name)", logger) { _ in true } ?? false
    }

    /// The rows the list filters use: one per tag, one per subject holding a grant (the grants themselves, in
    /// their order, live in the model's row).
    private static func writeIndexes(
        _ connection: PostgresConnection, model: Model, replacing: Bool, _ logger: Logger
    ) async throws {
        if replacing {
            try await connection.query("DELETE FROM model_tags WHERE model = \(model.name)", logger: logger)
            try await connection.query("DELETE FROM grants WHERE model = \(model.name)", logger: logger)
        }
        let keys = Array(model.tags.keys)
        let values = keys.map { model.tags[$0] ?? "" }
        if !keys.isEmpty {
            try await connection.query(
                """
                INSERT INTO model_tags (model, key, value)
                SELECT \(model.name), key, value FROM unnest(\(keys)::text[], \(values)::text[]) AS t(key, value)
                """, logger: logger)
        }
        let subjects = Array(Set(model.grants.map(\.subject)))
        if !subjects.isEmpty {
            try await connection.query(
                "INSERT INTO grants (model, subject) SELECT \(model.name), unnest(\(subjects)::text[])",
                logger: logger)
        }
    }
}
