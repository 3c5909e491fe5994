import Foundation
import RegistryCore
import RegistrySQLite
import RegistryTesting
import Testing

/// The composition `registry serve` uses: the read cache over the SQLite store, with group-committed writes.
@Suite(.timeLimit(.minutes(10))) struct CachedSQLiteMetadataStoreTests {
    @Test(arguments: MetadataStoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        let directory = try TemporaryDirectory()
        let base = try SQLiteMetadataStore(path: directory.databasePath)
        try await conformanceCase.run(CachedMetadataStore(base))
        try base.close()
    }

    @Test func aFailingMutationInABatchLeavesItsNeighboursCommitted() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        let context = MutationContext(actor: "alice", requestId: "batch")
        // Concurrent creations of the same name land in one batch: exactly one wins, the rest fail alone.
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                group.addTask {
                    let name = index % 2 == 0 ? "shared" : "model-\(index)"
                    return
                        (try? await store.createModel(
                            Model(name: name, createdBy: "alice", createdAt: context.time), context: context)) != nil
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 21)
        let models = try await store.models(ModelQuery(limit: 100))
        #expect(models.items.count == 21)
        let verification = try await store.verifyAudit()
        #expect(verification.ok)
        #expect(verification.entries == 21, "failed creations wrote no audit entries")
        #expect(try await store.events(after: 0, limit: 100).count == 21)
        try store.close()
    }
}
