import RegistryCore

/// What a stage points at now, as serving systems see it (`GET /v1/resolve/{model}/{stage}`).
public struct Resolution: Sendable, Equatable, Codable {
    /// One resolvable artifact.
    public struct Target: Sendable, Equatable, Codable {
        public var version: Int
        public var manifestDigest: Digest
        public var size: Int64
        /// The share of traffic for a rollout candidate, in percent (0 while the fleet warms up).
        public var weight: Double?
        /// The rollout's state, for a candidate.
        public var state: String?
    }

    public var model: String
    public var stage: String
    public var revision: Int
    public var stable: Target
    public var candidate: Target?
    public var rolloutId: String?
    public var ttlSeconds: Int
    /// Where to fetch blobs and manifests (the registry's data-plane URL); nil from registries that predate it.
    public var artifactsURL: String?
    /// The response's ETag, to send as `ifNoneMatch` on the next call.
    public var etag: String?
}
