import Foundation
import NIOCore
import RegistryCore
import Testing

/// The behaviour every `BlobStore` backend must show; a backend runs every case on a fresh, empty store:
///
/// ```swift
/// @Test(arguments: BlobStoreConformance.cases)
/// func conformance(_ c: BlobConformanceCase) async throws { try await c.run(makeFreshStore()) }
/// ```
public enum BlobStoreConformance {
    public static let cases: [BlobConformanceCase] = [
        BlobConformanceCase("putThenGetReturnsTheSameBytesAcrossManyBuffers") { (store: any BlobStore) async throws in
            let bytes = pattern(300_000, seed: 1)
            let digest = Digest(of: bytes)
            let stored = try await store.put(digest, expectedSize: nil, body: split(bytes, into: 7))
            #expect(stored == Int64(bytes.count))
            #expect(try await read(store, digest) == bytes)
            #expect(try await store.size(of: digest) == Int64(bytes.count))
        },
        BlobConformanceCase("emptyBlobRoundTrips") { (store: any BlobStore) async throws in
            let digest = Digest(of: [UInt8]())
            #expect(try await store.put(digest, expectedSize: 0, body: .buffers([])) == 0)
            #expect(try await store.size(of: digest) == 0)
            #expect(try await read(store, digest) == [])
        },
        BlobConformanceCase("multiMebibyteBlobRoundTripsInPieces") { (store: any BlobStore) async throws in
            let bytes = pattern(5 * 1024 * 1024 + 123, seed: 2)
            let digest = Digest(of: bytes)
            _ = try await store.put(digest, expectedSize: Int64(bytes.count), body: split(bytes, into: 40))
            var received: [UInt8] = []
            var pieces = 0
            for try await buffer in try await store.get(digest, range: nil) {
                received.append(contentsOf: buffer.readableBytesView)
                pieces += 1
            }
            #expect(received == bytes)
            #expect(pieces >= 1)
        },
        BlobConformanceCase("anUploadOfUndeclaredSizeLargerThanMemoryHoldsRoundTrips") {
            (store: any BlobStore) async throws in
            // Past the 1 MiB held in memory, and past the 8 MiB that used to be the limit without a size.
            for (count, seed) in [(3 << 20 + 17, UInt8(21)), (9 << 20, UInt8(22))] {
                let bytes = pattern(count, seed: seed)
                let digest = Digest(of: bytes)
                #expect(try await store.put(digest, expectedSize: nil, body: split(bytes, into: 50)) == Int64(count))
                #expect(try await store.size(of: digest) == Int64(count))
                // Compared by digest and length: a failed == of megabytes makes the test library diff them for hours.
                let read = try await read(store, digest)
                #expect(read.count == count)
                #expect(Digest(of: read) == digest)
            }
            let bytes = pattern(3 << 20, seed: 23)
            let claimed = Digest(of: Array("not these bytes".utf8))
            let error = await #expect(throws: RegistryError.self) {
                _ = try await store.put(claimed, expectedSize: nil, body: split(bytes, into: 9))
            }
            #expect(error?.code == .digestMismatch)
            #expect(try await store.size(of: claimed) == nil)
        },
        BlobConformanceCase("sizeOfAnAbsentBlobIsNil") { (store: any BlobStore) async throws in
            #expect(try await store.size(of: Digest(of: Array("absent".utf8))) == nil)
        },
        BlobConformanceCase("digestMismatchStoresNothing") { (store: any BlobStore) async throws in
            let bytes = pattern(10_000, seed: 3)
            let claimed = Digest(of: Array("something else".utf8))
            let error = await #expect(throws: RegistryError.self) {
                _ = try await store.put(claimed, expectedSize: nil, body: split(bytes, into: 3))
            }
            #expect(error?.code == .digestMismatch)
            #expect(try await store.size(of: claimed) == nil)
            #expect(try await store.size(of: Digest(of: bytes)) == nil)
            #expect(try await store.list().isEmpty)
        },
        BlobConformanceCase("expectedSizeMismatchStoresNothing") { (store: any BlobStore) async throws in
            let bytes = pattern(4096, seed: 4)
            let digest = Digest(of: bytes)
            for wrongSize in [Int64(4095), Int64(4097)] {
                let error = await #expect(throws: RegistryError.self) {
                    _ = try await store.put(digest, expectedSize: wrongSize, body: .bytes(bytes))
                }
                #expect(error?.code == .sizeMismatch)
            }
            #expect(try await store.size(of: digest) == nil)
            #expect(try await store.list().isEmpty)
        },
        BlobConformanceCase("rePuttingABlobIsIdempotentAndStillChecksTheBody") { (store: any BlobStore) async throws in
            let bytes = pattern(2048, seed: 5)
            let digest = Digest(of: bytes)
            _ = try await store.put(digest, expectedSize: nil, body: .bytes(bytes))
            #expect(try await store.put(digest, expectedSize: nil, body: .bytes(bytes)) == 2048)
            await #expect(throws: RegistryError.self) {
                _ = try await store.put(digest, expectedSize: nil, body: .bytes(pattern(2048, seed: 6)))
            }
            #expect(try await read(store, digest) == bytes)
            #expect(try await store.list() == [digest])
        },
        BlobConformanceCase("concurrentPutsOfOneDigestAllSucceedAndStoreOneBlob") {
            (store: any BlobStore) async throws in
            let bytes = pattern(700_000, seed: 7)
            let digest = Digest(of: bytes)
            try await withThrowingTaskGroup(of: Int64.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        try await store.put(digest, expectedSize: nil, body: split(bytes, into: 3 + index))
                    }
                }
                for try await stored in group { #expect(stored == Int64(bytes.count)) }
            }
            #expect(try await read(store, digest) == bytes)
            #expect(try await store.list() == [digest])
        },
        BlobConformanceCase("rangesReturnExactlyTheRequestedBytes") { (store: any BlobStore) async throws in
            let bytes = pattern(1_200_000, seed: 8)
            let digest = Digest(of: bytes)
            _ = try await store.put(digest, expectedSize: nil, body: .bytes(bytes))
            let size = Int64(bytes.count)
            let ranges: [Range<Int64>] = [0..<1, 0..<1000, 500_000..<1_100_000, (size - 10)..<size, 0..<size, 7..<7]
            for range in ranges {
                let slice = try await read(store, digest, range: range)
                #expect(slice == Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)]), "range \(range)")
            }
        },
        BlobConformanceCase("rangesOutsideTheBlobAreNotSatisfiable") { (store: any BlobStore) async throws in
            let bytes = pattern(100, seed: 9)
            let digest = Digest(of: bytes)
            _ = try await store.put(digest, expectedSize: nil, body: .bytes(bytes))
            for range: Range<Int64> in [0..<101, 100..<150, 200..<300] {
                let error = await #expect(throws: RegistryError.self, "range \(range)") {
                    _ = try await read(store, digest, range: range)
                }
                #expect(error?.code == .rangeNotSatisfiable)
            }
        },
        BlobConformanceCase("gettingAnAbsentBlobFailsWithBlobNotFound") { (store: any BlobStore) async throws in
            let error = await #expect(throws: RegistryError.self) {
                _ = try await store.get(Digest(of: Array("absent".utf8)), range: nil)
            }
            #expect(error?.code == .blobNotFound)
        },
        BlobConformanceCase("deleteRemovesTheBlobAndToleratesAbsence") { (store: any BlobStore) async throws in
            let bytes = pattern(1000, seed: 10)
            let digest = Digest(of: bytes)
            _ = try await store.put(digest, expectedSize: nil, body: .bytes(bytes))
            try await store.delete(digest)
            #expect(try await store.size(of: digest) == nil)
            await #expect(throws: RegistryError.self) { _ = try await store.get(digest, range: nil) }
            try await store.delete(digest)
            #expect(try await store.list().isEmpty)
        },
        BlobConformanceCase("listReturnsEveryStoredDigest") { (store: any BlobStore) async throws in
            var expected: Set<Digest> = []
            for seed in 0..<5 {
                let bytes = pattern(100 + seed, seed: UInt8(20 + seed))
                expected.insert(try await store.put(bytes: bytes))
            }
            #expect(Set(try await store.list()) == expected)
            #expect(try await store.list().count == 5)
        },
        BlobConformanceCase("modificationTimeIsNilWhenAbsentAndRecentAfterAPut") {
            (store: any BlobStore) async throws in
            let digest = Digest(of: Array("timed".utf8))
            #expect(try await store.modificationTime(of: digest) == nil)
            let before = Date().addingTimeInterval(-2)
            _ = try await store.put(bytes: Array("timed".utf8))
            let modified = try #require(try await store.modificationTime(of: digest))
            #expect(modified >= before && modified <= Date().addingTimeInterval(2))
            try await store.delete(digest)
            #expect(try await store.modificationTime(of: digest) == nil)
        },
        BlobConformanceCase("touchKeepsTheBytesAndToleratesAbsence") { (store: any BlobStore) async throws in
            let bytes = pattern(5000, seed: 30)
            let digest = try await store.put(bytes: bytes)
            let before = Date().addingTimeInterval(-2)
            try await store.touch(digest)
            let touched = try #require(try await store.modificationTime(of: digest))
            #expect(touched >= before)
            #expect(try await read(store, digest) == bytes)
            let absent = Digest(of: Array("never stored".utf8))
            try await store.touch(absent)
            #expect(try await store.size(of: absent) == nil)
            #expect(try await store.modificationTime(of: absent) == nil)
        },
    ]

    // MARK: Fixtures

    /// Deterministic, non-repeating-looking bytes.
    public static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        var state = UInt32(seed) &* 2_654_435_761 &+ 1
        // Through a pointer, not `(0..<count).map`: unspecialised in a debug build, `map` took about 9 s for 16 MiB
        // (this takes 0.2 s), and a test making 32 MiB held one of the cooperative pool's two threads as long,
        // stalling every other test's servers, clients and timers for 10-30 s at a time in full runs.
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var index = 0
            while index < count {
                state = state &* 1_664_525 &+ 1_013_904_223
                buffer[index] = UInt8(truncatingIfNeeded: state >> 24)
                index &+= 1
            }
            initialized = count
        }
    }

    /// A stream of `bytes` cut into `parts` buffers of uneven sizes.
    public static func split(_ bytes: [UInt8], into parts: Int) -> ByteStream {
        var buffers: [ByteBuffer] = []
        var start = 0
        for part in 0..<parts {
            let end = part == parts - 1 ? bytes.count : min(bytes.count, start + bytes.count / parts + part)
            buffers.append(ByteBuffer(bytes: bytes[start..<end]))
            start = end
        }
        return .buffers(buffers)
    }

    /// Reads a blob or a range of it into memory; for tests only.
    public static func read(_ store: any BlobStore, _ digest: Digest, range: Range<Int64>? = nil) async throws
        -> [UInt8]
    {
        var result: [UInt8] = []
        for try await buffer in try await store.get(digest, range: range) {
            result.append(contentsOf: buffer.readableBytesView)
        }
        return result
    }
}

/// One named behaviour of a storage conformance suite, run against a fresh subject: a blob store, an object driver.
public struct StorageConformanceCase<Subject>: Sendable, CustomTestStringConvertible {
    public let name: String
    public let run: @Sendable (Subject) async throws -> Void

    public init(_ name: String, _ run: @escaping @Sendable (Subject) async throws -> Void) {
        self.name = name
        self.run = run
    }

    public var testDescription: String { name }
}

/// One named behaviour of the blob store conformance suite, run against a fresh store.
public typealias BlobConformanceCase = StorageConformanceCase<any BlobStore>
