import RegistryCore
import Testing

@Suite struct ContentDefinedChunkerTests {
    static let small = ContentDefinedChunker.Parameters(minimumSize: 2 << 10, averageSize: 8 << 10, maximumSize: 32 << 10)

    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
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

    @Test func theGearTableIsFrozen() {
        // Boundaries of a fixed input must never change: stored artifacts would stop deduplicating.
        let lengths = ContentDefinedChunker.chunkLengths(of: Self.random(200_000, seed: 5), parameters: Self.small)
        #expect(lengths.reduce(0, +) == 200_000)
        #expect(lengths == ContentDefinedChunker.chunkLengths(of: Self.random(200_000, seed: 5), parameters: Self.small))
        #expect(lengths.count > 5)
    }
}
