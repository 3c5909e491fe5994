import Foundation
import NIOCore
import NIOPosix
import RegistryCore

import enum Crypto.AES
import struct Crypto.SymmetricKey

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A `BlobStore` on a local file system, laid out like an OCI registry: `root/blobs/sha256/ab/<hex>`, with every
/// blob encrypted at rest.
///
/// Each blob file is AES-256-GCM ciphertext under a fresh random data key, wrapped by the keyring's primary master
/// key, in independently sealed segments of at most 1 MiB (format: `BlobFileHeader`), so a `Range` read decrypts
/// only the segments it touches and any change to the file is detected when it is read (`BLOB_CORRUPT`). Digests
/// and sizes are those of the plaintext. Uploads stream into `root/uploads/<uuid>` while hashing and sealing, are
/// fsynced, verified and then renamed into place, so a blob path only ever holds complete, verified bytes.
public final class FileSystemBlobStore: BlobStore {
    /// Uploads older than this are left over from a crash and removed at start-up.
    public static let staleUploadAge: TimeInterval = 3600
    /// The plaintext size of one sealed segment of new blobs: 1 MiB, the largest the format allows.
    public static let defaultSegmentSize = 1 << 20

    public let root: String
    public let keyring: MasterKeyring
    private let blobsDirectory: String
    private let uploadsDirectory: String
    private let segmentSize: Int
    private let threadPool: NIOThreadPool
    private let onCorruption: @Sendable (RegistryError) -> Void

    /// Opens (creating when needed) a store under `root` whose data keys `keyring` wraps, and removes stale uploads.
    ///
    /// `segmentSize` (clamped to 4 KiB…1 MiB) is the plaintext size of one sealed segment of new blobs, and so the
    /// piece size of reads and writes. `onCorruption` hears of every blob that fails authentication on read; by
    /// default it writes a line to standard error.
    public init(
        root: String, keyring: MasterKeyring, segmentSize: Int = FileSystemBlobStore.defaultSegmentSize,
        threadPool: NIOThreadPool = .singleton,
        onCorruption: @escaping @Sendable (RegistryError) -> Void = FileSystemBlobStore.reportToStandardError
    ) throws {
        self.root = root
        self.keyring = keyring
        self.blobsDirectory = root + "/blobs/sha256"
        self.uploadsDirectory = root + "/uploads"
        self.segmentSize = min(max(segmentSize, 4096), BlobFileHeader.maxSegmentSize)
        self.threadPool = threadPool
        self.onCorruption = onCorruption
        do {
            try FileManager.default.createDirectory(atPath: blobsDirectory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: uploadsDirectory, withIntermediateDirectories: true)
        } catch {
            throw RegistryError(.internalError, "The blob store cannot create its directories under \(root): \(error).")
        }
        removeStaleUploads(olderThan: Self.staleUploadAge)
    }

    /// A store whose keyring lives in `root/keys/master.json` (created on first use); for tests and tools.
    public convenience init(root: String, pieceSize: Int = FileSystemBlobStore.defaultSegmentSize, threadPool: NIOThreadPool = .singleton)
        throws
    {
        let keyring = try MasterKeyring.open(keyFile: root + "/keys/master.json", environment: [:])
        try self.init(root: root, keyring: keyring, segmentSize: pieceSize, threadPool: threadPool)
    }

    /// Writes a corruption report to standard error.
    public static let reportToStandardError: @Sendable (RegistryError) -> Void = { error in
        FileHandle.standardError.write(Data("BLOB CORRUPTION: \(error.code): \(error.message)\n".utf8))
    }

    /// The path a blob lives at once it is complete.
    public func path(of digest: Digest) -> String {
        "\(blobsDirectory)/\(digest.hex.prefix(2))/\(digest.hex)"
    }

    public func size(of digest: Digest) async throws -> Int64? {
        let path = path(of: digest)
        guard let fd = try POSIXFile.openIfPresent(path, flags: O_RDONLY) else { return nil }
        defer { _ = close(fd) }
        return try readHeader(fd, path: path, digest: digest).plaintextSize
    }

