import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import Prometheus
import RegistryCore
import RegistryService
import ServiceLifecycle
import Synchronization

/// Builds and starts the registry's HTTP server (API v1) over any metadata and blob store.
public enum RegistryApplication {
    /// The Hummingbird application serving the API on `metadata` and `blobs` (the main port only; `start` also runs
    /// the data-plane port when one is configured).
    public static func make(
        configuration: ServerConfiguration, metadata: any MetadataStore, blobs: any BlobStore, logger: Logger
    ) throws -> some ApplicationProtocol {
        let shared = Shared(configuration: configuration, metadata: metadata, blobs: blobs)
        return try build(shared, dataPlane: false, logger: logger, eventLoopGroup: .singleton) { _ in }
    }

    /// The registry's long-running work, as services for the caller's `ServiceGroup`: the main server, the rollout
    /// supervisor (with `rolloutCheckInterval`) and the data-plane server on its own event loops (with `dataPort`).
    ///
    /// A group starts them in this order and shuts them down gracefully in reverse: the servers stop accepting
    /// connections and let in-flight requests finish, while long-polls and resolve watches end early.
    /// `onListening` is called once, when every port listens (port 0 = any free port). Throws when the TLS
    /// configuration cannot be used.
    public static func services(
        configuration: ServerConfiguration, metadata: any MetadataStore, blobs: any BlobStore, logger: Logger,
        onListening: @escaping @Sendable (ListeningAddress) -> Void
    ) throws -> [any Service] {
        let shared = Shared(configuration: configuration, metadata: metadata, blobs: blobs)
        let ports = BoundPorts(configuration: configuration, onListening: onListening)
        var services: [any Service] = [
            try build(shared, dataPlane: false, logger: logger, eventLoopGroup: .singleton) { channel in
                ports.main(channel.localAddress?.port ?? configuration.port)
            }
        ]
        if let interval = configuration.rolloutCheckInterval {
            services.append(
                RolloutSupervisor(
                    service: shared.service, interval: interval, logger: logger, checks: shared.metrics.rolloutChecks,
                    leadership: configuration.leadership, leading: shared.metrics.leading))
        }
        if let dataPort = configuration.dataPort {
            services.append(
                DataPlaneServer(threads: max(1, configuration.dataThreads)) { eventLoopGroup in
                    try build(shared, dataPlane: true, logger: logger, eventLoopGroup: eventLoopGroup) { channel in
                        let port = channel.localAddress?.port ?? dataPort
                        shared.dataPlane.bound(to: port)
                        ports.data(port)
                    }
                })
        }
        return services
    }

    /// Starts the server in a `ServiceGroup` of its own, in the background, and returns once it listens.
    ///
    /// For tests and embedders without a group of their own; `registry serve` runs `services` in its group.
    /// Throws when a server cannot bind. Call `shutdown()` on the result to stop it.
    public static func start(
        configuration: ServerConfiguration, metadata: any MetadataStore, blobs: any BlobStore, logger: Logger
    ) async throws -> RunningRegistryServer {
        let (listening, continuation) = AsyncStream<ListeningAddress>.makeStream()
        let services = try services(
            configuration: configuration, metadata: metadata, blobs: blobs, logger: logger,
            onListening: { continuation.yield($0) })
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        for await address in listening {
            return RunningRegistryServer(address: address, group: group, task: task)
        }
        try await task.value
        throw RegistryError(.unavailable, "The server stopped before it started listening.")
    }

    /// What the main and the data-plane server share: stores, metrics, token cache, the data plane's address.
    struct Shared: Sendable {
        let configuration: ServerConfiguration
        let metadata: any MetadataStore
        let blobs: any BlobStore
        let metrics: ServerMetrics
        let authenticator: Authenticator
        let authFailures: AuthFailureLimiter
        let dataPlane: DataPlaneEndpoint
        // Bounded by configuration and shared by both ports, so that each budget holds for the whole process.
        let rendered: RegistryRoutes.RenderedCaches
        let service: RegistryService
        let longPolls: CallerSlots
        let watches: CallerSlots
        let denials: DenialAuditor

        init(configuration: ServerConfiguration, metadata: any MetadataStore, blobs: any BlobStore) {
            self.configuration = configuration
            self.metadata = metadata
            self.blobs = blobs
            metrics = ServerMetrics(readsServed: configuration.readsServed)
            authenticator = Authenticator(store: metadata, ttl: .seconds(configuration.authCacheSeconds))
            rendered = .init(budget: configuration.renderedCacheBytes)
            service = RegistryService(
                metadata: metadata, blobs: blobs,
                limits: .init(
                    maxManifestBytes: configuration.maxManifestBytes,
                    maxInstancesPerRollout: configuration.maxInstancesPerRollout),
                manifestCacheBytes: configuration.manifestCacheBytes)
            longPolls = CallerSlots(
                kind: "event long-polls", limit: configuration.maxLongPollsPerCaller,
                open: metrics.registry.makeGauge(
                    descriptor: MetricNameDescriptor(
                        namespace: "registry", metricName: "event_long_polls", unitName: "open",
                        helpText: "Event long-polls waiting for an event right now.")))
            watches = CallerSlots(kind: "resolve watches", limit: configuration.maxWatchesPerCaller)
            denials = DenialAuditor(store: metadata, window: configuration.denialAuditWindow, metrics: metrics)
            authFailures = AuthFailureLimiter(
                limit: configuration.maxAuthFailuresPerMinute, window: configuration.authFailureWindow)
            dataPlane = DataPlaneEndpoint(configuration: configuration)
        }

