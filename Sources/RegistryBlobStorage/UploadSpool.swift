import Foundation
import NIOCore
import RegistryCore
import Synchronization

import enum Crypto.AES
import struct Crypto.SymmetricKey

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Holds an upload whose size is not declared until it has ended, so that its sealed object can start with a
/// header that states the size: in memory up to `inMemory` bytes, beyond that in a file of `directory`.
///
/// The file is unlinked as soon as it is created (only its open descriptor keeps it, so nothing is left behind by
/// a crash or an abandoned upload) and is written in records sealed with AES-256-GCM under a key that exists only
/// in this process's memory: plaintext never reaches the disk, as the blob store promises. Memory stays at one
/// record however large the upload.
struct UploadSpool: Sendable {
    /// The plaintext bytes of one record on disk.
    static let recordSize = 1 << 20

    let directory: String
    let inMemory: Int

    /// Reads `body` to its end and returns its size and a stream of the same bytes; throws `PAYLOAD_TOO_LARGE` past
    /// `limit` bytes.
    func hold(_ body: ByteStream, limit: Int64) async throws -> (size: Int64, bytes: ByteStream) {
        var gathered = ByteBuffer()
        var iterator = body.makeAsyncIterator()
        while gathered.readableBytes <= inMemory {
            guard var buffer = try await iterator.next() else {
                return (Int64(gathered.readableBytes), .buffers([gathered]))
            }
            gathered.writeBuffer(&buffer)
            try Self.check(Int64(gathered.readableBytes), limit: limit)
        }
        let file = try SpoolFile(directory: directory)
        var pending = gathered
        var size = Int64(gathered.readableBytes)
        while true {
            while pending.readableBytes >= Self.recordSize {
                try file.append(pending.readSlice(length: Self.recordSize)!)
            }
            guard var buffer = try await iterator.next() else { break }
            size += Int64(buffer.readableBytes)
            try Self.check(size, limit: limit)
            pending.writeBuffer(&buffer)
            pending.discardReadBytes()
        }
        if pending.readableBytes > 0 { try file.append(pending) }
        return (size, file.stream())
    }

    private static func check(_ size: Int64, limit: Int64) throws {
        guard size <= limit else {
            throw RegistryError(.payloadTooLarge, "A blob is at most \(limit) bytes.")
        }
    }
}

/// The unlinked, sealed file behind an `UploadSpool`; closed when the last stream reading it is gone.
private final class SpoolFile: Sendable {
    let descriptor: Int32
    let path: String
    let key = SymmetricKey(size: .bits256)
    /// Where the next record goes (written only while spooling, then read only by one stream).
    private let end = Mutex<Int64>(0)

    init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/spool-" + UUID().uuidString
        descriptor = try POSIXFile.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
        try? POSIXFile.unlink(path)
    }

    deinit {
        close(descriptor)
    }

    /// Seals `plaintext` and appends it as one record: its sealed length (4 bytes, big-endian), then nonce,
    /// ciphertext and tag.
    func append(_ plaintext: ByteBuffer) throws {
        let sealed = try plaintext.withUnsafeReadableBytes { try AES.GCM.seal($0, using: key) }.combined!
        var record = ByteBuffer()
        record.writeInteger(UInt32(sealed.count))
        record.writeBytes(sealed)
        try end.withLock { end in
            try record.withUnsafeReadableBytes { try POSIXFile.writeAll(descriptor, $0, offset: end, path: path) }
            end += Int64(record.readableBytes)
        }
    }

    /// The records in order, opened; a record that does not open is reported as the storage failing.
    func stream() -> ByteStream {
        ByteStream(makeNext: {
            var offset: Int64 = 0
            return { [self] in
                guard offset < end.withLock({ $0 }) else { return nil }
                var length = try POSIXFile.read(descriptor, offset: offset, length: 4, path: path)
                guard let count = length.readInteger(as: UInt32.self) else { throw truncated() }
                let record = try POSIXFile.read(descriptor, offset: offset + 4, length: Int(count), path: path)
                guard record.readableBytes == Int(count) else { throw truncated() }
                offset += 4 + Int64(count)
                do {
                    let plaintext = try record.withUnsafeReadableBytes {
                        try AES.GCM.open(AES.GCM.SealedBox(combined: $0), using: key)
                    }
                    return ByteBuffer(bytes: plaintext)
                } catch {
                    throw RegistryError(.internalError, "The spooled upload at \(path) does not open: \(error).")
                }
            }
        })
    }

    private func truncated() -> RegistryError {
        RegistryError(.internalError, "The spooled upload at \(path) ends early.")
    }
}
