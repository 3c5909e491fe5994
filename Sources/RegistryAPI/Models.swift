import RegistryCore

/// `POST /v1/models`: a new model; nil fields take their defaults.
public struct CreateModelRequest: Sendable, Equatable, Codable {
    public var name: String
    public var description: String?
    public var tags: [String: String]?
    public var approvalPolicy: ApprovalPolicy?
    public var trustPolicy: TrustPolicy?

    public init(
        name: String, description: String? = nil, tags: [String: String]? = nil,
        approvalPolicy: ApprovalPolicy? = nil, trustPolicy: TrustPolicy? = nil
    ) {
        self.name = name
        self.description = description
        self.tags = tags
        self.approvalPolicy = approvalPolicy
        self.trustPolicy = trustPolicy
    }

    public static let schema = Schema.object(
        [
            "name": Schema.name, "description": Schema.string, "tags": Schema.tags,
            "approvalPolicy": Schema.object(Schema.approvalPolicyProperties),
            "trustPolicy": Schema.object(Schema.trustPolicyProperties),
        ], required: ["name"])
}

/// `PATCH /v1/models/{model}`: the fields to change; nil fields stay as they are.
public struct UpdateModelRequest: Sendable, Equatable, Codable {
    public var description: String?
    public var tags: [String: String]?
    public var approvalPolicy: ApprovalPolicy?
    public var trustPolicy: TrustPolicy?

    public init(
        description: String? = nil, tags: [String: String]? = nil, approvalPolicy: ApprovalPolicy? = nil,
        trustPolicy: TrustPolicy? = nil
    ) {
        self.description = description
        self.tags = tags
        self.approvalPolicy = approvalPolicy
        self.trustPolicy = trustPolicy
    }

    public static let schema = Schema.object([
        "description": Schema.string, "tags": Schema.tags,
        "approvalPolicy": Schema.object(Schema.approvalPolicyProperties),
        "trustPolicy": Schema.object(Schema.trustPolicyProperties),
    ])
}

/// A model's access list and the model revision it belongs to (the ETag to send when replacing it).
public struct AccessList: Sendable, Equatable, Codable {
    public var model: String
    public var grants: [Grant]
    public var revision: Int

    public init(model: String, grants: [Grant], revision: Int) {
        self.model = model
        self.grants = grants
        self.revision = revision
    }

    public static let schema = Schema.record([
        "model": Schema.string,
        "grants": ["type": "array", "items": Schema.record(["subject": Schema.subject, "role": Schema.role])],
        "revision": Schema.integer,
    ])
}

/// `PUT /v1/models/{model}/acl`: the grants that replace the access list.
public struct AccessListRequest: Sendable, Equatable, Codable {
    /// The most grants one access list holds.
    public static let maxGrants = 1000

    public var grants: [Grant]

    public init(grants: [Grant]) {
        self.grants = grants
    }

    public static let schema = Schema.object(
        ["grants": ["type": "array", "items": Schema.grant, "maxItems": .number(Double(maxGrants))]],
        required: ["grants"])
}
