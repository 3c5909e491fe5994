import Foundation
import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct VersionRoutesTests {
    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func versionCreationReadsTheManifestAndStartsPending(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let writer = world.tokens["writer"]
            let digest = try await registry.upload(["a.bin": [1, 2, 3], "b.bin": [4, 5]], token: writer!)
            let created = try await registry.send(
                .POST, "/v1/models/demo/versions", token: writer,
                json: [
                    "manifestDigest": .string(digest.description), "tags": ["framework": "onnx"],
                    "metadata": ["accuracy": .number(0.93)], "source": ["commit": "abc123"],
                ])
            #expect(created.status == 201)
            #expect(created.int("version") == 2)
            #expect(created.json["status"] == "pending")
            #expect(created.int("size") == 5)
            #expect(created.header("ETag") == "\"1\"")
            #expect(created.header("Location") == "/v1/models/demo/versions/2")
            #expect(created.json["createdBy"] == "writer")
            #expect(created.json["source"]?["commit"] == "abc123")

            let fetched = try await registry.send(.GET, "/v1/models/demo/versions/2", token: world.tokens["reader"])
            #expect(fetched.status == 200)
            #expect(fetched.json["manifestDigest"] == .string(digest.description))
            #expect(fetched.json["approvals"] == .array([]))

            let missing = try await registry.send(.GET, "/v1/models/demo/versions/99", token: world.tokens["reader"])
            #expect(missing.status == 404)
            #expect(missing.errorCode == "VERSION_NOT_FOUND")
            let bad = try await registry.send(.GET, "/v1/models/demo/versions/abc", token: world.tokens["reader"])
            #expect(bad.status == 400)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func repeatedReadsShowEveryChange(_ backend: TestRegistry.Backend) async throws {
        // The server reuses rendered response bytes while a value is unchanged; a change must show at once.
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let reader = world.tokens["reader"]
            for _ in 0..<2 {
                let version = try await registry.send(.GET, "/v1/models/demo/versions/1", token: reader)
                #expect(version.json["tags"] == .object([:]))
                let list = try await registry.send(.GET, "/v1/models/demo/versions", token: reader)
                #expect(Self.firstItem(list.json)?["tags"] == .object([:]))
            }
            let current = try await registry.send(.GET, "/v1/models/demo/versions/1", token: reader)
            let patched = try await registry.send(
                .PATCH, "/v1/models/demo/versions/1", token: world.tokens["writer"], json: ["tags": ["k": "v"]],
                headers: [("If-Match", current.header("ETag") ?? "")])
            #expect(patched.status == 200)
            let version = try await registry.send(.GET, "/v1/models/demo/versions/1", token: reader)
            #expect(version.json["tags"] == ["k": "v"])
            #expect(version.header("ETag") == patched.header("ETag"))
            let list = try await registry.send(.GET, "/v1/models/demo/versions", token: reader)
            #expect(Self.firstItem(list.json)?["tags"] == ["k": "v"])
        }
    }

    static func firstItem(_ page: JSONValue) -> JSONValue? {
        guard case .array(let items)? = page["items"] else { return nil }
        return items.first
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func versionCreationWithAMissingManifestIsIncomplete(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let absent = Digest(of: Array("never uploaded".utf8))
            let response = try await registry.send(
                .POST, "/v1/models/demo/versions", token: world.tokens["writer"],
                json: ["manifestDigest": .string(absent.description)])
            #expect(response.status == 422)
            #expect(response.errorCode == "ARTIFACT_INCOMPLETE")
            #expect(response.json["error"]?["details"]?["missing"] == .array([.string(absent.description)]))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func versionCreationWithAMissingChunkIsIncomplete(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let chunk = Array("chunk that was never sent".utf8)
            let chunkDigest = Digest(of: chunk)
            let manifest = Manifest(files: [
                .init(
                    path: "x.bin", size: Int64(chunk.count), digest: chunkDigest,
                    chunks: [
                        .init(digest: chunkDigest, size: Int64(chunk.count))
                    ])
            ])
            // Stored behind the server's back: the manifest route itself refuses incomplete manifests.
            let manifestDigest = try await registry.blobs.put(bytes: try JSONCoding.encode(manifest))
            // As if the writer had uploaded it: the manifest is visible to them, its chunk is not stored.
            try await registry.metadata.recordUploads(
                [manifestDigest], by: "writer", expiresAt: Date().addingTimeInterval(3600))
            let response = try await registry.send(
                .POST, "/v1/models/demo/versions", token: world.tokens["writer"],
                json: ["manifestDigest": .string(manifestDigest.description)])
            #expect(response.status == 422)
            #expect(response.json["error"]?["details"]?["missing"] == .array([.string(chunkDigest.description)]))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func fiftyConcurrentCreationsAreNumberedOneToFifty(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let token = try await registry.token(for: "owner", canCreateModels: true)
            _ = try await registry.send(.POST, "/v1/models", token: token, json: ["name": "busy"])
            let digest = try await registry.upload(["m.bin": [9, 9, 9]], token: token)
            let numbers = try await withThrowingTaskGroup(of: Int?.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let response = try await registry.send(
                            .POST, "/v1/models/busy/versions", token: token,
                            json: ["manifestDigest": .string(digest.description)])
                        return response.status == 201 ? response.int("version") : nil
                    }
                }
                var numbers: [Int] = []
                for try await number in group { if let number { numbers.append(number) } }
                return numbers
            }
            #expect(numbers.sorted() == Array(1...50))
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func approvalsFollowThePolicyAndForbidSelfApproval(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let owner = world.tokens["owner"]
            let digest = try await registry.upload(["o.bin": [7]], token: owner!)
            _ = try await registry.send(
                .POST, "/v1/models/demo/versions", token: owner, json: ["manifestDigest": .string(digest.description)])
            let noMatch = try await registry.send(
                .POST, "/v1/models/demo/versions/2/approvals", token: world.tokens["approver"],
                json: ["decision": "approve"])
            #expect(noMatch.status == 428)
            let selfApproval = try await registry.send(
                .POST, "/v1/models/demo/versions/2/approvals", token: owner, json: ["decision": "approve"],
                headers: [("If-Match", "\"1\"")])
            #expect(selfApproval.status == 403)
            #expect(selfApproval.errorCode == "SELF_APPROVAL_FORBIDDEN")
            let unknownDecision = try await registry.send(
                .POST, "/v1/models/demo/versions/2/approvals", token: world.tokens["approver"],
                json: ["decision": "maybe"], headers: [("If-Match", "\"1\"")])
            #expect(unknownDecision.status == 400)
            #expect(unknownDecision.errorCode == "INVALID_ARGUMENT")
            let approved = try await registry.send(
                .POST, "/v1/models/demo/versions/2/approvals", token: world.tokens["approver"],
                json: ["decision": "approve", "comment": "looks good"], headers: [("If-Match", "\"1\"")])
            #expect(approved.status == 200)
            #expect(approved.json["status"] == "approved")
            #expect(approved.header("ETag") == "\"2\"")
            let again = try await registry.send(
                .POST, "/v1/models/demo/versions/2/approvals", token: world.tokens["approver"],
                json: ["decision": "approve"], headers: [("If-Match", "\"2\"")])
            #expect(again.status == 409)
            #expect(again.errorCode == "INVALID_TRANSITION")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func patchUpdatesTagsAndArchivesUnusedVersions(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let tagged = try await registry.send(
                .PATCH, "/v1/models/demo/versions/1", token: world.tokens["writer"], json: ["tags": ["stage": "gold"]],
                headers: [("If-Match", "\"2\"")])
            #expect(tagged.status == 200)
            #expect(tagged.json["tags"]?["stage"] == "gold")
            let writerArchive = try await registry.send(
                .PATCH, "/v1/models/demo/versions/1", token: world.tokens["writer"], json: ["status": "archived"],
                headers: [("If-Match", "\"3\"")])
            #expect(writerArchive.status == 403)
            let inUse = try await registry.send(
                .PATCH, "/v1/models/demo/versions/1", token: world.tokens["owner"], json: ["status": "archived"],
                headers: [("If-Match", "\"3\"")])
            #expect(inUse.status == 409)
            #expect(inUse.errorCode == "VERSION_IN_USE")
            let v2 = try await world.approvedVersion("second")
            let archived = try await registry.send(
                .PATCH, "/v1/models/demo/versions/\(v2)", token: world.tokens["owner"], json: ["status": "archived"],
                headers: [("If-Match", "\"2\"")])
            #expect(archived.status == 200)
            #expect(archived.json["status"] == "archived")
            let list = try await registry.send(
                .GET, "/v1/models/demo/versions?status=archived", token: world.tokens["reader"])
            #expect(
                list.json["items"].map { items -> Int in
                    if case .array(let array) = items { return array.count }
                    return -1
                } == 1)
            let badStatus = try await registry.send(
                .GET, "/v1/models/demo/versions?status=gone", token: world.tokens["reader"])
            #expect(badStatus.status == 400)
        }
    }
}
