import Foundation

/// Splits a byte stream into content-defined chunks (FastCDC with normalized chunking), so that bytes shared with
/// an earlier version of a file produce the same chunks even when data before them changed size.
///
/// Boundaries depend only on the bytes and on `Parameters`; the gear table is derived from a fixed seed and must
/// never change, or every stored artifact would stop deduplicating against new uploads.
public struct ContentDefinedChunker: Sendable {
    public struct Parameters: Sendable, Equatable {
        public var minimumSize: Int
        public var averageSize: Int
        public var maximumSize: Int

        /// 256 KiB / 1 MiB / 4 MiB: small enough that a changed tensor dirties little, large enough that a 5 GB
        /// model is about 5 000 requests.
        public static let `default` = Parameters(minimumSize: 256 << 10, averageSize: 1 << 20, maximumSize: 4 << 20)

        public init(minimumSize: Int, averageSize: Int, maximumSize: Int) {
            precondition(minimumSize > 0 && minimumSize <= averageSize && averageSize <= maximumSize)
            precondition(averageSize.nonzeroBitCount == 1, "the average size is a power of two")
            self.minimumSize = minimumSize
            self.averageSize = averageSize
            self.maximumSize = maximumSize
        }
    }

    public let parameters: Parameters
    private let strictMask: UInt64
    private let looseMask: UInt64
    private var fingerprint: UInt64 = 0
    /// Bytes of the current (unfinished) chunk seen so far.
    public private(set) var pending: Int = 0

    public init(parameters: Parameters = .default) {
        self.parameters = parameters
        let bits = parameters.averageSize.trailingZeroBitCount
        // Normalization level 2: harder to cut before the average size, easier after it. The mask uses the
        // high bits, which depend on the last 64 bytes; the low bits of a gear hash see only the last few.
        strictMask = Self.highBits(bits + 2)
        looseMask = Self.highBits(max(1, bits - 2))
    }

    /// Feeds `bytes` and returns the lengths of the chunks completed inside them, in order. The bytes after the
    /// last completed chunk stay pending; call `finish()` at the end of the stream for the final chunk.
    public mutating func cuts(in bytes: UnsafeRawBufferPointer) -> [Int] {
        var result: [Int] = []
        var index = 0
        let count = bytes.count
        let minimum = parameters.minimumSize
        let average = parameters.averageSize
        let maximum = parameters.maximumSize
        let table = Gear.table
        while index < count {
            // Skip the bytes before the minimum size: no cut may fall there, so they need no hashing.
            if pending < minimum {
                let skip = min(minimum - pending, count - index)
                pending += skip
                index += skip
                if pending < minimum { break }
                fingerprint = 0
            }
            var cut = false
            while index < count {
                fingerprint = (fingerprint &<< 1) &+ table[Int(bytes[index])]
                index += 1
                pending += 1
                let mask = pending <= average ? strictMask : looseMask
                if fingerprint & mask == 0 || pending >= maximum {
                    cut = true
                    break
                }
            }
            if cut {
                result.append(pending)
                pending = 0
                fingerprint = 0
            }
        }
        return result
    }

    /// Feeds `bytes` (any contiguous collection) and returns completed chunk lengths.
    public mutating func cuts(in bytes: some ContiguousBytes) -> [Int] {
        bytes.withUnsafeBytes { cuts(in: $0) }
    }

    /// Ends the stream: returns the length of the final chunk, or nil when no bytes are pending.
    public mutating func finish() -> Int? {
        defer {
            pending = 0
            fingerprint = 0
        }
        return pending > 0 ? pending : nil
    }

    /// Chunk lengths of a whole in-memory buffer.
    public static func chunkLengths(of bytes: [UInt8], parameters: Parameters = .default) -> [Int] {
        var chunker = ContentDefinedChunker(parameters: parameters)
        var lengths = chunker.cuts(in: bytes)
        if let last = chunker.finish() { lengths.append(last) }
        return lengths
    }

    private static func highBits(_ count: Int) -> UInt64 {
        count >= 64 ? .max : ((UInt64(1) << UInt64(count)) - 1) << UInt64(64 - count)
    }
}

/// The gear table: 256 pseudo-random words from SplitMix64 with a fixed seed. Never change it.
enum Gear {
    static let table: [UInt64] = {
        var state: UInt64 = 0x6d6f_6465_6c2d_7265  // "model-re"
        return (0..<256).map { _ in
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }()
}
