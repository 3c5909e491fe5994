import Crypto
import Foundation

/// A bearer token as the registry keeps it: only the SHA-256 of the secret is stored.
public struct AccessToken: Sendable, Equatable, Codable {
    /// A short public identifier (the first characters of the hash), safe to show and log.
    public var id: String
    public var subject: String
    public var admin: Bool
    public var tokenHash: String
    public var createdBy: String
    public var createdAt: Date

    public init(id: String, subject: String, admin: Bool, tokenHash: String, createdBy: String, createdAt: Date) {
        self.id = id
        self.subject = subject
        self.admin = admin
        self.tokenHash = tokenHash
        self.createdBy = createdBy
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey { case id, subject, admin, createdBy, createdAt, tokenHash }

    public func encode(to encoder: any Encoder) throws {
        // The hash never leaves the server.
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(subject, forKey: .subject)
        try container.encode(admin, forKey: .admin)
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
