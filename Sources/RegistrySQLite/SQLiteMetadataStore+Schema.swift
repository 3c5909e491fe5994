import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    /// The versioned schema; a migration, once shipped, is never edited, only followed by a new one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // JSON columns (tags, grants order, approvals, metadata) are read with their row, so lists need no
            // extra queries; the *_tags and grants tables exist to index the filters.
            try db.execute(
                sql: """
                    CREATE TABLE models (
                        name TEXT PRIMARY KEY NOT NULL,
                        description TEXT NOT NULL,
                        tags TEXT NOT NULL,
                        created_by TEXT NOT NULL,
                        approval_policy TEXT NOT NULL,
                        revision INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE model_tags (
                        model TEXT NOT NULL REFERENCES models(name),
                        key TEXT NOT NULL,
                        value TEXT NOT NULL,
                        PRIMARY KEY (model, key)
                    ) WITHOUT ROWID;
                    CREATE INDEX model_tags_by_value ON model_tags(key, value, model);
                    CREATE TABLE grants (
                        model TEXT NOT NULL REFERENCES models(name),
                        position INTEGER NOT NULL,
                        subject TEXT NOT NULL,
                        role TEXT NOT NULL,
                        PRIMARY KEY (model, position)
                    ) WITHOUT ROWID;
                    CREATE INDEX grants_by_subject ON grants(subject, model);

                    CREATE TABLE versions (
                        model TEXT NOT NULL REFERENCES models(name),
                        version INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        manifest_digest TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        signature TEXT,
                        metadata TEXT NOT NULL,
                        tags TEXT NOT NULL,
                        source TEXT NOT NULL,
                        created_by TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        approvals TEXT NOT NULL,
                        revision INTEGER NOT NULL,
                        PRIMARY KEY (model, version)
                    ) WITHOUT ROWID;
                    CREATE INDEX versions_by_status ON versions(model, status, version);
                    CREATE TABLE version_tags (
                        model TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        key TEXT NOT NULL,
                        value TEXT NOT NULL,
                        PRIMARY KEY (model, version, key),
                        FOREIGN KEY (model, version) REFERENCES versions(model, version)
                    ) WITHOUT ROWID;
                    CREATE INDEX version_tags_by_value ON version_tags(model, key, value, version);
                    CREATE TABLE artifact_references (
                        digest TEXT NOT NULL,
                        model TEXT NOT NULL REFERENCES models(name),
                        PRIMARY KEY (digest, model)
                    ) WITHOUT ROWID;

                    CREATE TABLE stages (
                        model TEXT NOT NULL REFERENCES models(name),
                        stage TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        revision INTEGER NOT NULL,
                        updated_by TEXT NOT NULL,
                        updated_at INTEGER NOT NULL,
                        PRIMARY KEY (model, stage),
                        FOREIGN KEY (model, version) REFERENCES versions(model, version)
                    ) WITHOUT ROWID;
                    CREATE INDEX stages_by_version ON stages(model, version);
                    CREATE TABLE stage_history (
                        model TEXT NOT NULL,
                        stage TEXT NOT NULL,
                        sequence INTEGER NOT NULL,
                        action TEXT NOT NULL,
                        from_version INTEGER,
                        to_version INTEGER NOT NULL,
                        revision INTEGER NOT NULL,
                        actor TEXT NOT NULL,
                        reason TEXT,
                        time INTEGER NOT NULL,
                        PRIMARY KEY (model, stage, sequence),
                        FOREIGN KEY (model, stage) REFERENCES stages(model, stage)
                    ) WITHOUT ROWID;

                    CREATE TABLE tokens (
                        position INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        subject TEXT NOT NULL,
                        admin INTEGER NOT NULL,
                        token_hash TEXT NOT NULL UNIQUE,
                        created_by TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );

                    CREATE TABLE audit (
                        sequence INTEGER PRIMARY KEY,
                        time INTEGER NOT NULL,
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
                        sequence INTEGER NOT NULL,
                        hash TEXT NOT NULL
                    );

                    CREATE TABLE events (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        type TEXT NOT NULL,
                        time INTEGER NOT NULL,
                        model TEXT,
                        data TEXT NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2") { db in
            // The trust policy (trusted signing keys, signature required) is read with its model, like the
            // approval policy; existing models get the empty policy.
            try db.execute(sql: "ALTER TABLE models ADD COLUMN trust_policy TEXT NOT NULL DEFAULT '{}'")
        }
        migrator.registerMigration("v3") { db in
            // Progressive rollouts: each rollout is one JSON document (its reports included) beside the columns
            // the store looks it up by; a stage names its active rollout; history entries name theirs and the
            // candidate's weight after the move.
            try db.execute(
                sql: """
                    ALTER TABLE stages ADD COLUMN rollout_id TEXT;
                    ALTER TABLE stage_history ADD COLUMN rollout_id TEXT;
                    ALTER TABLE stage_history ADD COLUMN weight REAL;
                    CREATE TABLE rollouts (
                        id TEXT PRIMARY KEY,
                        model TEXT NOT NULL REFERENCES models(name),
                        stage TEXT NOT NULL,
                        state TEXT NOT NULL,
                        body TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        FOREIGN KEY (model, stage) REFERENCES stages(model, stage)
                    ) WITHOUT ROWID;
                    CREATE INDEX rollouts_by_state ON rollouts(state, created_at);
                    """)
        }
        migrator.registerMigration("v4") { db in
            // Tokens: the global permission to create models, an optional expiry, which tokens the registry made at
            // start-up, and revocation as a mark (a revoked bootstrap secret is recognised and not re-created).
            try db.execute(
                sql: """
                    ALTER TABLE tokens ADD COLUMN can_create_models INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
                    ALTER TABLE tokens ADD COLUMN bootstrap INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
                    UPDATE tokens SET bootstrap = 1 WHERE created_by = 'system' AND subject = 'admin' AND admin = 1;
                    """)
            // Open uploads: which caller holds which digest until when (visibility to the uploader, GC pins).
            try db.execute(
                sql: """
                    CREATE TABLE uploads (
                        subject TEXT NOT NULL,
                        digest TEXT NOT NULL,
                        expires_at INTEGER NOT NULL,
                        PRIMARY KEY (subject, digest)
                    ) WITHOUT ROWID;
                    CREATE INDEX uploads_by_expiry ON uploads(expires_at);
                    """)
        }
        migrator.registerMigration("v5") { db in
            // A rollout's reports, one row per instance, apart from its document: a report is one row written and
            // one aggregate read, instead of a rewrite of a document holding every instance's report.
            try db.execute(
                sql: """
                    CREATE TABLE rollout_reports (
                        rollout_id TEXT NOT NULL REFERENCES rollouts(id),
                        instance TEXT NOT NULL,
                        region TEXT,
                        state TEXT NOT NULL,
                        requests INTEGER NOT NULL,
                        errors INTEGER NOT NULL,
                        stable_requests INTEGER NOT NULL,
                        stable_errors INTEGER NOT NULL,
                        time INTEGER NOT NULL,
                        PRIMARY KEY (rollout_id, instance)
                    ) WITHOUT ROWID;
                    """)
            for row in try Row.fetchAll(db, sql: "SELECT id, body FROM rollouts") {
                let rollout = try JSONCoding.decodeStored(Rollout.self, row["body"])
                try saveReports(db, rollout, changedFrom: nil)
                try db.execute(
                    sql: "UPDATE rollouts SET body = ? WHERE id = ?", arguments: [try body(rollout), rollout.id])
            }
        }
        return migrator
    }
}
