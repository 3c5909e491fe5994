import Foundation
import Logging
import PostgresNIO
import RegistryPostgres

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway PostgreSQL cluster on a free loopback port, for tests that need a real PostgreSQL.
///
/// The cluster is made with `initdb` in a temporary directory and its server runs as a child of a watchdog shell:
/// when the test process is gone, the server is stopped (immediate shutdown) and the directory removed. PostgreSQL
/// refuses to run as root, so as root the binaries run as the `postgres` user (`runuser`), as Debian installs it.
/// Test settings trade durability for speed (`fsync = off`); benchmarks start their own durable cluster.
///
/// One shared cluster serves the whole test process (`shared()`); tests keep apart by database (`makeDatabase()`).
/// The binaries come from `$PGBIN`, the highest `/usr/lib/postgresql/*/bin`, or the `PATH`.
public final class PostgresCluster: Sendable {
    public let port: Int
    public let directory: String
    private let watchdog: Int32

    private init(port: Int, directory: String, watchdog: Int32) {
        self.port = port
        self.directory = directory
        self.watchdog = watchdog
    }

    /// The directory holding `initdb` and `postgres`, or nil when PostgreSQL is not installed.
    public static let binaries: String? = {
        let manager = FileManager.default
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["PGBIN"], !configured.isEmpty {
            candidates.append(configured)
        }
        let versions = (try? manager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            candidates.append("/usr/lib/postgresql/\(version)/bin")
        }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            candidates.append(String(directory))
        }
        return candidates.first { directory in
            manager.isExecutableFile(atPath: directory + "/initdb")
                && manager.isExecutableFile(atPath: directory + "/postgres")
        }
    }()

    /// Whether tests that need PostgreSQL should run: it is installed, or this is CI, where its absence must fail
    /// loudly instead of skipping.
    public static var shouldRun: Bool {
        TestEnvironment.runs(
            needing: "PostgreSQL", available: binaries != nil,
            install: "apt-get install postgresql; found neither $PGBIN, /usr/lib/postgresql/*/bin nor initdb on PATH")
    }

    /// The cluster of this test process, started on first use.
    public static func shared() async throws -> PostgresCluster {
        try await starter.value
    }

    private static let starter = Task { try await start() }

    /// Starts a cluster of its own (for tests that stop or restart it); it lives until `stop()` or the test
    /// process ends.
    public static func start() async throws -> PostgresCluster {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await startOnce()
            } catch let error as RegistryProcessError where attempt < 3 {
                // A port taken between the check and the server binding it: try another.
                FileHandle.standardError.write(Data("PostgreSQL failed to start (attempt \(attempt)): \(error)\n".utf8))
            }
        }
    }

    private static func startOnce() async throws -> PostgresCluster {
        guard let binaries else {
            throw RegistryProcessError(
                "PostgreSQL is required (CI is set) but initdb and postgres were not found: install Debian's "
                    + "`postgresql` or set $PGBIN.")
        }
        let directory = NSTemporaryDirectory() + "registry-pg-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var port = 0
        repeat {
            port = Int.random(in: 10000..<30000)
        } while RegistryProcess.canConnect(port: port)
        // The watchdog: initdb, then the server as its child; when the test process is gone (or the server has
        // stopped), the server is stopped and the directory removed.
        let script = """
            dir=$1; bin=$2; port=$3; parent=$4
            cd "$dir" || exit 1
            run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
            [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
            if ! run "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
                > "$dir/initdb.log" 2>&1; then
                echo failed > "$dir/state"; exit 1
            fi
            cat >> "$dir/data/postgresql.conf" <<CONF
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            wal_level = replica
            max_wal_senders = 5
            max_connections = 300
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '$dir'
            port = $port
            CONF
            run "$bin/postgres" -D "$dir/data" > "$dir/server.log" 2>&1 &
            server=$!
            echo started > "$dir/state"
            while kill -0 "$parent" 2>/dev/null && [ ! -f "$dir/stop" ]; do sleep 1; done
            [ -f "$dir/data/postmaster.pid" ] && kill -QUIT "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null
            wait $server
            cd / && rm -rf "$dir"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "sh", directory, binaries, String(port), String(getpid())]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let cluster = PostgresCluster(port: port, directory: directory, watchdog: process.processIdentifier)
        let deadline = ContinuousClock.now + .seconds(120)
        var lastError: (any Error)?
        while ContinuousClock.now < deadline, process.isRunning {
            if RegistryProcess.canConnect(port: port) {
                do {
                    try await cluster.execute("SELECT 1")
                    return cluster
                } catch {
                    lastError = error  // still starting up
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = ["initdb.log", "server.log"].map {
            (try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8)) ?? ""
        }
        .joined(separator: "\n")
        cluster.stop()
        throw RegistryProcessError(
            "PostgreSQL (port \(port)) did not become ready within 120 s (last error: \(String(describing: lastError))):\n"
                + log.suffix(4000))
    }

    /// The connection URL of `database` on this cluster.
    public func url(database: String) -> String {
        "postgres://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    /// Creates a new, empty database and returns its URL.
    public func makeDatabase(prefix: String = "registry") async throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try await execute("CREATE DATABASE \(name)")
        return url(database: name)
    }

    /// Runs one statement in the `postgres` database as the superuser.
    public func execute(_ sql: String) async throws {
        let configuration = PostgresConnection.Configuration(
            host: "127.0.0.1", port: port, username: "postgres", password: nil, database: "postgres", tls: .disable)
        let connection = try await PostgresConnection.connect(
            configuration: configuration, id: 1, logger: Logger(label: "registry.test.postgres"))
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "registry.test.postgres"))
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Stops the server (immediately) and removes the cluster's directory, within about a second.
    public func stop() {
        _ = FileManager.default.createFile(atPath: directory + "/stop", contents: nil)
    }
}
