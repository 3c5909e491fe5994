import Crypto
import Foundation

/// A bearer token as the registry keeps it: only the SHA-256 of the secret is stored.
public struct AccessToken: Sendable, Equatable, Codable {
    /// A short public identifier (the first characters of the hash), safe to show and log.
    public var id: String
    public var subject: String
    public var admin: Bool
    /// Whether the holder may create models (a global permission; admins always may).
    public var canCreateModels: Bool
    /// After this time the token no longer authenticates; nil for no expiry.
    public var expiresAt: Date?
    /// Whether the registry created this token at start-up (`REGISTRY_ADMIN_TOKEN` or a generated one).
    public var bootstrap: Bool
    /// When the token was revoked; a revoked token never authenticates again, and a revoked bootstrap secret is
    /// not re-created at start-up.
    public var revokedAt: Date?
    public var tokenHash: String
    public var createdBy: String
    public var createdAt: Date

    public init(
        id: String, subject: String, admin: Bool, canCreateModels: Bool = false, expiresAt: Date? = nil,
        bootstrap: Bool = false, revokedAt: Date? = nil, tokenHash: String, createdBy: String, createdAt: Date
    ) {
        self.id = id
        self.subject = subject
        self.admin = admin
        self.canCreateModels = canCreateModels
        self.expiresAt = expiresAt
        self.bootstrap = bootstrap
        self.revokedAt = revokedAt
        self.tokenHash = tokenHash
        self.createdBy = createdBy
        self.createdAt = createdAt
    }

    /// Whether the token authenticates at `now`: not revoked and not expired.
    public func isActive(at now: Date) -> Bool {
        guard revokedAt == nil else { return false }
        if let expiresAt, expiresAt <= now { return false }
        return true
    }

    enum CodingKeys: String, CodingKey {
        case id, subject, admin, canCreateModels, expiresAt, bootstrap, revokedAt, createdBy, createdAt, tokenHash
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        subject = try container.decode(String.self, forKey: .subject)
        admin = try container.decode(Bool.self, forKey: .admin)
        canCreateModels = try container.decodeIfPresent(Bool.self, forKey: .canCreateModels) ?? false
        expiresAt = try container.decodeIfPresent(Date.self, forKey: .expiresAt)
        bootstrap = try container.decodeIfPresent(Bool.self, forKey: .bootstrap) ?? false
        revokedAt = try container.decodeIfPresent(Date.self, forKey: .revokedAt)
        tokenHash = try container.decodeIfPresent(String.self, forKey: .tokenHash) ?? ""
        createdBy = try container.decode(String.self, forKey: .createdBy)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
    }

    public func encode(to encoder: any Encoder) throws {
        // The hash never leaves the server.
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(subject, forKey: .subject)
        try container.encode(admin, forKey: .admin)
        try container.encode(canCreateModels, forKey: .canCreateModels)
        try container.encodeIfPresent(expiresAt, forKey: .expiresAt)
        try container.encode(bootstrap, forKey: .bootstrap)
        try container.encodeIfPresent(revokedAt, forKey: .revokedAt)
        try container.encode(createdBy, forKey: .createdBy)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

/// Creation and hashing of token secrets.
public enum TokenSecret {
    /// A new random secret: `mr_` and 43 base64url characters (256 bits).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let text = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "mr_" + text
    }

    /// The fewest characters a secret may have (a configured `REGISTRY_ADMIN_TOKEN` included).
    public static let minimumLength = 32

    /// The stored form of a secret.
    public static func hash(_ secret: String) -> String {
        Hex.encode(SHA256.hash(data: Array(secret.utf8)))
    }

    /// Compares two hashes in time that does not depend on where they differ.
    public static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
