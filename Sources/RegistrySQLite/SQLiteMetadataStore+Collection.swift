import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    public func referencedDigests() async throws -> Set<Digest> {
        let texts = try await read { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT DISTINCT digest FROM artifact_references"))
        }
        return Set(try texts.map { try Digest(parsing: $0) })
    }
}
