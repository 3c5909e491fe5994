import Foundation
import RegistryAPI
import RegistryCore

extension RegistryClient {
    /// Events after `cursor` (from the start when nil), waiting up to `wait` seconds for the first one.
    public func events(after cursor: String? = nil, wait: Int? = nil, limit: Int? = nil) async throws -> EventPage {
        try await request(
            Call(
                .GET, "/v1/events",
                query: [("after", cursor), ("wait", wait.map(String.init)), ("limit", limit.map(String.init))]))
    }

    /// One page of audit entries after sequence `after`, for one model or (admins) all.
    public func auditEntries(
        model: String? = nil, after: Int64? = nil, limit: Int? = nil, pageToken: String? = nil
    ) async throws -> Page<AuditEntry> {
        try await request(
            Call(
                .GET, "/v1/audit",
                query: [
                    ("model", model), ("after", after.map(String.init)), ("limit", limit.map(String.init)),
                    ("pageToken", pageToken),
                ]))
    }

    /// Checks the audit hash chain end to end (admins).
    public func verifyAudit() async throws -> AuditChain.Verification {
        try await request(Call(.GET, "/v1/audit/verify"))
    }

    /// Issues a token for `subject` (admins); the secret in the result is shown only this once.
    public func createToken(
        subject: String, admin: Bool = false, canCreateModels: Bool = false, expiresAt: Date? = nil
    ) async throws -> IssuedToken {
        var call = Call(.POST, "/v1/tokens")
        try call.json(
            CreateTokenRequest(subject: subject, admin: admin, canCreateModels: canCreateModels, expiresAt: expiresAt))
        return try await request(call)
    }

    /// Every token (admins), without secrets.
    public func tokens() async throws -> [TokenInfo] {
        try await request(Call(.GET, "/v1/tokens"), as: ItemList<TokenInfo>.self).items
    }

    /// Revokes the token with `id` (admins).
    public func revokeToken(id: String) async throws {
        try await perform(Call(.DELETE, "/v1/tokens/\(Self.escape(id))"))
    }

    /// Throws unless the registry process answers `/healthz`.
    public func health() async throws {
        try await perform(Call(.GET, "/healthz"))
    }

    /// Throws `UNAVAILABLE` unless the registry can serve requests (`/readyz`).
    public func ready() async throws {
        try await perform(Call(.GET, "/readyz"))
    }
}
