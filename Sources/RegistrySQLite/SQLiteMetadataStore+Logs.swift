import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    // MARK: Tokens

    public func createToken(_ token: AccessToken, context: MutationContext) async throws {
        try await write(context) { db in
            let taken =
                try Bool.fetchOne(
                    db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM tokens WHERE id = ? OR token_hash = ?)"),
                    arguments: [token.id, token.tokenHash]) ?? false
            guard !taken else { throw RegistryError.invalidArgument("A token with this id or secret already exists.") }
            try db.cachedStatement(
                sql: "INSERT INTO tokens (\(Rows.tokenColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            .execute(arguments: [
                token.id, token.subject, token.admin, token.tokenHash, token.createdBy, Rows.time(token.createdAt),
                token.canCreateModels, token.expiresAt.map(Rows.time), token.bootstrap, token.revokedAt.map(Rows.time),
            ])
            let (audit, events) = try Transitions.tokenCreated(token)
            return ((), audit, events)
        }
    }

    public func token(hash: String) async throws -> AccessToken? {
        // The lookup is by an index on the hash of a 256-bit secret, so its timing reveals nothing useful.
        try await read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT \(Rows.tokenColumns) FROM tokens WHERE token_hash = ?"),
                arguments: [hash]
            ).map(Rows.token)
        }
    }

    public func tokens() async throws -> [AccessToken] {
        try await read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT \(Rows.tokenColumns) FROM tokens WHERE revoked_at IS NULL ORDER BY position")
            ).map(Rows.token)
        }
    }

    public func revokeToken(id: String, context: MutationContext) async throws {
        try await write(context) { db in
            guard
                let token = try Row.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT \(Rows.tokenColumns) FROM tokens WHERE id = ? AND revoked_at IS NULL"),
                    arguments: [id]
                ).map(Rows.token)
            else { throw RegistryError(.notFound, "No token has id '\(id)'.") }
            // Kept, marked revoked: a revoked bootstrap secret must be recognised at the next start.
            try db.cachedStatement(sql: "UPDATE tokens SET revoked_at = ? WHERE id = ?")
                .execute(arguments: [Rows.time(context.time), id])
            let (audit, events) = try Transitions.tokenRevoked(token)
            return ((), audit, events)
        }
    }

    // MARK: Audit

    public func recordAudit(_ draft: AuditDraft, context: MutationContext) async throws {
        try await write(context) { _ in ((), draft, []) }
    }

    /// One write transaction (one fsync) for all `entries`: the last goes through `write` like any audit draft, the
    /// ones before it are appended first inside the same transaction, so the chain keeps their order.
    public func recordAudits(_ entries: [(draft: AuditDraft, context: MutationContext)]) async throws {
        guard let last = entries.last else { return }
        let earlier = entries.dropLast()
        try await write(last.context) { db in
            for entry in earlier {
                _ = try Self.append(audit: entry.draft, events: [], context: entry.context, db)
            }
            return ((), last.draft, [])
        }
    }

    public func auditEntries(_ query: AuditQuery) async throws -> Page<AuditEntry> {
        try await read { db in
            let limit = max(query.limit, 0)
            let rows: [Row]
            if let model = query.model {
                rows = try Row.fetchAll(
                    db.cachedStatement(
                        sql:
                            "SELECT \(Rows.auditColumns) FROM audit WHERE model = ? AND sequence > ? ORDER BY sequence LIMIT ?"
                    ),
                    arguments: [model, query.after, limit + 1])
            } else {
                rows = try Row.fetchAll(
                    db.cachedStatement(
                        sql: "SELECT \(Rows.auditColumns) FROM audit WHERE sequence > ? ORDER BY sequence LIMIT ?"),
                    arguments: [query.after, limit + 1])
            }
            return Page(fetched: rows.map(Rows.auditEntry), limit: limit) { String($0.sequence) }
        }
    }

    public func auditHead() async throws -> (sequence: Int64, hash: String)? {
        let head = try await read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT sequence, hash FROM audit_head WHERE id = 1")).map {
                ($0["sequence"] as Int64, $0["hash"] as String)
            }
        }
        return head.map { (sequence: $0.0, hash: $0.1) }
    }

    // MARK: Events

    public func events(after: Int64, limit: Int) async throws -> [Event] {
        try await read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT id, type, time, model, data FROM events WHERE id > ? ORDER BY id LIMIT ?"),
                arguments: [after, max(limit, 0)]
            ).map(Rows.event)
        }
    }

    public func lastEventId() async throws -> Int64 {
        try await read { db in try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(id) FROM events")) ?? 0 }
    }

    public func waitForEvents(after: Int64, timeout: Duration) async throws {
        await signal.wait(after: after, timeout: timeout)
    }
}
