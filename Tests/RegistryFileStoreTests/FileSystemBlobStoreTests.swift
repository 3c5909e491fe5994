import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Testing

@Suite struct FileSystemBlobStoreTests {
    @Test func blobsLiveAtTheirContentAddressedPath() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path)
        let digest = try await store.put(bytes: Array("hello".utf8))
        let hex = digest.hex
        #expect(directory.files(under: "blobs") == ["sha256/\(hex.prefix(2))/\(hex)"])
        #expect(store.path(of: digest) == "\(directory.path)/blobs/sha256/\(hex.prefix(2))/\(hex)")
    }

    @Test func aFailedPutLeavesNoFileUnderBlobsOrUploads() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let bytes = BlobStoreConformance.pattern(100_000, seed: 1)
        await #expect(throws: RegistryError.self) {
            _ = try await store.put(Digest(of: Array("other".utf8)), expectedSize: nil, body: .bytes(bytes))
        }
        await #expect(throws: RegistryError.self) {
            _ = try await store.put(Digest(of: bytes), expectedSize: 10, body: .bytes(bytes))
        }
        #expect(directory.files(under: "blobs").isEmpty)
        #expect(directory.files(under: "uploads").isEmpty)
    }

    @Test func aBodyThatFailsMidwayLeavesNothingBehind() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        struct Disconnected: Error {}
        let body = ByteStream(makeNext: {
            var sent = 0
            return {
                sent += 1
                if sent > 5 { throw Disconnected() }
                return .init(bytes: BlobStoreConformance.pattern(10_000, seed: UInt8(sent)))
            }
        })
        await #expect(throws: Disconnected.self) {
            _ = try await store.put(Digest(of: Array("x".utf8)), expectedSize: nil, body: body)
        }
        #expect(directory.files(under: "blobs").isEmpty)
        #expect(directory.files(under: "uploads").isEmpty)
    }

    @Test func uploadsAreEmptyAfterASuccessfulPut() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path)
        let bytes = BlobStoreConformance.pattern(2_000_000, seed: 2)
        _ = try await store.put(Digest(of: bytes), expectedSize: nil, body: BlobStoreConformance.split(bytes, into: 9))
        _ = try await store.put(Digest(of: bytes), expectedSize: nil, body: .bytes(bytes))
        #expect(directory.files(under: "uploads").isEmpty)
        #expect(directory.files(under: "blobs").count == 1)
    }

    @Test func staleUploadsAreRemovedAtStartButFreshOnesKept() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try FileSystemBlobStore(root: directory.path)
        let stale = directory.path + "/uploads/stale"
        let fresh = directory.path + "/uploads/fresh"
        _ = FileManager.default.createFile(atPath: stale, contents: Data([1, 2, 3]))
        _ = FileManager.default.createFile(atPath: fresh, contents: Data([4]))
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-2 * 3600)], ofItemAtPath: stale)
        _ = try FileSystemBlobStore(root: directory.path)
        #expect(directory.files(under: "uploads") == ["fresh"])
    }

    @Test func anOpenStreamKeepsReadingAfterTheBlobIsDeleted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try FileSystemBlobStore(root: directory.path, pieceSize: 4096)
        let bytes = BlobStoreConformance.pattern(50_000, seed: 3)
        let digest = try await store.put(bytes: bytes)
        let stream = try await store.get(digest, range: nil)
        try await store.delete(digest)
        var received: [UInt8] = []
        for try await buffer in stream { received.append(contentsOf: buffer.readableBytesView) }
        #expect(received == bytes)
    }

    @Test func blobsSurviveReopeningTheStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let digest = try await FileSystemBlobStore(root: directory.path).put(bytes: Array("kept".utf8))
        let reopened = try FileSystemBlobStore(root: directory.path)
        #expect(try await reopened.list() == [digest])
        #expect(try await BlobStoreConformance.read(reopened, digest) == Array("kept".utf8))
    }
}
