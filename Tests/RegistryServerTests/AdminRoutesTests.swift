import Foundation
import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct AdminRoutesTests {
    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func garbageCollectionIsForAdministratorsOnly(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let response = try await registry.send(.POST, "/v1/admin/gc", token: world.tokens["owner"], json: [:])
            #expect(response.status == 403)
            #expect(response.errorCode == "PERMISSION_DENIED")
            let anonymous = try await registry.send(.POST, "/v1/admin/gc", token: nil, json: [:])
            #expect(anonymous.status == 401)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func garbageCollectionKeepsReferencedAndYoungBlobsDeletesOldOrphansAndIsAudited(_ backend: TestRegistry.Backend)
        async throws
    {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let orphanBytes = Array("nobody references this chunk".utf8)
            let orphan = Digest(of: orphanBytes)
            // An orphan nobody's open upload holds (an upload that expired, or a crash before the version).
            _ = try await registry.blobs.put(bytes: orphanBytes)
            // A push in flight: uploaded through the API, not yet referenced by a version.
            let inFlightBytes = Array("a push in flight uploaded this".utf8)
            let inFlight = Digest(of: inFlightBytes)
            let put = try await registry.send(
                .PUT, "/v1/blobs/\(inFlight)", token: world.tokens["writer"], body: inFlightBytes)
            #expect(put.status == 201)

            let young = try await registry.send(.POST, "/v1/admin/gc", token: registry.adminToken)
            #expect(young.status == 200)
            #expect(young.json["deleted"] == .array([]))
            #expect(young.int("keptYoung") == 1)
            #expect(young.int("keptPinned") == 1)

            let dry = try await registry.send(
                .POST, "/v1/admin/gc", token: registry.adminToken,
                json: ["dryRun": .bool(true), "graceSeconds": .number(0)])
            #expect(dry.json["deleted"] == .array([.string(orphan.description)]))
            #expect(dry.json["dryRun"] == .bool(true))
            #expect(dry.int("freedBytes") == orphanBytes.count)
            #expect(try await registry.blobs.size(of: orphan) != nil)

            let real = try await registry.send(
                .POST, "/v1/admin/gc", token: registry.adminToken, json: ["graceSeconds": .number(0)])
            #expect(real.json["deleted"] == dry.json["deleted"])
            #expect(try await registry.blobs.size(of: orphan) == nil)
            #expect(try await registry.blobs.size(of: world.manifest) != nil)
            #expect(try await registry.blobs.size(of: Digest(of: world.chunk)) != nil)
            // Even a zero grace never deletes what an open upload holds.
            #expect(real.int("keptPinned") == 1)
            #expect(try await registry.blobs.size(of: inFlight) != nil)

            let audit = try await registry.metadata.auditEntries(AuditQuery(limit: 1000))
            let runs = audit.items.filter { $0.action == "gc.run" }
            #expect(runs.count == 3)
            #expect(runs.allSatisfy { $0.actor == "admin" })

            let negative = try await registry.send(
                .POST, "/v1/admin/gc", token: registry.adminToken, json: ["graceSeconds": .number(-1)])
            #expect(negative.status == 400)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func checkingBlobsTouchesThoseThatArePresent(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let chunk = Digest(of: world.chunk)
            let before = try #require(try await registry.blobs.modificationTime(of: chunk))
            try await Task.sleep(for: .milliseconds(20))
            let check = try await registry.send(
                .POST, "/v1/blobs/check", token: world.tokens["writer"],
                json: ["digests": .array([.string(chunk.description)])])
            #expect(check.status == 200)
            let after = try #require(try await registry.blobs.modificationTime(of: chunk))
            #expect(after > before)
        }
    }
}
