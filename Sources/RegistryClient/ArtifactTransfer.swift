import Foundation
import NIOCore
import RegistryCore
import Synchronization

import struct Crypto.SHA256

/// Reports transfer progress as `(bytesDone, bytesTotal)`; called from any task.
public typealias TransferProgress = @Sendable (_ bytesDone: Int64, _ bytesTotal: Int64) -> Void

/// What a push did: the new version, its manifest, and how much actually travelled.
public struct PushResult: Sendable {
    public var version: ModelVersion
    public var manifestDigest: Digest
    public var manifest: Manifest
    /// Distinct chunks the manifest lists.
    public var chunkCount: Int
    /// Chunks that were missing on the registry and were uploaded.
    public var uploadedChunks: Int
    public var uploadedBytes: Int64
}

/// What a pull wrote.
public struct PullResult: Sendable {
    public var version: Int
    public var manifestDigest: Digest
    public var files: Int
    public var bytes: Int64
}

/// One local file to push and the path it gets in the manifest (relative, `/`-separated).
public struct PushFile: Sendable {
    public var path: String
    public var url: URL

    public init(path: String, url: URL) {
        self.path = path
        self.url = url
    }
}

extension RegistryClient {
    /// Uploads `files` as a new version of `model` and returns it (status `pending`).
    ///
    /// Each file is read once to hash it in `chunkSize` chunks, chunks the registry already holds are skipped, the
    /// rest are uploaded `concurrency` at a time, then the manifest and the version are created. Memory stays
    /// bounded by `concurrency` pieces of at most 1 MiB; no file is read into memory whole.
    public func push(
        model: String, files: [PushFile], chunkSize: Int = 8 * 1024 * 1024, concurrency: Int = 4,
        metadata: JSONValue? = nil, tags: [String: String]? = nil, source: VersionSource? = nil,
        progress: TransferProgress? = nil
    ) async throws -> PushResult {
        guard chunkSize > 0, concurrency > 0 else {
            throw RegistryError.invalidArgument("chunkSize and concurrency must be positive.")
        }
        var manifestFiles: [Manifest.File] = []
        var locations: [Digest: ChunkLocation] = [:]
        for file in files {
            let (entry, chunks) = try await Self.scan(file, chunkSize: chunkSize)
            manifestFiles.append(entry)
            for chunk in chunks where locations[chunk.digest] == nil { locations[chunk.digest] = chunk }
        }
        let manifest = Manifest(files: manifestFiles)
        try manifest.validate()
        let digests = manifest.chunkDigests
        let missing = try await missingBlobs(digests)
        let total = digests.reduce(Int64(0)) { $0 + (locations[$1]?.size ?? 0) }
        let counter = ProgressCounter(total: total, report: progress)
        let missingSet = Set(missing)
        counter.add(digests.filter { !missingSet.contains($0) }.reduce(Int64(0)) { $0 + (locations[$1]?.size ?? 0) })
        let uploads = missing.compactMap { locations[$0] }
        try await Self.forEach(uploads, concurrency: concurrency) { chunk in
            try await self.upload(chunk, counter: counter)
        }
        let manifestDigest = try await putManifest(manifest)
        let version = try await createVersion(
            model: model, manifestDigest: manifestDigest, metadata: metadata, tags: tags, source: source)
        return PushResult(
            version: version, manifestDigest: manifestDigest, manifest: manifest, chunkCount: digests.count,
            uploadedChunks: uploads.count, uploadedBytes: uploads.reduce(0) { $0 + $1.size })
    }

    /// Downloads the version a stage points at into `directory`; see `pull(model:version:to:)`.
    public func pull(
        model: String, stage: String, to directory: URL, concurrency: Int = 4, progress: TransferProgress? = nil
    ) async throws -> PullResult {
        guard let resolution = try await resolve(model: model, stage: stage) else {
            throw RegistryError(.internalError, "The registry answered 'not modified' to an unconditional resolve.")
        }
        return try await pull(
            manifestDigest: resolution.stable.manifestDigest, version: resolution.stable.version, to: directory,
            concurrency: concurrency, progress: progress)
    }

    /// Downloads one version's files into `directory`, verified, all or nothing.
    ///
    /// Files are written into a temporary directory beside `directory`, every chunk and every whole file is checked
    /// against the manifest's digests, and only then are the files moved into place; on failure nothing appears at
    /// `directory`. Manifest paths that would escape `directory` are refused (`MANIFEST_INVALID`).
    public func pull(
        model: String, version: Int, to directory: URL, concurrency: Int = 4, progress: TransferProgress? = nil
    ) async throws -> PullResult {
        let found = try await self.version(model: model, number: version)
        return try await pull(
            manifestDigest: found.manifestDigest, version: found.version, to: directory, concurrency: concurrency,
            progress: progress)
    }

