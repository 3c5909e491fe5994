import Foundation
import NIOCore
import RegistryCore

import struct Crypto.SymmetricKey

/// A `BlobStore` over any `ObjectStorage` that seals every blob at rest; the one place that knows the blob format,
/// the keys, the upload check and what counts as corruption, whichever driver moves the bytes.
///
/// Each blob's object is AES-256-GCM ciphertext under a fresh random data key, wrapped by the keyring's primary
/// master key, in independently sealed segments of at most 1 MiB (format: `BlobFileHeader`), so a `Range` read
/// decrypts only the segments it touches and any change to the object is detected when it is read (`BLOB_CORRUPT`,
/// also reported to `onCorruption`). Digests and sizes are those of the plaintext; the storage never sees it.
///
/// An upload is hashed while it streams and the object stream ends only after the digest (and the declared size)
/// matched, so a driver, which commits only a body that ended, never shows an unverified or partial blob. The header
/// comes first and holds the size: an upload without a declared size is held until it ends (`UploadSpool`: in
/// memory up to 1 MiB, then sealed in an unlinked file of `spoolDirectory`), so memory stays flat at any size.
public final class SealedBlobStore<Storage: ObjectStorage>: BlobStore {
    public let storage: Storage
    public let layout: BlobLayout
    public let keyring: MasterKeyring
    let segmentSize: Int
    let spool: UploadSpool
    let onCorruption: @Sendable (RegistryError) -> Void

    /// A store of blobs in `storage` at the keys of `layout`, whose data keys `keyring` wraps.
    ///
    /// `segmentSize` (clamped to 4 KiB…1 MiB) is the plaintext size of one sealed segment of new blobs, and so the
    /// piece size of reads and writes. `spoolDirectory` holds uploads without a declared size that outgrow memory
    /// (their files are unlinked at once and sealed under a key kept in memory). `onCorruption` hears of every blob
    /// that fails authentication on read.
    public init(
        storage: Storage, layout: BlobLayout, keyring: MasterKeyring, segmentSize: Int = 1 << 20,
        spoolDirectory: String = NSTemporaryDirectory() + "registry-upload-spool",
        onCorruption: @escaping @Sendable (RegistryError) -> Void = BlobCorruption.reportToStandardError
    ) {
        self.storage = storage
        self.layout = layout
        self.keyring = keyring
        self.segmentSize = min(max(segmentSize, 4096), BlobFileHeader.maxSegmentSize)
        self.spool = UploadSpool(directory: spoolDirectory, inMemory: UploadSpool.recordSize)
        self.onCorruption = onCorruption
    }

    /// The plaintext size of one sealed segment of new blobs: 1 MiB, the largest the format allows.
    public static var defaultSegmentSize: Int { BlobFileHeader.maxSegmentSize }

    /// Writes a corruption report to standard error.
    public static var reportToStandardError: @Sendable (RegistryError) -> Void { BlobCorruption.reportToStandardError }

    /// The storage key of a blob.
    public func key(of digest: Digest) -> String {
        layout.key(of: digest)
    }

    public func size(of digest: Digest) async throws -> Int64? {
        try await readHeader(digest)?.header.plaintextSize
    }

    // MARK: Writing

    public func put(_ digest: Digest, expectedSize: Int64?, body: ByteStream) async throws -> Int64 {
        let dataKey = SymmetricKey(size: .bits256)
        var header = try BlobFileHeader(segmentSize: segmentSize, dataKey: dataKey, master: keyring.primary())
        let input: ByteStream
        if let expectedSize {
            guard expectedSize >= 0, expectedSize <= BlobFileHeader.maxPlaintextSize else {
                throw RegistryError(.sizeMismatch, "\(expectedSize) is not a size a blob can have.")
            }
            header.plaintextSize = expectedSize
            input = body
        } else {
            let held = try await spool.hold(body, limit: BlobFileHeader.maxPlaintextSize)
            header.plaintextSize = held.size
            input = held.bytes
        }
        let sealer = SegmentSealer(
            input: input, check: UploadCheck(digest: digest, expectedSize: expectedSize),
            cipher: SegmentCipher(header: header, key: dataKey, digest: digest))
        try await storage.put(key(of: digest), body: sealer.stream)
        return header.plaintextSize
    }

    // MARK: Reading

