import AsyncHTTPClient
import Foundation
import NIOCore
import RegistryCore
import RegistryFileStore

import struct Crypto.SymmetricKey

/// A `BlobStore` on any S3-compatible object store, for registries that scale out: several stateless instances
/// share one bucket.
///
/// Objects live at `<prefix>blobs/sha256/<hex>` and hold exactly the encrypted format of the file-system store
/// (`BlobFileHeader`: AES-256-GCM segments of at most 1 MiB under a per-blob data key wrapped by the keyring's
/// master key), so the object store never sees plaintext and any change to an object fails its read with
/// `BLOB_CORRUPT`.
///
/// A blob becomes visible only complete and verified: bytes are hashed while they stream in, and an object is
/// written only after its digest matched — with one `PUT` when it fits in one part (every content-defined chunk
/// does), or as a multipart upload that is completed only after the digest matched and aborted otherwise. Memory
/// per upload is bounded by one part. A read pins the object's entity tag, so a blob replaced by a concurrent put
/// of the same digest never mixes two encryptions.
public final class S3BlobStore: BlobStore {
    /// The smallest part S3 accepts for every part but the last.
    public static let minimumPartSize = 5 << 20

    public let client: S3Client
    public let prefix: String
    public let keyring: MasterKeyring
    private let segmentSize: Int
    private let partSize: Int
    private let onCorruption: @Sendable (RegistryError) -> Void

    /// A store in `client`'s bucket under `prefix` (for example `registry/`; empty for the whole bucket).
    ///
    /// `partSize` is the largest object written with one `PUT` and the part size of larger ones (at least 5 MiB);
    /// `segmentSize` is the plaintext size of a sealed segment (4 KiB…1 MiB).
    public init(
        client: S3Client, prefix: String = "", keyring: MasterKeyring,
        segmentSize: Int = FileSystemBlobStore.defaultSegmentSize, partSize: Int = 8 << 20,
        onCorruption: @escaping @Sendable (RegistryError) -> Void = FileSystemBlobStore.reportToStandardError
    ) {
        self.client = client
        self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        self.keyring = keyring
        self.segmentSize = min(max(segmentSize, 4096), BlobFileHeader.maxSegmentSize)
        self.partSize = max(partSize, Self.minimumPartSize)
        self.onCorruption = onCorruption
    }

    /// The object key of a blob.
    public func key(of digest: Digest) -> String {
        "\(prefix)blobs/sha256/\(digest.hex)"
    }

    public func size(of digest: Digest) async throws -> Int64? {
        try await readHeader(digest)?.header.plaintextSize
    }

    // MARK: Writing

    public func put(_ digest: Digest, expectedSize: Int64?, body: ByteStream) async throws -> Int64 {
        let dataKey = SymmetricKey(size: .bits256)
        var header = try BlobFileHeader(segmentSize: segmentSize, dataKey: dataKey, master: keyring.primary())
        let key = key(of: digest)
        // Up to one part of plaintext is gathered here; a blob that ends within it is written with one PUT.
        var gathered = ByteBufferAllocator().buffer(capacity: 0)
        var multipart: MultipartWriter?
        do {
            var check = UploadCheck(digest: digest, expectedSize: expectedSize)
            for try await var buffer in body {
                try check.consume(buffer)
                if multipart != nil {
                    try await multipart!.write(&buffer)
                    continue
                }
                gathered.writeBuffer(&buffer)
                guard gathered.readableBytes > partSize else { continue }
                // More than one part: a multipart upload, whose header (which comes first) needs the size now.
                guard let expectedSize else {
                    throw RegistryError(
                        .invalidArgument,
                        "A blob larger than \(partSize >> 20) MiB needs its size (Content-Length) up front.")
                }
                header.plaintextSize = expectedSize
                multipart = try await MultipartWriter(
                    client: client, key: key, cipher: SegmentCipher(header: header, key: dataKey, digest: digest),
                    partSize: partSize)
                try await multipart!.write(&gathered)
                gathered = ByteBufferAllocator().buffer(capacity: 0)
            }
            let total = try check.finish()
            if multipart != nil {
                try await multipart!.finish()
            } else {
                header.plaintextSize = total
                let cipher = SegmentCipher(header: header, key: dataKey, digest: digest)
                var object = ByteBufferAllocator().buffer(capacity: Int(header.fileSize))
                object.writeBytes(header.encoded)
                for index in 0..<header.segmentCount {
                    let segment = gathered.readSlice(length: header.plaintextLength(ofSegment: index))!
                    try cipher.seal(segment, index: index, final: index == header.segmentCount - 1, appendingTo: &object)
                }
                try await client.put(key, body: object)
            }
            return total
        } catch {
            await multipart?.abort()
            throw error
        }
    }

    // MARK: Reading

