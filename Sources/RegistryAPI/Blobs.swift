import RegistryCore

/// `POST /v1/blobs/check`: the digests to look up, at most `BlobCheck.maxDigests`.
public struct BlobCheckRequest: Sendable, Equatable, Codable {
    public var digests: [Digest]

    public init(digests: [Digest]) {
        self.digests = digests
    }

    public static let schema = Schema.object(
        [
            "digests": [
                "type": "array", "items": Schema.digest, "maxItems": .number(Double(BlobCheck.maxDigests)),
            ]
        ],
        required: ["digests"])
}

/// The answer to `BlobCheckRequest`: the digests still to be uploaded.
public struct BlobCheckResult: Sendable, Equatable, Codable {
    public var missing: [Digest]

    public init(missing: [Digest]) {
        self.missing = missing
    }

    public static let schema = Schema.record(["missing": ["type": "array", "items": Schema.digest]])
}

/// A stored blob: the answer to uploading a chunk (`PUT /v1/blobs/{digest}`) or a manifest (`PUT /v1/manifests`).
public struct BlobInfo: Sendable, Equatable, Codable {
    public var digest: Digest
    public var size: Int64

    public init(digest: Digest, size: Int64) {
        self.digest = digest
        self.size = size
    }

    public static let schema = Schema.record(["digest": Schema.digest, "size": Schema.integer])
}
