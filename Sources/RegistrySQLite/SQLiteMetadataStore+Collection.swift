import Foundation
import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    public func referencedDigests() async throws -> Set<Digest> {
        let texts = try await read { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT DISTINCT digest FROM artifact_references"))
        }
        return Set(try texts.map { try Digest(parsing: $0) })
    }

    public func recordUploads(_ digests: [Digest], by subject: String, expiresAt: Date) async throws {
        guard !digests.isEmpty else { return }
        try await writeUnaudited { db in
            let statement = try db.cachedStatement(
                sql: """
                    INSERT INTO uploads (subject, digest, expires_at) VALUES (?, ?, ?)
                    ON CONFLICT (subject, digest) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)
                    """)
            for digest in digests {
                try statement.execute(arguments: [subject, digest.description, Rows.time(expiresAt)])
            }
        }
    }

    public func uploadedDigests(_ digests: [Digest], by subject: String, now: Date) async throws -> Set<Digest> {
        guard !digests.isEmpty else { return [] }
        let held = try await read { db in
            let statement = try db.cachedStatement(
                sql: "SELECT 1 FROM uploads WHERE subject = ? AND digest = ? AND expires_at > ?")
            return try digests.filter { digest in
                try Bool.fetchOne(statement, arguments: [subject, digest.description, Rows.time(now)]) ?? false
            }
        }
        return Set(held)
    }

    public func pinnedDigests(now: Date) async throws -> Set<Digest> {
        try await writeUnaudited { db in
            try db.cachedStatement(sql: "DELETE FROM uploads WHERE expires_at <= ?").execute(arguments: [Rows.time(now)]
            )
        }
        let texts = try await read { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT DISTINCT digest FROM uploads"))
        }
        return Set(try texts.map { try Digest(parsing: $0) })
    }
}
