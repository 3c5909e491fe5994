import Foundation
import NIOCore
import Synchronization

/// A `BlobStore` held in memory, for tests.
public final class InMemoryBlobStore: BlobStore {
    private struct Entry {
        var bytes: [UInt8]
        var modified: Date
    }

    private let blobs = Mutex<[Digest: Entry]>([:])

    public init() {}

    public func size(of digest: Digest) async throws -> Int64? {
        blobs.withLock { $0[digest].map { Int64($0.bytes.count) } }
    }

    public func put(_ digest: Digest, expectedSize: Int64?, body: ByteStream) async throws -> Int64 {
        var bytes: [UInt8] = []
        var check = UploadCheck(digest: digest, expectedSize: expectedSize)
        for try await buffer in body {
            try check.consume(buffer)
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        _ = try check.finish()
        blobs.withLock { $0[digest] = Entry(bytes: bytes, modified: Date()) }
        return Int64(bytes.count)
    }

    public func get(_ digest: Digest, range: Range<Int64>?) async throws -> ByteStream {
        guard let bytes = blobs.withLock({ $0[digest]?.bytes }) else { throw Self.notFound(digest) }
        try checkRange(range, size: Int64(bytes.count))
        let slice = range.map { Array(bytes[Int($0.lowerBound)..<Int($0.upperBound)]) } ?? bytes
        return .bytes(slice)
    }

    public func delete(_ digest: Digest) async throws {
        _ = blobs.withLock { $0.removeValue(forKey: digest) }
    }

    public func list() async throws -> [Digest] {
        blobs.withLock { Array($0.keys) }
    }

    public func modificationTime(of digest: Digest) async throws -> Date? {
        blobs.withLock { $0[digest]?.modified }
    }

    public func touch(_ digest: Digest) async throws {
        blobs.withLock { $0[digest]?.modified = Date() }
    }
}
