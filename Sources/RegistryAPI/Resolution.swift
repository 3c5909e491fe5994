import RegistryCore

/// `GET /v1/resolve/{model}/{stage}`: what a stage points at now, as serving systems see it, cacheable for
/// `ttlSeconds`. `candidate` and `rolloutId` are explicit nulls on the wire when there is no rollout.
public struct Resolution: Sendable, Equatable, Codable {
    /// One resolvable artifact.
    public struct Target: Sendable, Equatable, Codable {
        public var version: Int
        public var manifestDigest: Digest
        public var size: Int64
        /// The share of traffic for a rollout candidate, in percent (0 while the fleet warms up); nil for `stable`.
        public var weight: Double?
        /// The rollout's state (a `Rollout.State`), for a candidate; nil for `stable`. A string, so that a client
        /// reads the states of a newer registry.
        public var state: String?

        public init(
            version: Int, manifestDigest: Digest, size: Int64, weight: Double? = nil, state: String? = nil
        ) {
            self.version = version
            self.manifestDigest = manifestDigest
            self.size = size
            self.weight = weight
            self.state = state
        }
    }

    public var model: String
    public var stage: String
    public var revision: Int
    public var stable: Target
    public var candidate: Target?
    public var rolloutId: String?
    public var ttlSeconds: Int
    /// Where to fetch blobs and manifests (the registry's data-plane URL, or the registry itself); nil from
    /// registries that predate it.
    public var artifactsURL: String?
    /// The response's ETag, to send as `ifNoneMatch` on the next call; an HTTP header, not part of the JSON.
    public var etag: String?

    public init(
        model: String, stage: String, revision: Int, stable: Target, candidate: Target? = nil,
        rolloutId: String? = nil, ttlSeconds: Int, artifactsURL: String? = nil, etag: String? = nil
    ) {
        self.model = model
        self.stage = stage
        self.revision = revision
        self.stable = stable
        self.candidate = candidate
        self.rolloutId = rolloutId
        self.ttlSeconds = ttlSeconds
        self.artifactsURL = artifactsURL
        self.etag = etag
    }

    enum CodingKeys: String, CodingKey {
        case model, stage, revision, stable, candidate, rolloutId, ttlSeconds, artifactsURL
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        stage = try container.decode(String.self, forKey: .stage)
        revision = try container.decode(Int.self, forKey: .revision)
        stable = try container.decode(Target.self, forKey: .stable)
        candidate = try container.decodeIfPresent(Target.self, forKey: .candidate)
        rolloutId = try container.decodeIfPresent(String.self, forKey: .rolloutId)
        ttlSeconds = try container.decode(Int.self, forKey: .ttlSeconds)
        artifactsURL = try container.decodeIfPresent(String.self, forKey: .artifactsURL)
        etag = nil
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(model, forKey: .model)
        try container.encode(stage, forKey: .stage)
        try container.encode(revision, forKey: .revision)
        try container.encode(stable, forKey: .stable)
        try container.encode(candidate, forKey: .candidate)
        try container.encode(rolloutId, forKey: .rolloutId)
        try container.encode(ttlSeconds, forKey: .ttlSeconds)
        try container.encodeIfPresent(artifactsURL, forKey: .artifactsURL)
    }

    public static let schema = Schema.record([
        "model": Schema.string, "stage": Schema.string, "revision": Schema.integer,
        "stable": Schema.record([
            "version": Schema.integer, "manifestDigest": Schema.digest, "size": Schema.integer,
        ]),
        "candidate": Schema.nullable(
            Schema.record([
                "version": Schema.integer, "manifestDigest": Schema.digest, "size": Schema.integer,
                "weight": Schema.number,
                "state": ["type": "string", "enum": .array(["warming", "progressing", "paused"])],
            ])),
        "rolloutId": ["type": .array(["string", "null"])], "ttlSeconds": Schema.integer,
        "artifactsURL": ["type": "string", "description": "Base URL to fetch blobs and manifests from"],
    ])
}
