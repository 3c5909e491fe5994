import Foundation

/// A newly created bearer token; `token` is the secret, shown only once.
public struct IssuedToken: Sendable, Equatable, Codable {
    public var id: String?
    public var subject: String
    public var admin: Bool?
    public var canCreateModels: Bool?
    public var expiresAt: Date?
    public var token: String
    public var createdAt: Date?
}

/// A token as listed by the registry; the secret is never returned.
public struct TokenInfo: Sendable, Equatable, Codable {
    public var id: String
    public var subject: String
    public var admin: Bool
    public var canCreateModels: Bool?
    public var expiresAt: Date?
    public var createdBy: String?
    public var createdAt: Date?
}
