import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct InMemoryMetadataStoreTests {
    @Test(arguments: MetadataStoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        try await conformanceCase.run(InMemoryMetadataStore())
    }
}
