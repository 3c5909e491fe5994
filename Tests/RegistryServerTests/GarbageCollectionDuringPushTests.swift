import Foundation
import RegistryCore
import RegistryTesting
import Testing

/// Garbage collection with a zero grace window, run between every step of a push (chunks uploaded, checked, the
/// manifest uploaded), never deletes what the push has uploaded: the version is created afterwards and reads back.
@Suite(.timeLimit(.minutes(5)))
struct GarbageCollectionDuringPushTests {
    @Test(arguments: TestRegistry.Backend.allCases)
    func aPushSurvivesGarbageCollectionBetweenItsSteps(_ backend: TestRegistry.Backend) async throws {
        try await TestRegistry.with(backend) { registry in
            let world = try await World.make(registry)
            let writer = try #require(world.tokens["writer"])
            let chunks = (0..<3).map { BlobStoreConformance.pattern(40_000, seed: UInt8(70 + $0)) }
            let digests = chunks.map { Digest(of: $0) }

            // 1. The chunks are uploaded; nothing references them yet. An orphan no upload holds is collected by
            //    the same run, so the run did delete what it may.
            for (digest, bytes) in zip(digests, chunks) {
                let put = try await registry.send(.PUT, "/v1/blobs/\(digest)", token: writer, body: bytes)
                #expect(put.status == 201, "\(put.text)")
            }
            let orphan = try await registry.blobs.put(bytes: Array("left behind by an expired upload".utf8))
            let afterChunks = try await collect(registry)
            #expect(afterChunks.deleted == [orphan.description])
            #expect(afterChunks.keptPinned >= digests.count)

            // 2. The client checks which chunks the registry lacks: none, they are its own.
            let check = try await registry.send(
                .POST, "/v1/blobs/check", token: writer,
                json: ["digests": .array(digests.map { .string($0.description) })])
            #expect(check.json["missing"] == .array([]), "\(check.text)")
            #expect(try await collect(registry).deleted.isEmpty)

            // 3. The manifest is uploaded; still no version references it.
            let manifest = Manifest(files: [
                Manifest.File(
                    path: "weights.bin", size: Int64(chunks.reduce(0) { $0 + $1.count }),
                    digest: Digest(of: chunks.flatMap { $0 }),
                    chunks: zip(digests, chunks).map { .init(digest: $0, size: Int64($1.count)) })
            ])
            let uploaded = try await registry.send(
                .PUT, "/v1/manifests", token: writer, body: try JSONCoding.encode(manifest),
                headers: [("Content-Type", "application/json")])
            #expect(uploaded.status == 201, "\(uploaded.text)")
            let manifestDigest = try #require(
                uploaded.json["digest"].flatMap { value -> String? in
                    if case .string(let text) = value { return text }
                    return nil
                })
            #expect(try await collect(registry).deleted.isEmpty)

            // 4. The version is created afterwards, and every byte of it is still there.
            let version = try await registry.send(
                .POST, "/v1/models/demo/versions", token: writer, json: ["manifestDigest": .string(manifestDigest)])
            #expect(version.status == 201, "\(version.text)")
            #expect(try await collect(registry).deleted.isEmpty)
            for (digest, bytes) in zip(digests, chunks) {
                let read = try await registry.send(.GET, "/v1/blobs/\(digest)", token: world.tokens["reader"])
                #expect(read.status == 200)
                #expect(read.body == bytes, "chunk \(digest) reads back")
            }
        }
    }

    /// What one garbage-collection run with a zero grace window deleted and kept pinned.
    struct Collected {
        var deleted: [String]
        var keptPinned: Int
    }

    func collect(_ registry: TestRegistry) async throws -> Collected {
        let response = try await registry.send(
            .POST, "/v1/admin/gc", token: registry.adminToken, json: ["graceSeconds": .number(0)])
        guard response.status == 200, case .array(let deleted)? = response.json["deleted"] else {
            throw TestFailure("gc: \(response.status) \(response.text)")
        }
        return Collected(
            deleted: deleted.compactMap { if case .string(let text) = $0 { text } else { nil } },
            keptPinned: response.int("keptPinned") ?? 0)
    }
}