    public func get(_ digest: Digest, range: Range<Int64>?) async throws -> ByteStream {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await read(digest, range: range)
            } catch is S3Client.PreconditionFailed where attempt < 3 {
                // A concurrent put replaced the object between its header and its segments: read the new one.
                continue
            } catch is S3Client.PreconditionFailed {
                throw RegistryError(.unavailable, "Blob \(digest) keeps being replaced while it is read.")
            }
        }
    }

    private func read(_ digest: Digest, range: Range<Int64>?) async throws -> ByteStream {
        guard let range else { return try await readWhole(digest) }
        guard let (header, etag) = try await readHeader(digest) else { throw Self.notFound(digest) }
        let cipher = try openCipher(header, digest: digest)
        try checkRange(range, size: header.plaintextSize)
        if range.isEmpty && header.plaintextSize > 0 { return .buffers([]) }
        let segmentSize = Int64(header.segmentSize)
        let firstSegment = range.lowerBound / segmentSize
        let lastSegment = range.isEmpty ? firstSegment : (range.upperBound - 1) / segmentSize
        let start = header.fileOffset(ofSegment: firstSegment)
        let end = header.fileOffset(ofSegment: lastSegment)
            + Int64(header.plaintextLength(ofSegment: lastSegment) + BlobFileHeader.tagByteCount)
        guard let response = try await client.get(key(of: digest), range: start..<end, ifMatch: etag) else {
            throw Self.notFound(digest)
        }
        let reader = SegmentReader(
            body: ByteStream(response.body).makeAsyncIterator(), cipher: cipher, bounds: range,
            segments: firstSegment...lastSegment)
        return try await stream(reader)
    }

    /// A whole blob in one `GET`, header included (one round trip; a single response is one version of the object).
    private func readWhole(_ digest: Digest) async throws -> ByteStream {
        guard let response = try await client.get(key(of: digest)) else { throw Self.notFound(digest) }
        var body = ByteStream(response.body).makeAsyncIterator()
        var head = ByteBufferAllocator().buffer(capacity: BlobFileHeader.byteCount)
        while head.readableBytes < BlobFileHeader.byteCount {
            guard var more = try await body.next() else {
                throw reportCorrupt(digest, "the object is shorter than its header")
            }
            head.writeBuffer(&more)
        }
        let header = try parseHeader(
            head.readBytes(length: BlobFileHeader.byteCount)!, digest: digest,
            objectSize: response.headers.first(name: "Content-Length").flatMap { Int64($0) })
        let reader = SegmentReader(
            body: body, carry: head, cipher: try openCipher(header, digest: digest),
            bounds: 0..<header.plaintextSize, segments: 0...(header.segmentCount - 1))
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

    public func delete(_ digest: Digest) async throws {
        try await client.delete(key(of: digest))
        try await client.delete(touchKey(of: digest))
    }

    public func list() async throws -> [Digest] {
        let base = "\(prefix)blobs/sha256/"
        var digests: [Digest] = []
        var token: String?
        repeat {
            let page = try await client.list(prefix: base, continuationToken: token)
            digests += page.keys.compactMap { key in
                key.hasPrefix(base) ? try? Digest(hex: String(key.dropFirst(base.count))) : nil
            }
            token = page.next
        } while token != nil
        return digests
    }

    /// The later of the object's `Last-Modified` and its last touch.
    public func modificationTime(of digest: Digest) async throws -> Date? {
        guard let info = try await client.head(key(of: digest)) else { return nil }
        let written = info.lastModified ?? .distantPast
        guard let touched = try await client.head(touchKey(of: digest))?.lastModified else { return written }
        return max(written, touched)
    }

    /// Writes an empty marker object whose `Last-Modified` is the touch: S3 cannot change an object's time
    /// without rewriting it, and a check touches every chunk of a model that is already there.
    public func touch(_ digest: Digest) async throws {
        guard try await client.head(key(of: digest)) != nil else { return }
        try await client.put(touchKey(of: digest), body: ByteBuffer())
    }

    /// The marker object whose time is the blob's last touch.
    private func touchKey(of digest: Digest) -> String {
        "\(prefix)touched/sha256/\(digest.hex)"
    }

    /// Aborts multipart uploads under this store's prefix that began more than `age` ago: what a crash mid-upload
    /// leaves behind. Returns how many it aborted.
    @discardableResult
    public func abortStaleUploads(olderThan age: TimeInterval) async throws -> Int {
        let cutoff = Date().addingTimeInterval(-age)
        var aborted = 0
        for upload in try await client.pendingUploads(prefix: "\(prefix)blobs/") where (upload.initiated ?? .distantPast) < cutoff {
            try await client.abortMultipartUpload(upload.key, uploadId: upload.uploadId)
            aborted += 1
        }
        return aborted
    }

    // MARK: Keys

    /// How many objects each master key id wraps, read from the objects' headers: one ranged `GET` of the first
    /// 128 bytes per object, `concurrency` at a time, never the payload. `nil` counts objects whose header is not
    /// valid. What `registry keys list` and `keys retire` scan when blobs live in a bucket.
    public func keyUsage(concurrency: Int = 16) async throws -> [String?: Int] {
        let digests = try await list()
        var usage: [String?: Int] = [:]
        try await withThrowingTaskGroup(of: HeaderKey.self) { group in
            var pending = digests.makeIterator()
            for _ in 0..<max(concurrency, 1) {
                guard let digest = pending.next() else { break }
                group.addTask { try await self.headerKey(of: digest) }
            }
            while let found = try await group.next() {
                switch found {
                case .gone: break
                case .invalid: usage[nil, default: 0] += 1
                case .key(let id): usage[id, default: 0] += 1
                }
                if let digest = pending.next() { group.addTask { try await self.headerKey(of: digest) } }
            }
        }
        return usage
    }

    /// Checks the header of `digest`'s object the cheap way, with one ranged `GET` of its first 128 bytes: that it
    /// is valid, that the object has the size it implies, and, with `keys`, that its data key unwraps (see
    /// `BlobHeaderCheck`). The payload is not read. What `registry backup` and `restore` check for blobs in a bucket.
    public func checkHeader(of digest: Digest, keys: MasterKeyring?) async throws -> BlobHeaderCheck {
        let found: HTTPClientResponse?
        do {
            found = try await client.get(key(of: digest), range: 0..<Int64(BlobFileHeader.byteCount))
        } catch let error as RegistryError where error.details["status"] == .number(416) {
            return .malformed(reason: "the object is empty")
        }
        guard let response = found else { return .missing }
        let bytes = try await response.body.collect(upTo: BlobFileHeader.byteCount + 1)
        // `Content-Range: bytes 0-127/<object size>`
        let size = response.headers.first(name: "Content-Range").flatMap { $0.split(separator: "/").last }
            .flatMap { Int64($0) }
        return BlobHeaderCheck(header: Array(bytes.readableBytesView), size: size, keys: keys)
    }

    /// What the header of one object names.
    private enum HeaderKey: Sendable {
        /// The object was deleted after it was listed.
        case gone
        case invalid
        case key(String)
    }

    private func headerKey(of digest: Digest) async throws -> HeaderKey {
        let found: HTTPClientResponse?
        do {
            found = try await client.get(key(of: digest), range: 0..<Int64(BlobFileHeader.byteCount))
        } catch let error as RegistryError where error.details["status"] == .number(416) {
            return .invalid  // an empty object
        }
        guard let response = found else { return .gone }
        let bytes = try await response.body.collect(upTo: BlobFileHeader.byteCount + 1)
        guard let header = try? BlobFileHeader(parsing: Array(bytes.readableBytesView)) else { return .invalid }
        return .key(header.keyId)
    }

    // MARK: Internals

    /// The header of a blob and the object's entity tag, nil when absent; `BLOB_CORRUPT` when the header is not
    /// valid or the object's length disagrees with it.
    private func readHeader(_ digest: Digest) async throws -> (header: BlobFileHeader, etag: String?)? {
        let found: HTTPClientResponse?
        do {
            found = try await client.get(key(of: digest), range: 0..<Int64(BlobFileHeader.byteCount))
        } catch let error as RegistryError where error.details["status"] == .number(416) {
            throw reportCorrupt(digest, "the object is empty")
        }
        guard let response = found else { return nil }
        let bytes = try await response.body.collect(upTo: BlobFileHeader.byteCount + 1)
        // `Content-Range: bytes 0-127/<object size>`
        let header = try parseHeader(
            Array(bytes.readableBytesView), digest: digest,
            objectSize: response.headers.first(name: "Content-Range").flatMap { $0.split(separator: "/").last }
                .flatMap { Int64($0) })
        return (header, response.headers.first(name: "ETag"))
    }

    /// The header in `bytes`; `BLOB_CORRUPT` when it is not valid or `objectSize` is not the size it implies.
    private func parseHeader(_ bytes: [UInt8], digest: Digest, objectSize: Int64?) throws -> BlobFileHeader {
        let header: BlobFileHeader
        do {
            header = try BlobFileHeader(parsing: bytes)
        } catch {
            throw reportCorrupt(digest, "its header is invalid: \(error.reason)")
        }
        guard objectSize == header.fileSize else {
            throw reportCorrupt(
                digest,
                "the object holds \(objectSize.map(String.init) ?? "?") bytes where its header implies \(header.fileSize)")
        }
        return header
    }

    private func openCipher(_ header: BlobFileHeader, digest: Digest) throws -> SegmentCipher {
        let master = try keyring.key(id: header.keyId)
        do {
            return SegmentCipher(header: header, key: try header.dataKey(using: master), digest: digest)
        } catch {
            throw reportCorrupt(digest, "its data key does not unwrap under master key '\(header.keyId)'")
        }
    }

    private func reportCorrupt(_ digest: Digest, _ reason: String) -> RegistryError {
        let error = RegistryError(
            .blobCorrupt, "Blob \(digest) is corrupt in object storage: \(reason).",
            details: ["digest": .string(digest.description)])
        onCorruption(error)
        return error
    }
}

