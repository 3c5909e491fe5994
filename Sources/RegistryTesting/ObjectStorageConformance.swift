import Foundation
import NIOCore
import RegistryBlobStorage
import RegistryCore
import Testing

/// The behaviour every `ObjectStorage` driver must show, so that `SealedBlobStore` runs on any of them; a driver
/// runs every case on fresh, empty storage:
///
/// ```swift
/// @Test(arguments: ObjectStorageConformance.cases)
/// func conformance(_ c: ObjectStorageConformanceCase) async throws { try await c.run(makeFreshStorage()) }
/// ```
///
/// Objects of 6 MiB cross a part boundary of drivers that upload in parts of at least 5 MiB (S3's minimum).
public enum ObjectStorageConformance {
    public static let cases: [ObjectStorageConformanceCase] = [
        ObjectStorageConformanceCase("anObjectRoundTripsAcrossManyBuffersAndAcrossParts") {
            (storage: any ObjectStorage) async throws in
            let bytes = BlobStoreConformance.pattern(6 * 1024 * 1024 + 123, seed: 1)
            try await storage.put("objects/large", body: BlobStoreConformance.split(bytes, into: 50))
            let object = try #require(try await storage.get("objects/large", range: nil, ifVersion: nil))
            #expect(object.info.size == Int64(bytes.count))
            #expect(try await collect(object.body) == bytes)
            #expect(try await storage.head("objects/large")?.size == Int64(bytes.count))

            try await storage.put("objects/empty", body: .buffers([]))
            #expect(try await storage.head("objects/empty")?.size == 0)
            #expect(try await storage.read("objects/empty", maxBytes: 1) == [])
        },
        ObjectStorageConformanceCase("rangeReadsAreClippedToTheObject") { (storage: any ObjectStorage) async throws in
            let bytes = BlobStoreConformance.pattern(100_000, seed: 2)
            try await storage.put("objects/ranged", bytes: bytes)
            let cases: [(Range<Int64>, ArraySlice<UInt8>)] = [
                (0..<10, bytes[0..<10]),  // the start
                (40_000..<60_001, bytes[40_000..<60_001]),  // the middle
                (99_990..<100_000, bytes[99_990..<100_000]),  // the end
                (99_990..<200_000, bytes[99_990..<100_000]),  // running past the end
                (100_000..<100_010, []),  // starting at the end
                (150_000..<150_010, []),  // starting past the end
                (500..<500, []),  // no bytes
            ]
            for (range, expected) in cases {
                let object = try #require(try await storage.get("objects/ranged", range: range, ifVersion: nil))
                #expect(object.info.size == 100_000, "range \(range)")
                #expect(try await collect(object.body) == Array(expected), "range \(range)")
            }
        },
        ObjectStorageConformanceCase("aPutReplacesTheWholeObjectAndItsVersion") {
            (storage: any ObjectStorage) async throws in
            let first = BlobStoreConformance.pattern(300_000, seed: 3)
            let second = BlobStoreConformance.pattern(1000, seed: 4)
            try await storage.put("objects/replaced", bytes: first)
            let old = try #require(try await storage.head("objects/replaced"))
            try await storage.put("objects/replaced", bytes: second)
            #expect(try await storage.read("objects/replaced", maxBytes: 1 << 20) == second)
            let new = try #require(try await storage.head("objects/replaced"))
            #expect(new.size == 1000)
            #expect(new.version != old.version)
            // A reader that pinned the old version learns that it is gone; the current one still reads.
            await #expect(throws: ObjectVersionChanged.self) {
                _ = try await storage.get("objects/replaced", range: 0..<10, ifVersion: old.version)
            }
            let pinned = try #require(try await storage.get("objects/replaced", range: 0..<10, ifVersion: new.version))
            #expect(try await collect(pinned.body) == Array(second[0..<10]))
        },
        ObjectStorageConformanceCase("aPutWhoseBodyFailsLeavesThePreviousObjectOrNothing") {
            (storage: any ObjectStorage) async throws in
            let kept = BlobStoreConformance.pattern(2000, seed: 5)
            try await storage.put("objects/kept", bytes: kept)
            // The body fails after more than one part's worth, so a driver that uploads in parts has begun one.
            let failing = failingBody(after: BlobStoreConformance.pattern(6 * 1024 * 1024, seed: 6), pieces: 12)
            await #expect(throws: BodyFailed.self) { try await storage.put("objects/kept", body: failing) }
            #expect(try await storage.read("objects/kept", maxBytes: 1 << 20) == kept)
            let alsoFailing = failingBody(after: BlobStoreConformance.pattern(1000, seed: 7), pieces: 2)
            await #expect(throws: BodyFailed.self) { try await storage.put("objects/never", body: alsoFailing) }
            #expect(try await storage.head("objects/never") == nil)
            #expect(try await storage.list(prefix: "objects/") == ["objects/kept"])
        },
        ObjectStorageConformanceCase("aCancelledPutLeavesNothing") { (storage: any ObjectStorage) async throws in
            let started = AsyncStream<Void>.makeStream()
            let upload = Task {
                // One part's worth and more, then a body that waits until the put is cancelled.
                let piece = ByteBuffer(bytes: BlobStoreConformance.pattern(6 * 1024 * 1024, seed: 8))
                try await storage.put(
                    "objects/cancelled",
                    body: ByteStream(makeNext: {
                        var sent = false
                        return {
                            if !sent {
                                sent = true
                                return piece
                            }
                            started.continuation.yield()
                            try await Task.sleep(for: .seconds(3600))
                            return nil
                        }
                    }))
            }
            var waiting = started.stream.makeAsyncIterator()
            _ = await waiting.next()
            upload.cancel()
            await #expect(throws: (any Error).self) { try await upload.value }
            #expect(try await storage.head("objects/cancelled") == nil)
            #expect(try await storage.list(prefix: "objects/").isEmpty)
        },
        ObjectStorageConformanceCase("missingObjectsAreNilAndDeletingOneIsNoError") {
            (storage: any ObjectStorage) async throws in
            #expect(try await storage.head("objects/missing") == nil)
            #expect(try await storage.get("objects/missing", range: nil, ifVersion: nil) == nil)
            #expect(try await storage.get("objects/missing", range: 0..<10, ifVersion: nil) == nil)
            try await storage.delete("objects/missing")
            try await storage.put("objects/deleted", bytes: [1, 2, 3])
            try await storage.delete("objects/deleted")
            #expect(try await storage.head("objects/deleted") == nil)
            #expect(try await storage.list(prefix: "objects/").isEmpty)
        },
        ObjectStorageConformanceCase("listFindsEveryObjectUnderAPrefixAcrossPages") {
            (storage: any ObjectStorage) async throws in
            // More than one page of an S3 listing (1000 keys), nested and flat, beside keys under other prefixes.
            let keys = (0..<1100).map { "many/\($0 % 7)/object-\($0)" }
            try await withThrowingTaskGroup(of: Void.self) { group in
                var pending = keys.makeIterator()
                for _ in 0..<16 {
                    guard let key = pending.next() else { break }
                    group.addTask { try await storage.put(key, bytes: Array(key.utf8)) }
                }
                while try await group.next() != nil {
                    if let key = pending.next() { group.addTask { try await storage.put(key, bytes: Array(key.utf8)) } }
                }
            }
            try await storage.put("other/object-1", bytes: [1])
            try await storage.put("many-but-not-under/object-1", bytes: [1])
            #expect(Set(try await storage.list(prefix: "many/")) == Set(keys))
            #expect(try await storage.list(prefix: "many/").count == keys.count)
            #expect(Set(try await storage.list(prefix: "many/3/")) == Set(keys.filter { $0.hasPrefix("many/3/") }))
            #expect(try await storage.list(prefix: "nothing/").isEmpty)
        },
        ObjectStorageConformanceCase("aTouchRenewsTheTimeButNotTheBytesOrTheVersion") {
            (storage: any ObjectStorage) async throws in
            let before = Date().addingTimeInterval(-2)
            try await storage.put("objects/touched", bytes: [4, 5, 6])
            let written = try #require(try await storage.head("objects/touched"))
            #expect(written.modified >= before && written.modified <= Date().addingTimeInterval(2))
            try await storage.touch("objects/touched")
            let touched = try #require(try await storage.head("objects/touched"))
            #expect(touched.modified >= written.modified)
            #expect(touched.version == written.version)
            #expect(try await storage.read("objects/touched", maxBytes: 16) == [4, 5, 6])
            try await storage.touch("objects/absent")
            #expect(try await storage.head("objects/absent") == nil)
            #expect(try await storage.list(prefix: "objects/") == ["objects/touched"])
        },
        ObjectStorageConformanceCase("invalidKeysAreRefused") { (storage: any ObjectStorage) async throws in
            for key in ["", "/absolute", "a//b", "a/../b", "./a", "a/"] {
                await #expect(throws: RegistryError.self, "key '\(key)'") { try await storage.put(key, bytes: [1]) }
            }
        },
    ]

    /// What `failingBody` throws.
    public struct BodyFailed: Error {}

    /// A body of `bytes` in `pieces` buffers that throws `BodyFailed` instead of ending.
    static func failingBody(after bytes: [UInt8], pieces: Int) -> ByteStream {
        let size = (bytes.count + pieces - 1) / pieces
        let buffers = stride(from: 0, to: bytes.count, by: size).map {
            ByteBuffer(bytes: bytes[$0..<min($0 + size, bytes.count)])
        }
        return ByteStream(makeNext: {
            var remaining = buffers[...]
            return {
                guard let next = remaining.popFirst() else { throw BodyFailed() }
                return next
            }
        })
    }

    static func collect(_ body: ByteStream) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await buffer in body { bytes += buffer.readableBytesView }
        return bytes
    }
}

/// One named behaviour of the object storage conformance suite, run against fresh, empty storage.
public typealias ObjectStorageConformanceCase = StorageConformanceCase<any ObjectStorage>