    private func pull(
        manifestDigest: Digest, version: Int, to directory: URL, concurrency: Int, progress: TransferProgress?
    ) async throws -> PullResult {
        let manifest = try await self.manifest(manifestDigest)
        let destination = directory.standardizedFileURL.path
        let parent = (destination as NSString).deletingLastPathComponent
        let staging = "\(parent)/.\((destination as NSString).lastPathComponent).pull-\(UUID().uuidString)"
        let manager = FileManager.default
        try Self.createDirectory(parent)
        try Self.createDirectory(staging)
        do {
            var pieces: [ChunkLocation] = []
            for file in manifest.files {
                let path = try Self.contained(file.path, in: staging)
                try Self.createDirectory((path as NSString).deletingLastPathComponent)
                guard manager.createFile(atPath: path, contents: nil) else {
                    throw RegistryError.invalidArgument("Cannot create \(path).")
                }
                var offset: Int64 = 0
                for chunk in file.chunks {
                    pieces.append(ChunkLocation(digest: chunk.digest, size: chunk.size, path: path, offset: offset))
                    offset += chunk.size
                }
            }
            let counter = ProgressCounter(total: manifest.totalSize, report: progress)
            try await Self.forEach(pieces, concurrency: concurrency) { piece in
                try await self.download(piece, counter: counter)
            }
            for file in manifest.files {
                try await Self.verify(file, at: try Self.contained(file.path, in: staging))
            }
            try Self.moveContents(of: staging, to: destination, files: manifest.files.map(\.path))
        } catch {
            try? manager.removeItem(atPath: staging)
            throw error
        }
        return PullResult(
            version: version, manifestDigest: manifestDigest, files: manifest.files.count, bytes: manifest.totalSize)
    }

    // MARK: Pieces of the work

    /// Where one chunk's bytes are in a local file.
    struct ChunkLocation: Sendable {
        var digest: Digest
        var size: Int64
        var path: String
        var offset: Int64
    }

    /// The largest piece read or written at once.
    static let pieceSize = 1024 * 1024

    /// Hashes a file chunk by chunk, in pieces, returning its manifest entry and where its chunks are.
    static func scan(_ file: PushFile, chunkSize: Int) async throws -> (Manifest.File, [ChunkLocation]) {
        let path = file.url.standardizedFileURL.path
        let handle = try await LocalFile.open(path)
        var fileHasher = SHA256()
        var chunks: [ChunkLocation] = []
        var offset: Int64 = 0
        var finished = false
        while !finished {
            var chunkHasher = SHA256()
            var chunkLength = 0
            while chunkLength < chunkSize {
                let piece = try await handle.read(
                    at: offset + Int64(chunkLength), length: min(pieceSize, chunkSize - chunkLength))
                if piece.readableBytes == 0 {
                    finished = true
                    break
                }
                piece.withUnsafeReadableBytes { bytes in
                    chunkHasher.update(bufferPointer: bytes)
                    fileHasher.update(bufferPointer: bytes)
                }
                chunkLength += piece.readableBytes
            }
            if chunkLength > 0 {
                chunks.append(
                    ChunkLocation(
                        digest: Digest(finalized: chunkHasher.finalize()), size: Int64(chunkLength), path: path,
                        offset: offset))
                offset += Int64(chunkLength)
            }
        }
        let entry = Manifest.File(
            path: file.path, size: offset, digest: Digest(finalized: fileHasher.finalize()),
            chunks: chunks.map { Manifest.Chunk(digest: $0.digest, size: $0.size) })
        return (entry, chunks)
    }

    private func upload(_ chunk: ChunkLocation, counter: ProgressCounter) async throws {
        let handle = try await LocalFile.open(chunk.path)
        let body = ByteStream(makeNext: {
            var sent: Int64 = 0
            return {
                guard sent < chunk.size else { return nil }
                let length = Int(min(Int64(Self.pieceSize), chunk.size - sent))
                let piece = try await handle.read(at: chunk.offset + sent, length: length)
                guard piece.readableBytes > 0 else {
                    throw RegistryError.invalidArgument("\(chunk.path) got shorter while it was being pushed.")
                }
                sent += Int64(piece.readableBytes)
                counter.add(Int64(piece.readableBytes))
                return piece
            }
        })
        try await putBlob(chunk.digest, size: chunk.size, body: body)
    }