        /// The routes over these stores, registering into `table`.
        func routes(table: RouteTable) -> RegistryRoutes {
            RegistryRoutes(
                configuration: configuration, metadata: metadata, blobs: blobs, authenticator: authenticator,
                metrics: metrics, table: table, dataPlane: dataPlane, rendered: rendered,
                service: service, longPolls: longPolls, watches: watches, denials: denials)
        }
    }

    static func build(
        _ shared: Shared, dataPlane: Bool, logger: Logger, eventLoopGroup: EventLoopGroupProvider,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void
    ) throws -> Application<RouterResponder<RegistryRequestContext>> {
        let configuration = shared.configuration
        let table = RouteTable()
        let routes = shared.routes(table: table)
        let router = Router(context: RegistryRequestContext.self)
        router.add(
            middleware: RegistryMiddleware(metrics: shared.metrics, routes: table, authFailures: shared.authFailures))
        var serverConfiguration = ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port), serverName: nil)
        // A connection cap on each port, so that sockets cannot exhaust descriptors or event loops; connections beyond
        // it wait in the accept backlog until one closes, which the idle timeout below ensures for silent ones.
        if dataPlane {
            routes.registerDataPlane(on: router)
            serverConfiguration.address = .hostname(configuration.host, port: configuration.dataPort ?? 0)
            serverConfiguration.availableConnectionsDelegate = MaximumAvailableConnections(
                max(1, configuration.maxDataConnections))
        } else {
            routes.register(on: router)
            serverConfiguration.availableConnectionsDelegate = MaximumAvailableConnections(
                max(1, configuration.maxConnections))
        }
        // Each connection gets its own handlers (the autoclosure runs per channel). Hummingbird's idle timeout runs
        // only while the server waits for the client (for a request, or for the next part of one): a long-poll being
        // answered is never cut, and a response being written only when its client stops reading it for as long.
        let idleTimeout = configuration.idleTimeout.map { TimeAmount($0) }
        var server = HTTPServerBuilder.http1(
            configuration: .init(
                additionalChannelHandlers: connectionHandlers(idleTimeout: idleTimeout), idleTimeout: idleTimeout))
        if let tls = configuration.tls { server = try .tls(server, tlsConfiguration: tls) }
        return Application(
            router: router,
            server: server,
            configuration: serverConfiguration, onServerRunning: onServerRunning,
            eventLoopGroupProvider: eventLoopGroup, logger: logger)
    }
}

extension RegistryApplication {
    /// The handlers each connection adds after HTTP decoding. The stalled-reader timeout comes first, nearer the
    /// socket, so that its close is not deferred by `DrainBeforeClose` waiting for a client that does not read.
    static func connectionHandlers(idleTimeout: TimeAmount?) -> [any RemovableChannelHandler] {
        (idleTimeout.map { [StalledReaderTimeout(timeout: $0)] } ?? []) + [DrainBeforeClose()]
    }
}

/// Where a registry listens, once its ports are bound.
public struct ListeningAddress: Sendable, Equatable {
    /// The port the server listens on (the bound one when configured with port 0).
    public let port: Int
    /// The bound data-plane port, nil when blobs and manifests are served on `port` only.
    public let dataPort: Int?
    public let host: String
    /// `https` when the server speaks TLS.
    public let scheme: String

    /// `http://host:port`, without a trailing slash.
    public var baseURL: String { url(port: port) }

    /// Where artifacts are served: the data-plane port when there is one, otherwise `baseURL`.
    public var dataBaseURL: String { dataPort.map(url(port:)) ?? baseURL }

    private func url(port: Int) -> String {
        "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }
}

/// Collects the ports the servers bind and reports the address once, when every configured port is bound.
final class BoundPorts: Sendable {
    private let configuration: ServerConfiguration
    private let onListening: @Sendable (ListeningAddress) -> Void
    private let bound = Mutex<(main: Int?, data: Int?, reported: Bool)>((nil, nil, false))

    init(configuration: ServerConfiguration, onListening: @escaping @Sendable (ListeningAddress) -> Void) {
        self.configuration = configuration
        self.onListening = onListening
    }

    func main(_ port: Int) { record { $0.main = port } }

    func data(_ port: Int) { record { $0.data = port } }

    private func record(_ change: (inout (main: Int?, data: Int?, reported: Bool)) -> Void) {
        let address = bound.withLock { bound -> ListeningAddress? in
            change(&bound)
            guard !bound.reported, let main = bound.main, configuration.dataPort == nil || bound.data != nil else {
                return nil
            }
            bound.reported = true
            return ListeningAddress(
                port: main, dataPort: bound.data, host: configuration.host, scheme: configuration.scheme)
        }
        if let address { onListening(address) }
    }
}

/// A registry server running in the background, started by `RegistryApplication.start`.
public final class RunningRegistryServer: Sendable {
    public let address: ListeningAddress
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(address: ListeningAddress, group: ServiceGroup, task: Task<Void, any Error>) {
        self.address = address
        self.group = group
        self.task = task
    }

    /// The port the server listens on (the bound one when configured with port 0).
    public var port: Int { address.port }
    /// The bound data-plane port, nil when blobs and manifests are served on `port` only.
    public var dataPort: Int? { address.dataPort }
    public var host: String { address.host }
    /// `https` when the server speaks TLS.
    public var scheme: String { address.scheme }
    /// `http://host:port`, without a trailing slash.
    public var baseURL: String { address.baseURL }
    /// Where artifacts are served: the data-plane port when there is one, otherwise `baseURL`.
    public var dataBaseURL: String { address.dataBaseURL }

    /// Stops accepting connections, lets in-flight requests finish (long polls end early), then returns.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
