import Hummingbird
import Logging
import NIOCore
import RegistryCore
import ServiceLifecycle

/// Builds and starts the registry's HTTP server (API v1) over any metadata and blob store.
public enum RegistryApplication {
    /// The Hummingbird application serving the API on `metadata` and `blobs`.
    public static func make(
        configuration: ServerConfiguration, metadata: any MetadataStore, blobs: any BlobStore, logger: Logger
    ) -> some ApplicationProtocol {
        build(configuration: configuration, metadata: metadata, blobs: blobs, logger: logger) { _ in }
    }

    /// Starts the server (port 0 = any free port) in the background and returns once it listens.
    ///
    /// Throws when the server cannot bind. Call `shutdown()` on the result to stop it gracefully.
    public static func start(
        configuration: ServerConfiguration, metadata: any MetadataStore, blobs: any BlobStore, logger: Logger
    ) async throws -> RunningRegistryServer {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = build(configuration: configuration, metadata: metadata, blobs: blobs, logger: logger) { channel in
            continuation.yield(channel.localAddress?.port ?? configuration.port)
            continuation.finish()
        }
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        for await port in ports {
            return RunningRegistryServer(port: port, host: configuration.host, group: group, task: task)
        }
        try await task.value
        throw RegistryError(.unavailable, "The server stopped before it started listening.")
    }

    static func build(
        configuration: ServerConfiguration, metadata: any MetadataStore, blobs: any BlobStore, logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void
    ) -> Application<RouterResponder<RegistryRequestContext>> {
        let metrics = ServerMetrics()
        let table = RouteTable()
        let routes = RegistryRoutes(
            configuration: configuration, metadata: metadata, blobs: blobs,
            authenticator: Authenticator(store: metadata, ttl: .seconds(configuration.authCacheSeconds)),
            metrics: metrics, table: table)
        let router = Router(context: RegistryRequestContext.self)
        router.add(middleware: RegistryMiddleware(metrics: metrics, routes: table))
        routes.register(on: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: onServerRunning, logger: logger)
    }
}

/// A registry server running in the background, started by `RegistryApplication.start`.
public final class RunningRegistryServer: Sendable {
    /// The port the server listens on (the bound one when configured with port 0).
    public let port: Int
    public let host: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(port: Int, host: String, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.host = host
        self.group = group
        self.task = task
    }

    /// `http://host:port`, without a trailing slash.
    public var baseURL: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// Stops accepting connections, lets in-flight requests finish (long polls end early), then returns.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
