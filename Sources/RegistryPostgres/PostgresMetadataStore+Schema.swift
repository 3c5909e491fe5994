import Logging
import PostgresNIO
import RegistryCore

extension PostgresMetadataStore {
    /// The versioned schema; a migration, once shipped, is never edited, only followed by a new one. Each runs in
    /// its own transaction with its row in `schema_migrations`, under `migrationLock` (see `prepare()`).
    /// Names compare bytewise (`COLLATE "C"`) whatever the database's locale, so pages come in the order the
    /// embedded store gives and a prefix range covers exactly the names that start with the prefix.
    static let migrations: [(version: Int, sql: String)] = [
        (
            1,
            """
            CREATE TABLE models (
                name TEXT COLLATE "C" PRIMARY KEY,
                description TEXT NOT NULL,
                tags TEXT NOT NULL,
                created_by TEXT NOT NULL,
                approval_policy TEXT NOT NULL,
                trust_policy TEXT NOT NULL,
                grants TEXT NOT NULL,
                revision BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            );
            CREATE TABLE model_tags (
                model TEXT NOT NULL REFERENCES models(name),
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (model, key)
            );
            CREATE INDEX model_tags_by_value ON model_tags(key, value, model);
            CREATE TABLE grants (
                model TEXT NOT NULL REFERENCES models(name),
                subject TEXT NOT NULL,
                PRIMARY KEY (subject, model)
            );

            CREATE TABLE versions (
                model TEXT NOT NULL REFERENCES models(name),
                version BIGINT NOT NULL,
                status TEXT NOT NULL,
                manifest_digest TEXT NOT NULL,
                size BIGINT NOT NULL,
                signature TEXT,
                metadata TEXT NOT NULL,
                tags TEXT NOT NULL,
                source TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                approvals TEXT NOT NULL,
                revision BIGINT NOT NULL,
                PRIMARY KEY (model, version)
            );
            CREATE INDEX versions_by_status ON versions(model, status, version);
            CREATE TABLE version_tags (
                model TEXT NOT NULL,
                version BIGINT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (model, version, key),
                FOREIGN KEY (model, version) REFERENCES versions(model, version)
            );
            CREATE INDEX version_tags_by_value ON version_tags(model, key, value, version);
            CREATE TABLE artifact_references (
                digest TEXT NOT NULL,
                model TEXT NOT NULL REFERENCES models(name),
                PRIMARY KEY (digest, model)
            );

            CREATE TABLE stages (
                model TEXT NOT NULL REFERENCES models(name),
                stage TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                revision BIGINT NOT NULL,
                updated_by TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                rollout_id TEXT,
                PRIMARY KEY (model, stage),
                FOREIGN KEY (model, version) REFERENCES versions(model, version)
            );
            CREATE INDEX stages_by_version ON stages(model, version);
            CREATE TABLE stage_history (
                model TEXT NOT NULL,
                stage TEXT NOT NULL,
                sequence BIGINT NOT NULL,
                action TEXT NOT NULL,
                from_version BIGINT,
                to_version BIGINT NOT NULL,
                revision BIGINT NOT NULL,
                actor TEXT NOT NULL,
                reason TEXT,
                time BIGINT NOT NULL,
                rollout_id TEXT,
                weight DOUBLE PRECISION,
                PRIMARY KEY (model, stage, sequence),
                FOREIGN KEY (model, stage) REFERENCES stages(model, stage)
            );

            CREATE TABLE rollouts (
                id TEXT COLLATE "C" PRIMARY KEY,
                model TEXT NOT NULL REFERENCES models(name),
                stage TEXT NOT NULL,
                state TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                FOREIGN KEY (model, stage) REFERENCES stages(model, stage)
            );
            CREATE INDEX rollouts_by_state ON rollouts(state, created_at);
            CREATE TABLE rollout_reports (
                rollout_id TEXT NOT NULL REFERENCES rollouts(id),
                instance TEXT NOT NULL,
                region TEXT,
                state TEXT NOT NULL,
                requests BIGINT NOT NULL,
                errors BIGINT NOT NULL,
                stable_requests BIGINT NOT NULL,
                stable_errors BIGINT NOT NULL,
                time BIGINT NOT NULL,
                PRIMARY KEY (rollout_id, instance)
            );

            CREATE TABLE tokens (
                position BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                subject TEXT NOT NULL,
                admin BOOLEAN NOT NULL,
                can_create_models BOOLEAN NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT,
                bootstrap BOOLEAN NOT NULL,
                revoked_at BIGINT
            );

            CREATE TABLE audit (
                sequence BIGINT PRIMARY KEY,
                time BIGINT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                model TEXT,
                before TEXT,
                after TEXT,
                request_id TEXT NOT NULL,
                previous_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE INDEX audit_by_model ON audit(model, sequence);
            CREATE TABLE audit_head (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                sequence BIGINT NOT NULL,
                hash TEXT NOT NULL
            );

            CREATE TABLE events (
                id BIGSERIAL PRIMARY KEY,
                type TEXT NOT NULL,
                time BIGINT NOT NULL,
                model TEXT,
                data TEXT NOT NULL
            );

            CREATE TABLE uploads (
                subject TEXT NOT NULL,
                digest TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (subject, digest)
            );
            CREATE INDEX uploads_by_expiry ON uploads(expires_at);
            """
        )
    ]

    /// Applies the migrations not yet recorded, each in its own transaction. The caller holds `migrationLock`.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)
            """, logger: logger)
        let applied = Set(
            try await connection.query("SELECT version FROM schema_migrations", logger: logger).collect().map {
                try $0.decode(Int.self)
            })
        if let newest = applied.max(), newest > migrations.map(\.version).max() ?? 0 {
            throw RegistryError(
                .internalError,
                "The database schema is at version \(newest), newer than this registry knows; upgrade the registry.")
        }
        for migration in migrations where !applied.contains(migration.version) {
            try await connection.query("BEGIN", logger: logger)
            do {
                // One statement per query: the extended query protocol takes no more. The DDL holds no `;` but
                // between statements.
                for statement in migration.sql.split(separator: ";")
                where !statement.allSatisfy({ $0.isWhitespace }) {
                    try await connection.query(PostgresQuery(unsafeSQL: String(statement)), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (\(migration.version), now())",
                    logger: logger)
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
            logger.info("Migrated the metadata schema", metadata: ["version": "\(migration.version)"])
        }
    }
}
