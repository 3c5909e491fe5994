import Foundation
import NIOCore
import RegistryCore

import struct Crypto.SHA256

extension RegistryClient {
    /// Uploads `files` as a new version of `model` and returns it (status `pending`).
    ///
    /// Each file is read once, sequentially, in 8 MiB blocks and cut into content-defined chunks (`chunking`); the
    /// whole-file hash and the chunk hashes run in parallel with the next read. As chunks are found they are checked
    /// in batches (`POST /v1/blobs/check`) and the missing ones are uploaded `concurrency` at a time, so an
    /// interrupted push that is run again sends only what the registry lacks. Then the manifest is stored, signed by
    /// `sign` when given, and the version created. Memory stays near `concurrency` × the largest chunk.
    public func push(
        model: String, files: [PushFile], chunking: ContentDefinedChunker.Parameters = .default,
        concurrency: Int = 8, metadata: JSONValue? = nil, tags: [String: String]? = nil,
        source: VersionSource? = nil, sign: PushSigner? = nil, progress: TransferProgress? = nil
    ) async throws -> PushResult {
        guard concurrency > 0 else { throw RegistryError.invalidArgument("concurrency must be positive.") }
        var total: Int64 = 0
        for file in files { total += try await LocalFile.open(file.url.standardizedFileURL.path).length() }
        let counter = ProgressCounter(total: total, report: progress)
        let (found, continuation) = AsyncStream<ChunkLocation>.makeStream()
        let (entries, tally) = try await withThrowingTaskGroup(of: PushStage.self) { group in
            group.addTask {
                defer { continuation.finish() }
                return .scanned(try await Self.scan(files, chunking: chunking) { continuation.yield($0) })
            }
            group.addTask {
                .uploaded(try await self.uploadMissing(found, concurrency: concurrency, counter: counter))
            }
            var entries: [Manifest.File] = []
            var tally = UploadTally()
            for try await stage in group {
                switch stage {
                case .scanned(let scanned): entries = scanned
                case .uploaded(let uploaded): tally = uploaded
                }
            }
            return (entries, tally)
        }
        let manifest = Manifest(files: entries)
        try manifest.validate()
        let manifestDigest = try await putManifest(manifest)
        let signature = try await sign?(manifest, manifestDigest)
        let version = try await createVersion(
            model: model, manifestDigest: manifestDigest, metadata: metadata, tags: tags, source: source,
            signature: signature)
        return PushResult(
            version: version, manifestDigest: manifestDigest, manifest: manifest,
            chunkCount: manifest.chunkDigests.count, uploadedChunks: tally.chunks, uploadedBytes: tally.bytes)
    }

    private enum PushStage: Sendable {
        case scanned([Manifest.File])
        case uploaded(UploadTally)
    }

    private struct UploadTally: Sendable {
        var chunks = 0
        var bytes: Int64 = 0
    }

    /// Chunks checked per `POST /v1/blobs/check` while scanning (about 64 MiB of data at the default sizes).
    static let checkBatch = 64

    /// Checks the chunks the scan finds in batches and uploads the missing ones, each distinct digest once.
    private func uploadMissing(
        _ found: AsyncStream<ChunkLocation>, concurrency: Int, counter: ProgressCounter
    ) async throws -> UploadTally {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var tally = UploadTally()
            var seen = Set<Digest>()
            var batch: [ChunkLocation] = []
            var running = 0
            var finished = false
            var iterator = found.makeAsyncIterator()
            while !finished {
                if let chunk = await iterator.next() {
                    if seen.insert(chunk.digest).inserted { batch.append(chunk) } else { counter.add(chunk.size) }
                    if batch.count < Self.checkBatch { continue }
                } else {
                    finished = true
                }
                try Task.checkCancellation()
                let missing = Set(try await missingBlobs(batch.map(\.digest)))
                for chunk in batch {
                    guard missing.contains(chunk.digest) else {
                        counter.add(chunk.size)
                        continue
                    }
                    if running >= concurrency {
                        try await group.next()
                        running -= 1
                    }
                    group.addTask { try await self.upload(chunk, counter: counter) }
                    running += 1
                    tally.chunks += 1
                    tally.bytes += chunk.size
                }
                batch.removeAll(keepingCapacity: true)
            }
            try await group.waitForAll()
            return tally
        }
    }

    private func upload(_ chunk: ChunkLocation, counter: ProgressCounter) async throws {
        let handle = try await LocalFile.open(chunk.path)
        let bytes = try await handle.read(at: chunk.offset, length: Int(chunk.size))
        guard bytes.readableBytes == Int(chunk.size) else {
            throw RegistryError.invalidArgument("\(chunk.path) got shorter while it was being pushed.")
        }
        try await putBlob(chunk.digest, size: chunk.size, body: .buffers([bytes]))
        counter.add(chunk.size)
    }

    /// Hashes and chunks `files` in order, calling `found` for each chunk as soon as it is complete.
    static func scan(
        _ files: [PushFile], chunking: ContentDefinedChunker.Parameters,
        found: @Sendable (ChunkLocation) -> Void
    ) async throws -> [Manifest.File] {
        var buffers = (ReadBuffer(capacity: readSize), ReadBuffer(capacity: readSize))
        var entries: [Manifest.File] = []
        for file in files {
            entries.append(try await scan(file, chunking: chunking, buffers: &buffers, found: found))
        }
        return entries
    }

    /// One file: reads block N+1 and hashes the whole file over block N while cutting and hashing chunks of block N.
    private static func scan(
        _ file: PushFile, chunking: ContentDefinedChunker.Parameters, buffers: inout (ReadBuffer, ReadBuffer),
        found: @Sendable (ChunkLocation) -> Void
    ) async throws -> Manifest.File {
        let path = file.url.standardizedFileURL.path
        let handle = try await LocalFile.open(path)
        var chunker = ContentDefinedChunker(parameters: chunking)
        var fileHasher = SHA256()
        var chunkHasher = SHA256()
        var chunks: [Manifest.Chunk] = []
        var chunkStart: Int64 = 0
        var offset: Int64 = 0
        var count = try await handle.read(into: buffers.0, at: 0)
        func complete(length: Int) {
            let chunk = ChunkLocation(
                digest: Digest(finalized: chunkHasher.finalize()), size: Int64(length), path: path, offset: chunkStart)
            chunks.append(Manifest.Chunk(digest: chunk.digest, size: chunk.size))
            found(chunk)
            chunkStart += Int64(length)
            chunkHasher = SHA256()
        }
        while count > 0 {
            try Task.checkCancellation()
            let current = buffers.0
            let spare = buffers.1
            let next = offset + Int64(count)
            async let nextCount = handle.read(into: spare, at: next)
            async let hashed = Self.hash(current, into: fileHasher)
            let bytes = current.bytes
            var position = 0
            for length in chunker.cuts(in: bytes) {
                let end = Int(chunkStart + Int64(length) - offset)
                chunkHasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[position..<end]))
                complete(length: length)
                position = end
            }
            chunkHasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[position...]))
            fileHasher = await hashed
            count = try await nextCount
            offset = next
            buffers = (spare, current)
        }
        if let last = chunker.finish() { complete(length: last) }
        return Manifest.File(
            path: file.path, size: offset, digest: Digest(finalized: fileHasher.finalize()), chunks: chunks)
    }

    private static func hash(_ buffer: ReadBuffer, into hasher: SHA256) -> SHA256 {
        var hasher = hasher
        hasher.update(bufferPointer: buffer.bytes)
        return hasher
    }
}
