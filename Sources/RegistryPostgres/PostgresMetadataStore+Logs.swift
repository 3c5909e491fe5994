import Foundation
import Logging
import PostgresNIO
import RegistryCore

extension PostgresMetadataStore {
    // MARK: Tokens

    public func createToken(_ token: AccessToken, context: MutationContext) async throws {
        let logger = self.logger
        try await write(context) { connection in
            let taken =
                try await connection.first(
                    "SELECT 1 FROM tokens WHERE id = \(token.id) OR token_hash = \(token.tokenHash)", logger
                ) { _ in true } ?? false
            guard !taken else { throw RegistryError.invalidArgument("A token with this id or secret already exists.") }
            try await connection.query(
                """
                INSERT INTO tokens (\(unescaped: Rows.tokenColumns))
                VALUES (\(token.id), \(token.subject), \(token.admin), \(token.tokenHash), \(token.createdBy),
                    \(Rows.time(token.createdAt)), \(token.canCreateModels), \(token.expiresAt.map(Rows.time)),
                    \(token.bootstrap), \(token.revokedAt.map(Rows.time)))
                """, logger: logger)
            let (audit, events) = try Transitions.tokenCreated(token)
            return ((), audit, events)
        }
    }

    public func token(hash: String) async throws -> AccessToken? {
        // The lookup is by an index on the hash of a 256-bit secret, so its timing reveals nothing useful.
        let logger = self.logger
        return try await read { connection in
            try await connection.first(
                "SELECT \(unescaped: Rows.tokenColumns) FROM tokens WHERE token_hash = \(hash)", logger, Rows.token)
        }
    }

    public func tokens() async throws -> [AccessToken] {
        let logger = self.logger
        return try await read { connection in
            try await connection.rows(
                "SELECT \(unescaped: Rows.tokenColumns) FROM tokens WHERE revoked_at IS NULL ORDER BY position", logger
            ).map(Rows.token)
        }
    }

    public func revokeToken(id: String, context: MutationContext) async throws {
        let logger = self.logger
        try await write(context) { connection in
            guard
                let token = try await connection.first(
                    "SELECT \(unescaped: Rows.tokenColumns) FROM tokens WHERE id = \(id) AND revoked_at IS NULL",
                    logger, Rows.token)
            else { throw RegistryError(.notFound, "No token has id '\(id)'.") }
            // Kept, marked revoked: a revoked bootstrap secret must be recognised at the next start.
            try await connection.query(
                "UPDATE tokens SET revoked_at = \(Rows.time(context.time)) WHERE id = \(id)", logger: logger)
            let (audit, events) = try Transitions.tokenRevoked(token)
            return ((), audit, events)
        }
    }

    // MARK: Audit

    public func recordAudit(_ draft: AuditDraft, context: MutationContext) async throws {
        try await write(context, changesState: false) { _ in ((), draft, []) }
    }

    /// One transaction for all `entries`: the last goes through `write` like any audit draft, the ones before it
    /// are appended first inside the same transaction, so the chain keeps their order.
    public func recordAudits(_ entries: [(draft: AuditDraft, context: MutationContext)]) async throws {
        guard let last = entries.last else { return }
        let earlier = Array(entries.dropLast()).map { Pending(draft: $0.draft, context: $0.context) }
        let logger = self.logger
        try await write(last.context, changesState: false) { connection in
            for entry in earlier {
                _ = try await Self.append(audit: entry.draft, events: [], context: entry.context, connection, logger)
            }
            return ((), last.draft, [])
        }
    }

    public func auditEntries(_ query: AuditQuery) async throws -> Page<AuditEntry> {
        let logger = self.logger
        let limit = max(query.limit, 0)
        var sql = QueryBuilder("SELECT \(Rows.auditColumns) FROM audit WHERE ")
        if let model = query.model { sql.add("model = ? AND ", model) }
        sql.add("sequence > ? ORDER BY sequence LIMIT ?", query.after, limit + 1)
        let statement = sql.query
        let entries = try await read(replica: true) { connection in
            try await connection.rows(statement, logger).map(Rows.auditEntry)
        }
        return Page(fetched: entries, limit: limit) { String($0.sequence) }
    }

    public func auditHead() async throws -> (sequence: Int64, hash: String)? {
        let logger = self.logger
        let head = try await read { connection in
            try await connection.first("SELECT sequence, hash FROM audit_head WHERE id = 1", logger) {
                try $0.decode((Int64, String).self)
            }
        }
        return head.map { (sequence: $0.0, hash: $0.1) }
    }

    // MARK: Events

    public func events(after: Int64, limit: Int) async throws -> [Event] {
        let logger = self.logger
        return try await read { connection in
            try await connection.rows(
                "SELECT id, type, time, model, data FROM events WHERE id > \(after) ORDER BY id LIMIT \(max(limit, 0))",
                logger
            ).map(Rows.event)
        }
    }

    public func lastEventId() async throws -> Int64 {
        let logger = self.logger
        return try await read { connection in
            try await connection.first("SELECT MAX(id) FROM events", logger) { try $0.decode(Int64?.self) }
                .flatMap { $0 } ?? 0
        }
    }

    public func waitForEvents(after: Int64, timeout: Duration) async throws {
        await signal.wait(after: after, timeout: timeout)
    }

    // MARK: Uploads

    public func recordUploads(_ digests: [Digest], by subject: String, expiresAt: Date) async throws {
        guard !digests.isEmpty else { return }
        let logger = self.logger
        let texts = digests.map(\.description)
        // Not audited and not under the write lock: an open upload is bookkeeping, not a change of state.
        try await transaction(locked: false) { connection in
            try await connection.query(
                """
                INSERT INTO uploads (subject, digest, expires_at)
                SELECT \(subject), digest, \(Rows.time(expiresAt)) FROM unnest(\(texts)::text[]) AS t(digest)
                ON CONFLICT (subject, digest) DO UPDATE SET expires_at = GREATEST(uploads.expires_at, excluded.expires_at)
                """, logger: logger)
        }
    }

    public func uploadedDigests(_ digests: [Digest], by subject: String, now: Date) async throws -> Set<Digest> {
        guard !digests.isEmpty else { return [] }
        let logger = self.logger
        let texts = digests.map(\.description)
        let held = try await read { connection in
            try await connection.rows(
                """
                SELECT digest FROM uploads
                WHERE subject = \(subject) AND digest = ANY(\(texts)::text[]) AND expires_at > \(Rows.time(now))
                """, logger
            ).map { try $0.decode(String.self) }
        }
        return Set(try held.map { try Digest(parsing: $0) })
    }

    public func pinnedDigests(now: Date) async throws -> Set<Digest> {
        let logger = self.logger
        let texts = try await transaction(locked: false) { connection in
            try await connection.query("DELETE FROM uploads WHERE expires_at <= \(Rows.time(now))", logger: logger)
            return try await connection.rows("SELECT DISTINCT digest FROM uploads", logger).map {
                try $0.decode(String.self)
            }
        }
        return Set(try texts.map { try Digest(parsing: $0) })
    }
}

/// An audit draft waiting to be appended, as a `Sendable` value.
private struct Pending: Sendable {
    let draft: AuditDraft
    let context: MutationContext
}
