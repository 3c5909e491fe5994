import Foundation
import NIOCore
import NIOPosix
import RegistryCore

import struct Crypto.SHA256

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A `BlobStore` on a local file system, laid out like an OCI registry: `root/blobs/sha256/ab/<hex>`.
///
/// Uploads stream into `root/uploads/<uuid>` while hashing, are fsynced, verified and then renamed into place, so a
/// blob path only ever holds complete, verified bytes. Reads stream the file in bounded pieces.
public final class FileSystemBlobStore: BlobStore {
    /// Uploads older than this are left over from a crash and removed at start-up.
    public static let staleUploadAge: TimeInterval = 3600

    public let root: String
    private let blobsDirectory: String
    private let uploadsDirectory: String
    private let pieceSize: Int
    private let threadPool: NIOThreadPool

    /// Opens (creating when needed) a store under `root` and removes stale uploads.
    ///
    /// `pieceSize` bounds how many bytes one read or write handles at a time.
    public init(root: String, pieceSize: Int = 512 * 1024, threadPool: NIOThreadPool = .singleton) throws {
        self.root = root
        self.blobsDirectory = root + "/blobs/sha256"
        self.uploadsDirectory = root + "/uploads"
        self.pieceSize = max(pieceSize, 4096)
        self.threadPool = threadPool
        do {
            try FileManager.default.createDirectory(atPath: blobsDirectory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: uploadsDirectory, withIntermediateDirectories: true)
        } catch {
            throw RegistryError(.internalError, "The blob store cannot create its directories under \(root): \(error).")
        }
        removeStaleUploads(olderThan: Self.staleUploadAge)
    }

    /// The path a blob lives at once it is complete.
    public func path(of digest: Digest) -> String {
        "\(blobsDirectory)/\(digest.hex.prefix(2))/\(digest.hex)"
    }

    public func size(of digest: Digest) async throws -> Int64? {
        try POSIXFile.size(path(of: digest))
    }

    public func put(_ digest: Digest, expectedSize: Int64?, body: ByteStream) async throws -> Int64 {
        let temporary = "\(uploadsDirectory)/\(UUID().uuidString)"
        let fd = try await threadPool.runIfActive {
            try POSIXFile.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL)
        }
        var isOpen = true
        do {
            var hasher = SHA256()
            var total: Int64 = 0
            var pending = ByteBufferAllocator().buffer(capacity: 0)
            for try await var buffer in body {
                buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                total += Int64(buffer.readableBytes)
                if let expectedSize, total > expectedSize {
                    throw Self.sizeMismatch(expected: expectedSize, atLeast: total)
                }
                // Small network buffers are gathered so that each hop to the thread pool writes a sizeable piece.
                pending.writeBuffer(&buffer)
                if pending.readableBytes >= pieceSize {
                    let piece = pending
                    pending = ByteBufferAllocator().buffer(capacity: 0)
                    try await threadPool.runIfActive { try POSIXFile.writeAll(fd, piece, path: temporary) }
                }
            }
            let actual = Digest(finalized: hasher.finalize())
            guard actual == digest else {
                throw RegistryError(
                    .digestMismatch, "The bytes hash to \(actual), not \(digest).",
                    details: ["expected": .string(digest.description), "actual": .string(actual.description)])
            }
            if let expectedSize, expectedSize != total {
                throw Self.sizeMismatch(expected: expectedSize, atLeast: total)
            }
            let last = pending
            let final = path(of: digest)
            let shard = (final as NSString).deletingLastPathComponent
            try await threadPool.runIfActive {
                try POSIXFile.writeAll(fd, last, path: temporary)
                try POSIXFile.sync(fd, path: temporary)
                _ = close(fd)
                try Self.commit(temporary, to: final, shard: shard)
            }
            isOpen = false
            return total
        } catch {
            if isOpen { _ = close(fd) }
            try? POSIXFile.unlink(temporary)
            throw error
        }
    }

    public func get(_ digest: Digest, range: Range<Int64>?) async throws -> ByteStream {
        let path = path(of: digest)
        guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { throw Self.notFound(digest) }
        // The stream owns the descriptor, so a download in flight survives a concurrent delete.
        let file = OpenFile(fd: fd, path: path)
        let size = try POSIXFile.size(of: file.fd, path: path)
        try checkRange(range, size: size)
        let bounds = range ?? 0..<size
        let pieceSize = pieceSize
        let threadPool = threadPool
        return ByteStream(makeNext: {
            var offset = bounds.lowerBound
            return {
                guard offset < bounds.upperBound else { return nil }
                let start = offset
                let length = Int(min(Int64(pieceSize), bounds.upperBound - start))
                let piece = try await threadPool.runIfActive {
                    try POSIXFile.read(file.fd, offset: start, length: length, path: file.path)
                }
                guard piece.readableBytes > 0 else {
                    throw RegistryError(.internalError, "The blob \(digest) ended early: it was truncated on disk.")
                }
                offset += Int64(piece.readableBytes)
                return piece
            }
        })
    }

    public func delete(_ digest: Digest) async throws {
        try POSIXFile.unlink(path(of: digest))
    }

    public func list() async throws -> [Digest] {
        let manager = FileManager.default
        var digests: [Digest] = []
        for shard in (try? manager.contentsOfDirectory(atPath: blobsDirectory)) ?? [] {
            for name in (try? manager.contentsOfDirectory(atPath: "\(blobsDirectory)/\(shard)")) ?? [] {
                if name.hasPrefix(shard), let digest = try? Digest(hex: name) { digests.append(digest) }
            }
        }
        return digests
    }

    /// Moves a verified upload to its final path, or discards it when another upload got there first.
    private static func commit(_ temporary: String, to final: String, shard: String) throws {
        if try POSIXFile.size(final) != nil {
            try POSIXFile.unlink(temporary)
            return
        }
        if mkdir(shard, 0o755) != 0 && errno != EEXIST { throw POSIXFile.error(errno, "create", shard) }
        try POSIXFile.rename(temporary, to: final)
        POSIXFile.syncDirectory(shard)
    }

    private func removeStaleUploads(olderThan age: TimeInterval) {
        let manager = FileManager.default
        let cutoff = Date().addingTimeInterval(-age)
        for name in (try? manager.contentsOfDirectory(atPath: uploadsDirectory)) ?? [] {
            let path = "\(uploadsDirectory)/\(name)"
            guard let modified = (try? manager.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                modified < cutoff
            else { continue }
            try? manager.removeItem(atPath: path)
        }
    }

    private static func sizeMismatch(expected: Int64, atLeast received: Int64) -> RegistryError {
        RegistryError(
            .sizeMismatch, "Expected \(expected) bytes, received \(received > expected ? "more" : "\(received)").",
            details: ["expected": .number(Double(expected))])
    }
}

/// An open file descriptor that is closed when the last stream reading it goes away.
private final class OpenFile: Sendable {
    let fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { _ = close(fd) }
}
