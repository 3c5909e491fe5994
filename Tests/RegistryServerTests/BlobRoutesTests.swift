import AsyncHTTPClient
import Foundation
import NIOCore
import RegistryCore
import RegistryTesting
import Testing

@Suite(.timeLimit(.minutes(10))) struct BlobRoutesTests {
    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func uploadIsIdempotentAndCheckReportsMissing(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let writer = world.tokens["writer"]
            let bytes = Array("a fresh chunk".utf8)
            let digest = Digest(of: bytes)
            let absent = Digest(of: Array("absent".utf8))
            let check = try await registry.send(
                .POST, "/v1/blobs/check", token: writer,
                json: ["digests": .array([.string(digest.description), .string(absent.description)])])
            #expect(check.status == 200)
            #expect(check.json["missing"] == .array([.string(digest.description), .string(absent.description)]))
            let first = try await registry.send(.PUT, "/v1/blobs/\(digest)", token: writer, body: bytes)
            #expect(first.status == 201)
            #expect(first.json["digest"] == .string(digest.description))
            #expect(first.int("size") == bytes.count)
            let second = try await registry.send(.PUT, "/v1/blobs/\(digest)", token: writer, body: bytes)
            #expect(second.status == 200)
            let after = try await registry.send(
                .POST, "/v1/blobs/check", token: writer,
                json: ["digests": .array([.string(digest.description), .string(absent.description)])])
            #expect(after.json["missing"] == .array([.string(absent.description)]))
            let badDigest = try await registry.send(
                .POST, "/v1/blobs/check", token: writer, json: ["digests": .array(["md5:abc"])])
            #expect(badDigest.status == 400)
            #expect(badDigest.errorCode == "INVALID_DIGEST")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func digestMismatchLeavesNothingBehind(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let claimed = Digest(of: Array("what the client claims".utf8))
            let response = try await registry.send(
                .PUT, "/v1/blobs/\(claimed)", token: world.tokens["writer"], body: Array("something else".utf8))
            #expect(response.status == 400)
            #expect(response.errorCode == "DIGEST_MISMATCH")
            let head = try await registry.send(.HEAD, "/v1/blobs/\(claimed)", token: world.tokens["writer"])
            #expect(head.status == 404)
            let invalid = try await registry.send(.GET, "/v1/blobs/sha256:xyz", token: world.tokens["writer"])
            #expect(invalid.status == 400)
            #expect(invalid.errorCode == "INVALID_DIGEST")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func oversizedChunksAreRefused(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend, configuration: .init(maxBlobBytes: 8)) { registry in
            let bytes = Array("more than eight bytes".utf8)
            let response = try await registry.send(
                .PUT, "/v1/blobs/\(Digest(of: bytes))", token: registry.adminToken, body: bytes)
            #expect(response.status == 413)
            #expect(response.errorCode == "PAYLOAD_TOO_LARGE")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func downloadsSupportHeadAndSingleRanges(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let reader = world.tokens["reader"]
            let digest = Digest(of: world.chunk)
            let path = "/v1/blobs/\(digest)"
            let whole = try await registry.send(.GET, path, token: reader)
            #expect(whole.status == 200)
            #expect(whole.body == world.chunk)
            #expect(whole.header("Accept-Ranges") == "bytes")
            #expect(whole.header("ETag") == "\"\(digest)\"")
            #expect(whole.header("Content-Length") == String(world.chunk.count))
            let head = try await registry.send(.HEAD, path, token: reader)
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == String(world.chunk.count))
            #expect(head.body.isEmpty)

            let size = world.chunk.count
            let middle = try await registry.send(.GET, path, token: reader, headers: [("Range", "bytes=2-5")])
            #expect(middle.status == 206)
            #expect(middle.body == Array(world.chunk[2...5]))
            #expect(middle.header("Content-Range") == "bytes 2-5/\(size)")
            let open = try await registry.send(.GET, path, token: reader, headers: [("Range", "bytes=10-")])
            #expect(open.status == 206)
            #expect(open.body == Array(world.chunk[10...]))
            let suffix = try await registry.send(.GET, path, token: reader, headers: [("Range", "bytes=-4")])
            #expect(suffix.status == 206)
            #expect(suffix.body == Array(world.chunk.suffix(4)))
            #expect(suffix.header("Content-Range") == "bytes \(size - 4)-\(size - 1)/\(size)")
            let beyond = try await registry.send(.GET, path, token: reader, headers: [("Range", "bytes=\(size)-")])
            #expect(beyond.status == 416)
            #expect(beyond.header("Content-Range") == "bytes */\(size)")
            #expect(beyond.errorCode == "RANGE_NOT_SATISFIABLE")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func downloadNeedsReadOnAReferencingModel(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let path = "/v1/blobs/\(Digest(of: world.chunk))"
            #expect(try await registry.send(.GET, path, token: world.tokens["reader"]).status == 200)
            // Anyone else is told the blob does not exist (its existence is information too); the denial is audited.
            let denied = try await registry.send(.GET, path, token: world.tokens["stranger"])
            #expect(denied.status == 404)
            #expect(denied.errorCode == "BLOB_NOT_FOUND")
            let absent = try await registry.send(
                .GET, "/v1/blobs/\(Digest(of: Array("never stored".utf8)))", token: world.tokens["stranger"])
            #expect(absent.status == denied.status && absent.errorCode == denied.errorCode)
            // No wait: a denial is answered only once its audit entry is written.
            let audit = try await registry.metadata.auditEntries(AuditQuery(limit: 1000)).items
            #expect(audit.contains { $0.action == "access.denied" && $0.actor == "stranger" })
            #expect(try await registry.send(.GET, path, token: nil).status == 401)
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func manifestsAreValidatedStoredAndServed(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let writer = world.tokens["writer"]
            let fetched = try await registry.send(
                .GET, "/v1/manifests/\(world.manifest)", token: world.tokens["reader"])
            #expect(fetched.status == 200)
            #expect(fetched.header("Content-Type") == "application/json")
            #expect(Digest(of: fetched.body) == world.manifest)
            #expect(try Manifest.parse(fetched.body).files.first?.path == "model.bin")

            let invalid = try await registry.send(
                .PUT, "/v1/manifests", token: writer, body: Array(#"{"schemaVersion":1,"files":[]}"#.utf8),
                headers: [("Content-Type", "application/json")])
            #expect(invalid.status == 400)
            #expect(invalid.errorCode == "MANIFEST_INVALID")

            let ghost = Digest(of: Array("ghost chunk".utf8))
            let incomplete = Manifest(files: [
                .init(path: "g.bin", size: 11, digest: ghost, chunks: [.init(digest: ghost, size: 11)])
            ])
            let missing = try await registry.send(
                .PUT, "/v1/manifests", token: writer, body: try JSONCoding.encode(incomplete),
                headers: [("Content-Type", "application/json")])
            #expect(missing.status == 422)
            #expect(missing.errorCode == "ARTIFACT_INCOMPLETE")
            #expect(missing.json["error"]?["details"]?["missing"] == .array([.string(ghost.description)]))

            let absent = Digest(of: Array("no such manifest".utf8))
            let notFound = try await registry.send(.GET, "/v1/manifests/\(absent)", token: writer)
            #expect(notFound.status == 404)
            #expect(notFound.errorCode == "MANIFEST_NOT_FOUND")
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: TestRegistry.Backend.allCases)
    func aChunkedUploadWithoutALengthIsStoredWhateverItsSize(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            // 12 MiB: more than the 1 MiB the store holds in memory, and than the 8 MiB that once was the limit.
            let bytes = BlobStoreConformance.pattern(12 << 20, seed: 41)
            let digest = Digest(of: bytes)
            let pieces = stride(from: 0, to: bytes.count, by: 1 << 20).map {
                ByteBuffer(bytes: bytes[$0..<min($0 + (1 << 20), bytes.count)])
            }
            var request = HTTPClientRequest(url: registry.dataBaseURL + "/v1/blobs/\(digest)")
            request.method = .PUT
            request.headers.add(name: "Authorization", value: "Bearer \(try #require(world.tokens["writer"]))")
            // No Content-Length: the client sends it with Transfer-Encoding: chunked.
            request.body = .stream(
                AsyncStream { continuation in
                    for piece in pieces { continuation.yield(piece) }
                    continuation.finish()
                }, length: .unknown)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
            #expect(response.status == .created)
            #expect(try await registry.blobs.size(of: digest) == Int64(bytes.count))
            let download = try await registry.send(.GET, "/v1/blobs/\(digest)", token: registry.adminToken)
            #expect(download.body.count == bytes.count)
            #expect(Digest(of: download.body) == digest)
            // The spool file was unlinked when it was made: nothing is left under the data directory.
            let spooled = (try? FileManager.default.contentsOfDirectory(atPath: registry.directory + "/blobs/spool"))
            #expect(spooled?.isEmpty ?? true)
        }
    }
}
