import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

/// Garbage collection over the file-system store: referenced blobs stay, young ones stay, old unreferenced ones go.
@Suite(.timeLimit(.minutes(10))) struct GarbageCollectionTests {
    struct Fixture {
        let directory: TemporaryDirectory
        let blobs: FileSystemBlobStore
        let metadata = InMemoryMetadataStore()
        var referencedChunk = Digest(of: [])
        var manifest = Digest(of: [])
        var orphan = Digest(of: [])

        init() async throws {
            directory = try TemporaryDirectory()
            blobs = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
            referencedChunk = try await blobs.put(bytes: BlobStoreConformance.pattern(9000, seed: 1))
            manifest = try await blobs.put(bytes: Array(#"{"files":[]}"#.utf8))
            orphan = try await blobs.put(bytes: BlobStoreConformance.pattern(5000, seed: 2))
            let context = MutationContext(actor: "alice", requestId: "r1", time: Timestamp.now())
            _ = try await metadata.createModel(
                Model(
                    name: "m", description: "", tags: [:], createdBy: "alice", approvalPolicy: .init(),
                    grants: [Grant(subject: "alice", role: .owner)], revision: 1, createdAt: Timestamp.now()),
                context: context)
            _ = try await metadata.createVersion(
                ModelVersion(
                    model: "m", version: 0, manifestDigest: manifest, size: 9000, tags: [:], createdBy: "alice",
                    createdAt: Timestamp.now()),
                artifacts: [manifest, referencedChunk], context: context)
        }
    }

    @Test func referencedBlobsAreNeverDeletedAndOldOrphansAre() async throws {
        let fixture = try await Fixture()
        defer { fixture.directory.remove() }
        let later = Date().addingTimeInterval(7200)
        let report = try await GarbageCollector.collect(
            metadata: fixture.metadata, blobs: fixture.blobs, dryRun: false, now: later)
        #expect(report.scanned == 3)
        #expect(report.referenced == 2)
        #expect(report.deleted == [fixture.orphan])
        #expect(report.freedBytes == 5000)
        #expect(Set(try await fixture.blobs.list()) == [fixture.referencedChunk, fixture.manifest])
    }

    @Test func anOrphanYoungerThanTheGraceWindowIsKept() async throws {
        let fixture = try await Fixture()
        defer { fixture.directory.remove() }
        let report = try await GarbageCollector.collect(
            metadata: fixture.metadata, blobs: fixture.blobs, grace: .seconds(3600), dryRun: false)
        #expect(report.deleted.isEmpty)
        #expect(report.keptYoung == 1)
        #expect(try await fixture.blobs.size(of: fixture.orphan) == 5000)
    }

    @Test func touchingAnOldOrphanProtectsItForAnotherGraceWindow() async throws {
        let fixture = try await Fixture()
        defer { fixture.directory.remove() }
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: fixture.blobs.path(of: fixture.orphan))
        try await fixture.blobs.touch(fixture.orphan)
        let report = try await GarbageCollector.collect(metadata: fixture.metadata, blobs: fixture.blobs, dryRun: false)
        #expect(report.deleted.isEmpty)
        #expect(try await fixture.blobs.size(of: fixture.orphan) != nil)
    }

    @Test func aDryRunDeletesNothingButReportsTheSameSet() async throws {
        let fixture = try await Fixture()
        defer { fixture.directory.remove() }
        let later = Date().addingTimeInterval(7200)
        let dry = try await GarbageCollector.collect(
            metadata: fixture.metadata, blobs: fixture.blobs, dryRun: true, now: later)
        #expect(dry.dryRun)
        #expect(try await fixture.blobs.list().count == 3)
        let real = try await GarbageCollector.collect(
            metadata: fixture.metadata, blobs: fixture.blobs, dryRun: false, now: later)
        #expect(dry.deleted == real.deleted)
        #expect(dry.freedBytes == real.freedBytes)
        #expect(!real.dryRun)
    }
}
