import NIOCore
import RegistryCore

/// Turns a plaintext upload into the stored form of a blob whose size the header already holds: the header, then
/// each segment sealed as soon as it is complete. Checks the upload as it goes (`UploadCheck`) and ends only after
/// all of it matched, so a driver, which commits only a body that ended, never stores a failed upload.
/// Holds at most one segment of plaintext.
///
/// Unchecked: the driver reading the stream calls `next` one call after another, never concurrently.
final class SegmentSealer: @unchecked Sendable {
    private var input: ByteStream.AsyncIterator
    private var check: UploadCheck
    private let cipher: SegmentCipher
    private var headerSent = false
    private var inputEnded = false
    private var carry = ByteBuffer()
    private var segment: ByteBuffer
    private var index: Int64 = 0

    init(input: ByteStream, check: UploadCheck, cipher: SegmentCipher) {
        self.input = input.makeAsyncIterator()
        self.check = check
        self.cipher = cipher
        self.segment = ByteBufferAllocator().buffer(capacity: cipher.header.segmentSize)
    }

    /// The stored form, element by element.
    var stream: ByteStream {
        ByteStream(makeNext: { [self] in { try await self.next() } })
    }

    private func next() async throws -> ByteBuffer? {
        let header = cipher.header
        if !headerSent {
            headerSent = true
            return ByteBuffer(bytes: header.encoded)
        }
        if index < header.segmentCount {
            let wanted = header.plaintextLength(ofSegment: index)
            while segment.readableBytes < wanted {
                if carry.readableBytes == 0 {
                    guard !inputEnded, let more = try await input.next() else {
                        inputEnded = true
                        break
                    }
                    try check.consume(more)
                    carry = more
                    continue
                }
                var slice = carry.readSlice(length: min(carry.readableBytes, wanted - segment.readableBytes))!
                segment.writeBuffer(&slice)
            }
            if segment.readableBytes == wanted {
                var stored = ByteBufferAllocator().buffer(capacity: wanted + BlobFileHeader.tagByteCount)
                try cipher.seal(segment, index: index, final: index == header.segmentCount - 1, appendingTo: &stored)
                segment.clear()
                index += 1
                return stored
            }
        }
        // Every declared byte is sealed (or the upload ended early): more bytes, a short upload or the wrong
        // digest fail here, before the stream ends.
        while !inputEnded {
            guard let more = try await input.next() else {
                inputEnded = true
                break
            }
            try check.consume(more)
        }
        _ = try check.finish()
        return nil
    }
}

/// Opens the sealed segments of a stored blob as they stream in, and cuts them to the requested bounds.
///
/// Unchecked: a blob stream is consumed by one reader at a time, one `next` after another, which is how every
/// `ByteStream` consumer here reads.
final class SegmentReader: @unchecked Sendable {
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
            if carry.readableBytes == 0 {
                carry = more  // no copy when a piece starts a segment
            } else {
                carry.writeBuffer(&more)
            }
        }
        let stored = carry.readSlice(length: length)!
        if carry.readerIndex >= 4 << 20 { carry.discardReadBytes() }
        let plaintext = try cipher.open(stored: stored, index: index)
        defer { index += 1 }
        return cipher.header.slice(plaintext, segment: index, to: bounds)
    }
}