    public func get(_ digest: Digest, range: Range<Int64>?) async throws -> ByteStream {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await read(digest, range: range, firstAttempt: attempt == 1)
            } catch is RereadHeader {
                continue
            } catch is ObjectVersionChanged where attempt < 3 {
                // A concurrent put replaced the object between its header and its segments: read the new one.
                continue
            } catch is ObjectVersionChanged {
                throw RegistryError(.unavailable, "Blob \(digest) keeps being replaced while it is read.")
            }
        }
    }

    private func read(_ digest: Digest, range: Range<Int64>?, firstAttempt: Bool) async throws -> ByteStream {
        let key = key(of: digest)
        guard let range else {
            // The whole blob in one request, header included: one round trip, and one version of the object.
            guard let object = try await storage.get(key, range: nil, ifVersion: nil) else {
                throw Self.notFound(digest)
            }
            var body = object.body.makeAsyncIterator()
            var head = ByteBuffer()
            while head.readableBytes < BlobFileHeader.byteCount, var more = try await body.next() {
                head.writeBuffer(&more)
            }
            let headerBytes = head.readBytes(length: min(head.readableBytes, BlobFileHeader.byteCount)) ?? []
            let header = try parseHeader(headerBytes, digest: digest, objectSize: object.info.size)
            let reader = SegmentReader(
                body: body, carry: head, cipher: try openCipher(header, digest: digest, firstAttempt: firstAttempt),
                bounds: 0..<header.plaintextSize, segments: 0...(header.segmentCount - 1))
            return try await stream(reader)
        }
        guard let (header, info) = try await readHeader(digest) else { throw Self.notFound(digest) }
        let cipher = try openCipher(header, digest: digest, firstAttempt: firstAttempt)
        try checkRange(range, size: header.plaintextSize)
        if range.isEmpty && header.plaintextSize > 0 { return .buffers([]) }
        let segmentSize = Int64(header.segmentSize)
        let firstSegment = range.lowerBound / segmentSize
        let lastSegment = range.isEmpty ? firstSegment : (range.upperBound - 1) / segmentSize
        let start = header.fileOffset(ofSegment: firstSegment)
        let end =
            header.fileOffset(ofSegment: lastSegment)
            + Int64(header.plaintextLength(ofSegment: lastSegment) + BlobFileHeader.tagByteCount)
        guard let object = try await storage.get(key, range: start..<end, ifVersion: info.version) else {
            throw Self.notFound(digest)
        }
        let reader = SegmentReader(
            body: object.body.makeAsyncIterator(), cipher: cipher, bounds: range,
            segments: firstSegment...lastSegment)
        return try await stream(reader)
    }

    /// The plaintext stream of `reader`, whose first segment is opened before the stream is returned so that a
    /// corrupt start fails the request cleanly.
    private func stream(_ reader: SegmentReader) async throws -> ByteStream {
        let onCorruption = onCorruption
        let first: ByteBuffer?
        do {
            first = try await reader.next()
        } catch let error as RegistryError where error.code == .blobCorrupt {
            onCorruption(error)
            throw error
        }
        return ByteStream(makeNext: {
            var pending = first
            return {
                if let piece = pending {
                    pending = nil
                    return piece
                }
                do {
                    return try await reader.next()
                } catch let error as RegistryError where error.code == .blobCorrupt {
                    onCorruption(error)
                    throw error
                }
            }
        })
    }

    // MARK: Everything else

    public func delete(_ digest: Digest) async throws {
        try await storage.delete(key(of: digest))
    }

    public func list() async throws -> [Digest] {
        try await storage.list(prefix: layout.prefix).compactMap(layout.digest(ofKey:))
    }

    public func modificationTime(of digest: Digest) async throws -> Date? {
        try await storage.head(key(of: digest))?.modified
    }

    public func touch(_ digest: Digest) async throws {
        try await storage.touch(key(of: digest))
    }

    // MARK: Headers

    /// The header of a blob and its object's info, nil when absent; `BLOB_CORRUPT` when the header is not valid
    /// or the object's length disagrees with it.
    func readHeader(_ digest: Digest) async throws -> (header: BlobFileHeader, info: ObjectInfo)? {
        guard let (bytes, info) = try await headerBytes(digest) else { return nil }
        return (try parseHeader(bytes, digest: digest, objectSize: info.size), info)
    }

    /// The first `BlobFileHeader.byteCount` bytes of a blob's object (fewer when it is shorter) and its info.
    func headerBytes(_ digest: Digest) async throws -> ([UInt8], ObjectInfo)? {
        let range = 0..<Int64(BlobFileHeader.byteCount)
        guard let object = try await storage.get(key(of: digest), range: range, ifVersion: nil) else { return nil }
        let bytes = try await object.body.collect(upTo: BlobFileHeader.byteCount)
        return (Array(bytes.readableBytesView), object.info)
    }

    /// The header in `bytes`; `BLOB_CORRUPT` when it is not valid or `objectSize` is not the size it implies.
    private func parseHeader(_ bytes: [UInt8], digest: Digest, objectSize: Int64) throws -> BlobFileHeader {
        let header: BlobFileHeader
        do {
            header = try BlobFileHeader(parsing: bytes)
        } catch {
            throw reportCorrupt(digest, "its header is invalid: \(error.reason)")
        }
        guard objectSize == header.fileSize else {
            throw reportCorrupt(digest, "it holds \(objectSize) bytes where its header implies \(header.fileSize)")
        }
        return header
    }

    /// The cipher of a blob: its data key unwrapped. A key that does not unwrap on the first attempt sends the
    /// read round again (`RereadHeader`), because `rewrap` may be replacing the header right now.
    private func openCipher(_ header: BlobFileHeader, digest: Digest, firstAttempt: Bool) throws -> SegmentCipher {
        let master = try keyring.key(id: header.keyId)
        do {
            return SegmentCipher(header: header, key: try header.dataKey(using: master), digest: digest)
        } catch {
            if firstAttempt { throw RereadHeader() }
            throw reportCorrupt(digest, "its data key does not unwrap under master key '\(header.keyId)'")
        }
    }

    private func reportCorrupt(_ digest: Digest, _ reason: String) -> RegistryError {
        let error = RegistryError(
            .blobCorrupt, "Blob \(digest) is corrupt in storage: \(reason).",
            details: ["digest": .string(digest.description)])
        onCorruption(error)
        return error
    }
}

/// Sent by a read whose header's key did not unwrap on the first attempt, to read it once more.
private struct RereadHeader: Error {}

/// Where blob corruption is reported when no one else listens.
public enum BlobCorruption {
    /// Writes a corruption report to standard error.
    public static let reportToStandardError: @Sendable (RegistryError) -> Void = { error in
        FileHandle.standardError.write(Data("BLOB CORRUPTION: \(error.code): \(error.message)\n".utf8))
    }
}
