import Foundation

/// Creates the first admin token when a registry starts.
public enum AdminBootstrap {
    /// The subject of the bootstrap admin token.
    public static let subject = "admin"

    /// Ensures an admin token exists.
    ///
    /// With `configuredSecret` (from `REGISTRY_ADMIN_TOKEN`): a secret shorter than `TokenSecret.minimumLength` is
    /// refused (`INVALID_ARGUMENT`); a secret that was revoked through the API is refused (`PERMISSION_DENIED`)
    /// rather than silently re-created; a new secret is registered and every earlier bootstrap token is revoked, so
    /// changing the variable retires the old secret. Without it, a secret is generated when no active admin token
    /// exists. Returns the secret only when it was newly generated, so the caller can print it once.
    public static func ensureAdminToken(
        in store: some TokenStore, configuredSecret: String?, now: Date = Timestamp.now()
    ) async throws -> String? {
        let context = MutationContext(actor: "system", requestId: "bootstrap")
        if let secret = configuredSecret, !secret.isEmpty {
            guard secret.count >= TokenSecret.minimumLength else {
                throw RegistryError.invalidArgument(
                    "REGISTRY_ADMIN_TOKEN must be at least \(TokenSecret.minimumLength) characters (for example "
                        + "`openssl rand -hex 24`).", field: "REGISTRY_ADMIN_TOKEN")
            }
            let hash = TokenSecret.hash(secret)
            if let existing = try await store.token(hash: hash) {
                guard existing.revokedAt == nil else {
                    throw RegistryError(
                        .permissionDenied,
                        "REGISTRY_ADMIN_TOKEN was revoked through the API (token \(existing.id)); it is not re-created. "
                            + "Set a new secret to bootstrap again.")
                }
                return nil
            }
            do {
                try await store.createToken(bootstrapToken(hash: hash, time: context.time), context: context)
            } catch let error as RegistryError where error.code == .invalidArgument {
                // Several instances on one database starting together: another registered it first.
                guard try await store.token(hash: hash) != nil else { throw error }
                return nil
            }
            try await revokeOtherBootstrapTokens(in: store, keeping: hash, context: context)
            return nil
        }
        if try await store.tokens().contains(where: { $0.admin && $0.isActive(at: now) }) { return nil }
        let secret = TokenSecret.generate()
        let hash = TokenSecret.hash(secret)
        try await store.createToken(bootstrapToken(hash: hash, time: context.time), context: context)
        return secret
    }

    private static func bootstrapToken(hash: String, time: Date) -> AccessToken {
        AccessToken(
            id: String(hash.prefix(12)), subject: subject, admin: true, bootstrap: true, tokenHash: hash,
            createdBy: "system", createdAt: time)
    }

    private static func revokeOtherBootstrapTokens(
        in store: some TokenStore, keeping hash: String, context: MutationContext
    ) async throws {
        for token in try await store.tokens() where token.bootstrap && token.tokenHash != hash {
            do {
                try await store.revokeToken(id: token.id, context: context)
            } catch let error as RegistryError where error.code == .notFound {
                continue  // another instance starting together revoked it first
            }
        }
    }

    /// A new token for `subject`: the stored record and the secret to hand out once.
    public static func newToken(
        subject: String, admin: Bool, canCreateModels: Bool = false, expiresAt: Date? = nil, createdBy: String,
        time: Date
    ) -> (AccessToken, String) {
        let secret = TokenSecret.generate()
        let hash = TokenSecret.hash(secret)
        return (
            AccessToken(
                id: String(hash.prefix(12)), subject: subject, admin: admin, canCreateModels: canCreateModels,
                expiresAt: expiresAt, tokenHash: hash, createdBy: createdBy, createdAt: time),
            secret
        )
    }
}
