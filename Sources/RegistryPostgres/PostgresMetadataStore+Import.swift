import Logging
import PostgresNIO
import RegistryCore

extension PostgresMetadataStore {
    /// Inserts rows into the tables of an empty database, inside the one transaction of `importTables`.
    public struct Importer: Sendable {
        let connection: PostgresConnection
        let logger: Logger

        /// Inserts `rows` (values for `columns`, in that order) into `table`, converting each value to the column's
        /// type. `table` and `columns` are the caller's constants, never input.
        public func insert(into table: String, columns: [String], rows: [[StoredValue]]) async throws {
            guard !rows.isEmpty else { return }
            let types = try await connection.query(
                """
                SELECT column_name, data_type FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = \(table)
                """, logger: logger
            ).collect().reduce(into: [String: String]()) { types, row in
                let (name, type) = try row.decode((String, String).self)
                types[name] = type
            }
            let kinds = try columns.map { column -> String in
                guard let type = types[column] else {
                    throw RegistryError(.internalError, "The database has no column \(table).\(column).")
                }
                return type
            }
            // Batches stay far below the protocol's 65 535 parameters.
            let perStatement = max(1, 4000 / max(columns.count, 1))
            var start = 0
            while start < rows.count {
                let batch = rows[start..<min(rows.count, start + perStatement)]
                var bindings = PostgresBindings()
                var tuples: [String] = []
                var parameter = 0
                for row in batch {
                    guard row.count == columns.count else {
                        throw RegistryError(.internalError, "A row of \(table) has the wrong number of values.")
                    }
                    var placeholders: [String] = []
                    for (value, kind) in zip(row, kinds) {
                        parameter += 1
                        placeholders.append("$\(parameter)")
                        try Self.bind(value, as: kind, into: &bindings, table: table)
                    }
                    tuples.append("(" + placeholders.joined(separator: ", ") + ")")
                }
                let sql =
                    "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES "
                    + tuples.joined(separator: ", ")
                try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
                start += batch.count
            }
        }

        static func bind(
            _ value: StoredValue, as kind: String, into bindings: inout PostgresBindings, table: String
        ) throws {
            switch (value, kind) {
            case (.null, _): bindings.appendNull()
            case (.integer(let integer), "bigint"), (.integer(let integer), "integer"): bindings.append(integer)
            case (.integer(let integer), "boolean"): bindings.append(integer != 0)
            case (.integer(let integer), "double precision"): bindings.append(Double(integer))
            case (.real(let real), "double precision"): bindings.append(real)
            case (.text(let text), "text"): bindings.append(text)
            default:
                throw RegistryError(.internalError, "A value of \(table) does not fit its column type \(kind).")
            }
        }
    }

    /// Copies rows into an empty database: `body` inserts through the importer, all in one transaction under the
    /// write lock, so a failure leaves the database as empty as it was. Afterwards the id sequences continue after
    /// the copied rows. Refused (`FAILED_PRECONDITION`-like `INVALID_ARGUMENT`) when the database holds anything.
    public func importTables(_ body: @Sendable @escaping (Importer) async throws -> Void) async throws {
        let logger = self.logger
        try await transaction(locked: true) { connection in
            let held =
                try await connection.query(
                    """
                    SELECT (SELECT count(*) FROM models) + (SELECT count(*) FROM tokens) + (SELECT count(*) FROM audit)
                        + (SELECT count(*) FROM events)
                    """, logger: logger
                ).collect().first?.decode(Int64.self) ?? 0
            guard held == 0 else {
                throw RegistryError(
                    .invalidArgument,
                    "The target database already holds registry data (\(held) models, tokens, audit entries and "
                        + "events); migrate into an empty database (one no registry has served yet).")
            }
            try await body(Importer(connection: connection, logger: logger))
            for (table, column) in [("events", "id"), ("tokens", "position")] {
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT setval(pg_get_serial_sequence('\(table)', '\(column)'),
                                COALESCE(MAX(\(column)), 1), MAX(\(column)) IS NOT NULL) FROM \(table)
                            """), logger: logger)
            }
        }
        signal.advance(to: try await lastEventId())
    }
}