    public func put(_ digest: Digest, expectedSize: Int64?, body: ByteStream) async throws -> Int64 {
        let dataKey = SymmetricKey(size: .bits256)
        var header = try BlobFileHeader(segmentSize: segmentSize, dataKey: dataKey, master: keyring.primary())
        let cipher = SegmentCipher(header: header, key: dataKey, digest: digest)
        let temporary = "\(uploadsDirectory)/\(UUID().uuidString)"
        let fd = try await threadPool.runIfActive {
            try POSIXFile.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL)
        }
        var isOpen = true
        do {
            var check = UploadCheck(digest: digest, expectedSize: expectedSize)
            var index: Int64 = 0
            let segmentSize = segmentSize
            // One segment is gathered here; a full one is sealed only once more bytes arrive, because the last
            // segment is sealed as final.
            var segment = ByteBufferAllocator().buffer(capacity: segmentSize)
            for try await var buffer in body {
                try check.consume(buffer)
                while buffer.readableBytes > 0 {
                    if segment.readableBytes == segmentSize {
                        let full = segment
                        let sealedIndex = index
                        try await threadPool.runIfActive {
                            try cipher.sealAndWrite(full, index: sealedIndex, final: false, fd: fd, path: temporary)
                        }
                        index += 1
                        segment.clear()
                    }
                    var slice = buffer.readSlice(length: min(buffer.readableBytes, segmentSize - segment.readableBytes))!
                    segment.writeBuffer(&slice)
                }
            }
            let total = try check.finish()
            header.plaintextSize = total
            let headerBytes = header.encoded
            let last = segment
            let lastIndex = index
            let final = path(of: digest)
            let shard = (final as NSString).deletingLastPathComponent
            try await threadPool.runIfActive {
                try cipher.sealAndWrite(last, index: lastIndex, final: true, fd: fd, path: temporary)
                try headerBytes.withUnsafeBytes { try POSIXFile.writeAll(fd, $0, offset: 0, path: temporary) }
                try POSIXFile.sync(fd, path: temporary)
            }
            // Closed exactly once, here: a failing commit below must not close the number again, which by then
            // may belong to another thread's socket or database file.
            isOpen = false
            _ = close(fd)
            try await threadPool.runIfActive { try Self.commit(temporary, to: final, shard: shard) }
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
        let cipher = try openCipher(file, digest: digest)
        let header = cipher.header
        try checkRange(range, size: header.plaintextSize)
        let bounds = range ?? 0..<header.plaintextSize
        if bounds.isEmpty && header.plaintextSize > 0 { return .buffers([]) }
        let segmentSize = Int64(header.segmentSize)
        let firstSegment = bounds.lowerBound / segmentSize
        let lastSegment = bounds.isEmpty ? firstSegment : (bounds.upperBound - 1) / segmentSize
        let threadPool = threadPool
        let onCorruption = onCorruption
        // The first segment is opened before the stream is returned, so a corrupt start fails the request cleanly.
        let first: ByteBuffer
        do {
            first = try await threadPool.runIfActive {
                header.slice(try cipher.readAndOpen(index: firstSegment, fd: file.fd, path: file.path), segment: firstSegment, to: bounds)
            }
        } catch let error as RegistryError where error.code == .blobCorrupt {
            onCorruption(error)
            throw error
        }
        return ByteStream(makeNext: {
            var pending: ByteBuffer? = first
            var next = firstSegment + 1
            return {
                if let piece = pending {
                    pending = nil
                    return piece
                }
                guard next <= lastSegment else { return nil }
                let index = next
                next += 1
                do {
                    return try await threadPool.runIfActive {
                        header.slice(try cipher.readAndOpen(index: index, fd: file.fd, path: file.path), segment: index, to: bounds)
                    }
                } catch let error as RegistryError where error.code == .blobCorrupt {
                    onCorruption(error)
                    throw error
                }
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

    public func modificationTime(of digest: Digest) async throws -> Date? {
        try POSIXFile.modificationTime(path(of: digest))
    }

    public func touch(_ digest: Digest) async throws {
        try POSIXFile.touch(path(of: digest))
    }

    // MARK: Internals

    /// Reads and parses the header of an open blob file; throws `BLOB_CORRUPT` when it is not a valid header or the
    /// file's length disagrees with it (truncated or extended).
    func readHeader(_ fd: Int32, path: String, digest: Digest) throws -> BlobFileHeader {
        var bytes = [UInt8](repeating: 0, count: BlobFileHeader.byteCount)
        let count = try bytes.withUnsafeMutableBytes { try POSIXFile.read(fd, into: $0, offset: 0, path: path) }
        let header: BlobFileHeader
        do {
            header = try BlobFileHeader(parsing: Array(bytes[0..<count]))
        } catch {
            throw reportCorrupt(digest, "its header is invalid: \(error.reason)")
        }
        let actual = try POSIXFile.size(of: fd, path: path)
        guard actual == header.fileSize else {
            throw reportCorrupt(digest, "the file holds \(actual) bytes where its header implies \(header.fileSize)")
        }
        return header
    }

    /// The cipher of an open blob file: its header read and its data key unwrapped.
    private func openCipher(_ file: OpenFile, digest: Digest) throws -> SegmentCipher {
        var attempt = 0
        while true {
            attempt += 1
            let header = try readHeader(file.fd, path: file.path, digest: digest)
            do {
                let master = try keyring.key(id: header.keyId)
                return SegmentCipher(header: header, key: try header.dataKey(using: master), digest: digest)
            } catch {
                // `rewrap` may be replacing this header right now; a second read sees the whole new one.
                if attempt < 2 { continue }
                if let error = error as? RegistryError, error.code == .masterKeyUnknown { throw error }
                throw reportCorrupt(digest, "its data key does not unwrap under master key '\(header.keyId)'")
            }
        }
    }

    private func reportCorrupt(_ digest: Digest, _ reason: String) -> RegistryError {
        let error = RegistryError(
            .blobCorrupt, "Blob \(digest) is corrupt on disk: \(reason).", details: ["digest": .string(digest.description)])
        onCorruption(error)
        return error
    }

    /// Moves a verified upload to its final path. A blob already there is replaced: the bytes are the same
    /// plaintext, and replacing heals a file damaged on disk and refreshes its modification time.
    private static func commit(_ temporary: String, to final: String, shard: String) throws {
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
