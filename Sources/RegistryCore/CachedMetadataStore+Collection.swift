extension CachedMetadataStore {
    /// Always read from `base`: garbage collection must never act on a stale reference set.
    public func referencedDigests() async throws -> Set<Digest> {
        try await base.referencedDigests()
    }
}
