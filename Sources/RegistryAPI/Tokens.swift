import Foundation
import RegistryCore

/// `POST /v1/tokens`: a token to issue; nil flags are false.
public struct CreateTokenRequest: Sendable, Equatable, Codable {
    public var subject: String
    public var admin: Bool?
    public var canCreateModels: Bool?
    public var expiresAt: Date?

    public init(subject: String, admin: Bool? = nil, canCreateModels: Bool? = nil, expiresAt: Date? = nil) {
        self.subject = subject
        self.admin = admin
        self.canCreateModels = canCreateModels
        self.expiresAt = expiresAt
    }

    public static let schema = Schema.object(
        [
            "subject": Schema.subject, "admin": Schema.boolean, "canCreateModels": Schema.boolean,
            "expiresAt": Schema.time,
        ],
        required: ["subject"])
}

/// A newly created bearer token; `token` is the secret, shown only in this response.
public struct IssuedToken: Sendable, Equatable, Codable {
    public var id: String
    public var subject: String
    public var admin: Bool
    public var canCreateModels: Bool
    public var expiresAt: Date?
    public var token: String
    public var createdAt: Date

    public init(
        id: String, subject: String, admin: Bool, canCreateModels: Bool, expiresAt: Date?, token: String,
        createdAt: Date
    ) {
        self.id = id
        self.subject = subject
        self.admin = admin
        self.canCreateModels = canCreateModels
        self.expiresAt = expiresAt
        self.token = token
        self.createdAt = createdAt
    }

    /// `token` and the secret it was issued with.
    public init(_ token: AccessToken, secret: String) {
        self.init(
            id: token.id, subject: token.subject, admin: token.admin, canCreateModels: token.canCreateModels,
            expiresAt: token.expiresAt, token: secret, createdAt: token.createdAt)
    }

    public static let schema = Schema.record(
        [
            "id": Schema.string, "subject": Schema.string, "admin": Schema.boolean,
            "canCreateModels": Schema.boolean, "expiresAt": Schema.time, "token": Schema.string,
            "createdAt": Schema.time,
        ], optional: ["expiresAt"])
}

/// A token as `GET /v1/tokens` lists it: an `AccessToken` without its hash (the secret is never returned).
public struct TokenInfo: Sendable, Equatable, Codable {
    public var id: String
    public var subject: String
    public var admin: Bool
    public var canCreateModels: Bool
    public var expiresAt: Date?
    /// Whether the registry created the token at start-up.
    public var bootstrap: Bool
    public var revokedAt: Date?
    public var createdBy: String
    public var createdAt: Date

    public init(_ token: AccessToken) {
        id = token.id
        subject = token.subject
        admin = token.admin
        canCreateModels = token.canCreateModels
        expiresAt = token.expiresAt
        bootstrap = token.bootstrap
        revokedAt = token.revokedAt
        createdBy = token.createdBy
        createdAt = token.createdAt
    }

    /// `GET /v1/tokens`: an `ItemList` of tokens.
    public static let listSchema = Schema.record([
        "items": [
            "type": "array",
            "items": Schema.record(
                [
                    "id": Schema.string, "subject": Schema.string, "admin": Schema.boolean,
                    "canCreateModels": Schema.boolean, "expiresAt": Schema.time, "bootstrap": Schema.boolean,
                    "revokedAt": Schema.time, "createdBy": Schema.string, "createdAt": Schema.time,
                ], optional: ["expiresAt", "revokedAt", "bootstrap"]),
        ]
    ])
}
