import Foundation
import NIOCore
import RegistryCore

import enum Crypto.AES
import struct Crypto.SHA256
import struct Crypto.SymmetricKey

/// Seals and opens the segments of one stored blob under its data key (see `BlobFileHeader` for the format).
package struct SegmentCipher: Sendable {
    package let header: BlobFileHeader
    package let digest: Digest
    private let key: SymmetricKey
    private let middleAAD: [UInt8]
    private let finalAAD: [UInt8]

    package init(header: BlobFileHeader, key: SymmetricKey, digest: Digest) {
        self.header = header
        self.key = key
        self.digest = digest
        self.middleAAD = header.authenticatedData(digest: digest, final: false)
        self.finalAAD = header.authenticatedData(digest: digest, final: true)
    }

    /// Seals `plaintext` as segment `index` and appends the stored form (ciphertext ‖ tag) to `output`.
    package func seal(_ plaintext: ByteBuffer, index: Int64, final: Bool, appendingTo output: inout ByteBuffer) throws {
        try seal(plaintext, index: index, final: final) { output.writeBytes($0) }
    }

    /// Seals `plaintext` as segment `index` and hands `store` the ciphertext followed by its tag.
    private func seal(
        _ plaintext: ByteBuffer, index: Int64, final: Bool, _ store: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let box = try plaintext.withUnsafeReadableBytes { bytes in
            try AES.GCM.seal(
                bytes, using: key, nonce: header.nonce(ofSegment: index), authenticating: final ? finalAAD : middleAAD)
        }
        // The combined form is nonce ‖ ciphertext ‖ tag; the nonce is derived, so only the rest is stored.
        guard let combined = box.combined else {
            throw RegistryError(.internalError, "Sealing segment \(index) of \(digest) produced no combined form.")
        }
        try combined.withUnsafeBytes { raw in
            try store(UnsafeRawBufferPointer(rebasing: raw[BlobFileHeader.nonceByteCount...]))
        }
    }

    /// Opens segment `index` from its stored form (ciphertext ‖ tag). Throws `BLOB_CORRUPT` naming the blob and
    /// the segment when it is cut short or does not authenticate.
    package func open(stored: ByteBuffer, index: Int64) throws -> ByteBuffer {
        let sealedLength = header.plaintextLength(ofSegment: index) + BlobFileHeader.tagByteCount
        guard stored.readableBytes == sealedLength else { throw corrupt(segment: index, "it is cut short") }
        var combined = Data(capacity: BlobFileHeader.nonceByteCount + sealedLength)
        header.nonce(ofSegment: index).withUnsafeBytes { combined.append(contentsOf: $0) }
        stored.withUnsafeReadableBytes { combined.append(contentsOf: $0) }
        return try open(combined: combined, index: index)
    }

    /// Opens nonce ‖ ciphertext ‖ tag of segment `index`.
    private func open(combined: Data, index: Int64) throws -> ByteBuffer {
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(combined: combined)
            let final = index == header.segmentCount - 1
            plaintext = try AES.GCM.open(box, using: key, authenticating: final ? finalAAD : middleAAD)
        } catch {
            throw corrupt(segment: index, "it fails authentication")
        }
        var buffer = ByteBufferAllocator().buffer(capacity: plaintext.count)
        plaintext.withUnsafeBytes { _ = buffer.writeBytes($0) }
        return buffer
    }

    /// The error for a segment that cannot be trusted.
    package func corrupt(segment index: Int64, _ reason: String) -> RegistryError {
        let start = index * Int64(header.segmentSize)
        return RegistryError(
            .blobCorrupt,
            "Blob \(digest) is corrupt in storage: segment \(index) (plaintext bytes from \(start)) \(reason).",
            details: [
                "digest": .string(digest.description), "segment": .number(Double(index)),
                "offset": .number(Double(start)),
            ])
    }
}
