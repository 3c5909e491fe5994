import Foundation
import NIOSSL
import RegistryCore

/// Settings of one registry server; every field has a production default.
public struct ServerConfiguration: Sendable {
    /// When set, both ports speak HTTPS only with this configuration (certificate chain and key), and the URLs the
    /// server prints and advertises (`artifactsURL`) are `https://`.
    public var tls: TLSConfiguration?

    /// The URL scheme of both ports: `https` with `tls`, else `http`.
    public var scheme: String { tls == nil ? "http" : "https" }
    public var host: String
    /// The TCP port; 0 binds any free port (see `RunningRegistryServer.port`).
    public var port: Int
    /// Largest JSON request body accepted (413 beyond).
    public var maxJSONBodyBytes: Int
    /// Largest manifest accepted by `PUT /v1/manifests` and read back for version creation.
    public var maxManifestBytes: Int
    /// Largest single chunk accepted by `PUT /v1/blobs/{digest}`.
    public var maxBlobBytes: Int64
    /// `ttlSeconds` and `Cache-Control: max-age` of resolve responses.
    public var resolveTTLSeconds: Int
    /// Upper bound of `wait` on `GET /v1/events`.
    public var maxEventWaitSeconds: Int
    /// How long a token lookup (and a subject's per-model permissions for blob routes) is cached; a revoked token
    /// or a removed grant may keep working on other servers for up to this long.
    public var authCacheSeconds: Int
    /// Requests with an unknown, revoked or expired bearer token one client address may make per minute; beyond it
    /// the address gets 429 `TOO_MANY_REQUESTS` with `Retry-After` until the minute is over, without a lookup.
    public var maxAuthFailuresPerMinute: Int = 100
    /// The window `maxAuthFailuresPerMinute` counts in (one minute; tests on a loaded machine stretch it).
    public var authFailureWindow: Duration = .seconds(60)
    /// Most serving instances one rollout keeps reports from (409 `TOO_MANY_INSTANCES` for one more).
    public var maxInstancesPerRollout: Int = 10_000
    /// How long an upload stays open after its last chunk upload or check (`UploadStore`): its digests are visible
    /// to the uploader and kept from garbage collection meanwhile.
    public var uploadLifetime: TimeInterval = UploadSession.lifetime
    /// When set, blob and manifest routes are also served on this port (0 = any free one) by a second server with
    /// its own event loops, so bulk transfers cannot starve metadata requests; the main port keeps serving them.
    public var dataPort: Int?
    /// Event-loop threads of the data-plane server.
    public var dataThreads: Int
    /// Most connections the data-plane server holds open at once; further ones wait in the accept backlog.
    public var maxDataConnections: Int
    /// How clients reach the main port (`--public-url`: a proxy, a DNS name); advertised as `artifactsURL` when
    /// `publicArtifactsURL` is not set (the main port serves blobs and manifests too). Check it with
    /// `ServerConfiguration.checkedPublicURL`.
    public var publicURL: String?
    /// How clients reach the data plane (`--public-data-url`), advertised by resolve as `artifactsURL`. Without
    /// either URL the server advertises what it is bound to: the configured host (for a wildcard address, the
    /// address the client connected to) and the bound data port, or the main port. Never the request's `Host`.
    public var publicArtifactsURL: String?
    /// How often active rollouts are checked for decisions nobody's request triggers (a bake period ending, reports
    /// going stale); nil turns the periodic check off (reports and requests still decide).
    public var rolloutCheckInterval: Duration?
    /// Whether this instance runs the periodic rollout check, when several share a database
    /// (`PostgresLeadership`); nil: it always does (one instance owns its store).
    public var leadership: (any Leadership)?
    /// Reads of requests that only read, by where the store served them (primary or a read replica), for
    /// `registry_database_reads_total`; nil for a store without replicas.
    public var readsServed: (@Sendable () -> (primary: Int, replica: Int))?

    // Bounded resources: what one client, or many idle sockets, can hold of the server.

    /// How long a connection may stay silent (no request, or a request that stopped arriving) before the server
    /// closes it, on both ports; nil never closes one. A long-poll being answered is never cut by it, nor a response
    /// that its client reads, however slowly: only one that the client stops reading for as long.
    public var idleTimeout: Duration? = .seconds(60)
    /// Most connections the main port holds open at once; further ones wait in the accept backlog.
    public var maxConnections: Int = 1024
    /// Most `GET /v1/events?wait=` long-polls one subject holds open at once (429 `TOO_MANY_REQUESTS` beyond).
    public var maxLongPollsPerCaller: Int = 32
    /// Most resolve watches (`GET /v1/resolve/…?wait=`) one subject holds open at once (429 beyond).
    public var maxWatchesPerCaller: Int = 32
    /// Memory budget of the parsed-manifest cache, estimated from each manifest's encoded size.
    public var manifestCacheBytes: Int = 64 << 20
    /// Memory budget of each cache of rendered responses (versions, version pages, resolutions).
    public var renderedCacheBytes: Int = 32 << 20
    /// How long the first of several denied requests waits for others, so that their audit entries are written
    /// together in one store call: a flood of denials costs at most one audit commit per window.
    public var denialAuditWindow: Duration = .milliseconds(50)

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxJSONBodyBytes: Int = 1 << 20,
        maxManifestBytes: Int = Manifest.defaultMaxBytes, maxBlobBytes: Int64 = 2 << 30, resolveTTLSeconds: Int = 60,
        maxEventWaitSeconds: Int = 60, authCacheSeconds: Int = 5, dataPort: Int? = nil, dataThreads: Int = 1,
        maxDataConnections: Int = 256, publicArtifactsURL: String? = nil,
        rolloutCheckInterval: Duration? = .seconds(1), tls: TLSConfiguration? = nil
    ) {
        self.tls = tls
        self.host = host
        self.port = port
        self.maxJSONBodyBytes = maxJSONBodyBytes
        self.maxManifestBytes = maxManifestBytes
        self.maxBlobBytes = maxBlobBytes
        self.resolveTTLSeconds = resolveTTLSeconds
        self.maxEventWaitSeconds = maxEventWaitSeconds
        self.authCacheSeconds = authCacheSeconds
        self.dataPort = dataPort
        self.dataThreads = dataThreads
        self.maxDataConnections = maxDataConnections
        self.publicArtifactsURL = publicArtifactsURL
        self.rolloutCheckInterval = rolloutCheckInterval
    }
}
