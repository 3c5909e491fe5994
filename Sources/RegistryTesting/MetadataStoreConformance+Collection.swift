import RegistryCore
import Testing

extension MetadataStoreConformance {
    /// What garbage collection relies on: the set of every digest any version references.
    static let collectionCases: [ConformanceCase] = [
        ConformanceCase("referencedDigestsIsEmptyForAnEmptyStore") { (store: any MetadataStore) async throws in
            #expect(try await store.referencedDigests().isEmpty)
        },
        ConformanceCase("referencedDigestsHoldsEveryArtifactOfEveryVersionOnce") {
            (store: any MetadataStore) async throws in
            try await createModel(store, model("a"))
            try await createModel(store, model("b"))
            let shared = digest("shared chunk")
            try await createVersion(store, "a", artifacts: [digest("manifest a1"), shared, digest("chunk a1")])
            try await createVersion(store, "a", artifacts: [digest("manifest a2"), shared])
            try await createVersion(store, "b", artifacts: [digest("manifest b1"), shared])
            let expected: Set<Digest> = [
                digest("manifest a1"), digest("manifest a2"), digest("manifest b1"), shared, digest("chunk a1"),
            ]
            #expect(try await store.referencedDigests() == expected)
            #expect(!(try await store.referencedDigests().contains(digest("never referenced"))))
        },
        ConformanceCase("uploadsAreVisibleToTheirUploaderOnlyUntilTheyExpire") {
            (store: any MetadataStore) async throws in
            let now = Timestamp.now()
            let (a, b, c) = (digest("upload a"), digest("upload b"), digest("upload c"))
            try await store.recordUploads([a, b], by: "alice", expiresAt: now.addingTimeInterval(60))
            try await store.recordUploads([c], by: "bob", expiresAt: now.addingTimeInterval(10))
            #expect(try await store.uploadedDigests([a, b, c], by: "alice", now: now) == [a, b])
            #expect(try await store.uploadedDigests([a, b, c], by: "bob", now: now) == [c])
            #expect(try await store.uploadedDigests([a], by: "carol", now: now).isEmpty)
            #expect(try await store.pinnedDigests(now: now) == [a, b, c])
            // An upload expires; a later record of the same digest extends it, an earlier one never shortens it.
            let later = now.addingTimeInterval(30)
            #expect(try await store.uploadedDigests([c], by: "bob", now: later).isEmpty)
            try await store.recordUploads([a], by: "alice", expiresAt: now.addingTimeInterval(5))
            #expect(try await store.uploadedDigests([a], by: "alice", now: later) == [a])
            #expect(try await store.pinnedDigests(now: later) == [a, b])
            #expect(try await store.pinnedDigests(now: now.addingTimeInterval(120)).isEmpty)
        },
    ]
}
