import RegistryCore
import Synchronization

import struct Crypto.SHA256

/// Hashes each file of a pull in order while its chunks arrive out of order: whenever the verified, written prefix
/// of a file grows, the new bytes are read back (from the page cache) and fed to that file's SHA-256.
final class FileDigestVerifier: Sendable {
    struct Entry: Sendable {
        var file: Manifest.File
        var path: String
        /// Whether each chunk of the file is written.
        var written: [Bool]
        /// The number of leading chunks that are written.
        var prefixChunks = 0
        /// The byte length of those leading chunks.
        var prefixBytes: Int64 = 0
    }

    private let entries: Mutex<[Entry]>
    private let signals: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init(files: [Manifest.File], paths: [String]) {
        entries = Mutex(
            zip(files, paths).map {
                Entry(file: $0, path: $1, written: Array(repeating: false, count: $0.chunks.count))
            })
        (signals, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Marks chunk `chunk` of file `file` as written.
    func written(file: Int, chunk: Int) {
        entries.withLock { entries in
            entries[file].written[chunk] = true
            while entries[file].prefixChunks < entries[file].written.count
                && entries[file].written[entries[file].prefixChunks]
            {
                entries[file].prefixBytes += entries[file].file.chunks[entries[file].prefixChunks].size
                entries[file].prefixChunks += 1
            }
        }
        continuation.yield()
    }

    /// Says that no more chunks will be written.
    func finish() {
        continuation.finish()
    }

    /// Hashes until every file is verified; throws `DIGEST_MISMATCH` naming the first file that does not match, or
    /// `INTERNAL` when the writers finished with a file incomplete.
    func run() async throws {
        let count = entries.withLock { $0.count }
        var hashers = Array(repeating: SHA256(), count: count)
        var hashed = Array(repeating: Int64(0), count: count)
        var verified = Array(repeating: false, count: count)
        let buffer = ReadBuffer(capacity: RegistryClient.readSize)
        var iterator = signals.makeAsyncIterator()
        var more = true
        while true {
            let snapshot = entries.withLock { $0.map { ($0.path, $0.prefixBytes, $0.file) } }
            for (index, (path, prefix, file)) in snapshot.enumerated() where !verified[index] {
                if prefix > hashed[index] {
                    let handle = try await LocalFile.open(path)
                    while hashed[index] < prefix {
                        let wanted = Int(min(Int64(buffer.capacity), prefix - hashed[index]))
                        let read = try await handle.read(into: buffer, at: hashed[index], length: wanted)
                        guard read > 0 else {
                            throw RegistryError(.internalError, "'\(file.path)' is shorter on disk than written.")
                        }
                        hashers[index].update(bufferPointer: buffer.bytes)
                        hashed[index] += Int64(read)
                    }
                }
                if hashed[index] == file.size, prefix == file.size {
                    let actual = Digest(finalized: hashers[index].finalize())
                    guard actual == file.digest else {
                        throw RegistryError(
                            .digestMismatch,
                            "'\(file.path)' hashes to \(actual) although each chunk matched; the manifest says "
                                + "\(file.digest).",
                            details: ["path": .string(file.path), "expected": .string(file.digest.description)])
                    }
                    verified[index] = true
                }
            }
            if verified.allSatisfy({ $0 }) { return }
            guard more else {
                try Task.checkCancellation()
                let incomplete = snapshot.enumerated().first { !verified[$0.offset] }?.element.2.path ?? "?"
                throw RegistryError(.internalError, "The pull ended with '\(incomplete)' incomplete.")
            }
            more = await iterator.next() != nil
        }
    }
}
