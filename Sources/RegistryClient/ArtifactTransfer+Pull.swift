import Foundation
import NIOCore
import RegistryCore

import struct Crypto.SHA256

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension RegistryClient {
    /// Downloads the version a stage points at into `directory`, from the artifacts URL resolve advertises (when
    /// `artifactClient(for:)` accepts it; `UNTRUSTED_ARTIFACT_URL` otherwise); see
    /// `pull(manifestDigest:version:to:concurrency:durable:verify:progress:)`.
    public func pull(
        model: String, stage: String, to directory: URL, concurrency: Int = 8, durable: Bool = false,
        verify: PullVerification? = nil, progress: TransferProgress? = nil
    ) async throws -> PullResult {
        guard let resolution = try await resolve(model: model, stage: stage) else {
            throw RegistryError(.internalError, "The registry answered 'not modified' to an unconditional resolve.")
        }
        return try await artifactClient(for: resolution.artifactsURL).pull(
            manifestDigest: resolution.stable.manifestDigest, version: resolution.stable.version, to: directory,
            concurrency: concurrency, durable: durable, verify: verify, progress: progress)
    }

    /// Downloads one version's files into `directory`; see `pull(manifestDigest:version:to:…)`.
    public func pull(
        model: String, version: Int, to directory: URL, concurrency: Int = 8, durable: Bool = false,
        verify: PullVerification? = nil, progress: TransferProgress? = nil
    ) async throws -> PullResult {
        let found = try await self.version(model: model, number: version)
        return try await pull(
            manifestDigest: found.manifestDigest, version: found.version, to: directory, concurrency: concurrency,
            durable: durable, verify: verify, progress: progress)
    }

    /// Downloads the files of manifest `manifestDigest` into `directory`, verified, resumable, all or nothing.
    ///
    /// Chunks are fetched `concurrency` at a time, each distinct digest once, verified on arrival and written at
    /// their offsets into `.<directory>.partial-<digest prefix>/` beside `directory`, with a journal of finished
    /// chunks: a pull that is killed and run again fetches none of them twice. Whole-file digests are computed in
    /// order as each file's written prefix grows. Then `verify` runs (a throw stops the pull), files are fsynced
    /// when `durable`, and only then renamed into place. Integrity failures (a chunk or file digest, an unsafe
    /// manifest path, `verify`) remove the partial directory; other failures keep it for the next run.
    public func pull(
        manifestDigest: Digest, version: Int, to directory: URL, concurrency: Int = 8, durable: Bool = false,
        verify: PullVerification? = nil, progress: TransferProgress? = nil
    ) async throws -> PullResult {
        guard concurrency > 0 else { throw RegistryError.invalidArgument("concurrency must be positive.") }
        let manifest = try await self.manifest(manifestDigest)
        let destination = directory.standardizedFileURL.path
        let parent = (destination as NSString).deletingLastPathComponent
        let name = (destination as NSString).lastPathComponent
        try Self.createDirectory(parent)
        let (staging, resuming) = try Self.stagingDirectory(
            in: parent, prefix: ".\(name).partial-\(manifestDigest.hex.prefix(16))-")
        let root = staging + "/files"
        let paths = try manifest.files.map { try Self.contained($0.path, in: root) }
        do {
            try Self.createDirectory(root)
            let (journal, journaled) = try await PullJournal.open(staging + "/journal", resuming: resuming)
            let plan = PullPlan(manifest: manifest, paths: paths, completed: journaled)
            // Up to `openFilesLimit` files are opened once and shared by every fetch task; beyond that (models of
            // many small files) each write opens its file, so a pull never runs out of descriptors. Staged files
            // are never opened through a symbolic link, and a fresh staging directory's are created exclusively.
            let create = O_WRONLY | O_CREAT | O_NOFOLLOW | (resuming ? 0 : O_EXCL)
            var handles: [LocalFile] = []
            for (file, path) in zip(manifest.files, paths) {
                try Self.createDirectory((path as NSString).deletingLastPathComponent)
                let handle = try await LocalFile.open(path, flags: create)
                try await handle.truncate(to: file.size)
                if paths.count <= Self.openFilesLimit { handles.append(handle) }
            }
            let files = handles
            @Sendable func file(_ index: Int) async throws -> LocalFile {
                index < files.count
                    ? files[index] : try await LocalFile.open(paths[index], flags: O_WRONLY | O_NOFOLLOW)
            }
            let counter = ProgressCounter(total: manifest.totalSize, report: progress)
            counter.add(plan.resumedBytes)
            let verifier = FileDigestVerifier(files: manifest.files, paths: paths)
            for place in plan.resumed.flatMap(\.places) { verifier.written(file: place.file, chunk: place.chunk) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await verifier.run() }
                group.addTask {
                    defer { verifier.finish() }
                    try await Self.forEach(plan.fetch, concurrency: concurrency) { chunk in
                        let bytes = try await self.fetch(chunk, plan: plan)
                        for place in chunk.places {
                            try await file(place.file).write(bytes, at: place.offset)
                        }
                        try await journal.record(chunk.digest)
                        for place in chunk.places { verifier.written(file: place.file, chunk: place.chunk) }
                        counter.add(chunk.size * Int64(chunk.places.count))
                    }
                }
                try await group.waitForAll()
            }
            if durable {
                for index in paths.indices { try await file(index).sync() }
            }
            do {
                try await verify?(manifest, manifestDigest)
            } catch {
                throw VerificationFailure(underlying: error)
            }
            try await Self.moveInto(destination, from: root, files: manifest.files.map(\.path), durable: durable)
            try? FileManager.default.removeItem(atPath: staging)
            return PullResult(
                version: version, manifestDigest: manifestDigest, files: manifest.files.count,
                bytes: manifest.totalSize, chunkCount: plan.fetch.count + plan.resumed.count,
                fetchedChunks: plan.fetch.count, fetchedBytes: plan.fetch.reduce(0) { $0 + $1.size },
                resumedChunks: plan.resumed.count)
        } catch let failure as VerificationFailure {
            try? FileManager.default.removeItem(atPath: staging)
            throw failure.underlying
        } catch {
            if Self.isIntegrityFailure(error) { try? FileManager.default.removeItem(atPath: staging) }
            throw error
        }
    }

    /// Files a pull keeps open at once.
    static let openFilesLimit = 256

    /// The staging directory of a pull beside its destination, and whether it is an earlier run's to resume.
    ///
    /// Its name is `prefix` plus a random UUID, made with `mkdir(2)` mode 0700 (which never follows a link), so no
    /// other user can guess it, plant it or put anything in it. An earlier run's directory is resumed only when it
    /// is a real directory (not a link), owned by this user and closed to everyone else; anything else that merely
    /// has the name is left alone.
    static func stagingDirectory(in parent: String, prefix: String) throws -> (path: String, resuming: Bool) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        for name in names.sorted() where name.hasPrefix(prefix) {
            var info = stat()
            let path = parent + "/" + name
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid(),
                info.st_mode & 0o077 == 0
            {
                return (path, true)
            }
        }
        let path = parent + "/" + prefix + UUID().uuidString.lowercased()
        guard mkdir(path, 0o700) == 0 else {
            throw LocalFile.error(errno, "create the staging directory", path)
        }
        return (path, false)
    }

    /// A `verify` hook's error, kept apart so that the partial directory is discarded whatever it threw.
    private struct VerificationFailure: Error {
        var underlying: any Error
    }

    private static func isIntegrityFailure(_ error: any Error) -> Bool {
        guard let error = error as? RegistryError else { return false }
        return [.digestMismatch, .sizeMismatch, .invalidManifest, .blobCorrupt].contains(error.code)
    }

    /// Downloads one chunk into memory (at most its size) and checks its digest before anything is written.
    private func fetch(_ chunk: PullPlan.Chunk, plan: PullPlan) async throws -> ByteBuffer {
        let first = chunk.places[0]
        let file = plan.manifest.files[first.file]
        func failure(_ code: RegistryError.Code, _ what: String) -> RegistryError {
            RegistryError(
                code, "Chunk \(first.chunk) of '\(file.path)' (\(chunk.digest)): \(what)",
                details: [
                    "path": .string(file.path), "chunk": .number(Double(first.chunk)),
                    "digest": .string(chunk.digest.description),
                ])
        }
        var hasher = SHA256()
        var bytes = ByteBuffer()
        bytes.reserveCapacity(Int(chunk.size))
        do {
            for try await var piece in try await blob(chunk.digest) {
                guard bytes.readableBytes + piece.readableBytes <= Int(chunk.size) else {
                    throw failure(.digestMismatch, "the registry sent more than its \(chunk.size) bytes.")
                }
                piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                bytes.writeBuffer(&piece)
            }
        } catch let error as RegistryError where error.details["path"] == nil {
            throw failure(error.code, error.message)
        } catch let error as RegistryError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw failure(.unavailable, "the download broke off: \(error).")
        }
        let actual = Digest(finalized: hasher.finalize())
        guard bytes.readableBytes == Int(chunk.size), actual == chunk.digest else {
            throw failure(
                .digestMismatch, "arrived as \(bytes.readableBytes) bytes hashing to \(actual); expected \(chunk.size)."
            )
        }
        return bytes
    }

    /// Moves verified files into `destination`: the whole staged tree when the destination does not exist,
    /// otherwise file by file (each rename is atomic).
    private static func moveInto(_ destination: String, from root: String, files: [String], durable: Bool) async throws
    {
        let parent = (destination as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: destination) {
            try rename(root, to: destination)
            if durable { try await LocalFile.syncDirectory(parent) }
            return
        }
        var directories = Set<String>()
        for file in files {
            let target = try contained(file, in: destination)
            let directory = (target as NSString).deletingLastPathComponent
            try createDirectory(directory)
            try rename(try contained(file, in: root), to: target)
            directories.insert(directory)
        }
        if durable {
            for directory in directories { try await LocalFile.syncDirectory(directory) }
        }
    }
}

