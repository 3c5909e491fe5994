import Foundation
import Hummingbird
import RegistryCore
import Synchronization

/// Turns `Authorization: Bearer` secrets into principals, caching lookups for `ttl`.
///
/// Only hashes are kept, never secrets. A token revoked through another server keeps working here for up to `ttl`;
/// revocations through this server take effect at once. While the metadata store is unavailable (a database
/// restart), an expired entry is used rather than failing the call: reads keep being served from the cache, and no
/// token can be revoked meanwhile. The cache also holds, per subject, which models it may
/// read and whether it may write anywhere (for the blob routes, which are not tied to one model).
final class Authenticator: Sendable {
    /// What a subject may do across all models.
    struct Access: Sendable {
        var readable: Set<String>
        var writesAnywhere: Bool
    }

    private struct Cached<Value> {
        let value: Value
        let expires: ContinuousClock.Instant
    }

    private let store: any MetadataStore
    private let ttl: Duration
    private let maxEntries = 10_000
    private let tokens = Mutex<[String: Cached<AccessToken>]>([:])
    private let access = Mutex<[String: Cached<Access>]>([:])

    init(store: any MetadataStore, ttl: Duration) {
        self.store = store
        self.ttl = ttl
    }

    /// The caller of `request`; throws `UNAUTHENTICATED` without a known bearer token.
    func principal(for request: Request) async throws -> Principal {
        guard let secret = request.bearerToken else {
            throw RegistryError(.unauthenticated, "This call needs an 'Authorization: Bearer <token>' header.")
        }
        // No secret this registry issues or accepts is this short: refused without a lookup.
        guard secret.utf8.count >= TokenSecret.minimumLength, secret.utf8.count <= 512 else {
            throw RegistryError(.unauthenticated, "The bearer token is not known to this registry.")
        }
        let hash = TokenSecret.hash(secret)
        let now = ContinuousClock.now
        let token: AccessToken
        let cached = tokens.withLock { $0[hash] }
        if let cached, cached.expires > now {
            token = cached.value
        } else {
            let stored: AccessToken?
            do {
                stored = try await store.token(hash: hash)
            } catch let error as RegistryError where error.code == .storeUnavailable && cached != nil {
                stored = cached?.value
            }
            guard let stored, stored.revokedAt == nil else {
                tokens.withLock { _ = $0.removeValue(forKey: hash) }
                throw RegistryError(.unauthenticated, "The bearer token is not known to this registry.")
            }
            token = stored
            tokens.withLock { cache in
                if cache.count >= maxEntries { cache.removeAll(keepingCapacity: true) }
                cache[hash] = Cached(value: token, expires: now.advanced(by: ttl))
            }
        }
        if let expiresAt = token.expiresAt, expiresAt <= Date() {
            throw RegistryError(
                .tokenExpired, "The bearer token expired at \(Timestamp.format(expiresAt)); ask for a new one.",
                details: ["id": .string(token.id)])
        }
        return Principal(token)
    }

    /// Forgets the cached token with `id`, so that a revocation through this server is immediate.
    func forgetToken(id: String) {
        tokens.withLock { cache in
            for (hash, entry) in cache where entry.value.id == id { cache.removeValue(forKey: hash) }
        }
    }

    /// Forgets every cached per-subject access summary (after an access-list change or a new model).
    func forgetAccess() {
        access.withLock { $0.removeAll(keepingCapacity: true) }
    }

    /// Which models `principal` may read and whether it may write to any; cached for `ttl`.
    func access(of principal: Principal) async throws -> Access {
        let now = ContinuousClock.now
        let cached = access.withLock { $0[principal.subject] }
        if let cached, cached.expires > now {
            return cached.value
        }
        var summary = Access(readable: [], writesAnywhere: false)
        var after: String?
        do {
            repeat {
                let page = try await store.models(ModelQuery(visibleTo: principal.subject, after: after, limit: 1000))
                for model in page.items {
                    if principal.can(.read, on: model) { summary.readable.insert(model.name) }
                    if principal.can(.write, on: model) { summary.writesAnywhere = true }
                }
                after = page.nextPageToken == nil ? nil : page.items.last?.name
            } while after != nil
        } catch let error as RegistryError where error.code == .storeUnavailable {
            guard let cached else { throw error }
            return cached.value
        }
        access.withLock { cache in
            if cache.count >= maxEntries { cache.removeAll(keepingCapacity: true) }
            cache[principal.subject] = Cached(value: summary, expires: now.advanced(by: ttl))
        }
        return summary
    }
}
