import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct ResolveRoutesTests {
    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func resolveReturnsTheStableTargetWithCachingHeaders(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend, configuration: .init(resolveTTLSeconds: 30)) { registry in
            let world = try await World.make(registry)
            let reader = world.tokens["reader"]
            let resolved = try await registry.send(.GET, "/v1/resolve/demo/production", token: reader)
            #expect(resolved.status == 200)
            #expect(resolved.json["model"] == "demo")
            #expect(resolved.json["stage"] == "production")
            #expect(resolved.int("revision") == 1)
            #expect(resolved.json["stable"]?["version"] == .number(1))
            #expect(resolved.json["stable"]?["manifestDigest"] == .string(world.manifest.description))
            #expect(resolved.json["stable"]?["size"] == .number(Double(world.chunk.count)))
            #expect(resolved.json["candidate"] == .null)
            #expect(resolved.json["rolloutId"] == .null)
            #expect(resolved.int("ttlSeconds") == 30)
            #expect(resolved.header("Cache-Control") == "private, max-age=30")
            let etag = try #require(resolved.header("ETag"))

            let cached = try await registry.send(
                .GET, "/v1/resolve/demo/production", token: reader, headers: [("If-None-Match", etag)])
            #expect(cached.status == 304)
            #expect(cached.body.isEmpty)

            let v2 = try await world.approvedVersion("v2")
            _ = try await registry.send(
                .PUT, "/v1/models/demo/stages/production", token: world.tokens["deployer"],
                json: ["version": .number(Double(v2))], headers: [("If-Match", "\"1\"")])
            let moved = try await registry.send(
                .GET, "/v1/resolve/demo/production", token: reader, headers: [("If-None-Match", etag)])
            #expect(moved.status == 200)
            #expect(moved.header("ETag") != etag)
            #expect(moved.json["stable"]?["version"] == .number(Double(v2)))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func resolveOfAMissingStageIsNotFound(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let response = try await registry.send(.GET, "/v1/resolve/demo/staging", token: world.tokens["reader"])
            #expect(response.status == 404)
            #expect(response.errorCode == "STAGE_NOT_FOUND")
            let noModel = try await registry.send(.GET, "/v1/resolve/nope/staging", token: world.tokens["reader"])
            #expect(noModel.errorCode == "MODEL_NOT_FOUND")
        }
    }
}