/// Seals the segments of a blob of known size and sends them as the parts of one multipart upload, whose first
/// part begins with the header. Holds at most one part of ciphertext and one segment of plaintext.
private struct MultipartWriter {
    let client: S3Client
    let key: String
    let cipher: SegmentCipher
    let partSize: Int
    let uploadId: String
    private var segment: ByteBuffer
    private var part: ByteBuffer
    private var index: Int64 = 0
    private var etags: [String] = []

    init(client: S3Client, key: String, cipher: SegmentCipher, partSize: Int) async throws {
        self.client = client
        self.key = key
        self.cipher = cipher
        self.partSize = partSize
        self.uploadId = try await client.createMultipartUpload(key)
        segment = ByteBufferAllocator().buffer(capacity: cipher.header.segmentSize)
        part = ByteBufferAllocator().buffer(capacity: partSize + cipher.header.segmentSize + 64)
        part.writeBytes(cipher.header.encoded)
    }

    /// Takes all of `buffer`: full segments are sealed, full parts are sent.
    mutating func write(_ buffer: inout ByteBuffer) async throws {
        let segmentSize = cipher.header.segmentSize
        while buffer.readableBytes > 0 {
            var slice = buffer.readSlice(length: min(buffer.readableBytes, segmentSize - segment.readableBytes))!
            segment.writeBuffer(&slice)
            if segment.readableBytes == segmentSize { try await sealSegment() }
        }
    }

