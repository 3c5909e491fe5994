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
/// Test settings trade durability against a machine crash for speed (`fsync = off`), but a commit is written before it
/// is acknowledged (`synchronous_commit` stays on), so a server crash (`takeDown()`) loses no acknowledged write.
/// Benchmarks start their own durable cluster.
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
        try await startRetrying(primary: nil)
    }

    /// Starts a streaming replica of this cluster (a base backup, then a hot standby that follows it); it lives
    /// until `stop()` or the test process ends.
    public func startReplica() async throws -> PostgresCluster {
        try await Self.startRetrying(primary: port)
    }

    private static func startRetrying(primary: Int?) async throws -> PostgresCluster {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await startOnce(primary: primary)
            } catch let error as RegistryProcessError where attempt < 3 {
                // A port taken between the check and the server binding it: try another.
                FileHandle.standardError.write(Data("PostgreSQL failed to start (attempt \(attempt)): \(error)\n".utf8))
            }
        }
    }

    private static func startOnce(primary: Int?) async throws -> PostgresCluster {
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
        // The watchdog: initdb (or a base backup of the primary), then the server as its child. While the file
        // `down` exists the server is stopped (immediately, as a crash would) and started again once it is gone.
        // When the test process is gone or `stop` appears, the server is stopped and the directory removed.
        let script = """
            dir=$1; bin=$2; port=$3; parent=$4; primary=$5
            cd "$dir" || exit 1
            run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
            [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
            if [ -n "$primary" ]; then
                run "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir/data" -R -X stream \
                    -c fast --no-sync > "$dir/initdb.log" 2>&1 || { echo failed > "$dir/state"; exit 1; }
            elif ! run "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
                > "$dir/initdb.log" 2>&1; then
                echo failed > "$dir/state"; exit 1
            fi
            cat >> "$dir/data/postgresql.conf" <<CONF
            fsync = off
            full_page_writes = off
            wal_level = replica
            max_wal_senders = 5
            max_connections = 1000
            hot_standby = on
            hot_standby_feedback = on
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '$dir'
            port = $port
            CONF
            server=
            up() { run "$bin/postgres" -D "$dir/data" >> "$dir/server.log" 2>&1 & server=$!; }
            halt() {
                [ -f "$dir/data/postmaster.pid" ] && kill -QUIT "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null
                wait $server; server=
            }
            up
            echo started > "$dir/state"
            while kill -0 "$parent" 2>/dev/null && [ ! -f "$dir/stop" ]; do
                if [ -f "$dir/down" ]; then
                    [ -n "$server" ] && { halt; echo down > "$dir/state"; }
                elif [ -z "$server" ]; then
                    up; echo started > "$dir/state"
                fi
                sleep 0.1
            done
            [ -n "$server" ] && halt
            cd / && rm -rf "$dir"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", script, "sh", directory, binaries, String(port), String(getpid()), primary.map(String.init) ?? "",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let cluster = PostgresCluster(port: port, directory: directory, watchdog: process.processIdentifier)
        do {
            try await cluster.waitUntilServing(within: .seconds(120), while: { process.isRunning })
            return cluster
        } catch {
            let log = ["initdb.log", "server.log"].map {
                (try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8)) ?? ""
            }
            .joined(separator: "\n")
            cluster.stop()
            throw RegistryProcessError("PostgreSQL (port \(port)): \(error)\n" + log.suffix(4000))
        }
    }

    /// Waits until the server answers a query.
    private func waitUntilServing(
        within limit: Duration, while alive: @Sendable () -> Bool = { true }
    ) async throws {
        let deadline = ContinuousClock.now + limit
        var lastError: (any Error)?
        while ContinuousClock.now < deadline, alive() {
            if RegistryProcess.canConnect(port: port) {
                do {
                    try await execute("SELECT 1")
                    return
                } catch {
                    lastError = error  // still starting up
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RegistryProcessError(
            "did not become ready within \(limit) (last error: \(String(describing: lastError)))")
    }

    /// A cluster of its own holding an empty `database`, and a streaming replica of it that has the database too:
    /// for tests of read replicas. Both live until `stop()` or the test process ends.
    public static func startWithReplica(database: String) async throws -> (
        primary: PostgresCluster, replica: PostgresCluster
    ) {
        let primary = try await start()
        do {
            try await primary.execute("CREATE DATABASE \(database)")
            let replica = try await primary.startReplica()
            do {
                try await waitUntil("the replica has the database", timeout: .seconds(60)) {
                    (try? await replica.execute("SELECT 1", database: database)) != nil
                }
                return (primary, replica)
            } catch {
                replica.stop()
                throw error
            }
        } catch {
            primary.stop()
            throw error
        }
    }

    /// Stops the server at once, as a crash would (immediate shutdown: clients' connections are cut, and the next
    /// start recovers from the write-ahead log), and returns when it no longer accepts connections.
    public func takeDown() async throws {
        _ = FileManager.default.createFile(atPath: directory + "/down", contents: nil)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let state = (try? String(contentsOfFile: directory + "/state", encoding: .utf8)) ?? ""
            if state.hasPrefix("down") && !RegistryProcess.canConnect(port: port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RegistryProcessError("PostgreSQL (port \(port)) did not stop within 30 s")
    }

    /// Starts the server stopped by `takeDown()` again and returns once it answers queries.
    public func bringUp() async throws {
        try? FileManager.default.removeItem(atPath: directory + "/down")
        try await waitUntilServing(within: .seconds(60))
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

    /// Runs one statement in `database` (the `postgres` database unless named) as the superuser.
    public func execute(_ sql: String, database: String = "postgres") async throws {
        let configuration = PostgresConnection.Configuration(
            host: "127.0.0.1", port: port, username: "postgres", password: nil, database: database, tls: .disable)
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

extension PostgresMetadataStore.Configuration {
    /// A store's configuration for tests. The whole suite shares two cores, so a burst of writers serialised on the
    /// write lock can queue for a connection much longer than in production: such waits are not cut at the
    /// production limit (30 s). An unreachable database still fails callers within a quarter of a second.
    public static func testing(url: String, poolSize: Int = 8) throws -> Self {
        var configuration = try Self(url: url, poolSize: poolSize)
        configuration.leaseTimeout = .seconds(300)
        return configuration
    }
}
