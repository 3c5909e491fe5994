import RegistryCore
import Testing

extension MetadataStoreConformance {
    /// What garbage collection relies on: the set of every digest any version references.
    static let collectionCases: [ConformanceCase] = [
        ConformanceCase("referencedDigestsIsEmptyForAnEmptyStore") { (store: any MetadataStore) async throws in
            #expect(try await store.referencedDigests().isEmpty)
        },
        ConformanceCase("referencedDigestsHoldsEveryArtifactOfEveryVersionOnce") { (store: any MetadataStore) async throws in
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
    ]
}
