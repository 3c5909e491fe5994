import RegistryCore
import RegistryTesting
import Testing

/// Defects the API fuzzing (`.ci/api-fuzz.sh`, Schemathesis against the published schema) found, one test each.
@Suite(.timeLimit(.minutes(10))) struct APIFuzzFindingsTests {
    /// Chunks and manifests share the blob store: `GET /v1/manifests/{chunk digest}` answered 200 with the chunk's
    /// bytes labelled `application/json`, which no client can parse as the manifest the schema promises.
    @Test func aChunkDigestIsNoManifest() async throws {
        try await TestRegistry.with { registry in
            let world = try await World.make(registry)
            let chunk = Digest(of: world.chunk)
            for token in [world.tokens["reader"], registry.adminToken] {
                let response = try await registry.send(.GET, "/v1/manifests/\(chunk)", token: token)
                #expect(response.status == 404)
                #expect(response.errorCode == "MANIFEST_NOT_FOUND")
                let manifest = try await registry.send(.GET, "/v1/manifests/\(world.manifest)", token: token)
                #expect(manifest.status == 200)
                #expect((try? Manifest.parse(manifest.body)) != nil)
            }
        }
    }
}
