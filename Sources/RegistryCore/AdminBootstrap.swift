import Foundation

/// Creates the first admin token when a registry starts.
public enum AdminBootstrap {
    /// The subject of the bootstrap admin token.
    public static let subject = "admin"

    /// Ensures an admin token exists. When `configuredSecret` is set (from `REGISTRY_ADMIN_TOKEN`) a token with that
    /// secret is registered if missing; otherwise, when no admin token exists yet, a new secret is generated.
    /// Returns the secret only when it was newly generated, so the caller can print it once.
    public static func ensureAdminToken(in store: some TokenStore, configuredSecret: String?) async throws -> String? {
        let context = MutationContext(actor: "system", requestId: "bootstrap")
        if let secret = configuredSecret, !secret.isEmpty {
            let hash = TokenSecret.hash(secret)
            if try await store.token(hash: hash) == nil {
                try await store.createToken(
                    AccessToken(
                        id: String(hash.prefix(12)), subject: subject, admin: true, tokenHash: hash, createdBy: "system",
                        createdAt: context.time),
                    context: context)
            }
            return nil
        }
        if try await store.tokens().contains(where: \.admin) { return nil }
        let secret = TokenSecret.generate()
        let hash = TokenSecret.hash(secret)
        try await store.createToken(
            AccessToken(
                id: String(hash.prefix(12)), subject: subject, admin: true, tokenHash: hash, createdBy: "system",
                createdAt: context.time),
            context: context)
        return secret
    }

    /// A new token for `subject`: the stored record and the secret to hand out once.
    public static func newToken(subject: String, admin: Bool, createdBy: String, time: Date) -> (AccessToken, String) {
        let secret = TokenSecret.generate()
        let hash = TokenSecret.hash(secret)
        return (
            AccessToken(id: String(hash.prefix(12)), subject: subject, admin: admin, tokenHash: hash, createdBy: createdBy, createdAt: time),
            secret
        )
    }
}