    private func download(_ chunk: ChunkLocation, counter: ProgressCounter) async throws {
        let handle = try await LocalFile.open(chunk.path, writing: true)
        var hasher = SHA256()
        var received: Int64 = 0
        for try await buffer in try await blob(chunk.digest) {
            guard received + Int64(buffer.readableBytes) <= chunk.size else {
                throw Self.chunkMismatch(chunk, "more than \(chunk.size) bytes")
            }
            buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            try await handle.write(buffer, at: chunk.offset + received)
            received += Int64(buffer.readableBytes)
            counter.add(Int64(buffer.readableBytes))
        }
        let actual = Digest(finalized: hasher.finalize())
        guard received == chunk.size, actual == chunk.digest else {
            throw Self.chunkMismatch(chunk, "\(received) bytes hashing to \(actual)")
        }
    }

    private static func verify(_ file: Manifest.File, at path: String) async throws {
        let handle = try await LocalFile.open(path)
        var hasher = SHA256()
        var offset: Int64 = 0
        while true {
            let piece = try await handle.read(at: offset, length: pieceSize)
            if piece.readableBytes == 0 { break }
            piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            offset += Int64(piece.readableBytes)
        }
        let actual = Digest(finalized: hasher.finalize())
        guard offset == file.size, actual == file.digest else {
            throw RegistryError(
                .digestMismatch,
                "'\(file.path)' is \(offset) bytes hashing to \(actual); the manifest says "
                    + "\(file.size) bytes hashing to \(file.digest).",
                details: ["path": .string(file.path), "expected": .string(file.digest.description)])
        }
        try await handle.sync()
    }

    private static func chunkMismatch(_ chunk: ChunkLocation, _ what: String) -> RegistryError {
        RegistryError(
            .digestMismatch, "Chunk \(chunk.digest) arrived as \(what); expected \(chunk.size) bytes.",
            details: ["digest": .string(chunk.digest.description)])
    }

    /// The absolute path of manifest path `relative` inside `root`; throws `MANIFEST_INVALID` if it escapes.
    static func contained(_ relative: String, in root: String) throws -> String {
        let components = relative.split(separator: "/", omittingEmptySubsequences: false)
        let path = (root + "/" + relative as NSString).standardizingPath
        guard !relative.hasPrefix("/"), components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
            path.hasPrefix(root + "/")
        else {
            throw RegistryError(
                .invalidManifest, "The manifest path '\(relative.prefix(200))' would leave the destination.",
                details: ["path": .string(String(relative.prefix(200)))])
        }
        return path
    }

    private static func createDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw RegistryError.invalidArgument("Cannot create the directory \(path): \(error.localizedDescription)")
        }
    }

    /// Moves verified files into `destination`: the whole staging directory when the destination does not exist,
    /// otherwise file by file (each rename is atomic).
    private static func moveContents(of staging: String, to destination: String, files: [String]) throws {
        let manager = FileManager.default
        if !manager.fileExists(atPath: destination) {
            try rename(staging, to: destination)
            return
        }
        for file in files {
            let target = try contained(file, in: destination)
            try createDirectory((target as NSString).deletingLastPathComponent)
            try rename(try contained(file, in: staging), to: target)
        }
        try? manager.removeItem(atPath: staging)
    }

    private static func rename(_ from: String, to: String) throws {
        guard Foundation.rename(from, to) == 0 else {
            throw RegistryError.invalidArgument("Cannot move \(from) to \(to): \(String(cString: strerror(errno))).")
        }
    }

    /// Runs `body` for each element with at most `concurrency` running at once; the first error cancels the rest.
    static func forEach<Element: Sendable>(
        _ elements: [Element], concurrency: Int, _ body: @escaping @Sendable (Element) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < elements.count && next < concurrency {
                let element = elements[next]
                group.addTask { try await body(element) }
                next += 1
            }
            while try await group.next() != nil {
                if next < elements.count {
                    let element = elements[next]
                    group.addTask { try await body(element) }
                    next += 1
                }
            }
        }
    }
}

/// Adds up transferred bytes from concurrent tasks and reports the running total.
final class ProgressCounter: Sendable {
    private let done = Mutex<Int64>(0)
    let total: Int64
    let report: TransferProgress?

    init(total: Int64, report: TransferProgress?) {
        self.total = total
        self.report = report
        report?(0, total)
    }

    func add(_ bytes: Int64) {
        guard bytes > 0 else { return }
        let now = done.withLock { value -> Int64 in
            value += bytes
            return value
        }
        report?(now, total)
    }
}
