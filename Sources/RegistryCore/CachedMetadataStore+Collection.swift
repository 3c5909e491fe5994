import Foundation

extension CachedMetadataStore {
    /// Always read from `base`: garbage collection must never act on a stale reference set.
    public func referencedDigests() async throws -> Set<Digest> {
        try await base.referencedDigests()
    }

    public func recordUploads(_ digests: [Digest], by subject: String, expiresAt: Date) async throws {
        try await base.recordUploads(digests, by: subject, expiresAt: expiresAt)
    }

    public func uploadedDigests(_ digests: [Digest], by subject: String, now: Date) async throws -> Set<Digest> {
        try await base.uploadedDigests(digests, by: subject, now: now)
    }

    /// Always read from `base`, like the reference set.
    public func pinnedDigests(now: Date) async throws -> Set<Digest> {
        try await base.pinnedDigests(now: now)
    }
}
