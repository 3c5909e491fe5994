import RegistryCore

/// `POST /v1/models/{model}/versions`: registers an uploaded manifest as the model's next version.
public struct CreateVersionRequest: Sendable, Equatable, Codable {
    public var manifestDigest: Digest
    /// A DSSE envelope from `ArtifactSigning.sign`.
    public var signature: String?
    public var metadata: JSONValue?
    public var tags: [String: String]?
    public var source: VersionSource?

    public init(
        manifestDigest: Digest, signature: String? = nil, metadata: JSONValue? = nil, tags: [String: String]? = nil,
        source: VersionSource? = nil
    ) {
        self.manifestDigest = manifestDigest
        self.signature = signature
        self.metadata = metadata
        self.tags = tags
        self.source = source
    }

    public static let schema = Schema.object(
        [
            "manifestDigest": Schema.digest, "signature": Schema.string, "metadata": Schema.anyObject,
            "tags": Schema.tags, "source": Schema.object(Schema.versionSourceProperties),
        ], required: ["manifestDigest"])
}

/// `PATCH /v1/models/{model}/versions/{version}`: new tags, metadata or signature, or `status: archived`.
public struct UpdateVersionRequest: Sendable, Equatable, Codable {
    public var tags: [String: String]?
    public var metadata: JSONValue?
    /// Only `archived` can be set; approvals decide the other states.
    public var status: VersionStatus?
    public var signature: String?

    public init(
        tags: [String: String]? = nil, metadata: JSONValue? = nil, status: VersionStatus? = nil,
        signature: String? = nil
    ) {
        self.tags = tags
        self.metadata = metadata
        self.status = status
        self.signature = signature
    }

    public static let schema = Schema.object([
        "tags": Schema.tags, "metadata": Schema.anyObject, "status": ["type": "string", "enum": .array(["archived"])],
        "signature": Schema.string,
    ])
}

/// `POST /v1/models/{model}/versions/{version}/approvals`: an approval or a rejection.
public struct DecisionRequest: Sendable, Equatable, Codable {
    public var decision: Decision
    public var comment: String?

    public init(decision: Decision, comment: String? = nil) {
        self.decision = decision
        self.comment = comment
    }

    public static let schema = Schema.object(
        ["decision": Schema.decision, "comment": Schema.string], required: ["decision"])
}
