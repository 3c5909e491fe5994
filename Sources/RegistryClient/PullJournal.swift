import Foundation
import RegistryCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The append-only record of chunks a pull has written and verified, so that a pull run again after being killed
/// fetches none of them twice.
///
/// One line per chunk: its 64 hex digits and a newline, appended with one `write(2)` after the chunk's bytes are
/// written at all their offsets. A torn last line is ignored. The journal is fsynced every `syncEvery` entries; a
/// journal that claims more than the disk kept after a power cut is caught by the whole-file digests at the end.
final class PullJournal: Sendable {
    private let file: LocalFile
    private let unsynced = Mutex(0)
    private let syncEvery: Int

    private init(file: LocalFile, syncEvery: Int) {
        self.file = file
        self.syncEvery = syncEvery
    }

    /// Opens the journal at `path` and returns it with the digests it already lists: an earlier run's when
    /// `resuming`, otherwise a new one (created exclusively). It is never opened through a symbolic link.
    static func open(_ path: String, resuming: Bool, syncEvery: Int = 256) async throws -> (PullJournal, Set<Digest>) {
        var completed = Set<Digest>()
        let file: LocalFile
        if resuming {
            file = try await LocalFile.open(path, flags: O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW)
            let length = try await file.length()
            var offset: Int64 = 0
            var data: [UInt8] = []
            while offset < length {
                let piece = try await file.read(at: offset, length: Int(min(length - offset, 1 << 20)))
                if piece.readableBytes == 0 { break }
                data += piece.readableBytesView
                offset += Int64(piece.readableBytes)
            }
            for line in data.split(separator: UInt8(ascii: "\n")) where line.count == 64 {
                if let digest = try? Digest(hex: String(decoding: line, as: UTF8.self)) { completed.insert(digest) }
            }
        } else {
            file = try await LocalFile.open(path, flags: O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW)
        }
        // A torn line from a killed run must not glue itself to the next entry.
        if try await file.length() % 65 != 0 { try await file.append(Array("\n".utf8)) }
        return (PullJournal(file: file, syncEvery: syncEvery), completed)
    }

    /// Records that `digest`'s chunk is written and verified.
    func record(_ digest: Digest) async throws {
        try await file.append(Array((digest.hex + "\n").utf8))
        let due = unsynced.withLock { count -> Bool in
            count += 1
            guard count >= syncEvery else { return false }
            count = 0
            return true
        }
        if due { try await file.sync() }
    }
}
