import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    public func createModel(_ model: Model, context: MutationContext) async throws -> Model {
        try await write(context) { db in
            guard try Self.loadModel(db, model.name) == nil else {
                throw RegistryError(
                    .modelExists, "Model '\(model.name)' already exists.", details: ["model": .string(model.name)])
            }
            let (created, audit, events) = try Transitions.createModel(model)
            try db.cachedStatement(
                sql: """
                    INSERT INTO models (\(Rows.modelColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: Self.modelArguments(created))
            try Self.writeTags(db, model: created.name, tags: created.tags, replacing: false)
            try Self.writeGrants(db, model: created.name, grants: created.grants, replacing: false)
            return (created, audit, events)
        }
    }

    public func model(named name: String) async throws -> Model? {
        try await read { db in try Self.loadModel(db, name) }
    }

    public func models(_ query: ModelQuery) async throws -> Page<Model> {
        try await read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let prefix = query.prefix, !prefix.isEmpty {
                // A range keeps the primary key usable; every string that starts with `prefix` sorts inside it.
                conditions.append("name >= ? AND name < ?")
                arguments += [prefix, prefix + "\u{10FFFF}"]
            }
            if let tag = query.tag {
                conditions.append("name IN (SELECT model FROM model_tags WHERE key = ? AND value = ?)")
                arguments += [tag.key, tag.value]
            }
            if let subject = query.visibleTo {
                conditions.append("name IN (SELECT model FROM grants WHERE subject = ?)")
                arguments += [subject]
            }
            if let after = query.after {
                conditions.append("name > ?")
                arguments += [after]
            }
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            let limit = max(query.limit, 0)
            arguments += [limit + 1]
            let rows = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT \(Rows.modelColumns) FROM models \(filter) ORDER BY name LIMIT ?"),
                arguments: arguments)
            let grants = try Self.loadGrants(db, from: rows.first?["name"], to: rows.last?["name"])
            let models = try rows.map { row in try Rows.model(row, grants: grants[row["name"] as String] ?? []) }
            return Page(fetched: models, limit: limit) { $0.name }
        }
    }

    public func updateModel(
        named name: String, expectedRevision: Int, context: MutationContext,
        _ change: @escaping @Sendable (inout Model) throws -> Transitions.ModelChange
    ) async throws -> Model {
        try await write(context) { db in
            guard let current = try Self.loadModel(db, name) else { throw RegistryError.modelNotFound(name) }
            let (updated, audit, events) = try Transitions.updateModel(
                current, expectedRevision: expectedRevision, context: context, change)
            try db.cachedStatement(
                sql: """
                    UPDATE models SET description = ?, tags = ?, approval_policy = ?, trust_policy = ?, revision = ?,
                        updated_at = ?
                    WHERE name = ?
                    """
            ).execute(arguments: [
                updated.description, try JSONCoding.text(updated.tags), try JSONCoding.text(updated.approvalPolicy),
                try JSONCoding.text(updated.trustPolicy), updated.revision, Rows.time(updated.updatedAt), name,
            ])
            if updated.tags != current.tags {
                try Self.writeTags(db, model: name, tags: updated.tags, replacing: true)
            }
            if updated.grants != current.grants {
                try Self.writeGrants(db, model: name, grants: updated.grants, replacing: true)
            }
            return (updated, audit, events)
        }
    }

    // MARK: Rows

    static func loadModel(_ db: Database, _ name: String) throws -> Model? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT \(Rows.modelColumns) FROM models WHERE name = ?"), arguments: [name])
        else { return nil }
        return try Rows.model(row, grants: loadGrants(db, from: name, to: name)[name] ?? [])
    }

    /// The grants of every model whose name is in `from...to`, in access-list order.
    static func loadGrants(_ db: Database, from first: String?, to last: String?) throws -> [String: [Grant]] {
        guard let first, let last else { return [:] }
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: "SELECT model, subject, role FROM grants WHERE model >= ? AND model <= ? ORDER BY model, position"),
            arguments: [first, last])
        var grants: [String: [Grant]] = [:]
        while let row = try rows.next() {
            let roleText: String = row["role"]
            guard let role = Role(rawValue: roleText) else {
                throw RegistryError(.internalError, "A stored grant has the unknown role '\(roleText)'.")
            }
            grants[row["model"], default: []].append(Grant(subject: row["subject"], role: role))
        }
        return grants
    }

    private static func modelArguments(_ model: Model) throws -> StatementArguments {
        [
            model.name, model.description, try JSONCoding.text(model.tags), model.createdBy,
            try JSONCoding.text(model.approvalPolicy), try JSONCoding.text(model.trustPolicy), model.revision,
            Rows.time(model.createdAt), Rows.time(model.updatedAt),
        ]
    }

    private static func writeTags(_ db: Database, model: String, tags: [String: String], replacing: Bool) throws {
        if replacing {
            try db.cachedStatement(sql: "DELETE FROM model_tags WHERE model = ?").execute(arguments: [model])
        }
        let insert = try db.cachedStatement(sql: "INSERT INTO model_tags (model, key, value) VALUES (?, ?, ?)")
        for (key, value) in tags { try insert.execute(arguments: [model, key, value]) }
    }

    private static func writeGrants(_ db: Database, model: String, grants: [Grant], replacing: Bool) throws {
        if replacing {
            try db.cachedStatement(sql: "DELETE FROM grants WHERE model = ?").execute(arguments: [model])
        }
        let insert = try db.cachedStatement(
            sql: "INSERT INTO grants (model, position, subject, role) VALUES (?, ?, ?, ?)")
        for (position, grant) in grants.enumerated() {
            try insert.execute(arguments: [model, position, grant.subject, grant.role.rawValue])
        }
    }
}