    /// Seals what remains, sends the last part and completes the upload: the object appears whole.
    mutating func finish() async throws {
        if segment.readableBytes > 0 || index < cipher.header.segmentCount { try await sealSegment() }
        if part.readableBytes > 0 { try await sendPart() }
        try await client.completeMultipartUpload(key, uploadId: uploadId, parts: etags)
    }

    /// Frees the parts sent so far; nothing becomes visible.
    func abort() async {
        try? await client.abortMultipartUpload(key, uploadId: uploadId)
    }

    private mutating func sealSegment() async throws {
        guard index < cipher.header.segmentCount else {
            throw RegistryError(.internalError, "More segments than the blob's size allows.")
        }
        try cipher.seal(segment, index: index, final: index == cipher.header.segmentCount - 1, appendingTo: &part)
        index += 1
        segment.clear()
        if part.readableBytes >= partSize { try await sendPart() }
    }

    private mutating func sendPart() async throws {
        etags.append(try await client.uploadPart(key, uploadId: uploadId, number: etags.count + 1, body: part))
        part.clear()
    }
}

/// Opens the sealed segments of a ranged `GET` as they stream in, and cuts them to the requested bounds.
///
/// Unchecked: a blob stream is consumed by one reader at a time, one `next` after another, which is how every
/// `ByteStream` consumer here reads.
private final class SegmentReader: @unchecked Sendable {
    private var iterator: ByteStream.AsyncIterator
    private let cipher: SegmentCipher
    private let bounds: Range<Int64>
    private let last: Int64
    private var index: Int64
    private var carry: ByteBuffer

    /// Reads `segments` from `body`, which starts with `carry` (bytes already read from it).
    init(
        body: ByteStream.AsyncIterator, carry: ByteBuffer = ByteBuffer(), cipher: SegmentCipher, bounds: Range<Int64>,
        segments: ClosedRange<Int64>
    ) {
        self.iterator = body
        self.carry = carry
        self.cipher = cipher
        self.bounds = bounds
        self.index = segments.lowerBound
        self.last = segments.upperBound
    }

    /// The plaintext of the next segment within the bounds, nil after the last.
    func next() async throws -> ByteBuffer? {
        guard index <= last else { return nil }
        let length = cipher.header.plaintextLength(ofSegment: index) + BlobFileHeader.tagByteCount
        while carry.readableBytes < length {
            guard var more = try await iterator.next() else { throw cipher.corrupt(segment: index, "it is cut short") }
            carry.writeBuffer(&more)
        }
        let stored = carry.readSlice(length: length)!
        if carry.readerIndex >= 4 << 20 { carry.discardReadBytes() }
        let plaintext = try cipher.open(stored: stored, index: index)
        defer { index += 1 }
        return cipher.header.slice(plaintext, segment: index, to: bounds)
    }
}
