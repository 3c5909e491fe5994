import Foundation
import RegistryClient
import RegistryCore
import RegistryTesting
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(10))) struct ArtifactTransferTests {
    /// Pushes the sample as a new version of `model`, approved by a second subject and promoted to `staging`.
    private func publish(_ fixture: TestRegistry, _ sample: SampleModel, model: String) async throws -> PushResult {
        let admin = fixture.admin
        _ = try await admin.createModel(model)
        let acl = try await admin.accessList(model: model)
        _ = try await admin.setAccessList(
            model: model, grants: acl.grants + [Grant(subject: "bob", role: .approver)], revision: acl.revision)
        let pushed = try await admin.push(
            model: model, files: sample.files, chunking: SampleModel.chunking, concurrency: 3,
            tags: ["framework": "test"])
        let bob = try await fixture.client(for: "bob")
        let approved = try await bob.decide(
            model: model, number: pushed.version.version, decision: .approve, comment: "fine",
            revision: pushed.version.revision)
        #expect(approved.status == .approved)
        _ = try await admin.promote(model: model, stage: "staging", version: pushed.version.version, revision: nil)
        return pushed
    }

    @Test func pushedModelPullsBackByteForByteByStageAndByVersion() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            let pushed = try await publish(fixture, sample, model: "fraud")
            #expect(pushed.version.version == 1)
            #expect(pushed.version.status == .pending)
            #expect(pushed.manifest.files.count == 4)
            #expect(pushed.chunkCount == pushed.uploadedChunks)
            #expect((pushed.manifest.files.first { $0.path == "weights.bin" }?.chunks.count ?? 0) > 1)
            #expect(pushed.manifest.files.first { $0.path == "empty.txt" }?.chunks.isEmpty == true)

            let byStage = URL(fileURLWithPath: fixture.directory + "/pulled/by-stage")
            let progress = ProgressLog()
            let pulled = try await fixture.admin.pull(
                model: "fraud", stage: "staging", to: byStage, progress: { progress.record($0, $1) })
            #expect(pulled.version == 1)
            #expect(try SampleModel.read(byStage) == sample.contents)
            #expect(progress.last == pushed.manifest.totalSize)

            let byVersion = URL(fileURLWithPath: fixture.directory + "/pulled/by-version")
            _ = try await fixture.admin.pull(model: "fraud", version: 1, to: byVersion)
            #expect(try SampleModel.read(byVersion) == sample.contents)
            #expect(try Self.leftovers(in: fixture.directory + "/pulled").isEmpty)
        }
    }

    @Test func pushingTheSameFilesAgainUploadsNoChunks() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            let first = try await publish(fixture, sample, model: "fraud")
            #expect(first.uploadedChunks > 0)
            let second = try await fixture.admin.push(
                model: "fraud", files: sample.files, chunking: SampleModel.chunking)
            #expect(second.uploadedChunks == 0)
            #expect(second.uploadedBytes == 0)
            #expect(second.manifestDigest == first.manifestDigest)
            #expect(second.version.version == 2)
        }
    }

    @Test func pullRefusesAManifestPathThatEscapesTheDestination() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            _ = try await fixture.admin.createModel("fraud")
            let payload = Array("escape".utf8)
            let chunk = try await fixture.blobs.put(bytes: payload)
            // The server refuses such manifests, so this one is planted in the stores directly.
            let manifest = Manifest(files: [
                Manifest.File(
                    path: "../x", size: Int64(payload.count), digest: Digest(of: payload),
                    chunks: [Manifest.Chunk(digest: chunk, size: Int64(payload.count))])
            ])
            let manifestDigest = try await fixture.blobs.put(bytes: try JSONCoding.encode(manifest))
            let version = try await fixture.metadata.createVersion(
                ModelVersion(
                    model: "fraud", version: 0, manifestDigest: manifestDigest, size: Int64(payload.count),
                    createdBy: "admin", createdAt: Timestamp.now()),
                artifacts: [manifestDigest, chunk], context: MutationContext(actor: "admin", requestId: "plant"))

            let parent = try fixture.makeDirectory("pulled")
            let destination = parent.appendingPathComponent("model")
            let error = await #expect(throws: RegistryError.self) {
                _ = try await fixture.admin.pull(model: "fraud", version: version.version, to: destination)
            }
            #expect(error?.code == .invalidManifest)
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: fixture.directory + "/x"))
        }
    }

    @Test func pullLeavesNothingBehindWhenAChunkFailsItsDigest() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let sample = try SampleModel(in: try fixture.makeDirectory("source"))
            let pushed = try await publish(fixture, sample, model: "fraud")
            let weights = try #require(pushed.manifest.files.first { $0.path == "weights.bin" })
            let victim = weights.chunks[2]
            let tampered = Data(BlobStoreConformance.pattern(Int(victim.size), seed: 99))
            try tampered.write(to: URL(fileURLWithPath: try #require(fixture.fileBlobs).path(of: victim.digest)))

            let parent = try fixture.makeDirectory("pulled")
            let destination = parent.appendingPathComponent("model")
            let error = await #expect(throws: RegistryError.self) {
                _ = try await fixture.admin.pull(model: "fraud", stage: "staging", to: destination)
            }
            // A plain store reports the bad chunk as a digest mismatch; an encrypting one refuses to read it.
            #expect(error?.code == .digestMismatch || error?.code == .blobCorrupt)
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
        }
    }

    @Test func registryErrorsArriveWithTheirStableCode() async throws {
        try await TestRegistry.with(.sqlite) { fixture in
            let missing = await #expect(throws: RegistryError.self) { _ = try await fixture.admin.model("nope") }
            #expect(missing?.code == .modelNotFound)
            let model = try await fixture.admin.createModel("fraud", description: "first")
            _ = try await fixture.admin.updateModel("fraud", revision: model.revision, description: "second")
            let stale = await #expect(throws: RegistryError.self) {
                _ = try await fixture.admin.updateModel("fraud", revision: model.revision, description: "third")
            }
            #expect(stale?.code == .revisionMismatch)
            #expect(stale?.details["current"] != nil)
            let anonymous = RegistryClient(baseURL: fixture.baseURL, token: nil)
            let unauthenticated = await #expect(throws: RegistryError.self) { _ = try await anonymous.models() }
            #expect(unauthenticated?.code == .unauthenticated)
        }
    }

    @Test func anUnreachableRegistryIsReportedAsUnavailable() async throws {
        // Port 9 (discard) on loopback has no listener in the test environment.
        let client = RegistryClient(baseURL: "http://127.0.0.1:9", token: "x", timeout: .seconds(2))
        let error = await #expect(throws: RegistryError.self) { try await client.health() }
        #expect(error?.code == .unavailable)
    }

    /// Staging directories a pull left next to its destination.
    static func leftovers(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".") }
    }
}

extension SampleModel {
    /// Small content-defined chunks (16 KiB / 64 KiB / 256 KiB), so that small test files span several chunks.
    static let chunking = ContentDefinedChunker.Parameters(
        minimumSize: 16 << 10, averageSize: 64 << 10, maximumSize: 256 << 10)
}

/// Remembers the last progress report.
final class ProgressLog: Sendable {
    private let value = Mutex<Int64>(-1)

    func record(_ done: Int64, _ total: Int64) {
        value.withLock { $0 = max($0, done) }
    }

    var last: Int64 { value.withLock { $0 } }
}
