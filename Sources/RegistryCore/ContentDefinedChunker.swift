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
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), !bytes.isEmpty else { return [] }
        var result: [Int] = []
        var index = 0
        let count = bytes.count
        let minimum = parameters.minimumSize
        let average = parameters.averageSize
        let maximum = parameters.maximumSize
        let strictMask = strictMask
        let looseMask = looseMask
        var fingerprint = fingerprint
        var pending = pending
        // The same cuts as testing each byte with `pending <= average ? strictMask : looseMask` and cutting at the
        // maximum, but with one loop per mask, the table read through a pointer and the state in locals: the loops
        // are then little more than the hash's own shift and add (about half the cost of the one-loop form).
        let gear = Gear.words.pointer
        while index < count {
            // Skip the bytes before the minimum size: no cut may fall there, so they need no hashing.
            if pending < minimum {
                let skip = min(minimum - pending, count - index)
                pending += skip
                index += skip
                if pending < minimum { break }
                fingerprint = 0
            }
            guard index < count else { break }
            if pending >= maximum {
                // Only when the minimum equals the maximum: the one-loop form always hashed one more byte.
                index += 1
                result.append(pending + 1)
                pending = 0
                fingerprint = 0
                continue
            }
            let start = index
            var cut = false
            // Bytes that leave the chunk at most `average` long are tested against the strict mask…
            let strictEnd = index + min(max(average - pending, 0), count - index)
            while index < strictEnd {
                fingerprint = (fingerprint &<< 1) &+ gear[Int(base[index])]
                index += 1
                if fingerprint & strictMask == 0 {
                    cut = true
                    break
                }
            }
            // …the rest, up to the maximum length, against the loose one.
            if !cut {
                let looseEnd = index + min(max(maximum - (pending + index - start), 0), count - index)
                while index < looseEnd {
                    fingerprint = (fingerprint &<< 1) &+ gear[Int(base[index])]
                    index += 1
                    if fingerprint & looseMask == 0 {
                        cut = true
                        break
                    }
                }
            }
            pending += index - start
            if cut || pending >= maximum {
                result.append(pending)
                pending = 0
                fingerprint = 0
            }
        }
        self.fingerprint = fingerprint
        self.pending = pending
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

/// The gear table: 256 pseudo-random words from SplitMix64 with a fixed seed. Never change it. It lives in memory that
/// is never freed, so the chunking loops index it without retains or bounds checks.
enum Gear {
    static let words = Words()

    struct Words: @unchecked Sendable {  // immutable after init
        let pointer: UnsafePointer<UInt64>

        init() {
            let memory = UnsafeMutablePointer<UInt64>.allocate(capacity: 256)
            var state: UInt64 = 0x6d6f_6465_6c2d_7265  // "model-re"
            for index in 0..<256 {
                state &+= 0x9e37_79b9_7f4a_7c15
                var z = state
                z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
                z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
                (memory + index).initialize(to: z ^ (z >> 31))
            }
            pointer = UnsafePointer(memory)
        }
    }
}