/// Which distinct chunks a pull must fetch, which an earlier run already wrote, and every place each one goes.
struct PullPlan: Sendable {
    struct Place: Sendable {
        var file: Int
        var chunk: Int
        var offset: Int64
    }

    struct Chunk: Sendable {
        var digest: Digest
        var size: Int64
        var places: [Place]
    }

    let manifest: Manifest
    /// Chunks to download, in the order they first appear.
    let fetch: [Chunk]
    /// Chunks the journal lists.
    let resumed: [Chunk]

    init(manifest: Manifest, paths: [String], completed: Set<Digest>) {
        var order: [Digest] = []
        var chunks: [Digest: Chunk] = [:]
        for (fileIndex, file) in manifest.files.enumerated() {
            var offset: Int64 = 0
            for (chunkIndex, chunk) in file.chunks.enumerated() {
                let place = Place(file: fileIndex, chunk: chunkIndex, offset: offset)
                if chunks[chunk.digest] == nil {
                    order.append(chunk.digest)
                    chunks[chunk.digest] = Chunk(digest: chunk.digest, size: chunk.size, places: [])
                }
                chunks[chunk.digest]!.places.append(place)
                offset += chunk.size
            }
        }
        self.manifest = manifest
        fetch = order.filter { !completed.contains($0) }.map { chunks[$0]! }
        resumed = order.filter { completed.contains($0) }.map { chunks[$0]! }
    }

    /// Bytes already in place from an earlier run.
    var resumedBytes: Int64 { resumed.reduce(0) { $0 + $1.size * Int64($1.places.count) } }
}
