import Foundation

/// A registered model: a named group of versions with its own access list and approval policy.
public struct Model: Sendable, Equatable, Codable {
    public var name: String
    public var description: String
    public var tags: [String: String]
    /// The subject that created the model; it is granted `owner` at creation.
    public var createdBy: String
    public var approvalPolicy: ApprovalPolicy
    /// The keys trusted to sign versions and whether a signature is required.
    public var trustPolicy: TrustPolicy
    /// The access list; served by the `/acl` route and left out of the model's JSON.
    public var grants: [Grant]
    public var revision: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        name: String, description: String = "", tags: [String: String] = [:], createdBy: String,
        approvalPolicy: ApprovalPolicy = .init(), trustPolicy: TrustPolicy = .init(), grants: [Grant] = [],
        revision: Int = 1, createdAt: Date, updatedAt: Date? = nil
    ) {
        self.name = name
        self.description = description
        self.tags = tags
        self.createdBy = createdBy
        self.approvalPolicy = approvalPolicy
        self.trustPolicy = trustPolicy
        self.grants = grants
        self.revision = revision
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
    }

    enum CodingKeys: String, CodingKey {
        case name, description, tags, createdBy, approvalPolicy, trustPolicy, revision, createdAt, updatedAt
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        tags = try container.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
        createdBy = try container.decode(String.self, forKey: .createdBy)
        approvalPolicy = try container.decodeIfPresent(ApprovalPolicy.self, forKey: .approvalPolicy) ?? .init()
        trustPolicy = try container.decodeIfPresent(TrustPolicy.self, forKey: .trustPolicy) ?? .init()
        grants = []
        revision = try container.decode(Int.self, forKey: .revision)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        updatedAt = try container.decode(Date.self, forKey: .updatedAt)
    }
}

/// How many approvals a version needs, and whether its creator's own approval counts.
public struct ApprovalPolicy: Sendable, Equatable, Codable {
    public var requiredApprovals: Int
    public var allowSelfApproval: Bool
    /// Whether changing an approved version's metadata revokes its approval (it goes back to pending).
    public var revokeApprovalOnMetadataChange: Bool

    public init(
        requiredApprovals: Int = 1, allowSelfApproval: Bool = false, revokeApprovalOnMetadataChange: Bool = false
    ) {
        self.requiredApprovals = requiredApprovals
        self.allowSelfApproval = allowSelfApproval
        self.revokeApprovalOnMetadataChange = revokeApprovalOnMetadataChange
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        requiredApprovals = try container.decodeIfPresent(Int.self, forKey: .requiredApprovals) ?? 1
        allowSelfApproval = try container.decodeIfPresent(Bool.self, forKey: .allowSelfApproval) ?? false
        revokeApprovalOnMetadataChange =
            try container.decodeIfPresent(Bool.self, forKey: .revokeApprovalOnMetadataChange) ?? false
    }

    enum CodingKeys: String, CodingKey { case requiredApprovals, allowSelfApproval, revokeApprovalOnMetadataChange }

    public func validate() throws {
        guard (1...16).contains(requiredApprovals) else {
            throw RegistryError.invalidArgument(
                "approvalPolicy.requiredApprovals must be between 1 and 16.", field: "approvalPolicy.requiredApprovals")
        }
    }
}

/// One entry of a model's access list.
public struct Grant: Sendable, Hashable, Codable {
    public var subject: String
    public var role: Role

    public init(subject: String, role: Role) {
        self.subject = subject
        self.role = role
    }
}

/// What a subject may do on one model. Every role can read; `owner` can do everything. `serving` is the role of
/// serving instances and agents: read, resolve, download and report on rollouts, nothing else.
public enum Role: String, Sendable, Hashable, Codable, CaseIterable {
    case reader, writer, approver, deployer, owner, serving

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let role = Role(rawValue: raw) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription:
                        "unknown role '\(raw)'; expected one of reader, writer, approver, deployer, owner, serving"))
        }
        self = role
    }

    /// The permissions this role carries.
    public var permissions: Set<Permission> {
        switch self {
        case .reader: [.read]
        case .writer: [.read, .write]
        case .approver: [.read, .approve]
        case .deployer: [.read, .deploy]
        case .owner: Set(Permission.allCases)
        case .serving: [.read, .report]
        }
    }
}

/// A capability checked on every route.
public enum Permission: String, Sendable, Hashable, CaseIterable {
    /// Read metadata, resolve, download artifacts.
    case read
    /// Create versions, upload artifacts, edit version tags and metadata.
    case write
    /// Approve or reject versions.
    case approve
    /// Promote, roll out, roll back.
    case deploy
    /// Change the model, its policy and its access list; archive versions.
    case manage
    /// Report a serving instance's state and counts to a rollout.
    case report

    /// The least role that carries this permission, for error messages.
    public var leastRole: Role {
        switch self {
        case .read: .reader
        case .write: .writer
        case .approve: .approver
        case .deploy: .deployer
        case .manage: .owner
        case .report: .serving
        }
    }
}
