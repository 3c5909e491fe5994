import RegistryCore
import Testing

@Suite(.timeLimit(.minutes(10))) struct ContentDefinedChunkerTests {
    static let small = ContentDefinedChunker.Parameters(
        minimumSize: 2 << 10, averageSize: 8 << 10, maximumSize: 32 << 10)

    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        // Through a pointer: `map` is slow enough in a debug build to hold a cooperative thread for seconds.
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var index = 0
            while index < count {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                buffer[index] = UInt8(truncatingIfNeeded: state >> 33)
                index &+= 1
            }
            initialized = count
        }
    }

    @Test func chunksCoverTheInputAndRespectTheBounds() {
        let bytes = Self.random(1 << 20, seed: 1)
        let lengths = ContentDefinedChunker.chunkLengths(of: bytes, parameters: Self.small)
        #expect(lengths.reduce(0, +) == bytes.count)
        #expect(lengths.dropLast().allSatisfy { $0 >= Self.small.minimumSize && $0 <= Self.small.maximumSize })
        let average = bytes.count / lengths.count
        #expect(average > Self.small.minimumSize && average < Self.small.maximumSize)
    }

    @Test func boundariesDoNotDependOnHowTheStreamIsSplit() {
        let bytes = Self.random(300_000, seed: 2)
        let whole = ContentDefinedChunker.chunkLengths(of: bytes, parameters: Self.small)
        var chunker = ContentDefinedChunker(parameters: Self.small)
        var pieces: [Int] = []
        var offset = 0
        for size in [1, 7, 4096, 10_000, 333, 65_536] + Array(repeating: 50_000, count: 10) where offset < bytes.count {
            let end = min(bytes.count, offset + size)
            pieces += chunker.cuts(in: Array(bytes[offset..<end]))
            offset = end
        }
        if offset < bytes.count { pieces += chunker.cuts(in: Array(bytes[offset...])) }
        if let last = chunker.finish() { pieces.append(last) }
        #expect(pieces == whole)
    }

    @Test func anInsertionOnlyChangesTheChunksAroundIt() {
        let original = Self.random(1 << 20, seed: 3)
        var edited = original
        edited.insert(contentsOf: Self.random(1000, seed: 4), at: 500_000)
        func chunks(_ bytes: [UInt8]) -> Set<Digest> {
            var offset = 0
            var result = Set<Digest>()
            for length in ContentDefinedChunker.chunkLengths(of: bytes, parameters: Self.small) {
                result.insert(Digest(of: bytes[offset..<offset + length]))
                offset += length
            }
            return result
        }
        let before = chunks(original)
        let after = chunks(edited)
        let changed = after.subtracting(before).count
        #expect(changed <= 4, "an insertion of 1000 bytes changed \(changed) of \(after.count) chunks")
    }

    @Test func theBoundariesAreFrozen() {
        // Boundaries of a fixed input must never change: stored artifacts would stop deduplicating. These values
        // were recorded from the first implementation (the `Reference` below).
        let small = ContentDefinedChunker.chunkLengths(of: Self.random(200_000, seed: 5), parameters: Self.small)
        #expect(small == Self.pinnedSmall)
        let large = ContentDefinedChunker.chunkLengths(of: Self.random(12 << 20, seed: 6))
        #expect(large.count == Self.pinnedLargeCount)
        #expect(Self.fingerprint(large) == Self.pinnedLargeFingerprint)
    }

    static let pinnedSmall = [
        8911, 8771, 10092, 8878, 12277, 9145, 2201, 11090, 8589, 10981, 5802, 10468, 8742, 6950, 9229, 13658, 5432,
        9155,
        8289, 8865, 12151, 6838, 3486,
    ]
    static let pinnedLargeCount = 12
    static let pinnedLargeFingerprint: UInt64 = 18_404_832_364_866_660_263

    static func fingerprint(_ lengths: [Int]) -> UInt64 {
        lengths.reduce(14_695_981_039_346_656_037) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
    }

    @Test(arguments: [
        ContentDefinedChunker.Parameters(minimumSize: 2 << 10, averageSize: 8 << 10, maximumSize: 32 << 10),
        ContentDefinedChunker.Parameters(minimumSize: 1, averageSize: 1, maximumSize: 1),
        ContentDefinedChunker.Parameters(minimumSize: 1, averageSize: 64, maximumSize: 64),
        ContentDefinedChunker.Parameters(minimumSize: 100, averageSize: 128, maximumSize: 100_000),
        ContentDefinedChunker.Parameters(minimumSize: 4096, averageSize: 4096, maximumSize: 5000),
    ])
    func cutsMatchTheOneLoopReference(parameters: ContentDefinedChunker.Parameters) {
        for seed in UInt64(10)..<UInt64(16) {
            let bytes = Self.random(60_000 + Int(seed) * 997, seed: seed)
            var chunker = ContentDefinedChunker(parameters: parameters)
            var reference = Reference(parameters: parameters)
            var cuts: [Int] = []
            var expected: [Int] = []
            var offset = 0
            var size = Int(seed) * 31
            while offset < bytes.count {
                let end = min(bytes.count, offset + size)
                cuts += chunker.cuts(in: Array(bytes[offset..<end]))
                expected += reference.cuts(in: bytes[offset..<end])
                offset = end
                size = (size * 7 + 13) % 20_011
            }
            if let last = chunker.finish() { cuts.append(last) }
            if reference.pending > 0 { expected.append(reference.pending) }
            let first =
                zip(cuts, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(cuts.count, expected.count)
            #expect(
                cuts.count == expected.count && first == cuts.count,
                "seed \(seed): \(cuts.count) cuts, \(expected.count) expected, first difference at \(first)")
        }
    }

    /// The first implementation: one loop that picks the mask for every byte.
    struct Reference {
        let parameters: ContentDefinedChunker.Parameters
        let strictMask: UInt64
        let looseMask: UInt64
        var fingerprint: UInt64 = 0
        var pending = 0

        init(parameters: ContentDefinedChunker.Parameters) {
            self.parameters = parameters
            let bits = parameters.averageSize.trailingZeroBitCount
            func highBits(_ count: Int) -> UInt64 {
                count >= 64 ? .max : ((UInt64(1) << UInt64(count)) - 1) << UInt64(64 - count)
            }
            strictMask = highBits(bits + 2)
            looseMask = highBits(max(1, bits - 2))
        }

        mutating func cuts(in bytes: ArraySlice<UInt8>) -> [Int] {
            var result: [Int] = []
            var index = bytes.startIndex
            while index < bytes.endIndex {
                if pending < parameters.minimumSize {
                    let skip = min(parameters.minimumSize - pending, bytes.endIndex - index)
                    pending += skip
                    index += skip
                    if pending < parameters.minimumSize { break }
                    fingerprint = 0
                }
                var cut = false
                while index < bytes.endIndex {
                    fingerprint = (fingerprint &<< 1) &+ Self.gear[Int(bytes[index])]
                    index += 1
                    pending += 1
                    let mask = pending <= parameters.averageSize ? strictMask : looseMask
                    if fingerprint & mask == 0 || pending >= parameters.maximumSize {
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

        static let gear: [UInt64] = {
            var state: UInt64 = 0x6d6f_6465_6c2d_7265
            return (0..<256).map { _ in
                state &+= 0x9e37_79b9_7f4a_7c15
                var z = state
                z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
                z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
                return z ^ (z >> 31)
            }
        }()
    }
}
