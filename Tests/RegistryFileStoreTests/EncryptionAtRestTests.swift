import Foundation
import RegistryCore
import RegistryFileStore
import RegistryTesting
import Synchronization
import Testing

/// Blob files are AES-256-GCM ciphertext in authenticated segments; any change on disk fails the read loudly.
@Suite(.timeLimit(.minutes(10))) struct EncryptionAtRestTests {
    /// 4 KiB segments, so a modest blob spans many of them.
    static let segmentSize = 4096
    /// What one sealed segment occupies in the file: the plaintext plus a 16-byte tag.
    static let sealedSegment = segmentSize + 16
    static let headerSize = 128

    func makeStore(_ directory: TemporaryDirectory) throws -> FileSystemBlobStore {
        try FileSystemBlobStore(root: directory.path, pieceSize: Self.segmentSize)
    }

    @Test func theStoredFileDoesNotContainThePlaintext() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let plaintext = Array(String(repeating: "secret model weights ", count: 2000).utf8)
        let digest = try await store.put(bytes: plaintext)
        let stored = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.path(of: digest))))
        #expect(!Self.contains(stored, Array("secret model weights".utf8)))
        #expect(Array(stored.prefix(4)) == Array("MRBL".utf8))
        let segments = (plaintext.count + Self.segmentSize - 1) / Self.segmentSize
        #expect(stored.count == Self.headerSize + plaintext.count + 16 * segments)
        #expect(try await store.size(of: digest) == Int64(plaintext.count))
        #expect(try await BlobStoreConformance.read(store, digest) == plaintext)
    }

    @Test func twoStoresOfTheSameBytesUseDifferentDataKeys() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let bytes = BlobStoreConformance.pattern(10_000, seed: 1)
        let digest = try await store.put(bytes: bytes)
        let first = try Data(contentsOf: URL(fileURLWithPath: store.path(of: digest)))
        _ = try await store.put(bytes: bytes)
        let second = try Data(contentsOf: URL(fileURLWithPath: store.path(of: digest)))
        #expect(first.count == second.count)
        #expect(first != second)
    }

    @Test func aFlippedByteInTheFirstSegmentFailsTheGetBeforeAnyByteIsReturned() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let digest = try await store.put(bytes: BlobStoreConformance.pattern(20_000, seed: 2))
        try Self.flipByte(at: Self.headerSize + 100, in: store.path(of: digest))
        let error = await #expect(throws: RegistryError.self) {
            _ = try await store.get(digest, range: nil)
        }
        #expect(error?.code == .blobCorrupt)
        #expect(error?.details["segment"] == .number(0))
        #expect(error?.details["digest"] == .string(digest.description))
    }

    @Test func aFlippedByteInALaterSegmentFailsARangeReadOfItAndCutsAFullReadMidStream() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let bytes = BlobStoreConformance.pattern(20_000, seed: 3)
        let digest = try await store.put(bytes: bytes)
        try Self.flipByte(at: Self.headerSize + 3 * Self.sealedSegment + 10, in: store.path(of: digest))

        let rangeError = await #expect(throws: RegistryError.self) {
            _ = try await BlobStoreConformance.read(store, digest, range: 3 * 4096 + 5..<3 * 4096 + 50)
        }
        #expect(rangeError?.code == .blobCorrupt)
        #expect(rangeError?.details["segment"] == .number(3))

        // Untouched segments still read, so a range that avoids the damage succeeds.
        #expect(try await BlobStoreConformance.read(store, digest, range: 0..<8192) == Array(bytes[0..<8192]))

        var received = 0
        let streamError = await #expect(throws: RegistryError.self) {
            for try await buffer in try await store.get(digest, range: nil) { received += buffer.readableBytes }
        }
        #expect(streamError?.code == .blobCorrupt)
        #expect(received == 3 * 4096)
    }

    @Test func aTruncatedFileIsCorrupt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let digest = try await store.put(bytes: BlobStoreConformance.pattern(20_000, seed: 4))
        let path = store.path(of: digest)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - Self.sealedSegment).write(to: URL(fileURLWithPath: path))
        let error = await #expect(throws: RegistryError.self) { _ = try await store.get(digest, range: nil) }
        #expect(error?.code == .blobCorrupt)
    }

    @Test func aSizeFieldShrunkToDropTheLastSegmentIsDetected() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let bytes = BlobStoreConformance.pattern(3 * 4096, seed: 5)
        let digest = try await store.put(bytes: bytes)
        let path = store.path(of: digest)
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // Claim two segments and drop the third, so the file length agrees with the forged header.
        let forged = UInt64(2 * 4096)
        for index in 0..<8 { data[18 + index] = UInt8(truncatingIfNeeded: forged >> UInt64(56 - 8 * index)) }
        try Data(data.prefix(data.count - Self.sealedSegment)).write(to: URL(fileURLWithPath: path))
        await #expect(throws: RegistryError.self) { _ = try await BlobStoreConformance.read(store, digest) }
        let error = await #expect(throws: RegistryError.self) {
            _ = try await BlobStoreConformance.read(store, digest, range: 4096..<8192)
        }
        #expect(error?.code == .blobCorrupt)
        #expect(error?.details["segment"] == .number(1))
    }

    @Test func aForgedHugePlaintextSizeIsCorruptNotATrap() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let digest = try await store.put(bytes: BlobStoreConformance.pattern(4096, seed: 9))
        let path = store.path(of: digest)
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // Int64.max: segment counts and offsets computed from it would overflow.
        let forged = UInt64(Int64.max)
        for index in 0..<8 { data[18 + index] = UInt8(truncatingIfNeeded: forged >> UInt64(56 - 8 * index)) }
        try Data(data).write(to: URL(fileURLWithPath: path))
        for range in [nil, Int64(0)..<Int64(10)] as [Range<Int64>?] {
            let error = await #expect(throws: RegistryError.self) {
                _ = try await BlobStoreConformance.read(store, digest, range: range)
            }
            #expect(error?.code == .blobCorrupt)
        }
        let size = await #expect(throws: RegistryError.self) { _ = try await store.size(of: digest) }
        #expect(size?.code == .blobCorrupt)
    }

    @Test func swappedSegmentsAreDetected() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let digest = try await store.put(bytes: BlobStoreConformance.pattern(4 * 4096, seed: 6))
        let path = store.path(of: digest)
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let first = Self.headerSize + Self.sealedSegment
        let second = first + Self.sealedSegment
        let one = Array(data[first..<second])
        data.replaceSubrange(first..<second, with: data[second..<(second + Self.sealedSegment)])
        data.replaceSubrange(second..<(second + Self.sealedSegment), with: one)
        try Data(data).write(to: URL(fileURLWithPath: path))
        let error = await #expect(throws: RegistryError.self) { _ = try await BlobStoreConformance.read(store, digest) }
        #expect(error?.code == .blobCorrupt)
        #expect(error?.details["segment"] == .number(1))
    }

    @Test func aBlobFileCopiedOverAnotherDigestIsDetected() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let a = try await store.put(bytes: BlobStoreConformance.pattern(1000, seed: 7))
        let b = try await store.put(bytes: BlobStoreConformance.pattern(1000, seed: 8))
        try FileManager.default.removeItem(atPath: store.path(of: b))
        try FileManager.default.copyItem(atPath: store.path(of: a), toPath: store.path(of: b))
        let error = await #expect(throws: RegistryError.self) { _ = try await store.get(b, range: nil) }
        #expect(error?.code == .blobCorrupt)
    }

    @Test func corruptionIsReportedToTheCorruptionHandler() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let reports = Reports()
        let keyring = try MasterKeyring(keys: [.generate()])
        let store = try FileSystemBlobStore(
            root: directory.path, keyring: keyring, segmentSize: 4096, onCorruption: { reports.add($0) })
        let digest = try await store.put(bytes: BlobStoreConformance.pattern(9000, seed: 9))
        try Self.flipByte(at: Self.headerSize + 5, in: store.path(of: digest))
        await #expect(throws: RegistryError.self) { _ = try await store.get(digest, range: nil) }
        #expect(reports.all.map(\.code) == [.blobCorrupt])
    }

    @Test func reuploadingACorruptBlobHealsIt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let bytes = BlobStoreConformance.pattern(9000, seed: 10)
        let digest = try await store.put(bytes: bytes)
        try Self.flipByte(at: Self.headerSize + 5, in: store.path(of: digest))
        _ = try await store.put(bytes: bytes)
        #expect(try await BlobStoreConformance.read(store, digest) == bytes)
    }

    // MARK: Helpers

    static func flipByte(at offset: Int, in path: String) throws {
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        data[offset] ^= 0x01
        try Data(data).write(to: URL(fileURLWithPath: path))
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}

/// Collects what a callback reports, for assertions.
final class Reports: Sendable {
    private let items = Mutex<[RegistryError]>([])
    func add(_ error: RegistryError) { items.withLock { $0.append(error) } }
    var all: [RegistryError] { items.withLock { $0 } }
}
