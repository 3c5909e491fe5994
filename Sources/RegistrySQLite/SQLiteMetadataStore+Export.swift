import GRDB
import RegistryCore

extension SQLiteMetadataStore {
    /// The names of `table`'s columns, in their order.
    public func columns(of table: String) async throws -> [String] {
        try await read { db in try db.columns(in: table).map(\.name) }
    }

    /// One page of `table`'s rows as stored, `columns` in that order, sorted by `order` (a primary key, so that
    /// pages do not overlap): for `registry migrate`. `table`, `columns` and `order` are the caller's constants.
    public func rows(
        of table: String, columns: [String], order: [String], offset: Int, limit: Int
    ) async throws -> [[StoredValue]] {
        let sql =
            "SELECT \(columns.map { "\"\($0)\"" }.joined(separator: ", ")) FROM \"\(table)\" "
            + "ORDER BY \(order.map { "\"\($0)\"" }.joined(separator: ", ")) LIMIT ? OFFSET ?"
        return try await read { db in
            try Row.fetchAll(db, sql: sql, arguments: [limit, offset]).map { row in
                (0..<columns.count).map { index in
                    let value: DatabaseValue = row[index]
                    switch value.storage {
                    case .null: return .null
                    case .int64(let integer): return .integer(integer)
                    case .double(let real): return .real(real)
                    case .string(let text): return .text(text)
                    case .blob(let data): return .text(String(decoding: data, as: UTF8.self))
                    }
                }
            }
        }
    }
}
