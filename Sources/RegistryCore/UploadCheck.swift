import Crypto
import NIOCore

/// What every blob store checks of an upload: the bytes hash to the claimed digest, and they number the expected
/// size when one was declared. Fed buffer by buffer as the upload streams, so that too many bytes are refused at
/// once; `finish` gives the verdict at the end.
public struct UploadCheck {
    public let digest: Digest
    public let expectedSize: Int64?
    /// The bytes seen so far.
    public private(set) var total: Int64 = 0
    private var hasher = SHA256()

    public init(digest: Digest, expectedSize: Int64?) {
        self.digest = digest
        self.expectedSize = expectedSize
    }

    /// Hashes and counts `buffer`; throws `SIZE_MISMATCH` as soon as there are more bytes than expected.
    public mutating func consume(_ buffer: ByteBuffer) throws {
        buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        total += Int64(buffer.readableBytes)
        if let expectedSize, total > expectedSize { throw Self.sizeMismatch(expected: expectedSize, received: total) }
    }

    /// Throws `DIGEST_MISMATCH` or `SIZE_MISMATCH` unless the whole upload matched; returns its size.
    public func finish() throws -> Int64 {
        let actual = Digest(finalized: hasher.finalize())
        guard actual == digest else {
            throw RegistryError(
                .digestMismatch, "The bytes hash to \(actual), not \(digest).",
                details: ["expected": .string(digest.description), "actual": .string(actual.description)])
        }
        if let expectedSize, expectedSize != total { throw Self.sizeMismatch(expected: expectedSize, received: total) }
        return total
    }

    private static func sizeMismatch(expected: Int64, received: Int64) -> RegistryError {
        RegistryError(
            .sizeMismatch, "Expected \(expected) bytes, received \(received > expected ? "more" : "\(received)").",
            details: ["expected": .number(Double(expected))])
    }
}
