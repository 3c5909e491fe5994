/// Settings of one registry server; every field has a production default.
public struct ServerConfiguration: Sendable {
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

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxJSONBodyBytes: Int = 1 << 20,
        maxManifestBytes: Int = 16 << 20, maxBlobBytes: Int64 = 2 << 30, resolveTTLSeconds: Int = 60,
        maxEventWaitSeconds: Int = 60, authCacheSeconds: Int = 5
    ) {
        self.host = host
        self.port = port
        self.maxJSONBodyBytes = maxJSONBodyBytes
        self.maxManifestBytes = maxManifestBytes
        self.maxBlobBytes = maxBlobBytes
        self.resolveTTLSeconds = resolveTTLSeconds
        self.maxEventWaitSeconds = maxEventWaitSeconds
        self.authCacheSeconds = authCacheSeconds
    }
}
