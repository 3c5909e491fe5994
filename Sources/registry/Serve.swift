import ArgumentParser
import Foundation
import Logging
import NIOSSL
import RegistryCore
import RegistryFileStore
import RegistryPostgres
import RegistryS3
import RegistrySQLite
import RegistryServer
import ServiceLifecycle

/// `registry serve`: the composition root that picks the embedded SQLite and file-system backends.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the registry server.")

    @Option(help: "Where metadata and blobs are kept.")
    var dataDir = "./registry-data"

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "Also serve blobs and manifests on this port, on their own threads (0 picks a free one).")
    var dataPort: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Serve HTTPS only, with this PEM certificate chain (needs --tls-key).")
    var tlsCert: String?

    @Option(help: "The PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(
        help: ArgumentHelp(
            "The URL clients use to reach this server (behind a proxy or under a DNS name).",
            discussion: """
                Resolve advertises it as artifactsURL unless --public-data-url is given. Without either, the server \
                advertises the address and port it is bound to, never a request's Host header.
                """))
    var publicURL: String?

    @Option(help: "The URL clients use to reach the data plane (--data-port), advertised by resolve as artifactsURL.")
    var publicDataURL: String?

    @OptionGroup var s3: S3Options

    @Option(
        help: ArgumentHelp(
            "Keep metadata in PostgreSQL instead of SQLite: postgres://user@host:port/database[?sslmode=...].",
            discussion: """
                Several instances may share the database (and an S3 bucket): they wake each other's watchers and \
                drop each other's stale cache entries through LISTEN/NOTIFY. Without sslmode, TLS is required. The \
                password comes from --database-password-file or REGISTRY_DATABASE_PASSWORD, never the command line.
                """))
    var database: String?

    @Option(
        name: .customLong("database-replica"),
        help: ArgumentHelp(
            "A streaming replica of --database to serve reads from (repeat for several).",
            discussion: """
                Lists, searches, stage histories and audit queries of requests that only read go to a replica that \
                has replayed what the caller must see: the Registry-Position a write answered with, when the read \
                presents it, otherwise the primary's position two seconds ago. Anything else reads the primary. \
                Same credentials as --database.
                """))
    var databaseReplicas: [String] = []

    @Option(help: "A file holding the PostgreSQL password (its first line).")
    var databasePasswordFile: String?

    @Option(help: "Most connections to PostgreSQL this instance opens.")
    var databasePoolSize = 16

    @Option(help: "Close a connection that sends nothing for this many seconds (0: never); never cuts a response.")
    var idleTimeoutSeconds = 60

    @Option(help: "Most connections the main port holds open at once (more wait in the backlog).")
    var maxConnections = 1024

    @Option(help: "Most connections the data port holds open at once (more wait in the backlog).")
    var maxDataConnections = 256

    @Option(help: "Most event long-polls (GET /v1/events?wait=) one caller holds open at once (429 beyond).")
    var maxLongPollsPerCaller = 32

    @Option(help: "Most resolve watches (?wait=) one caller holds open at once (429 beyond).")
    var maxWatchesPerCaller = 32

    @Option(
        help: """
            How long an upload stays open: its chunks are visible to the uploader and kept from garbage \
            collection for this many seconds after the last upload or check of them.
            """)
    var uploadExpirySeconds = Int(UploadSession.lifetime)

    @Option(help: "Most serving instances one rollout keeps reports from (409 TOO_MANY_INSTANCES beyond).")
    var maxInstancesPerRollout = 10_000

    @Option(help: "Requests with an unknown token one address may make per minute before it gets 429.")
    var maxAuthFailuresPerMinute = 100

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together.")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535.") }
        if let dataPort, !(0...65535).contains(dataPort) {
            throw ValidationError("--data-port must be between 0 and 65535.")
        }
        do {
            _ = try ServerConfiguration.checkedPublicURLs(publicURL: publicURL, publicDataURL: publicDataURL)
        } catch let error as RegistryError {
            throw ValidationError(error.message)
        }
        guard idleTimeoutSeconds >= 0 else { throw ValidationError("--idle-timeout-seconds must not be negative.") }
        guard (1...30 * 86_400).contains(uploadExpirySeconds) else {
            throw ValidationError("--upload-expiry-seconds must be between 1 and 2592000 (30 days).")
        }
        guard maxInstancesPerRollout > 0, maxAuthFailuresPerMinute >= 0 else {
            throw ValidationError(
                "--max-instances-per-rollout must be positive, --max-auth-failures-per-minute not negative.")
        }
        guard (2...1000).contains(databasePoolSize) else {
            throw ValidationError("--database-pool-size must be between 2 and 1000.")
        }
        if database == nil, !databaseReplicas.isEmpty {
            throw ValidationError("--database-replica needs --database (the primary it replicates).")
        }
        for url in (database.map { [$0] } ?? []) + databaseReplicas {
            do {
                _ = try PostgresMetadataStore.Configuration(url: url)
            } catch let error as RegistryError {
                throw ValidationError(error.message)
            }
        }
        guard maxConnections > 0, maxDataConnections > 0, maxLongPollsPerCaller > 0, maxWatchesPerCaller > 0 else {
            throw ValidationError(
                "--max-connections, --max-data-connections and the per-caller limits must be positive.")
        }
    }

    func run() async throws {
        var logger = Logger(label: "registry")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        do {
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        } catch {
            throw RegistryError(.internalError, "Cannot create the data directory \(dataDir): \(error).")
        }
        // One process owns a data directory: the read cache below is coherent only because every write passes
        // through it.
        let lock = try DataDirectoryLock(directory: dataDir)
        defer { withExtendedLifetime(lock) {} }
        guard let database else {
            try await serve(
                metadata: CachedMetadataStore(try SQLiteMetadataStore(path: dataDir + "/metadata.sqlite")),
                logger: logger)
            return
        }
        let configuration = try PostgresMetadataStore.Configuration(
            url: database, password: try databasePassword(), poolSize: databasePoolSize)
        let replicas = try databaseReplicas.map {
            try PostgresMetadataStore.Configuration(
                url: $0, password: try databasePassword(), poolSize: databasePoolSize)
        }
        let store = PostgresMetadataStore(configuration: configuration, replicas: replicas, logger: logger)
        // Other instances' changes reach this cache through the store's listener, before their waiters wake.
        let metadata = CachedMetadataStore(store)
        store.onRemoteChange { model in metadata.invalidate(model: model) }
        // One instance among those sharing the database runs the rollout supervisor.
        let leadership = PostgresLeadership(configuration: configuration, logger: logger)
        // The store runs beside the service group and outlives it: requests finishing during a graceful shutdown
        // still reach the database.
        var readsServed: (@Sendable () -> (primary: Int, replica: Int))?
        if !replicas.isEmpty { readsServed = { @Sendable in store.readsServed } }
        let described: Logger.Metadata = [
            "database": .string(Self.redacted(database)),
            "replicas": .string(databaseReplicas.map { Self.redacted($0) }.joined(separator: ", ")),
        ]
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await store.run() }
            defer { tasks.cancelAll() }
            try await store.prepare()
            logger.info("Metadata in PostgreSQL", metadata: described)
            try await serve(metadata: metadata, leadership: leadership, readsServed: readsServed, logger: logger)
        }
    }

    /// The PostgreSQL password from --database-password-file or REGISTRY_DATABASE_PASSWORD, nil without either.
    func databasePassword() throws -> String? {
        if let databasePasswordFile {
            do {
                let text = try String(contentsOfFile: databasePasswordFile, encoding: .utf8)
                return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
            } catch {
                throw RegistryError(.invalidArgument, "Cannot read --database-password-file \(databasePasswordFile).")
            }
        }
        return ProcessInfo.processInfo.environment["REGISTRY_DATABASE_PASSWORD"]
    }

    /// The database URL without a password, for the log.
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "redacted"
        return components.string ?? "postgres://…"
    }

    /// Runs the registry on `metadata` until SIGTERM or SIGINT.
    func serve<Base: MetadataStore>(
        metadata: CachedMetadataStore<Base>, leadership: PostgresLeadership? = nil,
        readsServed: (@Sendable () -> (primary: Int, replica: Int))? = nil, logger: Logger
    ) async throws {
        let keyring = try MasterKeyring.open(keyFile: KeysCommand.keyFile(dataDir))
        let blobs = try await blobStore(keyring: keyring, logger: logger)
        let configured = ProcessInfo.processInfo.environment["REGISTRY_ADMIN_TOKEN"]
        if let secret = try await AdminBootstrap.ensureAdminToken(in: metadata, configuredSecret: configured) {
            FileHandle.standardOutput.write(Data("admin token: \(secret)\n".utf8))
        }
        var configuration = ServerConfiguration(host: host, port: port, dataPort: dataPort, tls: try tls())
        applyResourceLimits(to: &configuration)
        configuration.leadership = leadership
        configuration.readsServed = readsServed
        (configuration.publicURL, configuration.publicArtifactsURL) = try ServerConfiguration.checkedPublicURLs(
            publicURL: publicURL, publicDataURL: publicDataURL)
        if ["", "0.0.0.0", "::", "[::]"].contains(host) && publicURL == nil && publicDataURL == nil {
            logger.warning(
                """
                Listening on a wildcard address without --public-url: resolve advertises the address each connection \
                arrived on, and clients configured with a name refuse it (UNTRUSTED_ARTIFACT_URL). Set --public-url \
                (and --public-data-url with --data-port).
                """)
        }
        let services = try RegistryApplication.services(
            configuration: configuration, metadata: metadata, blobs: blobs, logger: logger
        ) { address in
            // Written unbuffered: whoever started the server waits for this line on a pipe.
            FileHandle.standardOutput.write(Data("listening on \(address.baseURL)\n".utf8))
            if address.dataPort != nil {
                FileHandle.standardOutput.write(Data("data plane on \(address.dataBaseURL)\n".utf8))
            }
        }
        // One group runs everything that lasts; SIGTERM or SIGINT shuts it down gracefully: in-flight requests
        // finish, long-polls and resolve watches end early, then the process exits.
        // The leadership starts first and stops last, after the supervisor that consults it.
        // A last resort: requests still running five minutes after SIGTERM (a large transfer to a slow reader) are
        // cancelled, so that a stop always ends the process.
        var groupConfiguration = ServiceGroupConfiguration(
            services: (leadership.map { [$0] } ?? []) + services, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(300)
        groupConfiguration.maximumCancellationDuration = .seconds(10)
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        logger.info("Shut down gracefully")
    }

    /// The connection, idle and per-caller limits from the flags.
    func applyResourceLimits(to configuration: inout ServerConfiguration) {
        configuration.idleTimeout = idleTimeoutSeconds > 0 ? .seconds(idleTimeoutSeconds) : nil
        configuration.maxConnections = maxConnections
        configuration.maxDataConnections = maxDataConnections
        configuration.maxLongPollsPerCaller = maxLongPollsPerCaller
        configuration.maxWatchesPerCaller = maxWatchesPerCaller
        configuration.uploadLifetime = TimeInterval(uploadExpirySeconds)
        configuration.maxInstancesPerRollout = maxInstancesPerRollout
        configuration.maxAuthFailuresPerMinute = maxAuthFailuresPerMinute
    }

    /// The blob store: an S3 bucket with `--s3-bucket`, otherwise files under the data directory.
    func blobStore(keyring: MasterKeyring, logger: Logger) async throws -> any BlobStore {
        let onCorruption: @Sendable (RegistryError) -> Void = { error in
            logger.critical(
                "A blob failed authentication on read: it was altered in storage",
                metadata: ["code": "\(error.code)", "error": "\(error.message)"])
        }
        guard let client = try s3.client() else {
            return try FileSystemBlobStore(
                root: KeysCommand.blobRoot(dataDir), keyring: keyring, onCorruption: onCorruption)
        }
        let store = S3BlobStore(client: client, prefix: s3.s3Prefix, keyring: keyring, onCorruption: onCorruption)
        // Fail now, with the object store's own reason, rather than on the first upload.
        _ = try await client.list(prefix: store.objectKey(of: Digest(of: [])))
        do {
            let aborted = try await store.abortStaleUploads(olderThan: FileSystemBlobStore.staleUploadAge)
            if aborted > 0 {
                logger.info("Aborted multipart uploads left by a crash", metadata: ["count": "\(aborted)"])
            }
        } catch {
            logger.warning("Cannot clean up stale multipart uploads", metadata: ["error": "\(error)"])
        }
        logger.info(
            "Blobs in S3", metadata: ["endpoint": "\(client.location.endpoint)", "bucket": "\(client.location.bucket)"])
        return store
    }

    /// The TLS configuration from `--tls-cert` and `--tls-key`, nil without them.
    func tls() throws -> TLSConfiguration? {
        guard let tlsCert, let tlsKey else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(tlsCert).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tlsKey, format: .pem)
            guard !chain.isEmpty else { throw ValidationError("\(tlsCert) holds no certificate.") }
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain, privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            return configuration
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("Cannot load the TLS certificate or key: \(error).")
        }
    }
}
