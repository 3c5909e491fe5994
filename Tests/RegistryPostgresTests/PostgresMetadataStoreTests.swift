import Foundation
import RegistryCore
import RegistryPostgres
import RegistryTesting
import Testing

/// The whole `MetadataStoreConformance` on a real PostgreSQL: each case gets a fresh database on the test process's
/// throwaway cluster.
@Suite(.enabled(if: PostgresCluster.shouldRun), .timeLimit(.minutes(10)))
struct PostgresMetadataStoreTests {
    @Test(arguments: MetadataStoreConformance.cases)
    func conforms(_ conformance: ConformanceCase) async throws {
        let url = try await PostgresCluster.shared().makeDatabase()
        try await PostgresMetadataStore.with(try .testing(url: url, poolSize: 8)) { store in
            try await conformance.run(store)
        }
    }
}
