import ArgumentParser
import Foundation
import RegistryCore
import RegistryPostgres
import RegistrySQLite
import Synchronization

/// `registry migrate --from-sqlite DIR --to postgres://…`: moves an embedded registry's metadata into PostgreSQL.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move an embedded registry's metadata (SQLite) into an empty PostgreSQL database.",
        discussion: """
            Every model, version, stage and its history, rollout, token, audit entry and event is copied as it is: \
            the audit chain keeps its hashes (it is verified on both sides and must end on the same head) and events \
            keep their ids, so consumers continue from their cursors. The copy is one transaction: a failure leaves \
            the database empty. Stop the registry serving DIR first. Blobs stay where they are: serve with \
            --data-dir DIR --database URL to keep using them (and the master key in DIR).
            """)

    @Option(name: .customLong("from-sqlite"), help: "The data directory of the embedded registry.")
    var fromSQLite: String

    @Option(name: .customLong("to"), help: "The PostgreSQL database: postgres://user@host:port/database[?sslmode=...].")
    var to: String

    @Option(help: "A file holding the PostgreSQL password (its first line); or REGISTRY_DATABASE_PASSWORD.")
    var databasePasswordFile: String?

    /// The tables copied, in an order that satisfies their references, each with its primary key.
    static let tables: [(name: String, key: [String])] = [
        ("models", ["name"]), ("model_tags", ["model", "key"]), ("grants", ["model", "position"]),
        ("versions", ["model", "version"]), ("version_tags", ["model", "version", "key"]),
        ("artifact_references", ["digest", "model"]), ("stages", ["model", "stage"]),
        ("stage_history", ["model", "stage", "sequence"]), ("rollouts", ["id"]),
        ("rollout_reports", ["rollout_id", "instance"]), ("tokens", ["position"]), ("audit", ["sequence"]),
        ("audit_head", ["id"]), ("events", ["id"]), ("uploads", ["subject", "digest"]),
    ]

    func run() async throws {
        let lock = try DataDirectoryLock(directory: fromSQLite)
        defer { withExtendedLifetime(lock) {} }
        let path = fromSQLite + "/metadata.sqlite"
        guard FileManager.default.fileExists(atPath: path) else {
            throw RegistryError.invalidArgument(
                "\(fromSQLite) holds no registry metadata (\(path)).", field: "from-sqlite")
        }
        let source = try SQLiteMetadataStore(path: path)
        let before = try await source.verifyAudit()
        guard before.ok else {
            throw RegistryError(.internalError, "The audit chain in \(path) does not verify: \(before).")
        }
        let password =
            try databasePasswordFile.map { file in
                try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").first.map(String.init) ?? ""
            } ?? ProcessInfo.processInfo.environment["REGISTRY_DATABASE_PASSWORD"]
        let configuration = try PostgresMetadataStore.Configuration(url: to, password: password)
        let copied = try await PostgresMetadataStore.with(configuration) { target -> [(String, Int)] in
            let counts = Counts()
            try await target.importTables { importer in try await Self.copy(from: source, to: importer, counts: counts)
            }
            let after = try await target.verifyAudit()
            guard after.ok, after.entries == before.entries, after.headHash == before.headHash else {
                throw RegistryError(
                    .internalError,
                    "The copied audit chain does not match: \(after) against \(before) in SQLite.")
            }
            return counts.all
        }
        for (table, count) in copied { print("\(table): \(count) rows") }
        print("audit chain verified: \(before.entries) entries, head \(before.headHash)")
    }

    /// Copies every table a page at a time; `models` gains the access list PostgreSQL keeps with the model, and
    /// `grants` becomes PostgreSQL's index of who holds a grant on which model.
    static func copy(
        from source: SQLiteMetadataStore, to importer: PostgresMetadataStore.Importer, counts: Counts
    ) async throws {
        // Access lists in grant order, from SQLite's grants rows.
        var grants: [String: [Grant]] = [:]
        try await forEachPage(
            source, table: "grants", columns: ["model", "subject", "role"], key: ["model", "position"]
        ) {
            rows in
            for row in rows {
                guard case .text(let model) = row[0], case .text(let subject) = row[1], case .text(let role) = row[2],
                    let parsed = Role(rawValue: role)
                else { throw RegistryError(.internalError, "A grants row of the source does not read.") }
                grants[model, default: []].append(Grant(subject: subject, role: parsed))
            }
        }
        let frozen = grants
        for (table, key) in tables {
            if table == "grants" {
                let rows = frozen.sorted { $0.key < $1.key }.flatMap { model, list in
                    Set(list.map(\.subject)).sorted().map { [StoredValue.text(model), .text($0)] }
                }
                try await importer.insert(into: "grants", columns: ["model", "subject"], rows: rows)
                counts.add(table, rows.count)
                continue
            }
            var columns = try await source.columns(of: table)
            if table == "models" { columns.append("grants") }
            let sourceColumns = columns.filter { $0 != "grants" || table != "models" }
            try await forEachPage(source, table: table, columns: sourceColumns, key: key) { rows in
                var rows = rows
                if table == "models" {
                    for index in rows.indices {
                        guard case .text(let name) = rows[index][0] else { continue }
                        rows[index].append(.text(try JSONCoding.text(frozen[name] ?? [])))
                    }
                }
                try await importer.insert(into: table, columns: columns, rows: rows)
                counts.add(table, rows.count)
            }
        }
    }

    static func forEachPage(
        _ source: SQLiteMetadataStore, table: String, columns: [String], key: [String],
        _ body: ([[StoredValue]]) async throws -> Void
    ) async throws {
        let pageSize = 1000
        var offset = 0
        while true {
            let rows = try await source.rows(of: table, columns: columns, order: key, offset: offset, limit: pageSize)
            if !rows.isEmpty { try await body(rows) }
            if rows.count < pageSize { return }
            offset += rows.count
        }
    }

    /// Rows copied per table, in copy order.
    final class Counts: Sendable {
        private let counts = Mutex<[(String, Int)]>([])
        func add(_ table: String, _ count: Int) {
            counts.withLock { counts in
                if let index = counts.firstIndex(where: { $0.0 == table }) {
                    counts[index].1 += count
                } else {
                    counts.append((table, count))
                }
            }
        }
        var all: [(String, Int)] { counts.withLock { $0 } }
    }
}
