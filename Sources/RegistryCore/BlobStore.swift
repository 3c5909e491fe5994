import Foundation
import NIOCore

/// Content-addressed storage for artifact chunks and manifests. Implementations: `InMemoryBlobStore`,
/// `FileSystemBlobStore`; every implementation passes `BlobStoreConformance`.
public protocol BlobStore: Sendable {
    /// The size of the blob with `digest`, or nil when it is absent.
    func size(of digest: Digest) async throws -> Int64?

    /// Stores `body` under `digest` and returns the stored size.
    ///
    /// Hashes while streaming and throws `DIGEST_MISMATCH` when the bytes do not hash to `digest`, or
    /// `SIZE_MISMATCH` when `expectedSize` is given and differs; in both cases nothing becomes visible. A blob
    /// appears only complete. Storing a blob that already exists succeeds (the body is still checked), and
    /// concurrent puts of one digest are safe.
    func put(_ digest: Digest, expectedSize: Int64?, body: ByteStream) async throws -> Int64

    /// Streams the bytes of `range` (the whole blob when nil). Throws `BLOB_NOT_FOUND` when absent and
    /// `RANGE_NOT_SATISFIABLE` when the range lies outside the blob.
    func get(_ digest: Digest, range: Range<Int64>?) async throws -> ByteStream

    /// Removes the blob; removing an absent blob is not an error.
    func delete(_ digest: Digest) async throws

    /// Every stored digest, in no particular order.
    func list() async throws -> [Digest]

    /// When the blob was last written or touched, or nil when it is absent; garbage collection keeps blobs whose
    /// time lies within its grace window.
    func modificationTime(of digest: Digest) async throws -> Date?

    /// Sets the blob's modification time to now, so that an upload about to reference it is protected from
    /// garbage collection; touching an absent blob is not an error.
    func touch(_ digest: Digest) async throws
}

extension BlobStore {
    /// Stores a small in-memory payload (a manifest) under its own digest and returns that digest.
    @discardableResult
    public func put(bytes: [UInt8]) async throws -> Digest {
        let digest = Digest(of: bytes)
        _ = try await put(digest, expectedSize: Int64(bytes.count), body: .bytes(bytes))
        return digest
    }

    /// Reads a whole blob of at most `maxBytes`; for manifests.
    public func read(_ digest: Digest, maxBytes: Int) async throws -> [UInt8] {
        var buffer = try await get(digest, range: nil).collect(upTo: maxBytes)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Throws `RANGE_NOT_SATISFIABLE` unless `range` lies within a blob of `size` bytes.
    public func checkRange(_ range: Range<Int64>?, size: Int64) throws {
        guard let range else { return }
        guard range.lowerBound >= 0, range.upperBound <= size, range.lowerBound <= range.upperBound else {
            throw RegistryError(
                .rangeNotSatisfiable,
                "The range \(range.lowerBound)-\(range.upperBound - 1) lies outside the \(size) bytes.",
                details: ["size": .number(Double(size))])
        }
    }

    public static func notFound(_ digest: Digest) -> RegistryError {
        RegistryError.blobNotFound(digest)
    }
}
