import Foundation
import NIOCore
import RegistryCore

import enum Crypto.AES
import struct Crypto.SHA256
import struct Crypto.SymmetricKey

/// The fixed 128-byte header of a blob file, and where its sealed segments lie.
///
/// A blob file is this header followed by the plaintext in segments of `segmentSize` bytes (the last may be
/// shorter; an empty blob has one empty segment), each stored as AES-256-GCM ciphertext followed by its 16-byte tag.
/// All integers are big-endian.
///
/// | offset | bytes | field |
/// |---|---|---|
/// | 0 | 4 | magic `MRBL` |
/// | 4 | 2 | format version (1) |
/// | 6 | 4 | segment size |
/// | 10 | 8 | nonce prefix (random per blob) |
/// | 18 | 8 | plaintext size |
/// | 26 | 1 | master key id length |
/// | 27 | 32 | master key id (UTF-8, zero-padded) |
/// | 59 | 60 | data key wrapped by the master key: AES-GCM nonce (12), ciphertext (32), tag (16) |
/// | 119 | 9 | zero |
///
/// Segment `i` is sealed under the blob's data key with the nonce `prefix ‖ UInt32(i)` and the authenticated data
/// `header[0..<18] ‖ digest hex ‖ final`, where `final` is 1 for the last segment and 0 otherwise; so a segment
/// moved, dropped, swapped with another blob's or cut short fails to open, and so does a changed size field. The
/// key fields are left out of the authenticated data so that `rewrap` can replace them without touching segments;
/// the wrapped key is itself authenticated (its AAD is `mrbl-dek:` ‖ key id).
package struct BlobFileHeader: Sendable, Equatable {
    static let magic: [UInt8] = Array("MRBL".utf8)
    static let formatVersion: UInt16 = 1
    package static let byteCount = 128
    package static let tagByteCount = 16
    static let nonceByteCount = 12
    static let maxKeyIdBytes = 32
    static let wrappedKeyByteCount = 60
    package static let maxSegmentSize = 1 << 20
    /// The largest plaintext a blob may hold (1 PiB): far above any chunk, low enough that offsets never overflow.
    package static let maxPlaintextSize: Int64 = 1 << 50
    /// The authenticated prefix: magic, version, segment size, nonce prefix.
    static let authenticatedByteCount = 18

    package var segmentSize: Int
    var noncePrefix: [UInt8]
    package var plaintextSize: Int64
    package var keyId: String
    package var wrappedKey: [UInt8]

    /// A header for a new blob sealed under a fresh `dataKey`, wrapped by `master`.
    package init(segmentSize: Int, dataKey: SymmetricKey, master: MasterKey) throws {
        var random = SystemRandomNumberGenerator()
        self.segmentSize = segmentSize
        self.noncePrefix = (0..<8).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        self.plaintextSize = 0
        self.keyId = master.id
        self.wrappedKey = try Self.wrap(dataKey, under: master)
    }

    /// Parses a header; returns a reason when the bytes are not a valid header.
    package init(parsing bytes: [UInt8]) throws(HeaderProblem) {
        guard bytes.count >= Self.byteCount else { throw HeaderProblem("the file is shorter than its header") }
        guard Array(bytes[0..<4]) == Self.magic else { throw HeaderProblem("the file does not start with MRBL") }
        let version = UInt16(bytes[4]) << 8 | UInt16(bytes[5])
        guard version == Self.formatVersion else { throw HeaderProblem("unknown format version \(version)") }
        segmentSize = Int(Self.integer(bytes[6..<10]))
        guard segmentSize > 0, segmentSize <= Self.maxSegmentSize else {
            throw HeaderProblem("invalid segment size \(segmentSize)")
        }
        noncePrefix = Array(bytes[10..<18])
        plaintextSize = Int64(bitPattern: Self.integer(bytes[18..<26]))
        // A forged size must not overflow the segment arithmetic below (an S3 object is not trusted).
        guard plaintextSize >= 0, plaintextSize <= Self.maxPlaintextSize else {
            throw HeaderProblem("plaintext size \(plaintextSize) out of range")
        }
        let idLength = Int(bytes[26])
        guard idLength > 0, idLength <= Self.maxKeyIdBytes else { throw HeaderProblem("invalid key id length") }
        keyId = String(decoding: bytes[27..<(27 + idLength)], as: UTF8.self)
        wrappedKey = Array(bytes[59..<(59 + Self.wrappedKeyByteCount)])
    }

    /// The 128 header bytes.
    package var encoded: [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(Self.byteCount)
        Self.append(UInt64(Self.formatVersion), bytes: 2, to: &bytes)
        Self.append(UInt64(segmentSize), bytes: 4, to: &bytes)
        bytes += noncePrefix
        Self.append(UInt64(plaintextSize), bytes: 8, to: &bytes)
        let id = Array(keyId.utf8)
        bytes.append(UInt8(id.count))
        bytes += id + [UInt8](repeating: 0, count: Self.maxKeyIdBytes - id.count)
        bytes += wrappedKey
        bytes += [UInt8](repeating: 0, count: Self.byteCount - bytes.count)
        return bytes
    }

    /// How many segments the file holds: at least one, so that even an empty blob carries an authenticated segment.
    package var segmentCount: Int64 {
        max(1, (plaintextSize + Int64(segmentSize) - 1) / Int64(segmentSize))
    }

    /// The file size this header implies.
    package var fileSize: Int64 {
        Int64(Self.byteCount) + plaintextSize + Int64(Self.tagByteCount) * segmentCount
    }

    /// Where segment `index` starts in the file.
    package func fileOffset(ofSegment index: Int64) -> Int64 {
        Int64(Self.byteCount) + index * Int64(segmentSize + Self.tagByteCount)
    }

    /// The plaintext bytes segment `index` holds.
    package func plaintextLength(ofSegment index: Int64) -> Int {
        Int(min(Int64(segmentSize), plaintextSize - index * Int64(segmentSize)))
    }

    /// The part of segment `index`'s plaintext that lies within `bounds` (plaintext offsets).
    package func slice(_ plaintext: ByteBuffer, segment index: Int64, to bounds: Range<Int64>) -> ByteBuffer {
        let start = index * Int64(segmentSize)
        let from = Int(max(bounds.lowerBound - start, 0))
        let to = Int(min(bounds.upperBound - start, Int64(plaintext.readableBytes)))
        guard from > 0 || to < plaintext.readableBytes else { return plaintext }
        return plaintext.getSlice(at: plaintext.readerIndex + from, length: max(to - from, 0)) ?? ByteBuffer()
    }

    /// The nonce of segment `index`: the blob's random prefix followed by the index.
    func nonce(ofSegment index: Int64) -> AES.GCM.Nonce {
        var bytes = noncePrefix
        Self.append(UInt64(index), bytes: 4, to: &bytes)
        return try! AES.GCM.Nonce(data: bytes)  // 12 bytes is always a valid GCM nonce.
    }

    /// The authenticated data of a segment of the blob `digest`.
    func authenticatedData(digest: Digest, final: Bool) -> [UInt8] {
        Array(encoded[0..<Self.authenticatedByteCount]) + Array(digest.hex.utf8) + [final ? 1 : 0]
    }

    /// Unwraps the data key with `master`, whose id must be `keyId`; throws when the wrapped key does not open.
    package func dataKey(using master: MasterKey) throws -> SymmetricKey {
        let box = try AES.GCM.SealedBox(combined: wrappedKey)
        let bytes = try AES.GCM.open(box, using: master.key, authenticating: Self.wrappingAAD(keyId))
        return SymmetricKey(data: bytes)
    }

    package static func wrap(_ dataKey: SymmetricKey, under master: MasterKey) throws -> [UInt8] {
        let bytes = dataKey.withUnsafeBytes { Array($0) }
        let box = try AES.GCM.seal(bytes, using: master.key, authenticating: wrappingAAD(master.id))
        guard let combined = box.combined, combined.count == wrappedKeyByteCount else {
            throw RegistryError(.internalError, "Wrapping a data key produced an unexpected size.")
        }
        return Array(combined)
    }

    private static func wrappingAAD(_ keyId: String) -> [UInt8] {
        Array("mrbl-dek:\(keyId)".utf8)
    }

    private static func integer(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    private static func append(_ value: UInt64, bytes count: Int, to bytes: inout [UInt8]) {
        for shift in stride(from: (count - 1) * 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }
}

/// Why bytes are not a valid blob file header.
package struct HeaderProblem: Error {
    package let reason: String
    init(_ reason: String) { self.reason = reason }
}
