import RegistryCore
import RegistryTesting
import Testing

@Suite struct InMemoryMetadataStoreTests {
    @Test(arguments: MetadataStoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        try await conformanceCase.run(InMemoryMetadataStore())
    }
}
